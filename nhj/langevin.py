"""Particles of noisy covariant gradient descent (2.5): the reference for (2.7).

Each particle follows the Itô equation

    dq = b(q) dt + σ(q) dW,   σσᵀ = Σ = γ² g⁻¹κg⁻¹ = 2D,
    b^μ = −γ g^{μν}∂_ν L̄ + (1/√g) ∂_ν(√g D^{μν}),

integrated by Euler–Maruyama. The second drift term is the correction that
makes the generator of the SDE the covariant Fokker–Planck operator: writing
(2.7) for the coordinate density ρ = p√g gives
∂ₜρ = ∂_μ(γρ g^{μν}∂_νL̄ + √g D^{μν}∂_ν(ρ/√g)), and matching it with the Itô
form −∂_μ(b^μρ) + ∂_μ∂_ν(D^{μν}ρ) fixes b. It vanishes for constant g and κ;
otherwise it and ∇L̄ are taken by central differences of the (smooth) case
expressions.

Particles live in blocks of fixed size; block b draws from the random stream
(seed, b) and blocks are dealt to ranks round-robin, so the particles — and
every histogram count — are the same for any number of ranks. Walls reflect
particles (zero flux) or absorb them (Dirichlet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mpi4py import MPI

import numpy as np

from nhj import backends
from nhj.equations.learning import diffusion_tensor

BLOCK = 4096
FD_STEP = 1e-5

Field = Callable[[np.ndarray], np.ndarray]  # points (n, K) -> values


def inverse_and_sqrt_det(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(G⁻¹, √det G) of SPD matrices (n, K, K).

    K ≤ 2 in closed form: batched LAPACK calls on 2×2 stacks cost more than the arithmetic
    (8 s of a 19 s Langevin test).
    """
    K = G.shape[-1]
    if K > 2:
        return np.linalg.inv(G), np.sqrt(np.linalg.det(G))
    if K == 1:
        return 1.0 / G, np.sqrt(G[:, 0, 0])
    a, b, c, d = G[:, 0, 0], G[:, 0, 1], G[:, 1, 0], G[:, 1, 1]
    det = a * d - b * c
    inv = np.stack([np.stack([d, -b], axis=-1), np.stack([-c, a], axis=-1)], axis=-2)
    return inv / det[:, None, None], np.sqrt(det)


