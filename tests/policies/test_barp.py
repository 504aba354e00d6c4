"""BaRP: the policy-gradient term, the entropy bonus, one policy for every dial, state round trips, seeds."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


import numpy as np
import pytest
import torch

from bandit_router import Model, Router
from bandit_router.errors import ConfigError
from bandit_router.policies import barp, make_policy
from bandit_router.policies.barp import policy_loss

from ..fakes import hashed_bow

DIM = 12
ARMS = ["a", "b", "c", "d", "e"]
CARDS = [Model("openai/cheap", input_cost_per_token=1e-7, output_cost_per_token=1e-7),
         Model("openai/dear", input_cost_per_token=1e-5, output_cost_per_token=1e-5)]
PROMPTS = [f"question {i} about {topic}" for i in range(20) for topic in ("maths", "poetry", "code")]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The networks are tiny: one intra-op thread avoids contention on a busy machine (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def encode(text: str) -> np.ndarray:
    return hashed_bow(text, DIM)


def entropy_of(policy, x: np.ndarray, dial: float) -> float:
    with torch.no_grad():
        p = torch.softmax(policy.logits(torch.from_numpy(x.astype(np.float32)), torch.full((len(x),), dial)), -1)
    return float(-(p * p.log()).sum(-1).mean())


def random_log(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"vectors": rng.standard_normal((n, DIM)) / np.sqrt(DIM), "arms": [ARMS[k] for k in rng.integers(5, size=n)],
            "scores": rng.random(n), "costs": rng.random(n), "propensities": np.full(n, 0.2)}


# -- the gradient ------------------------------------------------------------------------------------------------
def test_reinforce_gradient_on_the_logits_is_that_of_the_chosen_log_probability():
    torch.manual_seed(0)
    logits = torch.randn(4, 5, requires_grad=True)
    arms, rewards, weights = torch.tensor([0, 3, 3, 1]), torch.tensor([0.9, 0.1, 0.5, 0.3]), torch.tensor([1.0, 2.0, 0.5, 1.5])
    policy_loss(logits, arms, rewards, weights, entropy=0.0).backward()
    p = torch.softmax(logits, 1).detach()
    advantage = rewards - rewards.mean()
    expected = -(weights * advantage / 4)[:, None] * (torch.nn.functional.one_hot(arms, 5) - p)
    torch.testing.assert_close(logits.grad, expected)


def full_information_loss(logits, arms, rewards_all, weights, entropy):
    """What the loss would be if every model's reward were used (for checking that the test below catches it)."""
    return -(torch.softmax(logits, -1) * rewards_all).sum(-1).mean()


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_unchosen_models_move_only_through_the_softmax_normaliser(head):
    """Two outcomes on one prompt under one dial: every model that was not chosen gets a logit gradient
    proportional to its probability with one common factor. A loss that used the unchosen models' own rewards
    would give them gradients of different signs and ratios."""
    policy = make_policy("barp", DIM, ARMS, seed=0, head=head, entropy=0.0)
    x = encode("prove the theorem")
    batch = {"x": np.stack([x, x]), "arm": np.array([1, 3]), "quality": np.array([0.9, 0.2]),
             "cost": np.array([0.5, 0.1]), "propensity": np.array([0.2, 0.2])}
    bias = policy.params["out.bias"].requires_grad_(True)
    policy.loss(batch, np.array([0.3])).backward()
    with torch.no_grad():
        p = torch.softmax(policy.logits(torch.from_numpy(x[None].astype(np.float32)), torch.tensor([0.3])), -1)[0]
    ratio = bias.grad / p  # d loss / d bias_j = sum over samples of d loss / d logit_j
    unchosen = [0, 2, 4]
    assert ratio[unchosen].abs().min() > 0
    torch.testing.assert_close(ratio[unchosen], ratio[unchosen[0]].expand(3))
    assert not torch.allclose(ratio[1], ratio[0]) and not torch.allclose(ratio[3], ratio[0])

    logits = torch.randn(2, 5, requires_grad=True)
    full_information_loss(logits, None, torch.tensor([[0.1, 0.9, 0.4, 0.2, 0.7]] * 2), None, 0.0).backward()
    full_ratio = logits.grad.sum(0) / torch.softmax(logits, -1).detach().sum(0)
    assert not torch.allclose(full_ratio[unchosen], full_ratio[unchosen[0]].expand(3))


