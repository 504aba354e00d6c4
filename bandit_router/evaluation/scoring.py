"""A routing table of your own: every model asked every prompt through LiteLLM, each answer graded.

`score_table(models, prompts, score, out)` writes the folder `load_table` reads (README "Data"): what
`table_prior` warm-starts a router from, what `bandit-router replay` replays to show whether routing beats every
fixed choice of models on your prompts, and what the service's `[prior] table` reads. Each call's cost is
LiteLLM's response cost, else the model card's prices x the tokens used.

Rows are appended to outcomes.csv as they finish, and each answer with its cost to answers.jsonl as it arrives,
so a run that stops (or whose calls or grades failed) can be run again with the same `out`: the (prompt, model)
pairs already scored are kept, an answer already received is graded again without a new call, and only the
other pairs are asked.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from ..checks import json_too_deep
from ..costs import call_cost
from ..decision import usage_of
from ..errors import ConfigError, DataFormatError, ScoringError
from ..models import Model, estimate_tokens, quiet_litellm
from ..redaction import redact
from ..router import check_score
from .table import OUTCOME_COLUMNS, PROMPT_COLUMNS, RoutingTable, load_table

__all__ = ["expected_cost", "prompt_id", "score_table"]

ANSWERS = "answers.jsonl"  # {"prompt_id", "model", "answer", "cost"} per answer received

log = logging.getLogger(__name__)


def prompt_id(prompt: str) -> str:
    """A prompt's id in a scored table: the first 16 hex digits of its text's SHA-256 (the same on every run)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def _text(value: Any, field: str) -> str:
    """`value` if it is non-empty text that UTF-8 can encode, else ConfigError naming `field`."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{field} must be non-empty text, got {value!r:.80}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ConfigError(f"{field} is not valid UTF-8 text (character {error.start} cannot be encoded)") from None
    return value


def _read(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _append(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def _entry(card: Model) -> dict[str, Any]:
    """models.json's entry for `card`: its prices per million tokens (none if it has none: costs then come from
    the calls) and its description."""
    entry: dict[str, Any] = {"description": card.description} if card.description else {}
    if card.input_cost_per_token or card.output_cost_per_token:
        entry.update(input_price_per_mtok=card.input_cost_per_token * 1e6,
                     output_price_per_mtok=card.output_cost_per_token * 1e6)
    return entry


def _answers(folder: Path | None) -> dict[tuple[str, str], tuple[str, float]]:
    """The answers received by earlier runs into `folder`: (prompt id, model) -> (answer, cost)."""
    if folder is None or not (path := folder / ANSWERS).exists():
        return {}
    answers: dict[tuple[str, str], tuple[str, float]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            if json_too_deep(line):
                raise ValueError("it nests too deep")
            row = json.loads(line)
            cost = float(row["cost"])
            if not (math.isfinite(cost) and cost >= 0 and isinstance(row["answer"], str)):
                raise ValueError(f"cost {row['cost']!r:.40} or answer of type {type(row['answer']).__name__}")
            answers[(str(row["prompt_id"]), str(row["model"]))] = (row["answer"], cost)
        except (ValueError, KeyError, TypeError, OverflowError) as error:
            if number == len(lines):  # cut short by a run that stopped while writing it: that pair is asked again
                log.warning("%s: its last line is incomplete (%s); that answer will be asked again", path, error)
                continue
            raise DataFormatError(f"{path} line {number} is not an answer score-table wrote ({error}); remove the "
                                  "line to ask that pair again") from None
    return answers


def _pending(folder: Path | None, prompts: Sequence[str], models: Sequence[Model]) -> list[tuple[str, str, Model]]:
    """The (prompt id, prompt, model) triples that `folder` does not hold a score for yet (all without one)."""
    rows = [] if folder is None else _read(folder / "outcomes.csv")
    done = {(row["prompt_id"], row["model"]) for row in rows
            if row.get("score", "").strip() and row.get("cost", "").strip()}
    ids = {prompt_id(p): p for p in prompts}
    return [(pid, prompt, card) for pid, prompt in ids.items() for card in models if (pid, card.name) not in done]


def expected_cost(models: Sequence[Model], prompts: Sequence[str], judge: Model | None = None,
                  output_tokens: int = 256, out: str | Path | None = None) -> dict[str, float]:
    """What scoring is expected to cost, per model and, under "judge", for the grading: each prompt's estimated
    tokens in and `output_tokens` out at the cards' prices; the judge reads each prompt and answer (and its
    instructions, about 60 tokens) and writes a few tokens. With `out`, only what a run into that folder has
    left to do: pairs scored there cost nothing, answers received there only their grading."""
    folder = None if out is None else Path(out)
    answered = _answers(folder)
    costs = {card.name: 0.0 for card in models}
    grading = 0.0
    for pid, prompt, card in _pending(folder, prompts, models):
        tokens = estimate_tokens(prompt)
        if (pid, card.name) not in answered:
            costs[card.name] += card.cost(tokens, output_tokens)
        grading += 0.0 if judge is None else judge.cost(tokens + output_tokens + 60, 4)
    return costs if judge is None else {**costs, "judge": grading}


def score_table(models: Sequence[Model | str], prompts: Sequence[str], score: Callable[[str, str], float],
                out: str | Path, tasks: Sequence[str] | None = None, max_workers: int = 4,
                **litellm_kwargs: Any) -> RoutingTable:
    """Ask each of `models` each of `prompts` (one user message), grade every answer with `score(prompt, answer)`
    (in [0, 1]: an `LLMJudge`, or a check against the prompt's reference answer), write the table to `out` and
    return it loaded.

    `tasks` (one per prompt) are written as the prompts' task labels. `litellm_kwargs` pass through to every
    call (e.g. temperature=0, max_tokens=512, timeout=60, num_retries=2). A call or grade that fails leaves its
    pair unscored; after every other pair is written, ScoringError names the failures and whether the call or the
    grade failed (run again to retry them). Prompt text is written to prompts.csv and the answers to
    answers.jsonl: the folder is your eval set.
    """
    cards = [m if isinstance(m, Model) else Model(m) for m in models]
    if not cards or len({c.name for c in cards}) != len(cards):
        raise ConfigError(f"models must name at least one model, each once; got {[c.name for c in cards]}")
    prompts = [_text(p, f"prompts[{i}]") for i, p in enumerate(prompts)]
    if not prompts:
        raise ConfigError("prompts must hold at least one prompt")
    tasks = [""] * len(prompts) if tasks is None else [str(t) for t in tasks]
    if len(tasks) != len(prompts):
        raise ConfigError(f"tasks must give one task per prompt: {len(tasks)} tasks for {len(prompts)} prompts")
    if not (isinstance(max_workers, int) and max_workers >= 1):
        raise ConfigError(f"max_workers must be an integer >= 1, got {max_workers!r}")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)

    known = {row["prompt_id"] for row in _read(folder / "prompts.csv")}
    fresh = {pid: {"prompt_id": pid, "task": t, "split": "", "prompt": p}
             for p, t in zip(prompts, tasks) if (pid := prompt_id(p)) not in known}
    _append(folder / "prompts.csv", PROMPT_COLUMNS, list(fresh.values()))
    meta_path = folder / "models.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"cost_unit": "usd", "models": {}}
    meta["models"].update({c.name: _entry(c) for c in cards})
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")

    todo = _pending(folder, prompts, cards)
    answered = _answers(folder)
    lock = threading.Lock()
    failures: dict[tuple[str, str], str] = {}
    litellm = quiet_litellm()

    def run(pid: str, prompt: str, card: Model) -> None:
        stage = "the call"
        try:
            if (pid, card.name) in answered:  # received by an earlier run, whose grade failed
                answer, cost = answered[(pid, card.name)]
            else:
                response = litellm.completion(messages=[{"role": "user", "content": prompt}], **card.call_kwargs(),
                                              **litellm_kwargs)
                answer = response.choices[0].message.content or ""
                cost = call_cost(response, card, usage_of(response))
                with lock:
                    with (folder / ANSWERS).open("a", encoding="utf-8") as f:
                        f.write(json.dumps({"prompt_id": pid, "model": card.name, "answer": answer,
                                            "cost": cost}) + "\n")
            stage = "the grade"
            grade = check_score(score(prompt, answer))
        except Exception as error:  # one pair's failure must not stop the others
            cause = f"{stage} failed: {type(error).__name__}: {redact(str(error))[:300]}"
            log.warning("prompt %s, model %s left unscored: %s", pid, card.name, cause)
            with lock:
                failures[(pid, card.name)] = cause
            return
        with lock:
            _append(folder / "outcomes.csv", OUTCOME_COLUMNS,
                    [{"prompt_id": pid, "model": card.name, "score": grade, "cost": cost}])

    with ThreadPoolExecutor(max_workers, thread_name_prefix="bandit-router-scoring") as pool:
        list(pool.map(lambda job: run(*job), todo))  # a failure to write the table is raised here
    if failures:
        (pid, model), cause = next(iter(failures.items()))
        raise ScoringError(f"{len(failures)} of {len(todo)} (prompt, model) pairs were left unscored (first: prompt "
                           f"{pid}, model {model}: {cause}); {len(todo) - len(failures)} were scored into {folder}. "
                           "Run again with the same output folder to retry the rest: answers already received "
                           "are graded again, not asked again", failures)
    return load_table(folder)
