"""The `bandit-router` command. Each subcommand is one `_add_<name>` function that registers its parser and
sets `run`, the function called with the parsed arguments."""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .errors import BanditRouterError, ConfigError

if TYPE_CHECKING:
    from .models import Model
    from .service import ServiceConfig

__all__ = ["main"]

DEFAULT_POLICIES = "shrunk-linucb,linucb,thompson,epsilon-greedy,random,cheapest"
DEFAULT_DIALS = "0,0.1,0.3,0.5,0.8"


def _numbers(text: str, option: str, expected: str) -> list[float]:
    """The comma-separated numbers of `option`, or ConfigError saying which `expected`."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated {expected}, got {text!r}") from None


def _dials(text: str) -> list[float]:
    from .router import check_cost_weight

    values = _numbers(text, "--dial", "numbers in [0, 1]")
    if not values:
        raise ConfigError("--dial needs at least one value in [0, 1]")
    return sorted({check_cost_weight(v, "--dial") for v in values})


def _spends(text: str) -> list[float]:
    from .checks import check_positive

    values = _numbers(text, "--spend", "shares in (0, 10] of the best model's cost")
    return sorted({check_positive(v, "--spend", 10.0) for v in values})


def _warm_start(text: str, n: int) -> float:
    """--warm-start: a whole number of prompts (e.g. 200) or a share of them (e.g. 0.05), checked against `n`."""
    from .evaluation.replay import warm_rows

    try:
        value: float = int(text) if text.strip().lstrip("+-").isdigit() else float(text)
    except ValueError:
        raise ConfigError(f"--warm-start must be a number of prompts (e.g. 200) or a share of them (e.g. 0.05), "
                          f"got {text!r}") from None
    warm_rows(value, n, "--warm-start")
    return value


def _policies(text: str) -> list[str]:
    from .policies import policy_names

    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in policy_names()]
    if not names or unknown:
        raise ConfigError(f"--policy must name registered policies, got {unknown or text!r}; "
                          f"registered: {policy_names()} (a policy of your own: --import the module that registers "
                          "it)")
    return names


def _settings(text: str) -> dict[str, dict]:
    try:
        settings = json.loads(text)
    except ValueError:
        raise ConfigError(f"--settings must be JSON like '{{\"linucb\": {{\"alpha\": 1.0}}}}', got {text!r}") from None
    if not isinstance(settings, dict) or not all(isinstance(v, dict) for v in settings.values()):
        raise ConfigError("--settings must map policy names to objects of settings")
    return settings


def _imported(text: str) -> list[str]:
    """The comma-separated modules of --import, imported (they register policies); ConfigError naming a module
    that cannot be."""
    import importlib

    modules = [m.strip() for m in text.split(",") if m.strip()]
    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a module beside the user, as `python -m` would find it
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:
            raise ConfigError(f"--import {module}: {type(error).__name__}: {error}") from error
    return modules


def _replay(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .encoders import encoder_by_name
    from .evaluation import bundled_table_path, load_table, table_vectors
    from .evaluation.report import hull_table, write_report
    from .evaluation.sweep import SweepSpec, check_spends, reference_runs, run_sweep

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be an integer >= 1, got {args.seeds}")
    modules = _imported(args.import_)
    bundled = bundled_table_path()
    folder = bundled if args.data_dir == bundled.name and not Path(args.data_dir).exists() else args.data_dir
    table = load_table(folder, invalid_rows=args.invalid_rows)
    spec = SweepSpec(_policies(args.policy), _dials(args.dial), list(range(args.seeds)), _settings(args.settings),
                     warm_start=_warm_start(args.warm_start, len(table)), feedback=args.feedback,
                     task_hints=args.task_hints, spends=_spends(args.spend), modules=modules)
    print(table.summary(), file=sys.stderr)
    check_spends(table, spec.spends, "--spend")
    if args.task_hints and not any(table.tasks):
        raise ConfigError(f"--task-hints tells the router each prompt's task from the table's task column, but "
                          f"{folder}'s prompts have no task (the column is absent or empty)")
    encoder = encoder_by_name(args.encoder)
    vectors = table_vectors(table, encoder, progress=True)
    started = time.perf_counter()
    refs = [(run, None) for run in reference_runs(table, vectors, spec.dials, spec.seeds)]
    n_runs = len(spec.policies) * (len(spec.dials) + len(spec.spends)) * len(spec.seeds)
    with tqdm(total=n_runs * len(table), desc=f"replaying {n_runs} runs", unit="prompt", smoothing=0) as bar:
        runs = run_sweep(table, vectors, encoder.name, spec, workers=args.workers,
                         on_done=lambda run, seconds: bar.update(len(table)))
    command = "bandit-router " + " ".join(shlex.quote(a) for a in args.argv)
    paths = write_report(args.out, table, [*runs, *refs], regret_dial=args.regret_dial, command=command)
    print("\n".join(hull_table(table, [run for run, _ in [*runs, *refs]])))
    print(f"{n_runs} runs in {time.perf_counter() - started:.0f} s; wrote " + ", ".join(map(str, paths.values())),
          file=sys.stderr)
    return 0


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="replay a routing-table folder through the router: policies x dials x seeds",
                       description="Replay DATA_DIR (prompts.csv, outcomes.csv, models.json) through the real Router, "
                                   "once per policy x dial (and spend target) x seed with bandit feedback, beside each "
                                   "single model, the oracle and a full-information ridge router; writes results.csv, "
                                   "summary.md and PNG plots into --out.")
    p.add_argument("data_dir", help="routing-table folder, or llmrouter-9 for the bundled set")
    p.add_argument("--policy", default=DEFAULT_POLICIES,
                   help=f"comma-separated registered policy names (default {DEFAULT_POLICIES})")
    p.add_argument("--import", dest="import_", default="", metavar="MODULE",
                   help="comma-separated modules to import first, e.g. your own policies (found on PYTHONPATH or in "
                        "the current folder)")
    p.add_argument("--dial", default=DEFAULT_DIALS,
                   help=f"comma-separated cost weights in [0, 1] (default {DEFAULT_DIALS})")
    p.add_argument("--spend", default="",
                   help="comma-separated spend targets, each a share of the best single model's mean cost per prompt "
                        "(e.g. 0.2,0.5): every policy is also replayed at a SpendTarget of each (default: none)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1 (default 3)")
    p.add_argument("--out", default="replay-output", help="output folder (default replay-output)")
    p.add_argument("--invalid-rows", choices=("raise", "drop"), default="raise",
                   help="drop: skip (and count) outcome rows with an invalid cell (not a number, a negative cost or "
                        "score, a conflicting duplicate); scores above 1 are refused either way (rescale them)")
    p.add_argument("--warm-start", default="0",
                   help="prompts of each shuffled stream first learned with every model's score, then not routed: "
                        "a number (e.g. 200) or a share (e.g. 0.05; default 0)")
    p.add_argument("--feedback", choices=("bandit", "full"), default="bandit",
                   help="bandit: only the chosen model's score is learned (default); full: every model's")
    p.add_argument("--task-hints", action="store_true",
                   help="tell the router each prompt's task (the table's task column) as a task hint")
    p.add_argument("--settings", default="{}", help='policy settings as JSON, e.g. \'{"linucb": {"alpha": 1.0}}\'')
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--encoder", default="sentence-transformers/all-MiniLM-L6-v2",
                   help="encoder name: a sentence-transformers model (default sentence-transformers/all-MiniLM-L6-v2, "
                        "all-MiniLM-L6-v2 for short), "
                        "static-all-MiniLM-L6-v2, or hashing:<dim> (no model to load)")
    p.add_argument("--regret-dial", type=float, default=None, help="dial of the regret plot (default: the lowest)")
    p.set_defaults(run=_replay)


def _costs(args: argparse.Namespace) -> int:
    from .costs import cost_errors
    from .store import SQLiteDecisionLog

    if not Path(args.log).is_file():
        raise ConfigError(f"decision log {args.log!r} is not a file (a router's log=... SQLite file)")
    errors = cost_errors(list(SQLiteDecisionLog(args.log).rows()))
    print("| model | calls | mean predicted cost | mean realised cost | mean absolute % error |\n"
          "|---|---:|---:|---:|---:|")
    for model, e in errors.items():
        mape = "n/a (every realised cost is 0)" if math.isnan(e["mape"]) else f"{100 * e['mape']:.1f}%"
        print(f"| {model} | {e['calls']} | {e['mean_predicted']:.4g} | {e['mean_realised']:.4g} | {mape} |")
    if not errors:
        print("(no served call with a predicted and a realised cost in the log)", file=sys.stderr)
    return 0


def _add_costs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("costs", help="the cost model's error per model, from a decision log",
                       description="Compare each served call's predicted cost with its realised cost in a decision "
                                   "log (SQLite file): calls, mean predicted and realised cost, and the mean absolute "
                                   "percentage error, per model.")
    p.add_argument("log", help="decision log file (Router(log=...))")
    p.set_defaults(run=_costs)


def _prompts_file(path: str) -> tuple[list[str], list[str], dict[str, str]]:
    """(prompts, tasks, references) of a .txt file (a prompt per line) or a .jsonl file (a JSON string, or an
    object with "prompt" and an optional "task" and "reference", per line); blank lines are skipped."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"prompts file {path!r} is not a file")
    prompts, tasks, references = [], [], {}
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if file.suffix != ".jsonl":
            prompts.append(line)
            tasks.append("")
            continue
        try:
            item = json.loads(line)
        except ValueError as error:
            raise ConfigError(f"{path} line {number} is not JSON: {error}") from None
        item = {"prompt": item} if isinstance(item, str) else item
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
            raise ConfigError(f"{path} line {number} must be a JSON string or an object with a \"prompt\" string "
                              "that is not empty")
        prompts.append(item["prompt"])
        tasks.append(str(item.get("task") or ""))
        if item.get("reference") is not None:
            references[item["prompt"]] = str(item["reference"])
    return prompts, tasks, references


