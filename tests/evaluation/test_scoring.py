"""score_table and `bandit-router score-table`: every model asked every prompt through LiteLLM (the local server),
each answer graded, the routing table written, failed pairs retried on a second run."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import litellm
import numpy as np
import pytest

from bandit_router.cli import main
from bandit_router.errors import ConfigError, DataFormatError, ScoringError
from bandit_router.evaluation import load_table, score_table
from bandit_router.evaluation.scoring import expected_cost, prompt_id
from bandit_router.models import Model
from bandit_router.priors import table_prior
from bandit_router.router import Router
from bandit_router.service import load_config
from bandit_router.testing import FakeLLMServer, ModelBehavior, echo, last_user_text

litellm.suppress_debug_info = True
ANSWERS = {"What is 6 x 7?": "42", "Capital of France?": "Paris", "Largest planet?": "Jupiter"}
QUICK = {"num_retries": 0, "max_retries": 0}  # the server's failures reach score_table at once


def knows(known: set[str]):
    """A responder that answers the questions in `known` and guesses the others."""
    return lambda messages: ANSWERS[last_user_text(messages)] if last_user_text(messages) in known else "no idea"


def exact(prompt: str, answer: str) -> float:
    return float(answer == ANSWERS[prompt])


@pytest.fixture
def server():
    behaviours = {"small": ModelBehavior(respond=knows({"What is 6 x 7?"})),
                  "large": ModelBehavior(respond=knows(set(ANSWERS))),
                  "judge": ModelBehavior(respond=lambda messages: "8")}
    with FakeLLMServer(behaviours) as srv:
        yield srv


def cards(server) -> list[Model]:
    return [Model("openai/small", input_cost_per_token=1e-7, output_cost_per_token=2e-7, api_base=server.base_url,
                  api_key="sk-test", description="fast, for arithmetic"),
            Model("openai/large", input_cost_per_token=1e-5, output_cost_per_token=3e-5, api_base=server.base_url,
                  api_key="sk-test")]


def test_every_model_is_asked_every_prompt_and_graded(server, tmp_path: Path) -> None:
    small, large = cards(server)
    tasks = ["math", "geo", "astro"]
    table = score_table([small, large], list(ANSWERS), exact, tmp_path / "scored", tasks=tasks, **QUICK)
    assert table.models == ["openai/small", "openai/large"]
    assert table.prompts == list(ANSWERS) and table.tasks == tasks
    assert table.scores.tolist() == [[1.0, 1.0], [0.0, 1.0], [0.0, 1.0]]
    # The server counts words: each prompt's words in, the answer's words out, at each card's prices.
    expected = [[card.cost(len(p.split()), len(answer.split())) for card, answer in
                 ((small, ANSWERS[p] if p == "What is 6 x 7?" else "no idea"), (large, ANSWERS[p]))] for p in ANSWERS]
    np.testing.assert_allclose(table.costs, expected)
    assert table.costs[0, 1] > 10 * table.costs[0, 0]
    meta = json.loads((tmp_path / "scored" / "models.json").read_text())
    assert meta["models"]["openai/large"] == {"input_price_per_mtok": pytest.approx(10.0),
                                              "output_price_per_mtok": pytest.approx(30.0)}
    assert table.model_cards()[0].description == "fast, for arithmetic"
    assert table.prompt_ids == [prompt_id(p) for p in ANSWERS]
    assert len(server.requests) == 6 and {r.params.get("temperature") for r in server.requests} == {None}


def test_a_second_run_calls_only_the_pairs_left(server, tmp_path: Path) -> None:
    out = tmp_path / "scored"
    server.set_behavior("large", fail_status=500)
    with pytest.raises(ScoringError, match=r"3 of 6 .* model openai/large: the call failed: InternalServerError.*"
                                           r"3 were scored") as caught:
        score_table(cards(server), list(ANSWERS), exact, out, **QUICK)
    assert set(caught.value.failures) == {(prompt_id(p), "openai/large") for p in ANSWERS}
    with (out / "outcomes.csv").open() as f:
        assert sorted(row["model"] for row in csv.DictReader(f)) == ["openai/small"] * 3

    server.set_behavior("large", fail_status=None)
    server.clear_requests()
    table = score_table(cards(server), list(ANSWERS), exact, out, **QUICK)
    assert [r.model for r in server.requests] == ["large"] * 3  # small's answers were kept
    assert table.scores.tolist() == [[1.0, 1.0], [0.0, 1.0], [0.0, 1.0]]
    with (out / "prompts.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3  # each prompt written once


def test_an_answer_cut_short_by_a_stopped_run_is_asked_again_and_a_damaged_one_is_named(server, tmp_path: Path,
                                                                                          caplog) -> None:
    """answers.jsonl is written as answers arrive: a run killed mid-write leaves its last line incomplete, and
    the next run asks that pair again (it used to fail on the JSON); a bad line before the last is named."""
    out = tmp_path / "scored"
    score_table(cards(server), list(ANSWERS), exact, out, **QUICK)
    lines = (out / "answers.jsonl").read_text().splitlines()
    (out / "outcomes.csv").write_text((out / "outcomes.csv").read_text().splitlines()[0] + "\n")  # scores lost
    (out / "answers.jsonl").write_text("\n".join(lines[:-1] + [lines[-1][:20]]) + "\n")
    server.clear_requests()
    score_table(cards(server), list(ANSWERS), exact, out, **QUICK)
    assert len(server.requests) == 1 and "its last line is incomplete" in caplog.text
    (out / "answers.jsonl").write_text("\n".join(["{", *lines]) + "\n")
    with pytest.raises(DataFormatError, match="answers.jsonl line 1 is not an answer score-table wrote"):
        score_table(cards(server), list(ANSWERS), exact, out, **QUICK)


def test_a_grade_that_fails_or_is_out_of_range_leaves_its_pair_unscored(server, tmp_path: Path) -> None:
    def grade(prompt: str, answer: str) -> float:
        if prompt == "Largest planet?":
            raise RuntimeError("judge unreachable")
        return 2.0 if prompt == "Capital of France?" and answer == "Paris" else exact(prompt, answer)

    with pytest.raises(ScoringError) as caught:
        score_table(cards(server), list(ANSWERS), grade, tmp_path / "scored", **QUICK)
    failures = caught.value.failures
    assert failures.keys() == {(prompt_id("Largest planet?"), "openai/small"),
                               (prompt_id("Largest planet?"), "openai/large"),
                               (prompt_id("Capital of France?"), "openai/large")}
    assert "the grade failed: RuntimeError: judge unreachable" in failures[(prompt_id("Largest planet?"),
                                                                           "openai/small")]
    assert "[0, 1]" in failures[(prompt_id("Capital of France?"), "openai/large")]
    assert load_table(tmp_path / "scored").prompts == ["What is 6 x 7?"]  # the only prompt every model answered

    server.clear_requests()  # the answers were received: a second run grades them again without asking again
    table = score_table(cards(server), list(ANSWERS), exact, tmp_path / "scored", **QUICK)
    assert server.requests == [] and table.scores.tolist() == [[1.0, 1.0], [0.0, 1.0], [0.0, 1.0]]
    np.testing.assert_allclose(table.costs[:, 1], [cards(server)[1].cost(len(p.split()), 1) for p in ANSWERS])


@pytest.mark.parametrize("kwargs, field", [({"prompts": []}, "prompts"), ({"prompts": ["ok", ""]}, r"prompts\[1\]"),
                                           ({"tasks": ["a"]}, "tasks"), ({"max_workers": 0}, "max_workers"),
                                           ({"models": ["openai/gpt-4o", "openai/gpt-4o"]}, "models")])
def test_invalid_arguments_name_the_field(kwargs, field, tmp_path: Path) -> None:
    args = {"models": ["openai/gpt-4o-mini", "openai/gpt-4o"], "prompts": ["one", "two"], "score": exact,
            "out": tmp_path / "x", **kwargs}
    with pytest.raises(ConfigError, match=field):
        score_table(**args)
    assert not (tmp_path / "x").exists()


def test_the_command_scores_with_a_judge_and_the_service_warm_starts_from_the_table(server, tmp_path: Path,
                                                                                   monkeypatch, capsys) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", "sk-test")
    model = {"api_base": server.base_url, "api_key_env": "UPSTREAM_KEY", "input_cost_per_token": 1e-6,
             "output_cost_per_token": 1e-6}
    config = {"encoder": "hashing:64", "models": [{"name": "openai/small", **model}, {"name": "openai/large", **model}],
              "judge": {"name": "openai/judge", **model}, "prior": {"table": str(tmp_path / "scored")}}
    (tmp_path / "service.json").write_text(json.dumps(config))
    (tmp_path / "prompts.jsonl").write_text('"What is 6 x 7?"\n\n{"prompt": "Capital of France?", "task": "geo", '
                                            '"reference": "Paris"}\n')
    status = main(["score-table", str(tmp_path / "prompts.jsonl"), "--config", str(tmp_path / "service.json"),
                   "--out", str(tmp_path / "scored"), "--workers", "2"])  # graded by the config's judge
    assert status == 0 and "graded by openai/judge (the config's judge)" in capsys.readouterr().err
    table = load_table(tmp_path / "scored")
    assert table.models == ["openai/small", "openai/large"] and table.tasks == ["", "geo"]  # the judge is not routed
    assert (table.scores == 0.8).all()  # the judge's 8 of 10
    assert not any(r.model == "judge" and "Grade (0-10)" not in str(r.messages) for r in server.requests)
    grading = [r for r in server.requests if r.model == "judge"]
    assert len(grading) == 4 and all(r.params.get("temperature") == 0 for r in grading)
    shown = ["Reference answer:\nParis" in r.messages[-1]["content"] for r in grading]
    assert shown.count(True) == 2 and all("Capital of France?" in r.messages[-1]["content"]
                                          for r, seen in zip(grading, shown) if seen)
    router = load_config(tmp_path / "service.json").build_router()  # [prior] table reads what the command wrote
    counts = router.policy.A[:, -1, -1] - router.policy.config.regularization
    np.testing.assert_allclose(counts, [2.0, 2.0])  # two prompts, each model's score on both


@pytest.mark.parametrize(("judge", "expected"), [
    ("large", "graded by openai/large (the config's model)"),
    ("grader", "graded by openai/grader (the config's judge)"),
    ("gpt-4o", "graded by gpt-4o (not in the config: LiteLLM calls it"),
    (None, "graded by openai/grader (the config's judge)")])
def test_the_judge_is_the_config_s_judge_or_model_of_that_name_else_a_litellm_name(
        tmp_path: Path, capsys, judge: str | None, expected: str) -> None:
    config = {"models": ["openai/gpt-4o-mini", {"name": "openai/large", "input_cost_per_token": 1e-6,
                                                "output_cost_per_token": 1e-6}],
              "judge": {"name": "openai/grader", "api_base": "http://127.0.0.1:9/v1", "input_cost_per_token": 1e-6,
                        "output_cost_per_token": 1e-6}}
    (tmp_path / "service.json").write_text(json.dumps(config))
    (tmp_path / "prompts.txt").write_text("hello\n")
    status = main(["score-table", str(tmp_path / "prompts.txt"), "--config", str(tmp_path / "service.json"),
                   "--dry-run", "--out", str(tmp_path / "scored")] + ([] if judge is None else ["--judge", judge]))
    assert status == 0 and expected in capsys.readouterr().err


def test_without_a_judge_the_command_says_how_to_name_one(tmp_path: Path, capsys) -> None:
    (tmp_path / "service.json").write_text(json.dumps({"models": ["openai/gpt-4o-mini"]}))
    (tmp_path / "prompts.txt").write_text("hello\n")
    status = main(["score-table", str(tmp_path / "prompts.txt"), "--config", str(tmp_path / "service.json"),
                   "--dry-run"])
    assert status == 2 and "--judge NAME, or a judge entry in the config" in capsys.readouterr().err


def test_a_dry_run_prints_the_expected_cost_and_calls_nothing(server, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("UPSTREAM_KEY", raising=False)  # a dry run reads no key
    upstream = {"api_base": server.base_url, "api_key_env": "UPSTREAM_KEY"}
    config = {"models": [{"name": "openai/small", "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
                          **upstream},
                         {"name": "openai/large", "input_cost_per_token": 1e-5, "output_cost_per_token": 3e-5,
                          **upstream}]}
    (tmp_path / "service.json").write_text(json.dumps(config))
    (tmp_path / "prompts.txt").write_text("a" * 400 + "\n" + "b" * 40 + "\n")  # 100 and 10 estimated tokens
    status = main(["score-table", str(tmp_path / "prompts.txt"), "--config", str(tmp_path / "service.json"),
                   "--judge", "gpt-4o-mini", "--max-tokens", "100", "--dry-run", "--out", str(tmp_path / "scored")])
    assert status == 0 and server.requests == [] and not (tmp_path / "scored").exists()
    small = 110 * 1e-6 + 2 * 100 * 2e-6
    large = 110 * 1e-5 + 2 * 100 * 3e-5
    judge = Model("gpt-4o-mini")
    grading = 2 * (judge.cost(100 + 100 + 60, 4) + judge.cost(10 + 100 + 60, 4))
    err = capsys.readouterr().err
    assert "graded by gpt-4o-mini (not in the config" in err
    assert f"about ${small + large + grading:.4g} (openai/small ${small:.3g}, openai/large ${large:.3g}, " \
           f"judge ${grading:.3g}; 100 tokens an answer" in err


def test_the_expected_cost_counts_only_what_a_run_into_the_folder_has_left(server, tmp_path: Path) -> None:
    small, large = cards(server)
    prompts = list(ANSWERS)
    everything = expected_cost([small, large], prompts, judge=large, out=tmp_path / "scored")
    assert everything == expected_cost([small, large], prompts, judge=large)  # nothing done yet
    server.set_behavior("large", fail_status=500)
    with pytest.raises(ScoringError):
        score_table([small, large], prompts, exact, tmp_path / "scored", **QUICK)
    left = expected_cost([small, large], prompts, judge=large, out=tmp_path / "scored")
    assert left["openai/small"] == 0.0 and left["openai/large"] == everything["openai/large"]
    assert left["judge"] == pytest.approx(everything["judge"] / 2)  # only large's three answers to grade


def test_the_command_names_a_bad_prompts_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "service.json").write_text(json.dumps({"models": ["openai/gpt-4o-mini"]}))
    (tmp_path / "prompts.jsonl").write_text('{"text": "no prompt field"}\n')
    status = main(["score-table", str(tmp_path / "prompts.jsonl"), "--config", str(tmp_path / "service.json"),
                   "--judge", "openai/gpt-4o-mini"])
    assert status == 2 and "prompts.jsonl line 1 must be" in capsys.readouterr().err


def test_the_readme_example_scores_a_table_and_warm_starts_the_router(tmp_path: Path, monkeypatch,
                                                                     topic_encoder) -> None:
    section = (Path(__file__).resolve().parents[2] / "README.md").read_text().split("### A warm start")[1]
    [code] = [b for b in re.findall(r"```python\n(.*?)```", section.split("\n### ")[0], re.S) if "score_table" in b]
    grade = lambda messages: "9" if "Grade (0-10)" in str(messages) else echo(messages)  # noqa: E731
    with FakeLLMServer({name: ModelBehavior(respond=grade) for name in ("gpt-4o-mini", "gpt-4o")}) as server:
        monkeypatch.setattr(litellm, "api_base", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.chdir(tmp_path)
        router = Router([Model("gpt-4o-mini"), Model("gpt-4o")], encoder=topic_encoder, seed=0)
        exec(code, {"router": router, "my_prompts": ["math question", "poem question"], "table_prior": table_prior})
        asked = [r.model for r in server.requests]
    table = load_table(tmp_path / "scored")
    assert table.models == ["gpt-4o-mini", "gpt-4o"] and (table.scores == 0.9).all() and (table.costs > 0).all()
    assert sorted(asked) == ["gpt-4o"] * 2 + ["gpt-4o-mini"] * 6  # 4 answers, then 4 grades by the judge
    counts = router.policy.A[:, -1, -1] - router.policy.config.regularization
    np.testing.assert_allclose(counts, [2.0, 2.0])


def test_the_command_refuses_an_empty_prompt_and_says_repeats_are_scored_once(tmp_path: Path, capsys) -> None:
    (tmp_path / "service.json").write_text(json.dumps({"models": ["openai/gpt-4o-mini"]}))
    (tmp_path / "prompts.jsonl").write_text('"a"\n{"prompt": "  "}\n')
    args = ["score-table", str(tmp_path / "prompts.jsonl"), "--config", str(tmp_path / "service.json"),
            "--judge", "openai/gpt-4o-mini", "--dry-run", "--out", str(tmp_path / "scored")]
    assert main(args) == 2 and "prompts.jsonl line 2 must be a JSON string or an object with a \"prompt\" string " \
                                 "that is not empty" in capsys.readouterr().err
    (tmp_path / "prompts.jsonl").write_text('"a"\n"b"\n"a"\n')
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "1 repeated prompt(s)" in err and "1 models x 2 prompts" in err


def test_the_judges_key_is_needed_to_score_not_to_serve(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    config = {"encoder": "hashing:16", "models": [{"name": "openai/small", "input_cost_per_token": 1e-6,
                                                   "output_cost_per_token": 1e-6}],
              "judge": {"name": "openai/grader", "api_key_env": "JUDGE_KEY", "input_cost_per_token": 1e-6,
                        "output_cost_per_token": 1e-6}}
    (tmp_path / "service.json").write_text(json.dumps(config))
    assert load_config(tmp_path / "service.json").judge.name == "openai/grader"  # serve reads it without the key
    (tmp_path / "prompts.txt").write_text("hello\n")
    status = main(["score-table", str(tmp_path / "prompts.txt"), "--config", str(tmp_path / "service.json"),
                   "--out", str(tmp_path / "scored")])
    assert status == 2 and "judge.api_key_env names 'JUDGE_KEY', which is not set" in capsys.readouterr().err
