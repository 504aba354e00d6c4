"""BaRP: one preference-conditioned neural policy, trained from bandit feedback, that serves every dial.

pi(a | x, w) = softmax_a g([h(x); phi(w)]) with h(x) the frozen prompt vector, w = (w_q, w_c) = (1 - dial, dial)
and phi a small preference encoder. An observed outcome (quality q, normalised cost c = c_a / tau) of the chosen
model is worth r = w_q q - w_c min(c, 1) under any w, so every training step re-scores its mini-batch of logged
outcomes under `dials` fresh preferences w ~ Dirichlet(1, 1) and takes a REINFORCE step

    loss = -mean_{w,i} rho_i (r_i(w) - mean_i r_i(w)) log pi(a_i | x_i, w) - beta mean_{w,i} H(pi(. | x_i, w)),

rho_i = min(pi(a_i | x_i, w) / mu_i, clip) correcting for the policy that logged a_i with probability mu_i
(this policy itself when learning online, another one when training offline from a decision log).
Only the chosen model's log-probability carries the reward: the other models' logits move only through the
softmax normaliser and the entropy bonus. (BaRP: arXiv 2510.07429.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from ..checks import check_integer, check_non_negative, check_positive
from ..errors import ConfigError
from ..outcome import Outcome
from .base import Policy, PolicyConfig, one_hot_argmax, register

__all__ = ["BaRPConfig", "BaRP", "policy_loss"]

_BUFFER_FIELDS = ("x", "arm", "quality", "cost", "propensity")


@dataclass(frozen=True)
class BaRPConfig(PolicyConfig):
    head: str = "linear"  # decision head g: "linear" or "mlp" (one hidden ReLU layer)
    hidden: int = 128  # width of the MLP head's hidden layer
    preference_dim: int = 16  # width of phi(w)
    entropy: float = 0.05  # beta: weight of the entropy bonus
    learning_rate: float = 1e-2  # Adam step size
    batch_size: int = 64  # samples per gradient step; online, a round of steps per batch_size feedbacks
    steps: int = 4  # gradient steps per round of online training
    dials: int = 64  # dials each batch is re-scored under per step (the reward decomposes into score and cost)
    buffer: int = 4096  # most recent feedbacks kept for online training
    clip: float = 10.0  # largest importance weight pi / mu
    inference: str = "sample"  # "sample" from pi (explores; needed to learn online) or "argmax"
    learn: bool = True  # False freezes the policy: feedback is ignored

    STATE_SETTINGS = frozenset({"head", "hidden", "preference_dim", "buffer"})  # the network's and buffer's shapes

    def validate(self) -> None:
        if self.head not in ("linear", "mlp"):
            raise ConfigError(f"head must be 'linear' or 'mlp', got {self.head!r}")
        if self.inference not in ("sample", "argmax"):
            raise ConfigError(f"inference must be 'sample' or 'argmax', got {self.inference!r}")
        for field, low, high in (("hidden", 1, 4096), ("preference_dim", 1, 1024), ("batch_size", 1, 65_536),
                                 ("steps", 1, 1000), ("dials", 1, 1024),
                                 ("buffer", 1, 10_000_000)):
            check_integer(getattr(self, field), field, low, high)
        check_non_negative(self.entropy, "entropy")
        check_positive(self.learning_rate, "learning_rate", 1.0)
        if not (isinstance(self.clip, (int, float)) and 1.0 <= self.clip < np.inf):
            raise ConfigError(f"clip must be a finite number >= 1, got {self.clip!r}")
        if not isinstance(self.learn, bool):
            raise ConfigError(f"learn must be true or false, got {self.learn!r}")


def policy_loss(logits: torch.Tensor, arms: torch.Tensor, rewards: torch.Tensor, weights: torch.Tensor,
                entropy: float) -> torch.Tensor:
    """REINFORCE with the batch-mean baseline and an entropy bonus, for logged actions `arms`.

    Shapes: logits (..., n, K); arms, rewards and the (detached) importance weights (..., n). The baseline is
    the mean reward over the n samples of each batch. The reward reaches the logits only through the chosen
    model's log-probability.
    """
    log_pi = torch.log_softmax(logits, dim=-1)
    advantage = rewards - rewards.mean(dim=-1, keepdim=True)
    chosen = log_pi.gather(-1, arms[..., None])[..., 0]
    bonus = -(log_pi.exp() * log_pi).sum(dim=-1)
    return -(weights * advantage * chosen).mean() - entropy * bonus.mean()


@register
class BaRP(Policy):
    """Preference-conditioned softmax policy over the models, trained by REINFORCE (see the module docstring).

    It predicts no quality (predicted quality is NaN) and ignores the per-request cost at routing time: the
    dial reaches it through phi(w) and it learned what models cost from the rewards. A model added later gets
    an output equal to the mean of the existing ones (see docs/barp.md).
    """

    name = "barp"
    Config = BaRPConfig
    config: BaRPConfig

    def __init__(self, dim: int, arms: Sequence[str], config: BaRPConfig | None = None, seed: int | None = None):
        config = config if config is not None else self.Config()
        super().__init__(dim, [], config, seed)
        c = self.config
        width = dim + c.preference_dim
        shapes = {"pref.weight": (c.preference_dim, 2), "pref.bias": (c.preference_dim,)}
        if c.head == "mlp":
            shapes |= {"hidden.weight": (c.hidden, width), "hidden.bias": (c.hidden,)}
            width = c.hidden
        shapes |= {"out.weight": (len(arms), width)}
        self.params = {name: self._init(shape) for name, shape in shapes.items()}
        self.params["out.bias"] = torch.zeros(len(arms))
        self._reset_optimizer()
        self.buffer = {"x": np.zeros((c.buffer, dim), np.float32), "arm": np.zeros(c.buffer, np.int64),
                       "quality": np.zeros(c.buffer, np.float32), "cost": np.zeros(c.buffer, np.float32),
                       "propensity": np.ones(c.buffer, np.float32)}
        self.counters = np.zeros(3, np.int64)  # buffered samples, next write position, samples since last round
        self.arm_cost = np.zeros((len(arms), 2))  # per model: sum and count of normalised costs seen at routing
        for arm in arms:
            Policy.add_arm(self, arm)

    # -- parameters -----------------------------------------------------------------------------------------
    def _init(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Weights Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), biases Uniform(-0.1, 0.1), from the seeded generator."""
        bound = 1.0 / np.sqrt(shape[-1]) if len(shape) == 2 and shape[-1] else 0.1
        return torch.tensor(self.rng.uniform(-bound, bound, shape), dtype=torch.float32)

    def _reset_optimizer(self) -> None:
        self.adam = {"step": torch.zeros(1), **{f"m.{k}": torch.zeros_like(v) for k, v in self.params.items()},
                     **{f"v.{k}": torch.zeros_like(v) for k, v in self.params.items()}}

    def add_arm(self, arm: str) -> None:
        """A model added after construction gets an output equal to the mean of the existing ones (a random one
        when there are none), so its logit starts at the mean logit; the optimizer's moments restart."""
        super().add_arm(arm)
        weight, bias = self.params["out.weight"], self.params["out.bias"]
        if len(weight):
            row, b = weight.mean(dim=0, keepdim=True), bias.mean().reshape(1)
        else:
            row, b = self._init((1, weight.shape[1])), torch.zeros(1)
        self.params["out.weight"], self.params["out.bias"] = torch.cat([weight, row]), torch.cat([bias, b])
        self.arm_cost = np.concatenate([self.arm_cost, np.zeros((1, 2))])
        self._reset_optimizer()

    def remove_arm(self, arm: str) -> None:
        """Drop the model's output and its buffered feedback."""
        k = self.index(arm)
        super().remove_arm(arm)
        keep = [i for i in range(len(self.arms) + 1) if i != k]
        self.params["out.weight"], self.params["out.bias"] = self.params["out.weight"][keep], self.params["out.bias"][keep]
        self.arm_cost = np.delete(self.arm_cost, k, axis=0)
        size = int(self.counters[0])
        rows = [i for i in range(size) if self.buffer["arm"][i] != k]
        for name in _BUFFER_FIELDS:
            self.buffer[name][: len(rows)] = self.buffer[name][rows]
        self.buffer["arm"][: len(rows)] -= (self.buffer["arm"][: len(rows)] > k)
        self.counters[:] = [len(rows), len(rows) % self.config.buffer, min(self.counters[2], len(rows))]
        self._reset_optimizer()

    # -- the policy -----------------------------------------------------------------------------------------
    def logits(self, x: torch.Tensor, cost_weight: torch.Tensor) -> torch.Tensor:
        """(n, K) logits for prompt vectors x (n, dim) under dials (n,)."""
        p = self.params
        w = torch.stack([1.0 - cost_weight, cost_weight], dim=1)
        z = torch.cat([x, torch.relu(w @ p["pref.weight"].T + p["pref.bias"])], dim=1)
        if self.config.head == "mlp":
            z = torch.relu(z @ p["hidden.weight"].T + p["hidden.bias"])
        return z @ p["out.weight"].T + p["out.bias"]

    def probabilities(self, x: np.ndarray, arms: Sequence[int], cost: np.ndarray,
                      cost_weight: float) -> tuple[np.ndarray, np.ndarray]:
        x = self._vector(x)
        arms = np.asarray(arms, dtype=int)
        np.add.at(self.arm_cost, arms, np.stack([np.asarray(cost, float), np.ones(len(arms))], axis=1))
        with torch.no_grad():
            logits = self.logits(torch.from_numpy(x)[None], torch.tensor([float(cost_weight)]))[0, arms].double()
        if self.config.inference == "argmax":
            probs = one_hot_argmax(logits.numpy())
        else:
            probs = torch.softmax(logits, dim=0).numpy()
        return probs, np.full(len(arms), np.nan)

    def _vector(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.shape != (self.dim,):
            raise ConfigError(f"prompt vector has shape {x.shape}, expected ({self.dim},)")
        return x

    # -- learning -------------------------------------------------------------------------------------------
    def learn(self, outcomes: Sequence[Outcome]) -> None:
        """Buffer each outcome (score, normalised cost c / tau, propensity); every `batch_size` of them, take
        `steps` gradient steps on mini-batches drawn from the buffer. The request's dial is not needed: each step
        re-scores the outcome under a fresh dial. An outcome without routing context (e.g. Router.observe) uses
        the model's mean normalised cost seen at routing time (0 if it was never routed) and a uniform propensity."""
        self.check_unweighted(outcomes)
        if not self.config.learn:
            return
        for outcome in outcomes:
            k = self.index(outcome.model)
            total, count = self.arm_cost[k]
            cost = outcome.cost if outcome.cost is not None else total / count if count else 0.0
            propensity = outcome.propensity if outcome.propensity is not None else 1.0 / len(self.arms)
            self._buffer(outcome.vector, k, outcome.reward, cost, propensity)

    def _buffer(self, x: np.ndarray, k: int, reward: float, cost: float, propensity: float) -> None:
        size, position, fresh = (int(v) for v in self.counters)
        row = {"x": self._vector(x), "arm": k, "quality": reward, "cost": min(max(cost, 0.0), 1.0),
               "propensity": max(propensity, 1e-6)}
        for name in _BUFFER_FIELDS:
            self.buffer[name][position] = row[name]
        self.counters[:] = [min(size + 1, self.config.buffer), (position + 1) % self.config.buffer, fresh + 1]
        if self.counters[2] >= self.config.batch_size:
            self.counters[2] = 0
            n = int(self.counters[0])
            for _ in range(self.config.steps):
                batch = self.rng.choice(n, size=min(self.config.batch_size, n), replace=False)
                self._step({name: self.buffer[name][batch] for name in _BUFFER_FIELDS})

    def train_offline(self, vectors: np.ndarray, arms: Sequence[str], scores: np.ndarray, costs: np.ndarray,
                      propensities: np.ndarray, epochs: int = 10) -> list[float]:
        """Train from a decision log collected by any policy; returns each epoch's mean loss.

        Row i: prompt vector, the model that policy chose, its score in [0, 1], its normalised cost c / tau in
        [0, 1] and the probability the logging policy gave it (weights pi / mu are clipped at `clip`).
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        n = len(vectors)
        columns = {"x": vectors, "arm": np.array([self.index(a) for a in arms], dtype=np.int64),
                   "quality": np.asarray(scores, np.float32), "cost": np.clip(np.asarray(costs, np.float32), 0, 1),
                   "propensity": np.asarray(propensities, np.float32)}
        if vectors.shape != (n, self.dim) or any(len(v) != n for v in columns.values()):
            raise ConfigError(f"train_offline needs vectors of shape (n, {self.dim}) and n arms, scores, costs "
                              f"and propensities; got {vectors.shape} and lengths "
                              f"{ {k: len(v) for k, v in columns.items()} }")
        if not (np.all(columns["propensity"] > 0) and np.all(columns["propensity"] <= 1)):
            raise ConfigError("propensities must be in (0, 1]")
        if not (np.all(columns["quality"] >= 0) and np.all(columns["quality"] <= 1)):
            raise ConfigError("scores must be in [0, 1]")
        if not np.all(np.isfinite(columns["cost"])):
            raise ConfigError("costs must be finite normalised costs c / tau")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ConfigError(f"epochs must be an integer >= 1, got {epochs!r}")
        losses = []
        for _ in range(epochs):
            order = self.rng.permutation(n)
            batches = [order[i : i + self.config.batch_size] for i in range(0, n, self.config.batch_size)]
            losses.append(float(np.mean([self._step({k: v[b] for k, v in columns.items()}) for b in batches])))
        return losses

    def loss(self, batch: Mapping[str, np.ndarray], cost_weight: np.ndarray) -> torch.Tensor:
        """The training loss of a batch of n logged outcomes, re-scored under each of the dials `cost_weight`."""
        dial = torch.from_numpy(np.asarray(cost_weight, np.float32))[:, None].expand(-1, len(batch["arm"]))
        column = {k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()}
        arms = column["arm"].long().expand_as(dial)
        x = column["x"].float().expand(len(dial), -1, -1)
        logits = self.logits(x.reshape(-1, self.dim), dial.reshape(-1)).reshape(*dial.shape, -1)
        rewards = (1 - dial) * column["quality"].float() - dial * column["cost"].float()
        with torch.no_grad():
            pi = torch.softmax(logits, dim=-1).gather(-1, arms[..., None])[..., 0]
            weights = torch.clamp(pi / column["propensity"].float(), max=self.config.clip)
        return policy_loss(logits, arms, rewards, weights, self.config.entropy)

    def _step(self, batch: Mapping[str, np.ndarray]) -> float:
        """One Adam step on `batch`, re-scored under `dials` dials drawn from Dirichlet(1, 1); each dial's
        rewards have their own batch-mean baseline."""
        dial = self.rng.dirichlet([1.0, 1.0], size=self.config.dials)[:, 1]
        for value in self.params.values():
            value.requires_grad_(True)
        loss = self.loss(batch, dial)
        grads = torch.autograd.grad(loss, list(self.params.values()))
        beta1, beta2, lr = 0.9, 0.999, self.config.learning_rate
        with torch.no_grad():
            self.adam["step"] += 1
            t = float(self.adam["step"])
            for (name, value), grad in zip(self.params.items(), grads):
                m, v = self.adam[f"m.{name}"], self.adam[f"v.{name}"]
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                value.requires_grad_(False)
                value -= lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + 1e-8)
        return float(loss.detach())

    # -- state ----------------------------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        arrays = {f"param.{k}": v.detach().numpy() for k, v in self.params.items()}
        arrays |= {f"adam.{k}": v.numpy() for k, v in self.adam.items()}
        arrays |= {f"buffer.{k}": v for k, v in self.buffer.items()}
        return arrays | {"counters": self.counters, "arm_cost": self.arm_cost}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.params = {k.removeprefix("param."): torch.from_numpy(v.copy()) for k, v in state.items()
                       if k.startswith("param.")}
        self.adam = {k.removeprefix("adam."): torch.from_numpy(v.copy()) for k, v in state.items()
                     if k.startswith("adam.")}
        self.buffer = {k.removeprefix("buffer."): v.copy() for k, v in state.items() if k.startswith("buffer.")}
        self.counters, self.arm_cost = state["counters"].copy(), state["arm_cost"].copy()