def _judge(name: str | None, config: ServiceConfig) -> Model | str:
    """--judge: the config's judge or model of that name, or whose name is `provider/<name>`, else the LiteLLM name;
    without --judge, the config's judge."""
    if name is None:
        if config.judge is None:
            raise ConfigError("name the grading model: --judge NAME, or a judge entry in the config (a model name or "
                              "a table like a [[models]] entry, with its api_base and api_key_env)")
        return config.judge
    cards = ([] if config.judge is None else [config.judge]) + config.models
    return next((m for m in cards if m.name == name), None) or next(
        (m for m in cards if m.name.split("/", 1)[-1] == name), None) or name


def _score_table(args: argparse.Namespace) -> int:
    from .evaluation.scoring import expected_cost, score_table
    from .feedback import LLMJudge
    from .models import Model
    from .service import load_config

    if args.max_tokens is not None and args.max_tokens < 1:
        raise ConfigError(f"--max-tokens must be an integer >= 1, got {args.max_tokens}")
    config = load_config(args.config, keys=not args.dry_run)  # a dry run calls no model: it needs no key
    models = config.models
    prompts, tasks, references = _prompts_file(args.prompts)
    if len(set(prompts)) < len(prompts):
        print(f"{len(prompts) - len(set(prompts))} repeated prompt(s) in {args.prompts}: each is scored once",
              file=sys.stderr)
    judge = _judge(args.judge, config)
    if judge is config.judge and config.judge_key_env and judge.api_key is None and not args.dry_run:
        raise ConfigError(f"judge.api_key_env names {config.judge_key_env!r}, which is not set in the environment")
    try:
        priced = judge if isinstance(judge, Model) else Model(judge)
    except ConfigError:
        priced = None  # a judge LiteLLM has no price for: its calls are left out of the estimate
    answer_tokens = args.max_tokens or 256
    expected = expected_cost(models, prompts, priced, answer_tokens, out=args.out)
    parts = [f"{name} ${usd:.3g}" for name, usd in expected.items()]
    if priced is None:
        parts.append("the judge not counted: LiteLLM has no price for it")
    if isinstance(judge, Model):
        grader = f"{judge.name} (the config's {'judge' if judge is config.judge else 'model'})"
    else:
        grader = (f"{judge} (not in the config: LiteLLM calls it with the provider's key and endpoint from the "
                  "environment)")
    print(f"{len(models)} models x {len(set(prompts))} prompts, graded by {grader}"
          + f". Left to do in {args.out}: about ${sum(expected.values()):.4g} ({', '.join(parts)}; "
          f"{answer_tokens} tokens an answer, at the cards' prices)", file=sys.stderr)
    if args.dry_run:
        return 0
    extra = {} if args.max_tokens is None else {"max_tokens": args.max_tokens}
    grade = LLMJudge(judge, references=references, temperature=0)
    table = score_table(models, prompts, grade, args.out, tasks=tasks, max_workers=args.workers, **extra)
    print(table.summary(), file=sys.stderr)
    means = table.scores.mean(axis=0)
    costs = table.costs.mean(axis=0)
    print("| model | mean score | mean cost |\n|---|---:|---:|")
    for k, model in enumerate(table.models):
        print(f"| {model} | {means[k]:.3f} | {costs[k]:.4g} |")
    return 0


