"""A tiny routing table replayed through the real Router, from the library and from the CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from bandit_router import Router
from bandit_router.cli import main
from bandit_router.encoders import Encoder
from bandit_router.errors import ConfigError
from bandit_router.evaluation import load_table, lookup_encoder, replay
from bandit_router.evaluation.metrics import hull_gain
from bandit_router.evaluation.replay import ReplayRun, warm_rows
from bandit_router.evaluation.references import full_info_ridge_run, oracle_run, single_model_runs
from bandit_router.evaluation.report import RESULT_COLUMNS, run_hull_gain, write_report
from bandit_router.evaluation.sweep import SweepSpec, reference_runs, run_sweep

from .conftest import topic_vector


def test_replay_learns_which_model_suits_each_topic(table_dir: Path, topic_encoder: Encoder) -> None:
    table = load_table(table_dir)
    router = Router(table.model_cards(), policy="linucb", encoder=topic_encoder, seed=0)
    runs = [replay(table, router, cost_weight=0.0, seed=s) for s in range(5)]  # five passes, one learning router
    assert runs[0].order.tolist() != runs[1].order.tolist()  # a new random order per seed
    assert sorted(runs[0].order.tolist()) == list(range(len(table)))
    assert runs[-1].mean_score == pytest.approx(1.0)  # every prompt goes to a model that is good at it
    assert runs[-1].mean_score > np.mean([r.mean_score for r in single_model_runs(table)])


def test_warm_start_and_full_feedback(table_dir: Path, topic_encoder: Encoder) -> None:
    table = load_table(table_dir)
    cold = replay(table, Router(table.model_cards(), encoder=topic_encoder, seed=0), 0.0, seed=0)
    warm = replay(table, Router(table.model_cards(), encoder=topic_encoder, seed=0,
                                policy_settings={"exploration": 0.0}), 0.0, seed=0, warm_start=0.5)
    full = replay(table, Router(table.model_cards(), encoder=topic_encoder, seed=0), 0.0, seed=0, feedback="full")
    assert len(warm.order) == 30 and warm.mean_score == pytest.approx(1.0) and cold.mean_score < 1.0
    counted = replay(table, Router(table.model_cards(), encoder=topic_encoder, seed=0), 0.0, seed=0, warm_start=30)
    assert counted.order.tolist() == warm.order.tolist()  # 30 prompts, or half of the 60: the same rows routed
    assert full.mean_score >= cold.mean_score


def test_references(table_dir: Path) -> None:
    table = load_table(table_dir)
    vectors = np.stack([topic_vector(p) for p in table.prompts])
    singles = single_model_runs(table)
    assert [r.policy for r in singles] == ["single:small", "single:coder", "single:large"]
    assert singles[0].mean_score == pytest.approx(table.scores[:, 0].mean())
    assert oracle_run(table, 0.0).mean_score == 1.0
    assert oracle_run(table, 1.0).mean_cost < oracle_run(table, 0.0).mean_cost  # the dial buys cheaper models
    ridge = full_info_ridge_run(table, vectors, 0.0, seed=0)
    assert sorted(ridge.order) == list(range(60)) and ridge.mean_score == pytest.approx(1.0)  # cross-fitted: all


def test_sweep_in_two_processes_and_report(table_dir: Path, tmp_path: Path) -> None:
    table = load_table(table_dir)
    vectors = np.stack([topic_vector(p) for p in table.prompts]).astype(np.float32)
    spec = SweepSpec(["linucb", "random"], [0.0, 0.5], [0, 1])
    runs = run_sweep(table, vectors, "topic", spec, workers=2)
    assert [(r.policy, r.cost_weight, r.seed, r.spend) for r, _ in runs] == list(spec.tasks())
    same = replay(table, Router(table.model_cards(), policy="linucb", encoder=lookup_encoder(table, vectors, "topic"),
                                seed=1), 0.5, seed=1)  # a run in a worker equals the same run in this process
    np.testing.assert_array_equal(runs[3][0].chosen, same.chosen)
    paths = write_report(tmp_path / "out", table, [*runs, *((r, None) for r in reference_runs(table, vectors,
                                                                                               [0.0, 0.5], [0, 1]))])
    assert all(p.stat().st_size > 0 for p in paths.values())


def _results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_hull_gain_compares_a_run_with_the_models_on_the_prompts_it_routed(table_dir: Path) -> None:
    table = load_table(table_dir)
    against_the_table = []
    for model in range(len(table.models)):
        easy = np.argsort(-table.scores[:, model], kind="stable")[:20]  # its best prompts: above its mean
        sub = ReplayRun("one model", 0.0, 0, easy, np.full(20, model), np.ones(20), table.scores[easy, model],
                        table.costs[easy, model])
        assert run_hull_gain(table, sub) <= 1e-12  # a single model is on or under the hull of the same prompts
        assert run_hull_gain(table, single_model_runs(table)[model]) <= 1e-12
        against_the_table.append(hull_gain(sub.mean_cost, sub.mean_score, table.costs.mean(0), table.scores.mean(0)))
    assert max(against_the_table) > 0.1  # the hull of every prompt would have read easy prompts as routing gain


def test_cli_replay_writes_results_summary_and_plots(table_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BANDIT_ROUTER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    status = main(["replay", str(table_dir), "--policy", "linucb,thompson", "--dial", "0,0.1,0.5", "--seeds", "2",
                   "--out", str(out), "--workers", "1"])
    assert status == 0
    rows = _results(out / "results.csv")
    assert set(RESULT_COLUMNS) <= set(rows[0])
    policies = [r["policy"] for r in rows]
    assert policies.count("linucb") == policies.count("thompson") == 3 * 2  # one row per dial x seed
    assert {"single:small", "single:coder", "single:large", "oracle", "full-info-ridge"} <= set(policies)
    oracle = [float(r["mean_score"]) for r in rows if r["policy"] == "oracle" and r["dial"] == "0.0"]
    assert oracle == [1.0]
    summary = (out / "summary.md").read_text()
    assert "full-info-ridge" in summary and "AIQ" in summary and "--seeds 2" in summary
    assert "Hull gain" in summary and "Learning curve" in summary
    assert "± +" not in summary and "± -" not in summary  # a signed mean, an unsigned sd
    single = [r for r in rows if r["policy"].startswith("single:")]
    assert max(float(r["hull_gain"]) for r in single) == pytest.approx(0.0, abs=1e-12)  # singles lie on or under
    assert "hull gain" in capsys.readouterr().out  # the printed table
    for png in ("frontier.png", "regret.png", "learning.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((tmp_path / "cache").glob("tiny-*.safetensors"))  # the prompt vectors were cached


def test_cli_replay_with_spend_targets(table_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BANDIT_ROUTER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    status = main(["replay", str(table_dir), "--policy", "linucb", "--dial", "0", "--spend", "0.5,0.05",
                   "--seeds", "2", "--out", str(out), "--workers", "1"])
    assert status == 0
    rows = [r for r in _results(out / "results.csv") if r["policy"] == "linucb"]
    assert [(r["dial"], r["spend"], r["seed"]) for r in rows][:1] == [("0.0", "", "0")]  # the dial run first
    spent = {(float(r["spend"]), r["seed"]): r for r in rows if r["spend"]}
    assert sorted(spent) == [(0.05, "0"), (0.05, "1"), (0.5, "0"), (0.5, "1")]
    assert all(1e-4 <= float(r["dial"]) <= 1 for r in spent.values())  # where each target ended
    # 5% of the large model's cost is below the small model's: the target pushes the dial up and cost down
    assert float(spent[0.05, "0"]["mean_cost"]) < float(spent[0.5, "0"]["mean_cost"]) < float(rows[0]["mean_cost"])
    summary = (out / "summary.md").read_text()
    assert "**Spend targets**" in summary and "| linucb | 5% |" in summary and "| linucb | 50% |" in summary
    printed = capsys.readouterr().out
    assert "spend 5%" in printed and "spend 50%" in printed


def test_cli_replay_with_a_warm_start_says_what_it_routed(table_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANDIT_ROUTER_CACHE", str(tmp_path / "cache"))
    outcomes = table_dir / "outcomes.csv"
    lines = outcomes.read_text().splitlines()
    costs = [line.rsplit(",", 1) for line in lines[1:]]  # each call's cost varies: longer prompts cost more
    outcomes.write_text("\n".join([lines[0]] + [f"{head},{float(cost) * (1 + i % 7)}"
                                                 for i, (head, cost) in enumerate(costs)]) + "\n")
    out = tmp_path / "out"
    status = main(["replay", str(table_dir), "--policy", "linucb", "--dial", "0", "--seeds", "1", "--warm-start",
                   "40", "--out", str(out), "--workers", "1"])
    assert status == 0
    rows = [r for r in _results(out / "results.csv") if r["policy"] == "linucb"]
    assert [int(r["n"]) for r in rows] == [20]  # 40 of the 60 prompts taught every score first
    table, [row] = load_table(table_dir), rows
    order = np.random.default_rng(0).permutation(60)[40:]  # the routed prompts: seed 0's stream after the first 40
    assert float(row["cost_pct_best"]) == pytest.approx(100 * float(row["mean_cost"])
                                                        / table.costs[order, table.best].mean())  # the same prompts
    summary = (out / "summary.md").read_text()
    for title, column in (("Mean score", "score_pct_best"), ("Mean cost", "cost_pct_best")):  # as results.csv has it
        grid = summary.split(f"**{title}, % of the best single model's**")[1]
        assert re.search(r"\| linucb \| ([\d.]+) \|", grid)[1] == f"{float(row[column]):.1f}"
    assert "routed 20 of the 60 prompts: the first 40 of each seed's stream taught them every model's score" in summary
    assert "| N=20 |" in summary  # the learning curve ends with the routed stream (not the ridge router's, which routes all 60)


@pytest.mark.parametrize("value, expected", [(0, 0), (0.25, 15), (59, 59), (np.int64(7), 7)])
def test_warm_rows_takes_a_number_of_prompts_or_a_share(value: float, expected: int) -> None:
    assert warm_rows(value, 60) == expected


@pytest.mark.parametrize("value, message", [(60, r"number of prompts in \[0, 59\] \(the table has 60\), got 60"),
                                            (-1, r"in \[0, 59\]"), (1.0, r"share in \[0, 1\)"),
                                            (True, "a number of prompts or a share"), ("10", "got '10'")])
def test_warm_rows_names_the_allowed_range(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        warm_rows(value, 60)  # type: ignore[arg-type]


@pytest.mark.parametrize("value, message", [("60", "--warm-start must be a number of prompts in [0, 59]"),
                                            ("1.5", "--warm-start must be a share in [0, 1)"),
                                            ("half", "--warm-start must be a number of prompts (e.g. 200)")])
def test_cli_replay_refuses_a_warm_start_out_of_range(table_dir: Path, tmp_path: Path, value: str, message: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["replay", str(table_dir), "--policy", "linucb", "--dial", "0", "--seeds", "1", "--warm-start",
                   value, "--out", str(tmp_path / "out"), "--workers", "1"])
    assert status == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before any run


def test_cli_replay_refuses_task_hints_without_tasks(table_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    prompts = table_dir / "prompts.csv"
    prompts.write_text("\n".join(re.sub(r",(math|code|poem),", ",,", line) for line in prompts.read_text().split("\n")))
    status = main(["replay", str(table_dir), "--policy", "linucb", "--dial", "0", "--seeds", "1", "--task-hints",
                   "--out", str(tmp_path / "out"), "--workers", "1"])
    assert status == 2 and not (tmp_path / "out").exists()
    assert f"--task-hints tells the router each prompt's task from the table's task column, but {table_dir}'s " \
           "prompts have no task (the column is absent or empty)" in capsys.readouterr().err


def test_cli_replay_passes_task_hints(table_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bandit_router.evaluation.sweep as sweep

    monkeypatch.setenv("BANDIT_ROUTER_CACHE", str(tmp_path / "cache"))
    specs: list[SweepSpec] = []
    monkeypatch.setattr(sweep, "run_sweep", lambda table, vectors, name, spec, **kw: specs.append(spec) or run_sweep(
        table, vectors, name, spec, **kw))
    status = main(["replay", str(table_dir), "--policy", "linucb", "--dial", "0", "--seeds", "1", "--task-hints",
                   "--out", str(tmp_path / "out"), "--workers", "1"])
    assert status == 0 and [s.task_hints for s in specs] == [True]
    assert [r["policy"] for r in _results(tmp_path / "out" / "results.csv")].count("linucb") == 1


def test_a_free_best_model_shows_costs_as_a_share_of_it_as_n_a(table_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A local model at cost 0 that scores best: "% of the best model's cost" is undefined (it printed inf%)."""
    outcomes = (table_dir / "outcomes.csv").read_text().splitlines()
    (table_dir / "outcomes.csv").write_text("\n".join(
        [outcomes[0]] + [re.sub(r",[^,]*$", ",0", row) if ",coder," in row else row for row in outcomes[1:]]) + "\n")
    models = json.loads((table_dir / "models.json").read_text())
    models["models"]["coder"] = {"input_price_per_mtok": 0, "output_price_per_mtok": 0}
    (table_dir / "models.json").write_text(json.dumps(models))
    monkeypatch.setenv("BANDIT_ROUTER_CACHE", str(tmp_path / "cache"))
    assert load_table(table_dir).models[load_table(table_dir).best] == "coder"
    status = main(["replay", str(table_dir), "--policy", "linucb", "--dial", "0", "--seeds", "1",
                   "--out", str(tmp_path / "out"), "--workers", "1"])
    printed, summary = capsys.readouterr().out, (tmp_path / "out" / "summary.md").read_text()
    assert status == 0 and "n/a" in printed and "n/a" in summary
    assert not re.search(r"\binf\b", printed + summary)


