"""What an adversarial review broke (issue #21), one test per finding: operational settings from a state file,
credentials outside api_key, a refused settle leaking its hold, crafted files exhausting memory, the per-source
cap, and untyped errors."""

from __future__ import annotations

import json
import logging
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from bandit_router import Budget, FeedbackSettings, Limits, LogSettings, Model, Router
from bandit_router.errors import (BanditRouterError, ConfigError, FeedbackLimitError, InvalidPromptError,
                                  StateFormatError, StoreUnavailableError, UnknownRouteError)
from bandit_router.quota import SourceQuota
from bandit_router.state import _digest, encode_state, read_state
from bandit_router.store import RedisStateStore, SQLiteDecisionLog, SQLiteStateStore

from .workers import fake_encoder, model_cards

SECRET = "adversarial-test-secret-0123456789"


def saved(tmp_path: Path, **settings: Any) -> Path:
    router = Router(model_cards(), encoder=fake_encoder, seed=0, **settings)
    for i in range(20):
        d = router.route(f"prompt {i}")
        router.feedback(d.route_id, (i % 3) / 2)
    path = tmp_path / "good.safetensors"
    router.save(path)
    return path


def rewrite(path: Path, change: Callable[[dict, dict], None], name: str = "crafted.safetensors") -> Path:
    """A copy of the state file at `path`, edited by `change(config, arrays)`, with a valid checksum."""
    config, arrays = read_state(path)
    arrays = {k: np.array(v) for k, v in arrays.items()}
    change(config, arrays)
    out = path.parent / name
    out.write_bytes(encode_state(config, arrays))
    return out


# -- 1. a state file cannot choose how the router operates ---------------------------------------------------------
@pytest.mark.parametrize("key, value", [
    ("log", "LOG"), ("store_prompts", True), ("store_vectors", True), ("feedback_secret", SECRET),
    ("source_limit", 10**9), ("max_prompt_chars", 10**9), ("pending_ttl", 1.0), ("max_pending", 1),
    ("max_attempts", 100), ("state_store", "redis://attacker:6379/0"), ("budget", None), ("sync_every", 0),
])
def test_a_state_file_cannot_set_operational_settings(tmp_path: Path, key: str, value: Any) -> None:
    value = str(tmp_path / "prompts.db") if value == "LOG" else value
    crafted = rewrite(saved(tmp_path), lambda config, arrays: config["router"].update({key: value}))
    with pytest.raises(StateFormatError, match=f"config\\['router'\\]\\[{key!r}\\]: a state file may only set"):
        Router.load(crafted, encoder=fake_encoder)
    assert not (tmp_path / "prompts.db").exists()


def test_unknown_top_level_keys_are_refused(tmp_path: Path) -> None:
    crafted = rewrite(saved(tmp_path), lambda config, arrays: config.update({"log": str(tmp_path / "x.db")}))
    with pytest.raises(StateFormatError, match="has keys"):
        Router.load(crafted, encoder=fake_encoder)


def test_saved_files_hold_only_learned_settings_and_old_defaults_still_load(tmp_path: Path) -> None:
    path = saved(tmp_path, log=LogSettings(None, store_prompts=True, store_vectors=True),
                 feedback=FeedbackSettings(pending_ttl=60.0), limits=Limits(max_attempts=2, expected_output_tokens=100),
                 cost_weight=0.25)
    config, _ = read_state(path)
    assert set(config["router"]) == {"cost_weight", "seed", "expired_reward", "expected_output_tokens", "tasks",
                                     "text_weight"}
    loaded = Router.load(path, encoder=fake_encoder)
    assert (loaded.cost_weight, loaded.limits.expected_output_tokens, loaded.log_settings.store_prompts,
            loaded.feedback_settings.pending_ttl) == (
        0.25, 100, False, 86_400.0)  # operational settings are the caller's (defaults here)
    legacy = {"store_prompts": False, "store_vectors": False, "pending_ttl": 86_400.0, "max_pending": 100_000,
              "max_attempts": 3}  # what earlier versions wrote: loads at these values
    old = rewrite(path, lambda config, arrays: config["router"].update(legacy), "old.safetensors")
    assert Router.load(old, encoder=fake_encoder).limits.max_attempts == 3
    grouped = {"feedback": FeedbackSettings().to_config(), "limits": Limits().to_config(),
               "log": LogSettings().to_config()}  # what the grouped format (before #21) wrote at the defaults
    old = rewrite(path, lambda config, arrays: config["router"].update(grouped), "grouped.safetensors")
    assert Router.load(old, encoder=fake_encoder).limits.expected_output_tokens == Limits().expected_output_tokens
    custom = rewrite(path, lambda config, arrays: config["router"].update(pending_ttl=60.0), "custom.safetensors")
    with pytest.raises(StateFormatError, match="pending_ttl"):
        Router.load(custom, encoder=fake_encoder)
    loaded = Router.load(custom, encoder=fake_encoder, feedback=FeedbackSettings(pending_ttl=60.0))
    assert loaded.feedback_settings.pending_ttl == 60.0  # the caller decides