def _add_score_table(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score-table", help="ask every model of a config your prompts, grade the answers with a "
                                           "judge, and write a routing table",
                       description="Ask each model of the service config each prompt of PROMPTS (.txt: a prompt per "
                                   "line; .jsonl: a JSON string or {\"prompt\", \"task\", \"reference\"} per line), "
                                   "grade each answer 0-10 with the judge model (shown the reference answer if any), "
                                   "and write prompts.csv, outcomes.csv and models.json into --out: the [prior] table "
                                   "a service warm-starts from, and a table `bandit-router replay` replays. Run it "
                                   "again with the same --out to retry the pairs that failed; the ones scored are "
                                   "kept.")
    p.add_argument("prompts", help="prompts file (.txt or .jsonl)")
    p.add_argument("--config", required=True, help="service config (JSON or TOML) whose [[models]] are asked")
    p.add_argument("--judge", default=None,
                   help="the grading model: the config's judge or one of its models (called at its api_base with its "
                        "key), or a LiteLLM model name (default: the config's judge)")
    p.add_argument("--out", default="scored", help="output folder (default scored)")
    p.add_argument("--workers", type=int, default=4, help="calls at once (default 4)")
    p.add_argument("--max-tokens", type=int, default=None, help="max_tokens of each answer (default: the model's)")
    p.add_argument("--dry-run", action="store_true", help="print the expected cost and exit, calling no model")
    p.set_defaults(run=_score_table)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(seed=args.seed, out=args.out)
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="replay the bundled llmrouter-9 set and show what routing buys",
                       description="Replay the bundled llmrouter-9 routing table (6,108 prompts, 9 models) with the "
                                   "default policy at several dials, beside every single model, and write the table "
                                   "(demo.md) and the quality-vs-cost plot with the single models' hull (demo.png).")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    p.set_defaults(run=_demo)


