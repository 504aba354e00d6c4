"""The service's config file: what it accepts, and errors that name the field (no network)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from bandit_router.errors import ConfigError
from bandit_router.service import load_config, parse_config
from bandit_router.service.auth import KeyRing, Tenant

from .conftest import CHEAP, DEAR, KEYS, UPSTREAM_KEY, config_dict, scored_table

ENV = {"UPSTREAM_KEY": UPSTREAM_KEY}


def test_a_full_config_builds_its_router() -> None:
    config = parse_config(config_dict("http://127.0.0.1:9/v1", cost_weight=0.3, tasks=["chat", "sql"],
                                      feedback={"limit_per_tenant": 5}), env=ENV)
    router = config.build_router()
    assert router.cost_weight == 0.3 and router.tasks == ("chat", "sql") and router.budget.key_limit == 5.0
    assert router.models["openai/model-a"].api_key == UPSTREAM_KEY and router.ledger.quota.limit == 5


@pytest.mark.parametrize("change, field", [
    ({"colour": "red"}, "colour"),
    ({"models": []}, "models"),
    ({"models": [{"api_base": "http://127.0.0.1:9/v1"}]}, r"models\[0\]: model config needs a name"),
    ({"state": {"redis": "redis://x", "sqlite": "y"}}, "both redis and sqlite"),
    ({"budget": {"key_limit": 1}}, "budget needs a limit"),
    ({"budget": {"limit": 1, "colour": 1}}, "colour"),
    ({"feedback": {"secret_env": "NOT_SET_ANYWHERE"}}, "NOT_SET_ANYWHERE"),
    ({"server": {"port": 70000}}, "server.port"),
    ({"encoder": "hashing:x"}, "hashing"),
    ({"tenants": [{"name": "a", "salt": "zz", "key_sha256": "00"}]}, r"tenants\[0\]"),
    ({"spend_target": -1, "cost_weight": None}, "spend_target: per_request must be a finite number > 0"),
    ({"spend_target": 1e-4, "cost_weight": 0.2}, "not both"),
    ({"prior": {"strength": 1}}, "prior needs table"),
    ({"prior": {"table": "t", "strength": 0}}, "prior.strength must be a finite number > 0"),
    ({"prior": {"table": "t", "invalid_rows": "keep"}}, "prior.invalid_rows"),
    ({"prior": {"table": "/nonexistent/scores"}}, "prior.table '/nonexistent/scores': .* is not a folder"),
])
def test_invalid_configs_name_the_field(change, field) -> None:
    with pytest.raises(ConfigError, match=field):
        parse_config(config_dict("http://127.0.0.1:9/v1", **change), env=ENV).build_router()


# one-setting mistakes a user trial made (and more of their kind): each is a ConfigError from parse_config alone,
# before any store, server or router is built, naming the field by its config path, what it must be, and the value
@pytest.mark.parametrize("change, message", [
    ({"state": {"redis": 6379}}, "state.redis must be a URL starting with redis://, rediss:// or unix://, got 6379"),
    ({"state": {"redis": "localhost:6379"}}, "state.redis must be a URL .*, got 'localhost:6379'"),
    ({"seed": "abc"}, "seed must be an integer >= 0, got 'abc'"),
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ({"server": {"host": 1}}, "server.host must be a non-empty string, got 1"),
    ({"server": {"max_body_bytes": "4MB"}}, "server.max_body_bytes must be an integer >= 1, got '4MB'"),
    ({"server": {"port": "8000"}}, r"server.port must be an integer in \[0, 65535\], got '8000'"),
    ({"server": {"shutdown_timeout": "30s"}}, "server.shutdown_timeout must be a finite number >= 0 \\(seconds\\)"),
    ({"state": {"sqlite": 5}}, "state.sqlite must be a file path .*, got 5"),
    ({"state": {"sqlite": "s.db", "namespace": 3}}, "state.namespace must be a non-empty string, got 3"),
    ({"state": {"sqlite": "s.db", "sync_every": "fast"}}, "state.sync_every must be a finite number >= 0"),
    ({"state": {"namespace": "a"}}, "state needs redis .* or sqlite"),
    ({"state": 0}, "state must be a table"),
    ({"feedback": {"limit_per_tenant": "1000"}}, "feedback.limit_per_tenant must be an integer >= 1, got '1000'"),
    ({"feedback": {"window": "1h"}}, "feedback.window must be a finite number > 0 \\(seconds\\), got '1h'"),
    ({"feedback": {"token_ttl": "1h"}}, "feedback.token_ttl must be a finite number > 0 \\(seconds\\), got '1h'"),
    ({"feedback": {"secret_env": 5}}, "feedback.secret_env must be the name of an environment variable, got 5"),
    ({"feedback": {"secret_env": "SHORT_SECRET"}}, "feedback.secret_env names 'SHORT_SECRET', whose value is shorter"),
    ({"budget": {"limit": "50"}}, r"budget.limit must be a finite number > 0 \(USD\), got '50'"),
    ({"budget": {"limit": 1, "key_limit": float("nan")}}, "budget.key_limit must be a finite number > 0"),
    ({"budget": {"limit": 1, "period": "day"}}, "budget.period must be a finite number > 0 \\(seconds\\), got 'day'"),
    ({"budget": {"limit": 1, "bins": 2.5}}, "budget.bins must be an integer >= 1, got 2.5"),
    ({"budget": {"limit": 1, "pacer": "bogus"}}, "budget.pacer must be one of 'knapsack', 'none', got 'bogus'"),
    ({"budget": {"limit": 1, "pacer": "bogus"}, "state": {"sqlite": "s.db"}}, "budget.pacer must be one of 'knapsack'"),
    ({"budget": {"limit": 1, "pacer": "knapsack"}, "state": {"sqlite": "s.db"}},
     "budget.pacer must be 'none' with \\[state\\], got 'knapsack': a ledger shared by replicas enforces the hard cap"),
    ({"cost_weight": "0.2"}, r"cost_weight must be a number in \[0, 1\].*, got '0.2'"),
    ({"pending_ttl": True}, "pending_ttl must be a finite number > 0 \\(seconds\\), got True"),
    ({"max_pending": "10"}, "max_pending must be an integer >= 1, got '10'"),
    ({"cooldown": "30"}, "cooldown must be a finite number >= 0 \\(seconds\\), got '30'"),
    ({"max_attempts": 0}, "max_attempts must be an integer >= 1, got 0"),
    ({"log": 5}, "log must be a file path .*, got 5"),
    ({"tasks": "chat"}, "tasks must be a list of distinct non-empty task names, got 'chat'"),
    ({"policy": 3}, "policy must be a non-empty string, got 3"),
    ({"policy": "bogus"}, "unknown policy 'bogus'; registered"),
    ({"policy_settings": "fast"}, "policy_settings must be a table"),
    ({"policy_settings": {"alpha": "x"}}, r"policy_settings \(of policy 'linucb'\): .*alpha must be a float"),
    ({"policy": "random", "state": {"sqlite": "s.db"}}, "state needs a policy that shares its learned state"),
    ({"encoder": "hashing:x"}, "encoder 'hashing:x'"),
    ({"tenants": ["team-a"]}, r"tenants\[0\] must be a table of name, salt, key_sha256"),
    ({"tenants": {}}, "tenants must be a list"),
    ({"models": [{"name": CHEAP, "api_key_env": 5}]}, r"models\[0\].api_key_env must be the name of an environment"),
    ({"models": [{"name": CHEAP, "supports_tools": "yes"}]}, r"models\[0\].supports_tools must be true or false"),
])
def test_config_mistakes_fail_at_parse_time_naming_the_config_path(change, message, tmp_path: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a store that were opened would leave its file here, not in the repository
    with pytest.raises(ConfigError, match=message):
        parse_config(config_dict("http://127.0.0.1:9/v1", **change), env={**ENV, "SHORT_SECRET": "abc"})
    assert list(tmp_path.iterdir()) == []  # nothing was created: parse_config opens no store


def test_valid_settings_of_every_section_parse_and_build(tmp_path: Path) -> None:
    config = parse_config(config_dict(
        "http://127.0.0.1:9/v1", seed=7, pending_ttl=60, max_pending=10, max_attempts=2, cooldown=0, tasks=["a"],
        policy_settings={"alpha": 0.5}, state={"sqlite": str(tmp_path / "s.db"), "namespace": "n", "sync_every": 0},
        budget={"limit": 1, "period": 86400, "key_limit": 0.5, "pacer": "none", "bins": 4},
        feedback={"secret_env": "SECRET", "limit_per_tenant": 3, "window": 60, "token_ttl": 30},
        server={"host": "0.0.0.0", "port": 0, "max_body_bytes": 1000, "shutdown_timeout": 0}),
        env={**ENV, "SECRET": "s" * 16})
    assert (config.host, config.port, config.max_body_bytes, config.shutdown_timeout) == ("0.0.0.0", 0, 1000, 0.0)
    router = config.build_router()
    assert router.seed == 7 and router.limits.sync_every == 0 and router.tokens.ttl == 30


def test_a_prior_table_warm_starts_every_router_the_config_builds(tmp_path: Path, caplog) -> None:
    table = scored_table(tmp_path / "scored", [CHEAP, DEAR])
    config = parse_config(config_dict("http://127.0.0.1:9/v1", prior={"table": table, "strength": 0.5}), env=ENV)
    for router in (config.build_router(), config.build_router()):
        counts = router.policy.A[:, -1, -1] - router.policy.config.regularization
        np.testing.assert_allclose(counts, [15.0, 15.0])  # 30 prompts per model, each worth half a rating
        assert router.route("question 7").model == CHEAP  # what the table taught
    wider = scored_table(tmp_path / "wider", [CHEAP, "openai/model-c", DEAR])  # scored on a model not deployed
    with caplog.at_level(logging.INFO, logger="bandit_router.service.config"):
        router = parse_config(config_dict("http://127.0.0.1:9/v1", prior={"table": wider}), env=ENV).build_router()
    assert "the scores of ['openai/model-c'] are left out" in caplog.text
    assert f"warm-started from {wider!r}: 30 prompts, each scored by 2 of the 2 models" in caplog.text
    np.testing.assert_allclose(router.policy.A[:, -1, -1] - router.policy.config.regularization, [30.0, 30.0])
    assert router.route("question 7").model == CHEAP
    with pytest.raises(ConfigError, match=r"prior.table .* scores none of the config's models"):
        parse_config(config_dict("http://127.0.0.1:9/v1", prior={"table": scored_table(tmp_path / "other", [
            "openai/model-c"])}), env=ENV).build_router()


def test_a_spend_target_sets_each_routers_dial() -> None:
    config = parse_config(config_dict("http://127.0.0.1:9/v1", spend_target=2e-4, cost_weight=None), env=ENV)
    first, second = config.build_router(), config.build_router()
    assert first.spend_target.per_request == 2e-4 and first.spend_target is not second.spend_target
    assert first.cost_weight == first.spend_target.dial


def test_keys_stay_out_of_the_file() -> None:
    config = config_dict("http://127.0.0.1:9/v1")
    config["models"][0]["api_key"] = "sk-in-the-file-0123456789"
    with pytest.raises(ConfigError, match="api_key_env"):
        parse_config(config, env=ENV)
    with pytest.raises(ConfigError, match="UPSTREAM_KEY"):
        parse_config(config_dict("http://127.0.0.1:9/v1"), env={})


def test_toml_and_json_files(tmp_path: Path) -> None:
    toml = tmp_path / "service.toml"
    toml.write_text('encoder = "hashing:8"\ncost_weight = 0.4\n[[models]]\nname = "m"\ninput_cost_per_token = 1e-6\n'
                    'output_cost_per_token = 2e-6\n[server]\nport = 8123\n')
    config = load_config(toml, env={})
    assert config.port == 8123 and config.models[0].name == "m" and config.router["cost_weight"] == 0.4
    broken = tmp_path / "service.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(broken)


def test_tenant_lookup() -> None:
    ring = parse_config(config_dict("http://127.0.0.1:9/v1"), env=ENV).keyring()
    assert ring.tenant(KEYS["team-b"]).name == "team-b"
    assert ring.tenant("sk-nobody-0123456789") is None and ring.tenant(None) is None
    assert KeyRing([]).tenant(None).name == "default"
    with pytest.raises(ConfigError, match="distinct"):
        KeyRing([Tenant("a", "00" * 8, "0" * 64, "a")] * 2)




def test_a_config_read_to_call_nothing_needs_no_keys() -> None:
    config = config_dict("http://127.0.0.1:9/v1", feedback={"secret_env": "NOT_SET_ANYWHERE"})
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        parse_config(config, env={})
    with pytest.raises(ConfigError, match="UPSTREAM_KEY"):
        parse_config(config_dict("http://127.0.0.1:9/v1"), env={})
    parsed = parse_config(config, env={}, keys=False)
    assert [m.api_key for m in parsed.models] == [None, None] and parsed.feedback_secret is None