@pytest.mark.parametrize("group, value", [("log", {"store_prompts": True}), ("feedback", {"pending_ttl": 1.0}),
                                          ("feedback", {"feedback_secret": SECRET}),
                                          ("limits", {"max_prompt_chars": 10**9})])
def test_a_grouped_config_cannot_set_operational_settings(tmp_path: Path, group: str, value: dict) -> None:
    crafted = rewrite(saved(tmp_path), lambda config, arrays: config["router"].update({group: value}))
    with pytest.raises(StateFormatError, match=f"config\\['router'\\]\\[{next(iter(value))!r}\\]: a state file"):
        Router.load(crafted, encoder=fake_encoder)
    assert Router.load(crafted, encoder=fake_encoder, **{group: None})  # the caller's group applies instead


# -- 2. credentials outside Model.api_key ---------------------------------------------------------------------------
CREDENTIAL_PARAMS = {
    "extra_headers": {"Authorization": "Bearer hdr-canary-1111aaaa", "api-key": "hdr-canary-2222bbbb",
                      "X-Api-Key": "hdr-canary-3333cccc", "X-Request-Source": "public-value"},
    "aws_secret_access_key": "aws-canary-4444dddd", "aws_session_token": "aws-canary-5555eeee",
    "vertex_credentials": {"type": "service_account", "private_key": "vtx-canary-6666ffff"},
    "azure_ad_token": "azure-canary-7777gggg", "db_password": "pwd-canary-8888hhhh",
    "temperature": 0.2, "max_tokens": 64,
}
CANARIES = ["hdr-canary-1111aaaa", "hdr-canary-2222bbbb", "hdr-canary-3333cccc", "aws-canary-4444dddd",
            "aws-canary-5555eeee", "vtx-canary-6666ffff", "azure-canary-7777gggg", "pwd-canary-8888hhhh"]


def card(**kwargs: Any) -> Model:
    return Model("openai/card", input_cost_per_token=1e-6, output_cost_per_token=2e-6, **kwargs)


def test_credentials_in_params_are_used_but_never_shown_saved_or_logged(tmp_path: Path, caplog) -> None:
    model = card(params=CREDENTIAL_PARAMS)
    kwargs = model.call_kwargs()
    assert kwargs["extra_headers"]["Authorization"] == "Bearer hdr-canary-1111aaaa"
    assert kwargs["aws_secret_access_key"] == "aws-canary-4444dddd" and kwargs["temperature"] == 0.2
    assert kwargs["extra_headers"]["X-Request-Source"] == "public-value" and kwargs["max_tokens"] == 64
    assert model.params == {"extra_headers": {"X-Request-Source": "public-value"}, "temperature": 0.2,
                            "max_tokens": 64}  # only the public part
    router = Router([model, *model_cards()], encoder=fake_encoder, seed=0)
    router.save(tmp_path / "r.safetensors")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("LiteLLM").debug("request %s", kwargs)
    texts = [repr(model), str(model), repr(router.models), str(model.to_config()), caplog.text,
             (tmp_path / "r.safetensors").read_bytes().decode("latin-1")]
    assert "[REDACTED]" in caplog.text
    assert [(c, i) for c in CANARIES for i, t in enumerate(texts) if c in t] == []
    credentials = {"openai/card": {k: v for k, v in CREDENTIAL_PARAMS.items() if k not in ("temperature", "max_tokens")}}
    restored = Router.load(tmp_path / "r.safetensors", encoder=fake_encoder, credentials=credentials)
    assert restored.models["openai/card"].call_kwargs() == kwargs
    assert Router.load(tmp_path / "r.safetensors", encoder=fake_encoder).models["openai/card"].credentials == {}