def test_importance_weights_are_pi_over_mu_clipped(monkeypatch):
    policy = make_policy("barp", DIM, ARMS, seed=0, clip=2.0, entropy=0.0)
    x = encode("a prompt")
    captured = {}

    def spy(logits, arms, rewards, weights, entropy):
        captured["weights"] = weights
        return policy_loss(logits, arms, rewards, weights, entropy)

    monkeypatch.setattr(barp, "policy_loss", spy)
    policy.loss({"x": np.stack([x, x]), "arm": np.array([0, 0]), "quality": np.array([1.0, 0.0]),
                 "cost": np.zeros(2), "propensity": np.array([0.5, 0.01])}, np.array([0.0]))
    probs, _ = policy.probabilities(x, range(5), np.zeros(5), 0.0)
    np.testing.assert_allclose(captured["weights"][0].numpy(), [probs[0] / 0.5, 2.0], rtol=1e-5)


# -- entropy, learning, one policy for every dial ----------------------------------------------------------------
def test_the_entropy_bonus_raises_entropy():
    log, held_out = random_log(600), random_log(200, seed=1)["vectors"]
    entropies = []
    for beta in (0.0, 0.2):
        policy = make_policy("barp", DIM, ARMS, seed=0, entropy=beta)
        policy.train_offline(**log, epochs=15)
        entropies.append(entropy_of(policy, held_out, 0.3))
    assert entropies[1] > entropies[0] + 0.2


def test_one_trained_policy_serves_every_dial():
    """The dear model is better; at dial 0 the policy picks it, at a high dial the cheap one, without retraining."""
    rng = np.random.default_rng(0)
    n = 800
    x = rng.standard_normal((n, DIM)) / np.sqrt(DIM)
    arms = rng.integers(2, size=n)
    scores = np.where(arms == 1, 0.9, 0.5) + rng.normal(0, 0.05, n).clip(-0.4, 0.09)
    costs = np.where(arms == 1, 1.0, 0.1)
    policy = make_policy("barp", DIM, ["cheap", "dear"], seed=0, inference="argmax")
    policy.train_offline(x, [("cheap", "dear")[a] for a in arms], scores, costs, np.full(n, 0.5), epochs=30)
    picks = {dial: [policy.probabilities(v, [0, 1], np.array([0.1, 1.0]), dial)[0].argmax() for v in x[:50]]
             for dial in (0.0, 0.8)}
    assert np.mean(picks[0.0]) > 0.9 and np.mean(picks[0.8]) < 0.1


def test_online_learning_through_the_router_uses_the_routed_cost_and_propensity():
    router = Router(CARDS, policy="barp", policy_settings={"batch_size": 8}, encoder=encode, seed=0)
    for i, prompt in enumerate(PROMPTS[:8]):
        decision = router.route(prompt, cost_weight=0.5)
        router.feedback(decision.route_id, 0.25)
        tau = max(decision.predicted_cost.values())
        buffer = router.policy.buffer
        assert buffer["cost"][i] == pytest.approx(decision.predicted_cost[decision.model] / tau)
        assert buffer["propensity"][i] == pytest.approx(decision.propensity)
        assert buffer["arm"][i] == router.policy.index(decision.model)
    assert router.policy.adam["step"][0] == router.policy.config.steps  # one round of steps after 8 feedbacks


def test_a_frozen_policy_ignores_feedback():
    router = Router(CARDS, policy="barp", policy_settings={"learn": False, "batch_size": 1}, encoder=encode, seed=0)
    params = {k: v.clone() for k, v in router.policy.params.items()}
    decision = router.route(PROMPTS[0])
    router.feedback(decision.route_id, 1.0)
    assert all(torch.equal(params[k], v) for k, v in router.policy.params.items())
    assert router.policy.counters[0] == 0