def _serve(args: argparse.Namespace) -> int:
    from .service import hash_key, load_config, serve

    if args.hash_key:
        entry = {"name": args.hash_key, **hash_key(sys.stdin.readline().strip())}
        print("[[tenants]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in entry.items())
              + f"# in a JSON config: {json.dumps(entry)}")
        return 0
    if not args.config:
        raise ConfigError("serve needs --config FILE (JSON or TOML), or --hash-key NAME")
    serve(load_config(args.config), host=args.host, port=args.port, access_log=args.access_log,
          advertise_url=args.advertise_url)
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the router as an OpenAI-compatible HTTP service",
                       description="Serve POST /v1/chat/completions (model 'router' or 'router:<dial>'), "
                                   "POST /v1/feedback, GET /v1/models, /healthz and /metrics, as the config file "
                                   "describes (see docs/SERVICE.md). Needs the 'service' extra.")
    p.add_argument("--config", help="config file: JSON, or TOML when it ends in .toml")
    p.add_argument("--host", default=None, help="address to bind (default: the config's server.host, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: the config's server.port, 8000)")
    p.add_argument("--access-log", action="store_true", help="log one line per request (method, path, status)")
    p.add_argument("--advertise-url", default=None,
                   help="URL the other replicas reach this one at, to pass on ratings of its answers (with shared "
                        "state, Redis or SQLite; default http://HOST:PORT unless HOST is a wildcard address)")
    p.add_argument("--hash-key", metavar="TENANT",
                   help="read an API key (16 characters or more) on stdin and print the tenant's config entry (salted "
                        "SHA-256): a TOML [[tenants]] block, with its JSON form as a comment; then exit")
    p.set_defaults(run=_serve)


def _report(args: argparse.Namespace) -> int:
    from .service.report import write_report

    paths = write_report(args.log, args.out, bins=args.bins)
    print("wrote " + ", ".join(map(str, paths.values())), file=sys.stderr)
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="plot what the router has been doing, from its decision log",
                       description="Read a decision log (the router's `log` SQLite file) and write traffic share per "
                                   "model over time, cumulative spend, mean ratings and the dial as PNG plots, and "
                                   "report.md with a table per model.")
    p.add_argument("log", help="decision log (SQLite file)")
    p.add_argument("--out", default="router-report", help="output folder (default router-report)")
    p.add_argument("--bins", type=int, default=24, help="time bins of the plots (default 24)")
    p.set_defaults(run=_report)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bandit-router` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="bandit-router", description="Bandit-routed LLM calls.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_replay, _add_costs, _add_demo, _add_serve, _add_report, _add_score_table):
        add(sub)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return args.run(args)
    except BanditRouterError as error:
        print(f"bandit-router {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