@pytest.mark.parametrize("where", ["api_base", "params.api_base", "params.base_url"])
def test_credentials_in_a_url_are_refused_without_echoing_them(where: str) -> None:
    url = "https://user:url-canary-9999iiii@llm.example/v1"
    kwargs = {"api_base": url} if where == "api_base" else {"params": {where.split(".")[1]: url}}
    with pytest.raises(ConfigError, match="must not carry credentials") as caught:
        card(**kwargs)
    assert "url-canary-9999iiii" not in str(caught.value) + repr(caught.value)


def test_a_state_file_holding_credentials_is_refused(tmp_path: Path) -> None:
    def add(config: dict, arrays: dict) -> None:
        config["models"][0]["params"] = {"extra_headers": {"Authorization": "Bearer attacker"}}

    with pytest.raises(StateFormatError, match="holds credentials \\['extra_headers'\\]"):
        Router.load(rewrite(saved(tmp_path), add), encoder=fake_encoder)


# -- 3. a refused settle keeps its hold ----------------------------------------------------------------------------
@pytest.mark.parametrize("cost", [float("nan"), float("inf"), -1.0, "0.1", True, None])
def test_a_refused_settle_keeps_the_hold_and_release_still_works(cost: Any) -> None:
    budget = Budget(limit=10.0)
    router = Router(model_cards(), encoder=fake_encoder, seed=0, budget=budget)
    decision = router.route("hold me")
    held = budget.reserved()
    assert held > 0
    if cost is None:  # None settles the hold at its worst case: a valid call, shown for contrast
        router.settle(decision.route_id, cost)
        assert budget.reserved() == 0 and budget.spent() == pytest.approx(held)
        return
    with pytest.raises(ConfigError, match="cost must be a finite number >= 0"):
        router.settle(decision.route_id, cost)
    assert budget.reserved() == held and budget.spent() == 0
    router.release(decision.route_id)
    assert budget.reserved() == 0 and budget.spent() == 0


def test_add_model_with_bad_features_changes_nothing() -> None:
    router = Router(model_cards(), policy="shared-linucb", encoder=fake_encoder, seed=0)
    before = (list(router.models), list(router.policy.arms), router.policy.A.shape)
    with pytest.raises(ConfigError, match="features"):
        router.add_model(card(), features=np.zeros(2))
    assert (list(router.models), list(router.policy.arms), router.policy.A.shape) == before


# -- 4. crafted files: sizes, depth, random state, magnitudes -------------------------------------------------------
def load_measured(path: Path) -> tuple[BaseException | None, float, int]:
    """(error raised or None, CPU seconds, peak bytes allocated) of Router.load(path)."""
    tracemalloc.start()
    start = time.process_time()
    try:
        Router.load(path, encoder=fake_encoder).route("after loading")
        error = None
    except Exception as caught:  # noqa: BLE001  (the tests check the type)
        error = caught
    seconds = time.process_time() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return error, seconds, peak


def test_a_huge_dim_is_refused_before_allocating(tmp_path: Path) -> None:
    crafted = rewrite(saved(tmp_path), lambda config, arrays: config.update(dim=12_000))
    assert crafted.stat().st_size < 20_000
    error, _, peak = load_measured(crafted)
    assert isinstance(error, StateFormatError) and "needs about" in str(error)
    assert peak < 50 << 20  # building the policy would take 3 x 12001^2 x 8 bytes x 2 = 6.9 GB


def raw_state(config_text: str, arrays: dict[str, np.ndarray]) -> bytes:
    """A state file whose config is `config_text` verbatim (JSON that json.dumps could not write)."""
    from safetensors.numpy import save

    return save(arrays, metadata={"format": "bandit-router/1", "config": config_text,
                                  "sha256": _digest(config_text, arrays)})