def test_spend_targets_of_a_free_best_model_are_refused_before_encoding(table_dir: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = (table_dir / "outcomes.csv").read_text().splitlines()
    (table_dir / "outcomes.csv").write_text("\n".join(
        [outcomes[0]] + [re.sub(r",[^,]*$", ",0", row) if ",coder," in row else row for row in outcomes[1:]]) + "\n")
    monkeypatch.setenv("BANDIT_ROUTER_CACHE", str(tmp_path / "cache"))
    status = main(["replay", str(table_dir), "--policy", "linucb", "--dial", "0", "--spend", "0.5", "--seeds", "1",
                   "--out", str(tmp_path / "out"), "--workers", "1"])
    assert status == 2 and not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()
    assert "--spend gives spend targets as shares of the best single model's mean cost per prompt, but the best " \
           "model, 'coder', has a mean cost of 0 usd" in capsys.readouterr().err
    table = load_table(table_dir)
    with pytest.raises(ConfigError, match="spends gives spend targets .* 'coder', has a mean cost of 0"):
        run_sweep(table, np.zeros((len(table), 2)), "none", SweepSpec(["linucb"], [0.0], [0], spends=[0.5]), workers=1)


def test_cli_replay_imports_a_users_policy_module(table_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy of one's own (docs/ARCHITECTURE.md's recipe): --import registers it, in the workers too."""
    (tmp_path / "my_policies.py").write_text(
        "from bandit_router.policies.base import register\n"
        "from bandit_router.policies.baselines import RandomPolicy\n\n\n"
        "@register\nclass Coin(RandomPolicy):\n    name = 'my-coin'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BANDIT_ROUTER_CACHE", str(tmp_path / "cache"))
    status = main(["replay", str(table_dir), "--import", "my_policies", "--policy", "my-coin,linucb", "--dial", "0",
                   "--seeds", "1", "--out", str(tmp_path / "out"), "--workers", "2"])
    assert status == 0
    assert {"my-coin", "linucb"} <= {r["policy"] for r in _results(tmp_path / "out" / "results.csv")}


@pytest.mark.parametrize("args, message", [
    (["--policy", "linucb,nope"], "--policy must name registered policies"),
    (["--import", "no_such_module_here"], "--import no_such_module_here: ModuleNotFoundError"),
    (["--dial", "0,1.5"], r"--dial must be a number in \[0, 1\]"),
    (["--seeds", "0"], "--seeds must be an integer >= 1"),
    (["--spend", "0.2,0"], r"--spend must be a number in \(0, 10\]"),
    (["--spend", "half"], "--spend must be comma-separated shares"),
    (["--settings", "{oops"], "--settings must be JSON"),
])
def test_cli_rejects_bad_arguments(table_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                   args: list[str], message: str) -> None:
    assert main(["replay", str(table_dir), "--out", str(tmp_path / "out"), *args]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_cli_reports_a_malformed_folder(table_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (table_dir / "outcomes.csv").unlink()
    assert main(["replay", str(table_dir), "--out", str(tmp_path / "out")]) == 2
    assert "lacks outcomes.csv" in capsys.readouterr().err


def test_task_hints_reach_the_router_in_replays_and_sweeps(table_dir: Path) -> None:
    """With an encoder blind to the topic, only the table's task column (as task hints) tells the topics apart."""
    table = load_table(table_dir)
    blind = Encoder(lambda texts: np.stack([topic_vector(t)[3:] for t in texts]), name="blind", cache_size=0)
    without = replay(table, Router(table.model_cards(), policy="linucb", encoder=blind, seed=0), 0.0, seed=0)
    hinted = replay(table, Router(table.model_cards(), policy="linucb", encoder=blind, seed=0,
                                   tasks=["math", "code"]), 0.0, seed=0)
    assert hinted.mean_score > without.mean_score + 0.1  # poems (no hint declared) route on the text alone
    vectors = np.stack([topic_vector(p)[3:] for p in table.prompts])
    spec = SweepSpec(["linucb"], [0.0], [0], task_hints=True)
    (swept, _), = run_sweep(table, vectors, "blind", spec, workers=1)
    assert swept.mean_score > without.mean_score + 0.1
    unlabelled = dataclasses.replace(table, tasks=["" if i % 3 else t for i, t in enumerate(table.tasks)])
    (partly, _), = run_sweep(unlabelled, vectors, "blind", spec, workers=1)  # empty cells: the prompt alone
    assert len(partly.order) == len(table)


def test_cli_replay_takes_the_bundled_set_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # no folder called llmrouter-9 here
    monkeypatch.setenv("BANDIT_ROUTER_CACHE", str(tmp_path / "cache"))
    status = main(["replay", "llmrouter-9", "--policy", "cheapest", "--dial", "0", "--seeds", "1", "--encoder",
                   "hashing:16", "--workers", "1", "--out", str(tmp_path / "out")])
    said = capsys.readouterr()
    assert status == 0 and "llmrouter-9: 6108 prompts x 9 models" in said.err
    assert "(1 seed)" in said.out and "± 0.000" not in said.out  # one seed has no spread to show