def test_argmax_inference_is_deterministic_and_sampling_is_not():
    for inference, expected in (("argmax", 1), ("sample", 2)):
        router = Router(CARDS, policy="barp", policy_settings={"inference": inference, "learn": False},
                        encoder=encode, seed=0)
        assert len({router.route(PROMPTS[0]).model for _ in range(40)}) == expected


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_a_new_model_starts_at_the_mean_logit_and_is_explored(head):
    policy = make_policy("barp", DIM, ARMS, seed=0, head=head)
    policy.train_offline(**random_log(200), epochs=2)
    policy.add_arm("new")
    x = torch.from_numpy(encode("hello there").astype(np.float32))[None]
    logits = policy.logits(x, torch.tensor([0.4]))[0].detach()
    assert logits[-1].item() == pytest.approx(logits[:-1].mean().item(), abs=1e-5)
    probs, _ = policy.probabilities(encode("hello there"), range(6), np.zeros(6), 0.4)
    assert probs[-1] > 0.05
    policy.remove_arm("b")
    assert policy.arms == ["a", "c", "d", "e", "new"] and policy.params["out.weight"].shape[0] == 5


# -- state and seeds ----------------------------------------------------------------------------------------------
def drive(router: Router, prompts: list[str]) -> list[tuple]:
    out = []
    for i, prompt in enumerate(prompts):
        decision = router.route(prompt, cost_weight=(i % 4) / 3)
        router.feedback(decision.route_id, 0.9 if decision.model == "openai/dear" else 0.4)
        out.append((decision.model, decision.propensity))
    return out


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_save_and_load_round_trip_through_the_router(head, tmp_path):
    settings = {"head": head, "batch_size": 8, "buffer": 32}
    router = Router(CARDS, policy="barp", policy_settings=settings, encoder=encode, seed=3)
    drive(router, PROMPTS[:30])
    router.save(tmp_path / "barp.safetensors")
    loaded = Router.load(tmp_path / "barp.safetensors", encoder=encode)
    assert loaded.policy.config == router.policy.config
    for key, value in router.policy.state().items():
        np.testing.assert_array_equal(loaded.policy.state()[key], value)
    assert drive(loaded, PROMPTS[30:]) == drive(router, PROMPTS[30:])  # identical decisions and training steps
    for key, value in router.policy.state().items():
        np.testing.assert_array_equal(loaded.policy.state()[key], value)


def test_a_seed_fixes_initialisation_training_and_routing():
    runs = []
    for seed in (5, 5, 6):
        router = Router(CARDS, policy="barp", policy_settings={"batch_size": 8}, encoder=encode, seed=seed)
        runs.append((drive(router, PROMPTS), router.policy.state()))
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    assert not np.array_equal(runs[0][1]["param.out.weight"], runs[2][1]["param.out.weight"])
    log = random_log(300)
    trained = [make_policy("barp", DIM, ARMS, seed=1).train_offline(**log, epochs=3) for _ in range(2)]
    assert trained[0] == trained[1]


# -- invalid input ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("settings, match", [
    ({"head": "transformer"}, "head must be 'linear' or 'mlp'"),
    ({"inference": "greedy"}, "inference must be 'sample' or 'argmax'"),
    ({"hidden": 0}, r"hidden must be an integer in \[1, 4096\]"),
    ({"batch_size": 2.5}, "batch_size must be"),
    ({"dials": 0}, "dials must be an integer"),
    ({"entropy": -0.1}, "entropy must be a finite number >= 0"),
    ({"learning_rate": 0.0}, r"learning_rate must be a number in \(0, 1\]"),
    ({"clip": 0.5}, "clip must be a finite number >= 1"),
    ({"learn": "yes"}, "learn must be"),
    ({"momentum": 0.9}, "unknown settings"),
])
def test_invalid_settings_name_the_field(settings, match):
    with pytest.raises(ConfigError, match=match):
        make_policy("barp", DIM, ARMS, **settings)


@pytest.mark.parametrize("change, match", [
    ({"scores": np.full(10, 1.5)}, "scores must be in"),
    ({"propensities": np.zeros(10)}, r"propensities must be in \(0, 1\]"),
    ({"costs": np.zeros(9)}, "train_offline needs"),
    ({"arms": ["a"] * 9 + ["zzz"]}, "unknown model 'zzz'"),
    ({"costs": np.full(10, np.nan)}, "costs must be finite"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
])
def test_invalid_logs_are_refused(change, match):
    policy = make_policy("barp", DIM, ARMS)
    with pytest.raises(ConfigError, match=match):
        policy.train_offline(**{**random_log(10), **change})