def test_deeply_nested_json_is_refused(tmp_path: Path) -> None:
    good = saved(tmp_path)
    config, arrays = read_state(good)
    text = json.dumps(config)
    deep = text[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (tmp_path / "deep.safetensors").write_bytes(raw_state(deep, dict(arrays)))
    with pytest.raises(StateFormatError, match="nests deeper than 32"):
        Router.load(tmp_path / "deep.safetensors", encoder=fake_encoder)


@pytest.mark.parametrize("where, value", [
    ("state", -1), ("state", 2**128), ("state", "12"), ("inc", 1.5), ("has_uint32", 7), ("bit_generator", "MT19937"),
    ("uinteger", 2**40), ("extra", 1),
])
@pytest.mark.parametrize("rng", ["router", "policy"])
def test_bad_random_states_are_refused(tmp_path: Path, rng: str, where: str, value: Any) -> None:
    def change(config: dict, arrays: dict) -> None:
        state = config["rng"] if rng == "router" else config["policy"]["rng"]
        (state["state"] if where in ("state", "inc") else state)[where] = value

    with pytest.raises(StateFormatError, match="is not a PCG64 random generator state"):
        Router.load(rewrite(saved(tmp_path), change), encoder=fake_encoder)


@pytest.mark.parametrize("value", [1e300, -1e300, 1e13])
def test_huge_finite_arrays_are_refused(tmp_path: Path, value: float) -> None:
    def change(config: dict, arrays: dict) -> None:
        arrays["policy.A"][0, 0, 0] = value
        arrays["policy.A_inv"][1] = value

    with pytest.raises(StateFormatError, match="holds values beyond"):
        Router.load(rewrite(saved(tmp_path), change), encoder=fake_encoder)


# -- 5. the per-source cap ------------------------------------------------------------------------------------------
def test_the_source_table_is_bounded_whatever_the_number_of_sources() -> None:
    quota = SourceQuota(limit=100, window=3600.0)  # 200,000 sources in 65,536 slots: about 3 per slot
    size = quota._counts.nbytes
    for i in range(200_000):
        quota.count(quota.check(f"source-{i}", now=100.0), now=100.0)
    assert quota._counts.nbytes == size == 2 * 65_536 * 8 and int(quota._counts.sum()) == 200_000


def test_the_sliding_estimate_weights_the_previous_window() -> None:
    quota = SourceQuota(limit=4, window=10.0)
    for now in (1.0, 2.0, 3.0, 4.0):
        quota.count(quota.check("u", now=now), now=now)
    with pytest.raises(FeedbackLimitError):
        quota.check("u", now=12.0)  # 4 x 0.8 = 3.2 counts still inside the sliding window, +1 would exceed 4
    assert quota.check("u", now=17.5) == "u"  # 4 x 0.25 = 1


def shared_routers(store_of: Callable[[], Any], limit: int = 5) -> list[Router]:
    return [Router(model_cards(), encoder=fake_encoder, seed=i, state_store=store_of(),
                   limits=Limits(sync_every=3600), feedback=FeedbackSettings(source_limit=limit)) for i in range(2)]


def rate(router: Router, source: str) -> None:
    decision = router.route(f"a prompt for {source}")
    router.feedback(decision.route_id, 1.0, source=source)


def check_shared_cap(routers: list[Router]) -> None:
    a, b = routers
    for _ in range(3):
        rate(a, "mallory")
    for _ in range(2):
        rate(b, "mallory")
    for router in (a, b):
        with pytest.raises(FeedbackLimitError, match="source_limit allows 5"):
            rate(router, "mallory")
    rate(b, "alice")  # another source keeps its own cap


def test_the_cap_is_shared_by_replicas_through_sqlite(tmp_path: Path) -> None:
    check_shared_cap(shared_routers(lambda: SQLiteStateStore(tmp_path / "state.db")))


def test_the_cap_is_shared_by_replicas_through_redis(redis_server) -> None:
    check_shared_cap(shared_routers(lambda: RedisStateStore(redis_server.url)))


def test_an_unreachable_store_caps_per_replica(redis_server) -> None:
    a, b = shared_routers(lambda: RedisStateStore(redis_server.url, timeout=0.3), limit=2)
    redis_server.stop()
    for router in (a, b):
        rate(router, "mallory")
        rate(router, "mallory")  # counted locally while Redis is down
        with pytest.raises(FeedbackLimitError):
            rate(router, "mallory")


# -- 6. untyped errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, error", [
    (lambda r, d: r.feedback("\ud800", 0.5, token=d.feedback_token), UnknownRouteError),
    (lambda r, d: r.feedback(b"\xff", 0.5, token=d.feedback_token), UnknownRouteError),
    (lambda r, d: r.feedback(["x"], 0.5, token=d.feedback_token), UnknownRouteError),
    (lambda r, d: r.settle(["x"], 0.1), UnknownRouteError),
    (lambda r, d: r.release({"x": 1}), UnknownRouteError),
    (lambda r, d: r.route([{"role": "user", "content": 5}]), InvalidPromptError),
    (lambda r, d: r.route([{"role": "user", "content": {"text": None}}]), InvalidPromptError),
    (lambda r, d: r.route([{"role": "user", "content": [{"type": "text", "text": None}]}]), InvalidPromptError),
    (lambda r, d: r.route([{"role": "user", "content": ["bare string part"]}]), InvalidPromptError),
    (lambda r, d: r.route(42), InvalidPromptError),
    (lambda r, d: r.route({"role": "user", "content": "a message, not a list"}), InvalidPromptError),
    (lambda r, d: r.route([{"role": "human", "content": "a LangChain type, not a chat role"}]), InvalidPromptError),
    (lambda r, d: r.route("hi", max_tokens="9"), ConfigError),
    (lambda r, d: r.route("hi", max_tokens=0), ConfigError),
    (lambda r, d: r.complete("hi", max_tokens=9.5), ConfigError),
], ids=["surrogate route id", "bytes route id", "list route id", "settle list", "release dict", "content 5",
        "content dict", "content part text None", "content bare string", "prompt int", "prompt dict",
        "role human", "max_tokens str", "max_tokens 0",
        "max_tokens float"])
