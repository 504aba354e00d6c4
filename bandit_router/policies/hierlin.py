"""HierLin: a Bayesian linear quality model shared across models plus a per-model offset, on a compact prompt code.

    quality(x, a) = z(x) . beta_a,   beta_a = theta_0 + delta_a
    z(x) = [1, W (x - m), onehot(cluster(x))]

W, m are the top `pca_dims` principal directions and the mean of the prompt vectors seen so far (each direction
whitened, then scaled by `pca_scale`), refitted after refit_start, 2 refit_start, 4 refit_start, ... updates and
then every `refit_every`; the clusters are online k-means centres (a prompt opens a new centre while there are
fewer than `clusters` and its best similarity x . centre is below `new_cluster_similarity`). theta_0 ~ N([prior_quality,
0, ...], Lambda_0^-1) is shared by every model (how hard the prompt is); delta_a ~ N(0, Lambda^-1) independently per
model; ratings have noise variance `noise`. The choice is argmax_a mean_a + alpha sd_a - cost_weight cost_a.

The joint Gaussian posterior over (theta_0, beta_1..K) is kept in block form. Given theta_0, beta_a has covariance
C_a = (Lambda + Z_a)^-1 (Z_a = sum z z^T / noise over a's ratings) and mean t_a + C_a Lambda theta_0; integrating
the beta_a out leaves theta_0 ~ N(S_0 L, S_0) with S_0^-1 = Lambda_0 + sum_a (Lambda - Lambda C_a Lambda) and
L = Lambda_0 m_0 + sum_a Lambda t_a. So

    E[beta_a] = t_a + C_a Lambda S_0 L,   Cov[beta_a] = C_a + C_a Lambda S_0 Lambda C_a,

and a rating of model a is two Sherman-Morrison updates of q x q matrices (C_a, S_0; q = 1 + p + k) instead of
one of the (K + 1) q joint covariance. Each model also keeps raw sums of x~ x~^T and r x~ over x~ = [1, x,
onehot] (batched), from which every refit of W rebuilds the posterior exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from ..checks import check_integer, check_non_negative, check_positive
from ..errors import ConfigError
from ..outcome import Outcome
from .base import Policy, PolicyConfig, UpperConfidence, register

__all__ = ["HierLin", "HierLinConfig"]

_FLUSH_EVERY = 256  # ratings buffered before their outer products are added to the raw sums


@dataclass(frozen=True)
class HierLinConfig(PolicyConfig):
    alpha: float = 1.0  # width of the confidence bonus, in posterior standard deviations
    pca_dims: int = 16  # p: principal directions of the prompt vectors in the code (at most the vector size)
    pca_scale: float = 0.1  # each whitened direction is multiplied by this
    clusters: int = 32  # k: online k-means centres, one-hot in the code (0: none)
    new_cluster_similarity: float = 0.6  # a prompt less similar than this to every centre opens a new one
    refit_start: int = 50  # updates before the first PCA fit; the gap then doubles up to refit_every
    refit_every: int = 4000
    noise: float = 0.25  # variance of a rating around the model's quality
    prior_quality: float = 0.5  # prior mean of the shared intercept
    shared_intercept_var: float = 0.25  # prior variances of theta_0 (shared): intercept, PCA weights, cluster weights
    shared_pca_var: float = 1.0
    shared_cluster_var: float = 0.05
    model_intercept_var: float = 0.1  # prior variances of each delta_a (per model)
    model_pca_var: float = 0.5
    model_cluster_var: float = 0.05

    STATE_SETTINGS = frozenset({  # all but alpha shape the code, the clusters or the posterior
        "pca_dims", "pca_scale", "clusters", "new_cluster_similarity", "refit_start", "refit_every", "noise",
        "prior_quality", "shared_intercept_var", "shared_pca_var", "shared_cluster_var", "model_intercept_var",
        "model_pca_var", "model_cluster_var"})

    def validate(self) -> None:
        for name, low, high in (("pca_dims", 0, 1024), ("clusters", 0, 1024), ("refit_start", 2, 10**9),
                                ("refit_every", 1, 10**9)):
            check_integer(getattr(self, name), name, low, high)
        check_non_negative(self.alpha, "alpha")
        for name in ("new_cluster_similarity", "prior_quality"):
            if not np.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number, got {getattr(self, name)!r}")
        for f in fields(self):
            if f.name in ("pca_scale", "noise") or f.name.endswith("_var"):
                check_positive(getattr(self, f.name), f.name)


@register
class HierLin(UpperConfidence, Policy):
    """UCB on a hierarchical (shared + per-model) Bayesian linear model of quality; deterministic, ties split."""

    name = "hierlin"
    Config = HierLinConfig
    config: HierLinConfig

    def __init__(self, dim: int, arms: Sequence[str], config: HierLinConfig | None = None, seed: int | None = None):
        super().__init__(dim, [], config, seed)
        c = self.config
        p, k = min(c.pca_dims, dim), c.clusters
        self.p, self.k, self.q, self.raw = p, k, 1 + p + k, 1 + dim + k
        self.lam = 1 / np.r_[c.model_intercept_var, np.full(p, c.model_pca_var), np.full(k, c.model_cluster_var)]
        self.lam0 = 1 / np.r_[c.shared_intercept_var, np.full(p, c.shared_pca_var), np.full(k, c.shared_cluster_var)]
        self.pca_w, self.pca_offset = np.zeros((p, dim)), np.zeros(p)  # zero until the first fit: z holds 0 there
        self.centres, self.centre_counts = np.zeros((k, dim)), np.zeros(k)
        self.n, self.next_refit, self.used = 0, c.refit_start, 0
        self.prompt_moments = np.zeros((1 + dim, 1 + dim))  # sum [1, x][1, x]^T over every update, for the PCA
        self.shared_cov = np.diag(1 / self.lam0)  # S_0
        self.shared_info = np.zeros(self.q)  # L
        self.shared_info[0] = c.prior_quality * self.lam0[0]
        self.cov = np.zeros((0, self.q, self.q))  # C_a
        self.mean = np.zeros((0, self.q))  # t_a
        self.raw_xx = np.zeros((0, self.raw, self.raw))  # sum x~ x~^T per model
        self.raw_xr = np.zeros((0, self.raw))  # sum r x~ per model
        self._buffer: list[tuple[np.ndarray, int, int, float]] = []  # (x, cluster, model, reward) not yet in raw_*
        for arm in arms:
            self.add_arm(arm)

    # -- arms -------------------------------------------------------------------------------------------------
    def add_arm(self, arm: str) -> None:
        """A new model starts at its prior: an independent delta block, which leaves theta_0's posterior as it is."""
        super().add_arm(arm)
        self.cov = np.concatenate([self.cov, np.diag(1 / self.lam)[None]])
        self.mean = np.concatenate([self.mean, np.zeros((1, self.q))])
        self.raw_xx = np.concatenate([self.raw_xx, np.zeros((1, self.raw, self.raw))])
        self.raw_xr = np.concatenate([self.raw_xr, np.zeros((1, self.raw))])

    def remove_arm(self, arm: str) -> None:
        """Forget the model's ratings; theta_0's posterior is rebuilt without them (the PCA keeps its prompts)."""
        a = self.index(arm)
        self._flush()
        super().remove_arm(arm)
        self.cov, self.mean, self.raw_xx, self.raw_xr = (
            np.delete(m, a, axis=0) for m in (self.cov, self.mean, self.raw_xx, self.raw_xr))
        self._rebuild()

    # -- the prompt code ----------------------------------------------------------------------------------------
    def _vector(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise ConfigError(f"prompt vector has shape {x.shape}, expected ({self.dim},)")
        return x

    def _cluster(self, x: np.ndarray) -> int:
        """x's centre: the most similar one, or the next unused one if x would open a new centre; -1 with k = 0."""
        if self.k == 0:
            return -1
        if self.used == 0:
            return 0
        similarity = self.centres[: self.used] @ x
        j = int(np.argmax(similarity))
        return self.used if self.used < self.k and similarity[j] < self.config.new_cluster_similarity else j

    def _code(self, x: np.ndarray, j: int) -> np.ndarray:
        z = np.zeros(self.q)
        z[0] = 1.0
        z[1 : 1 + self.p] = self.pca_w @ x + self.pca_offset
        if j >= 0:
            z[1 + self.p + j] = 1.0
        return z

    # -- choosing -------------------------------------------------------------------------------------------------
    def predict(self, x: np.ndarray, arms: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean quality and its standard deviation for each arm in `arms`."""
        x = self._vector(x)
        z = self._code(x, self._cluster(x))
        u = self.cov @ z  # C_a z for every model
        w = u * self.lam
        mean = self.mean @ z + w @ (self.shared_cov @ self.shared_info)
        var = u @ z + np.einsum("ai,ij,aj->a", w, self.shared_cov, w)
        arms = np.asarray(arms, dtype=int)
        return mean[arms], np.sqrt(np.maximum(var[arms], 0.0))

    # -- learning -------------------------------------------------------------------------------------------------
    def learn(self, outcomes: Sequence[Outcome]) -> None:
        """One rating at a time, in order (observations cannot be weighted)."""
        self.check_unweighted(outcomes)
        for outcome in outcomes:
            self._update(outcome.vector, outcome.model, outcome.reward)

    def _update(self, x: np.ndarray, arm: str, reward: float) -> None:
        a = self.index(arm)
        x = self._vector(x)
        j = self._cluster(x)
        if j >= 0:
            self.used = max(self.used, j + 1)
            self.centre_counts[j] += 1
            self.centres[j] += (x - self.centres[j]) / self.centre_counts[j]
        self._buffer.append((x.copy(), j, a, float(reward)))  # a copy: the caller may reuse its array
        self.n += 1
        if self.n >= self.next_refit:  # the refit rebuilds the posterior from the raw sums, this rating included
            self.next_refit = min(2 * self.next_refit, self.next_refit + self.config.refit_every)
            self._refit()
            return
        if len(self._buffer) >= _FLUSH_EVERY:
            self._flush()
        z = self._code(x, j)
        cov = self.cov[a]
        u = cov @ z
        den = self.config.noise + z @ u
        step = u * ((reward - z @ self.mean[a]) / den)
        cov -= np.outer(u, u / den)
        self.mean[a] += step
        self.shared_info += self.lam * step
        v = self.lam * u  # theta_0's precision grows by v v^T / den
        sv = self.shared_cov @ v
        self.shared_cov -= np.outer(sv, sv / (den + v @ sv))

    def _flush(self) -> None:
        """Add the buffered ratings' outer products to the raw sums."""
        if not self._buffer:
            return
        d = self.dim
        X = np.zeros((len(self._buffer), self.raw))
        X[:, 0] = 1.0
        X[:, 1 : 1 + d] = [b[0] for b in self._buffer]
        j = np.array([b[1] for b in self._buffer])
        rows = np.flatnonzero(j >= 0)
        X[rows, 1 + d + j[rows]] = 1.0
        arm = np.array([b[2] for b in self._buffer])
        reward = np.array([b[3] for b in self._buffer])
        for a in np.unique(arm):
            Xa = X[arm == a]
            outer = Xa.T @ Xa
            self.raw_xx[a] += outer
            self.raw_xr[a] += reward[arm == a] @ Xa
            self.prompt_moments += outer[: 1 + d, : 1 + d]
        self._buffer.clear()

    def _refit(self) -> None:
        """Fit W, m to every prompt seen so far and rebuild the posterior under the new code."""
        self._flush()
        n = self.prompt_moments[0, 0]
        m = self.prompt_moments[0, 1:] / n
        eigenvalues, vectors = np.linalg.eigh(self.prompt_moments[1:, 1:] / n - np.outer(m, m))
        top = vectors[:, ::-1][:, : self.p].T
        top *= np.sign(top[np.arange(self.p), np.argmax(np.abs(top), axis=1)])[:, None]
        scale = self.config.pca_scale / np.sqrt(np.maximum(eigenvalues[::-1][: self.p], 1e-6))
        self.pca_w = np.ascontiguousarray(top * scale[:, None])  # as a loaded state is: same products, same bits
        self.pca_offset = -self.pca_w @ m
        self._rebuild()

    def _rebuild(self) -> None:
        """Recompute C_a, t_a, S_0 and L exactly from the raw sums under the current code."""
        self._flush()
        d, p = self.dim, self.p
        T = np.zeros((self.q, self.raw))  # z = T x~
        T[0, 0] = 1.0
        T[1 : 1 + p, 0] = self.pca_offset
        T[1 : 1 + p, 1 : 1 + d] = self.pca_w
        T[1 + p :, 1 + d :] = np.eye(self.k)
        noise = self.config.noise
        cov = np.linalg.inv(T @ self.raw_xx @ T.T / noise + np.diag(self.lam))
        self.cov = (cov + cov.transpose(0, 2, 1)) / 2
        self.mean = np.einsum("aij,aj->ai", self.cov, self.raw_xr @ T.T / noise)
        precision = np.diag(self.lam0) + len(self.arms) * np.diag(self.lam)
        precision -= np.einsum("i,aij,j->ij", self.lam, self.cov, self.lam)
        shared_cov = np.linalg.inv(precision)
        self.shared_cov = (shared_cov + shared_cov.T) / 2
        self.shared_info = self.lam * self.mean.sum(axis=0)
        self.shared_info[0] += self.config.prior_quality * self.lam0[0]

    # -- state ----------------------------------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        self._flush()
        return {"cov": self.cov, "mean": self.mean, "shared_cov": self.shared_cov, "shared_info": self.shared_info,
                "raw_xx": self.raw_xx, "raw_xr": self.raw_xr, "prompt_moments": self.prompt_moments,
                "pca_w": self.pca_w, "pca_offset": self.pca_offset, "centres": self.centres,
                "centre_counts": self.centre_counts,
                "counters": np.array([self.n, self.next_refit, self.used], dtype=np.int64)}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.cov, self.mean = state["cov"], state["mean"]
        self.shared_cov, self.shared_info = state["shared_cov"], state["shared_info"]
        self.raw_xx, self.raw_xr, self.prompt_moments = state["raw_xx"], state["raw_xr"], state["prompt_moments"]
        self.pca_w, self.pca_offset = state["pca_w"], state["pca_offset"]
        self.centres, self.centre_counts = state["centres"], state["centre_counts"]
        self.n, self.next_refit, self.used = (int(v) for v in state["counters"])
