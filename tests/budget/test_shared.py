"""shared-linucb: a model added at run time with features is predicted from the start; state round-trips."""

import numpy as np
import pytest

from bandit_router.errors import ConfigError
from bandit_router.models import Model
from bandit_router.policies import make_policy
from bandit_router.policies.shared import SharedLinUCB, model_features
from bandit_router.router import Router

from .conftest import topic_encoder

DIM = 8


def card(name: str, description: str = "", price: float = 1e-6) -> Model:
    return Model(name, input_cost_per_token=price, output_cost_per_token=price, description=description)


def features(direction: int, price: float = 0.0) -> np.ndarray:
    f = np.zeros(DIM + 3)
    f[direction] = 1.0
    f[DIM] = price
    return f


def trained_router() -> Router:
    """Two families of models: 'strong' ones (features along axis 2) score 0.9, 'weak' ones (axis 3) 0.1."""
    names = ["strong-1", "strong-2", "weak-1", "weak-2"]
    feats = {"strong-1": features(2, 1.0), "strong-2": features(2, 0.9), "weak-1": features(3, -1.0),
             "weak-2": features(3, -0.9)}
    policy = SharedLinUCB(DIM, names, SharedLinUCB.Config(alpha=0.0, feature_scale=1.0), features=feats, seed=0)
    router = Router([card(n) for n in names], policy=policy, encoder=topic_encoder(DIM), seed=0)
    for i in range(60):
        for name in names:
            router.observe(f"prompt {i}", name, 0.9 if name.startswith("strong") else 0.1)
    return router


def test_a_new_model_with_features_is_predicted_from_its_family():
    router = trained_router()
    router.add_model(card("strong-new"), features=features(2, 0.95))
    router.add_model(card("weak-new"), features=features(3, -0.95))
    router.add_model(card("bare"))
    q = router.route("prompt 999").predicted_quality
    assert q["strong-new"] > 0.7 and q["weak-new"] < 0.3
    assert abs(q["bare"]) < 0.05  # a bare arm knows nothing yet
    assert router.route("prompt 1000").model in {"strong-1", "strong-2", "strong-new"}


def test_feedback_on_a_bare_arm_teaches_only_that_arm():
    router = trained_router()
    router.add_model(card("bare"))
    before = router.policy.theta_s.copy()
    for i in range(30):
        router.observe(f"prompt {i}", "bare", 0.7)
    assert np.array_equal(router.policy.theta_s, before)
    assert router.route("prompt 999").predicted_quality["bare"] == pytest.approx(0.7, abs=0.1)


def test_state_round_trips_through_save_and_load(tmp_path):
    router = trained_router()
    router.add_model(card("strong-new"), features=features(2, 0.95))
    router.save(tmp_path / "r.safetensors")
    loaded = Router.load(tmp_path / "r.safetensors", encoder=topic_encoder(DIM))
    assert loaded.policy.name == "shared-linucb"
    x = topic_encoder(DIM)("prompt 5")
    for arms in ([0, 1, 2, 3, 4], [4]):
        np.testing.assert_allclose(loaded.policy.predict(x, arms)[0], router.policy.predict(x, arms)[0], atol=1e-9)


def test_remove_model_forgets_its_features():
    router = trained_router()
    router.remove_model("strong-2")
    assert router.policy.arms == ["strong-1", "weak-1", "weak-2"]
    assert router.policy.features.shape == (3, DIM + 3) and router.policy.has_features.tolist() == [1, 1, 1]


def test_make_policy_builds_bare_arms():
    policy = make_policy("shared-linucb", DIM, ["a", "b"], prompt_dim=4, model_dim=2)
    assert policy.has_features.tolist() == [0.0, 0.0]


def test_features_need_a_policy_that_uses_them():
    router = Router([card("a")], encoder=topic_encoder(DIM))
    with pytest.raises(ConfigError, match="does not use model features"):
        router.add_model(card("b"), features=features(2))


@pytest.mark.parametrize("bad", [np.zeros(3), np.full(DIM + 3, np.nan)])
def test_features_must_have_the_right_shape(bad):
    router = trained_router()
    with pytest.raises(ConfigError, match=r"features of 'new' must be 11 finite numbers"):
        router.add_model(card("new"), features=bad)


@pytest.mark.parametrize("settings, match", [
    ({"alpha": -1.0}, "alpha"), ({"model_regularization": 0.0}, "model_regularization"),
    ({"prompt_dim": 0}, "prompt_dim"), ({"feature_scale": -0.5}, "feature_scale"),
])
def test_invalid_settings(settings, match):
    with pytest.raises(ConfigError, match=match):
        make_policy("shared-linucb", DIM, ["a"], **settings)


def test_model_features_embed_the_description_with_price_and_size():
    encoder = topic_encoder(DIM)
    f = model_features(card("m", "A 70-billion parameter model for math", price=1e-6), encoder, size=70)
    assert f.shape == (DIM + 3,)
    np.testing.assert_allclose(f[:DIM], encoder("A 70-billion parameter model for math"))
    assert f[DIM:].tolist() == pytest.approx([0.0, np.log10(70), 1.0])  # $1 per Mtok -> log10 1 = 0
    assert model_features(card("m", "d"), encoder)[DIM + 1:].tolist() == [0.0, 0.0]
    with pytest.raises(ConfigError, match="no description"):
        model_features(card("m"), encoder)
    with pytest.raises(ConfigError, match="size must be"):
        model_features(card("m", "d"), encoder, size=-3)
