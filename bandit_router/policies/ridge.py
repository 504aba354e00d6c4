"""Per-model Bayesian ridge regression of quality on the prompt vector: the state shared by the linear policies.

For each model a: A_a = lambda I + sum z z^T and b_a = sum r z (z = x with a constant 1 appended), kept as
additive sufficient statistics so that updates from many replicas merge exactly. A_a^-1 is maintained by
Sherman-Morrison rank-1 updates and never re-inverted on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..checks import check_positive
from ..errors import ConfigError, StateFormatError
from ..outcome import Outcome, by_model
from .base import Policy, PolicyConfig

__all__ = ["RidgeConfig", "RidgePolicy"]


@dataclass(frozen=True)
class RidgeConfig(PolicyConfig):
    regularization: float = 1.0  # lambda: prior precision of each model's weights
    intercept: bool = True  # append a constant feature so each model learns its base rate

    STATE_SETTINGS = frozenset({"regularization", "intercept"})  # in A and the vectors' size: fixed once learned

    def validate(self) -> None:
        check_positive(self.regularization, "regularization")


class RidgePolicy(Policy):
    """Holds and updates the per-model ridge statistics; subclasses decide how to choose."""

    Config = RidgeConfig
    config: RidgeConfig
    shares_state = True

    @property
    def takes_prior(self) -> bool:  # type: ignore[override]
        """A prior on a model's weights needs the constant feature (its intercept counts observations)."""
        return self.config.intercept

    def __init__(self, dim: int, arms: Sequence[str], config: RidgeConfig | None = None, seed: int | None = None):
        config = config if config is not None else self.Config()
        self.p = dim + int(config.intercept)
        self._outer = np.empty((self.p, self.p))  # scratch for the rank-1 update, so updates allocate nothing big
        self.A = np.zeros((0, self.p, self.p))
        self.A_inv = np.zeros((0, self.p, self.p))
        self.b = np.zeros((0, self.p))
        self.theta = np.zeros((0, self.p))
        self._delta: dict[str, _Delta] | None = None  # per-model changes not yet pushed to a shared store
        self._base: dict[str, dict[str, np.ndarray]] = {}  # what was learned before sharing started
        self._installed: Mapping[str, Mapping[str, np.ndarray]] = {}  # the merged totals last installed
        super().__init__(dim, arms, config, seed)

    @property
    def theta(self) -> np.ndarray:
        """A^-1 b per model, recomputed on reading for the models updated since (so a burst of feedback pays for
        it once; the product is the one `_set_state` computes, so a loaded policy predicts bit for bit alike)."""
        for k in self._stale:
            self._theta[k] = self.A_inv[k] @ self.b[k]
        self._stale.clear()
        return self._theta

    @theta.setter
    def theta(self, value: np.ndarray) -> None:
        self._theta = value
        self._stale: set[int] = set()

    @property
    def A(self) -> np.ndarray:
        """lambda I + sum z z^T per model; `update` defers the outer products, which are added here in batches."""
        for k in range(len(self._unsummed)):
            self._sum_outer(k)
        return self._A

    @A.setter
    def A(self, value: np.ndarray) -> None:
        self._A = value
        self._unsummed: list[list[np.ndarray]] = [[] for _ in range(len(value))]

    def _sum_outer(self, k: int) -> None:
        if self._unsummed[k]:
            Z = np.stack(self._unsummed[k])
            self._A[k] += Z.T @ Z
            self._unsummed[k].clear()

    def features(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise ConfigError(f"prompt vector has shape {x.shape}, expected ({self.dim},)")
        return np.append(x, 1.0) if self.config.intercept else x

    def add_arm(self, arm: str) -> None:
        super().add_arm(arm)
        lam = self.config.regularization
        self.A = np.concatenate([self.A, lam * np.eye(self.p)[None]])
        self.A_inv = np.concatenate([self.A_inv, np.eye(self.p)[None] / lam])
        self.b = np.concatenate([self.b, np.zeros((1, self.p))])
        self.theta = np.concatenate([self.theta, np.zeros((1, self.p))])

    def remove_arm(self, arm: str) -> None:
        k = self.index(arm)
        super().remove_arm(arm)
        if self._delta is not None:
            self._delta.pop(arm, None)
        self._base.pop(arm, None)
        self.A, self.A_inv, self.b, self.theta = (np.delete(m, k, axis=0) for m in (self.A, self.A_inv, self.b, self.theta))

    def set_prior(self, arm: str, mean: np.ndarray, precision: np.ndarray) -> None:
        """Replace what `arm` has learned with a Gaussian prior on its weights: `mean` (p,), `precision` (p, p)."""
        k = self.index(arm)
        mean, precision = np.asarray(mean, dtype=float), np.asarray(precision, dtype=float)
        if mean.shape != (self.p,) or precision.shape != (self.p, self.p):
            raise ConfigError(f"prior of {arm!r} must have shapes ({self.p},), ({self.p}, {self.p}); "
                              f"got {mean.shape}, {precision.shape}")
        A = self.A  # sums the deferred outer products first
        A[k] = precision
        self.A_inv[k] = np.linalg.inv(precision)
        self.b[k] = precision @ mean
        self.theta[k] = self.A_inv[k] @ self.b[k]
        if self._delta is not None:  # the prior is this replica's own base, as in `share`
            self._delta.pop(arm, None)
            self._base[arm] = {"A": precision - self.config.regularization * np.eye(self.p), "b": self.b[k].copy()}

    def prior_precision(self, k: int) -> np.ndarray:
        """Model k's prior precision, what A holds before any rating: lambda I."""
        return self.config.regularization * np.eye(self.p)

    def predict(self, x: np.ndarray, arms: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean quality and its standard deviation (unit noise) for each arm in `arms`."""
        z = self.features(x)
        arms = np.asarray(arms, dtype=int)
        var = (self.A_inv @ z) @ z  # every arm, then pick: indexing A_inv[arms] first would copy K p x p matrices
        return (self.theta @ z)[arms], np.sqrt(np.maximum(var[arms], 0.0))

    def learn(self, outcomes: Sequence[Outcome]) -> None:
        """One outcome of weight 1 is a rank-1 update (recorded for sharing); several, or weighted ones (a
        prior), are added as sufficient statistics at once, one inverse per model, and are not shared: while
        sharing, they join this replica's own base (see `share`)."""
        if len(outcomes) == 1 and outcomes[0].weight == 1.0:
            self._update(outcomes[0].vector, outcomes[0].model, outcomes[0].reward)
            return
        groups = [(self.index(arm), np.stack([self.features(x) for x in X]), rewards, w)
                  for arm, X, rewards, w in by_model(outcomes)]
        if not all(np.isfinite(Z).all() and np.isfinite(r).all() and np.isfinite(w).all() for _, Z, r, w in groups):
            raise StateFormatError(f"policy {self.name!r}: outcomes hold NaN or infinite values")
        A = self.A  # sums the deferred outer products first
        for a, Z, rewards, w in groups:
            gram, moment = w * Z.T @ Z, w * Z.T @ rewards
            A[a] += gram
            self.b[a] += moment
            self.A_inv[a] = np.linalg.inv(A[a])
            self.theta[a] = self.A_inv[a] @ self.b[a]
            self._keep_local(self.arms[a], gram, moment)

    def _keep_local(self, arm: str, gram: np.ndarray, moment: np.ndarray) -> None:
        """While sharing, add a prior's sum z z^T and sum r z for `arm` to this replica's base: never pushed, and
        kept under the merged totals by `install_totals` (which would otherwise drop it)."""
        if self._delta is not None:
            base = self._base.setdefault(arm, {"A": np.zeros((self.p, self.p)), "b": np.zeros(self.p)})
            base["A"] += gram
            base["b"] += moment

    def _update(self, x: np.ndarray, arm: str, reward: float) -> None:
        self._add(arm, self.features(x), reward)

    def _add(self, arm: str, z: np.ndarray, reward: float, shared: bool = True) -> None:
        """A += z z^T, b += reward z for `arm` (A^-1 by Sherman-Morrison), recorded for sharing (`shared`) or
        kept in this replica's base (a prior)."""
        k = self.index(arm)
        A_inv = self.A_inv[k]
        Az = A_inv @ z
        A_inv -= np.multiply(Az[:, None], Az / (1.0 + z @ Az), out=self._outer)
        self._unsummed[k].append(z.copy())
        if len(self._unsummed[k]) >= 64:
            self._sum_outer(k)
        self.b[k] += reward * z
        self._stale.add(k)
        if not shared:
            self._keep_local(arm, np.outer(z, z), reward * z)
        elif self._delta is not None:
            self._delta.setdefault(arm, _Delta(self.p)).add(z, reward)

    def state(self) -> dict[str, np.ndarray]:
        return {"A": self.A, "A_inv": self.A_inv, "b": self.b}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        if not all(np.isfinite(state[key]).all() for key in ("A", "A_inv", "b")):
            raise StateFormatError(f"policy {self.name!r} state holds NaN or infinite values")
        self.A, self.A_inv, self.b = state["A"], state["A_inv"], state["b"]
        self.theta = np.zeros_like(self.b)
        for k in range(len(self.b)):  # the same product as `update`, so a loaded policy predicts bit for bit alike
            self.theta[k] = self.A_inv[k] @ self.b[k]

    # -- sharing with other replicas (bandit_router.store) ----------------------------------------------------
    def share(self) -> None:
        """Start recording every update as an additive per-model delta, collected by `take_delta`.

        What the policy learned before (a prior, a loaded file) stays this replica's own base: it is kept
        under the merged totals, never pushed, so replicas starting from the same prior do not count it twice.
        """
        if self._delta is None:
            self._delta = {}
            lam = self.config.regularization
            self._base = {arm: {"A": self.A[k] - lam * np.eye(self.p), "b": self.b[k].copy()}
                          for k, arm in enumerate(self.arms)}

    @property
    def unsynced(self) -> int:
        """Updates recorded since the last `take_delta`."""
        return sum(d.n for d in (self._delta or {}).values())

    def take_delta(self) -> dict[str, dict[str, np.ndarray]]:
        """Per-model sums {"A": sum z z^T, "b": sum r z, "n": count} of the updates since the last call."""
        delta, self._delta = self._delta or {}, {}
        return {arm: d.arrays() for arm, d in delta.items()}

    def install_totals(self, totals: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        """Serve from merged `totals` (every replica's deltas summed) plus this replica's unsynced updates.

        A = lambda I + base + totals + unsynced (base: what was learned before `share`); A^-1 is recomputed by
        inversion, once per sync.
        """
        lam = self.config.regularization
        A = np.repeat(lam * np.eye(self.p)[None], len(self.arms), axis=0)
        b = np.zeros((len(self.arms), self.p))
        unsynced = {arm: d.arrays() for arm, d in (self._delta or {}).items()}
        for k, arm in enumerate(self.arms):
            for part in (self._base.get(arm), totals.get(arm), unsynced.get(arm)):
                if part is None:
                    continue
                if part["A"].shape != (self.p, self.p) or part["b"].shape != (self.p,):
                    raise StateFormatError(
                        f"shared state of model {arm!r} has shapes {part['A'].shape}, {part['b'].shape}; this policy "
                        f"expects ({self.p}, {self.p}), ({self.p},) (its vectors' {self.dim} dimensions, intercept="
                        f"{self.config.intercept}: replicas sharing a store need the same intercept setting)")
                A[k] += part["A"]
                b[k] += part["b"]
        self.A, self.b, self.A_inv = A, b, np.linalg.inv(A)
        self.theta = np.zeros_like(b)
        for k in range(len(b)):
            self.theta[k] = self.A_inv[k] @ b[k]
        self._installed = totals

    def own_state(self) -> dict[str, np.ndarray]:
        """`state()` less the merged totals last installed: what this replica holds on its own (its base and
        what it learned since that sync), the part that loading it beside the same store must not add twice."""
        A, b = self.A.copy(), self.b.copy()
        for k, arm in enumerate(self.arms):
            if arm in self._installed:
                A[k] -= self._installed[arm]["A"]
                b[k] -= self._installed[arm]["b"]
        return {**self.state(), "A": A, "A_inv": np.linalg.inv(A), "b": b}


class _Delta:
    """Running sums of one model's updates; outer products are added in batches, as in `RidgePolicy.A`."""

    def __init__(self, p: int) -> None:
        self.A, self.b, self.n = np.zeros((p, p)), np.zeros(p), 0
        self._zs: list[np.ndarray] = []

    def add(self, z: np.ndarray, reward: float) -> None:
        self._zs.append(z.copy())
        self.b += reward * z
        self.n += 1
        if len(self._zs) >= 64:
            self._flush()

    def _flush(self) -> None:
        if self._zs:
            Z = np.stack(self._zs)
            self.A += Z.T @ Z
            self._zs.clear()

    def arrays(self) -> dict[str, np.ndarray]:
        self._flush()
        return {"A": self.A.copy(), "b": self.b.copy(), "n": np.array(self.n, dtype=np.int64)}