def test_bad_arguments_raise_typed_errors(call, error) -> None:
    router = Router(model_cards(), encoder=fake_encoder, seed=0, feedback=FeedbackSettings(feedback_secret=SECRET),
                    budget=Budget(limit=10.0))
    decision = router.route("open")
    held = router.budget.reserved()
    with pytest.raises(error):
        call(router, decision)
    assert router.pending(decision.route_id) and router.budget.reserved() == held


def test_a_full_disk_leaves_no_pending_decision_or_hold(tmp_path: Path) -> None:
    log = SQLiteDecisionLog(tmp_path / "decisions.db")
    budget = Budget(limit=10.0)
    router = Router(model_cards(), encoder=fake_encoder, seed=0, log=log, budget=budget)
    router.route("fits")
    pages = log._conn.execute("PRAGMA page_count").fetchone()[0]
    log._conn.execute(f"PRAGMA max_page_count={pages}")  # SQLite now answers "database or disk is full"
    with pytest.raises(StoreUnavailableError, match="full"):
        for i in range(1000):  # the first insert that needs a new page fails
            router.route(f"{i} " + "x" * 500)
    assert len(router.ledger.waiting) == i + 1 and len(router.gate.held) == i + 1  # the refused one left nothing
    assert budget.reserved() == pytest.approx(sum(h[0].amount for h in router.gate.held.values()))
    assert isinstance(StoreUnavailableError("x"), BanditRouterError)


def test_a_file_cannot_name_a_local_path_as_its_encoder(tmp_path: Path, monkeypatch) -> None:
    crafted = rewrite(saved(tmp_path), lambda config, arrays: config.update(encoder="../../tmp/evil-model"))
    with pytest.raises(StateFormatError, match="not a Hugging Face model name or 'hashing:<dim>'"):
        Router.load(crafted)
    assert Router.load(crafted, encoder=fake_encoder)  # with the encoder given, the saved name is only a label
    (tmp_path / "local-model").mkdir()  # a name that passes as a hub name but is a folder where the loader runs
    monkeypatch.chdir(tmp_path)
    crafted = rewrite(saved(tmp_path), lambda config, arrays: config.update(encoder="local-model"))
    with pytest.raises(StateFormatError, match="also a local path"):
        Router.load(crafted)


def test_a_router_with_a_lambda_encoder_saves_and_loads(tmp_path: Path, caplog) -> None:
    router = Router(model_cards(), encoder=lambda text: fake_encoder(text), seed=0)
    router.save(tmp_path / "r.safetensors")
    assert Router.load(tmp_path / "r.safetensors", encoder=fake_encoder).route("x")
    assert "was saved with encoder '<lambda>' and is loaded with 'fake_encoder'" in caplog.text  # told, not refused
    caplog.clear()
    Router(model_cards(), encoder=fake_encoder, seed=0).save(tmp_path / "same.safetensors")
    Router.load(tmp_path / "same.safetensors", encoder=fake_encoder)
    assert "was saved with encoder" not in caplog.text