@dataclass(frozen=True)
class LangevinModel:
    """Coefficients of (2.5) as numpy functions of points of shape (n, K).

    Attributes:
        gamma: Learning rate γ.
        loss: L̄(q), (n,) values.
        metric: g(q), (n, K, K) values, or None for δ.
        kappa: κ(q), (n, K, K) values.
        constant: Whether g and κ are constant (no drift correction needed).
    """

    gamma: float
    loss: Field
    metric: Field | None
    kappa: Field
    constant: bool

    def _ginv_sqrtg(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, K = x.shape
        if self.metric is None:
            return np.broadcast_to(np.eye(K), (n, K, K)), np.ones(n)
        return inverse_and_sqrt_det(self.metric(x))

    def _sqrtg_diffusion(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(√g, D) at points, from one evaluation of g."""
        ginv, sqrtg = self._ginv_sqrtg(x)
        return sqrtg, diffusion_tensor(ginv, self.kappa(x), self.gamma, backends.NUMPY)

    def diffusion(self, x: np.ndarray) -> np.ndarray:
        """D = (γ²/2) g⁻¹κg⁻¹ at points, (n, K, K)."""
        return self._sqrtg_diffusion(x)[1]

    def grad_loss(self, x: np.ndarray) -> np.ndarray:
        """∇L̄ by central differences, (n, K)."""
        g = np.empty_like(x)
        for k in range(x.shape[1]):
            e = np.zeros(x.shape[1])
            e[k] = FD_STEP
            g[:, k] = (self.loss(x + e) - self.loss(x - e)) / (2 * FD_STEP)
        return g

    def drift(self, x: np.ndarray) -> np.ndarray:
        """B = −γ g⁻¹∇L̄ + (1/√g)∂_ν(√g D^{μν}), (n, K)."""
        ginv, sqrtg = self._ginv_sqrtg(x)
        b = -self.gamma * np.einsum("nij,nj->ni", ginv, self.grad_loss(x))
        if not self.constant:
            for nu in range(x.shape[1]):
                e = np.zeros(x.shape[1])
                e[nu] = FD_STEP
                sp, Dp = self._sqrtg_diffusion(x + e)
                sm, Dm = self._sqrtg_diffusion(x - e)
                plus, minus = sp[:, None] * Dp[:, :, nu], sm[:, None] * Dm[:, :, nu]
                b += (plus - minus) / (2 * FD_STEP) / sqrtg[:, None]
        return b

    def noise_factor(self, x: np.ndarray) -> np.ndarray:
        """σ with σσᵀ = 2D (Cholesky), (n, K, K)."""
        return np.linalg.cholesky(2.0 * self.diffusion(x))


class Ensemble:
    """The particles of this rank, in seeded blocks (rank-count independent).

    Attributes:
        x: Positions (n_local, K).
        alive: Mask of particles not absorbed at a Dirichlet wall.
        t: Current time.
    """

    def __init__(
        self,
        model: LangevinModel,
        n: int,
        seed: int,
        sample: Callable[..., np.ndarray],
        lower: np.ndarray,
        upper: np.ndarray,
        reflect: bool,
        comm: MPI.Comm,
    ) -> None:
        self.model, self.n, self.comm = model, n, comm
        self.lower, self.upper, self.reflect = lower, upper, reflect
        nblocks = -(-n // BLOCK)
        self.blocks = list(range(comm.rank, nblocks, comm.size))
        self.rngs = [np.random.default_rng([seed, b]) for b in self.blocks]
        sizes = [min(BLOCK, n - b * BLOCK) for b in self.blocks]
        parts = [sample(rng, s) for rng, s in zip(self.rngs, sizes, strict=True)]
        dim = len(lower)
        self.x = np.concatenate(parts) if parts else np.empty((0, dim))
        self._sizes = sizes
        self.alive = np.ones(len(self.x), dtype=bool)
        self.t = 0.0

    def state(self) -> dict[int, tuple[Any, Any, Any]]:
        """This rank's blocks: block number -> (positions, alive mask, random-stream state)."""
        out: dict[int, tuple[Any, Any, Any]] = {}
        start = 0
        for b, size, rng in zip(self.blocks, self._sizes, self.rngs, strict=True):
            sl = slice(start, start + size)
            out[b] = (self.x[sl].copy(), self.alive[sl].copy(), rng.bit_generator.state)
            start += size
        return out

    def restore(self, blocks: dict[int, Any], t: float) -> None:
        """Continue from stored blocks (those this rank owns): the streams continue exactly."""
        xs, alive = [], []
        for b, rng in zip(self.blocks, self.rngs, strict=True):
            x, a, st = blocks[b]
            xs.append(np.asarray(x))
            alive.append(np.asarray(a, dtype=bool))
            rng.bit_generator.state = st
        dim = self.x.shape[1]
        self.x = np.concatenate(xs) if xs else np.empty((0, dim))
        self.alive = np.concatenate(alive) if alive else np.ones(0, dtype=bool)
        self.t = t

    def _noise(self) -> np.ndarray:
        dim = self.x.shape[1]
        parts = [
            rng.standard_normal((s, dim)) for rng, s in zip(self.rngs, self._sizes, strict=True)
        ]
        return np.concatenate(parts) if parts else np.empty((0, dim))

    def advance(self, t: float, dt: float) -> None:
        """Euler–Maruyama steps of size ≤ dt up to time t."""
        steps = max(0, int(np.ceil((t - self.t) / dt - 1e-9)))
        if steps == 0:
            return
        h = (t - self.t) / steps
        sigma = None
        if self.model.constant and len(self.x):
            sigma = self.model.noise_factor(self.x[:1])[0]  # the same at every point
        for _ in range(steps):
            dW = self._noise() * np.sqrt(h)  # drawn for every particle: streams stay aligned
            x = self.x
            kick = (
                dW @ sigma.T
                if sigma is not None
                else np.einsum("nij,nj->ni", self.model.noise_factor(x), dW)
            )
            self.x = x + self.model.drift(x) * h + kick
            self._walls()
        self.t = t

    def _walls(self) -> None:
        lo, hi = self.lower, self.upper
        if self.reflect:
            for _ in range(2):  # a step longer than the box is not expected; two passes suffice
                self.x = np.where(self.x < lo, 2 * lo - self.x, self.x)
                self.x = np.where(self.x > hi, 2 * hi - self.x, self.x)
            self.x = np.clip(self.x, lo, hi)
        else:
            out = np.any((self.x < lo) | (self.x > hi), axis=1)
            self.alive &= ~out
            self.x = np.clip(self.x, lo, hi)

    def histogram(self, edges: list[np.ndarray]) -> np.ndarray:
        """Counts of living particles per bin, summed over ranks (integers: exact)."""
        counts, _ = np.histogramdd(self.x[self.alive], bins=edges)
        counts = counts.astype(np.int64)
        total = np.zeros_like(counts)
        self.comm.Allreduce(counts, total, op=MPI.SUM)
        return total

    def moments(self) -> dict[str, Any]:
        """Mean and covariance with standard errors of the mean, over all ranks."""
        x = self.x[self.alive]
        n = self.comm.allreduce(len(x), op=MPI.SUM)
        s1 = self.comm.allreduce(x.sum(axis=0), op=MPI.SUM)
        s2 = self.comm.allreduce(x.T @ x, op=MPI.SUM)
        mean = s1 / n
        cov = s2 / n - np.outer(mean, mean)
        return {"n": n, "mean": mean, "cov": cov, "mean_se": np.sqrt(np.diag(cov) / n)}


def null_l1(P: np.ndarray, n: int, z: float = 5.0) -> tuple[float, float]:
    """Mean of Σ|O_b/N − P_b| under multinomial sampling, and the bound mean + z·sd.

    Each |O_b/N − P_b| is half-normal with s_b² = P_b(1−P_b)/N: mean s_b√(2/π),
    variance s_b²(1 − 2/π) (bins treated as independent, which overstates the
    spread slightly and so makes the bound conservative).
    """
    s = np.sqrt(np.clip(P * (1 - P), 0, None) / n)
    mean = float(np.sum(s) * np.sqrt(2 / np.pi))
    sd = float(np.sqrt(np.sum(s**2) * (1 - 2 / np.pi)))
    return mean, mean + z * sd


def chi2_pvalue(
    O: np.ndarray, E: np.ndarray, min_expected: float = 5.0
) -> tuple[float, float, int]:
    """Pearson χ² of counts O against expectations E (bins with E < 5 pooled)."""
    from scipy.stats import chi2

    O, E = O.ravel().astype(float), E.ravel()
    small = E < min_expected
    O2 = np.append(O[~small], O[small].sum())
    E2 = np.append(E[~small], E[small].sum())
    keep = E2 > 0
    stat = float(np.sum((O2[keep] - E2[keep]) ** 2 / E2[keep]))
    dof = int(keep.sum()) - 1
    return stat, float(chi2.sf(stat, dof)), dof
