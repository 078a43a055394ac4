"""The Langevin reference of a Fokker–Planck case, compared at every output time.

The particles of :mod:`nhj.langevin` are binned on a grid whose cells are
unions of mesh cells; the finite-element density gives the expected bin
probabilities P_b = ∫_bin p √g dq. Reported per output time: the L1 distance
Σ_b |O_b/N − P_b| with its sampling-error bound (mean + 5 sd under the
multinomial null, see :func:`nhj.langevin.null_l1`), and Pearson's χ² p-value.
"""

from __future__ import annotations

from typing import Any

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem, la

from nhj import backends
from nhj.covariant import Metric
from nhj.equations.learning import power_law_kappa
from nhj.equations.potentials import harmonic
from nhj.expressions import to_numpy
from nhj.langevin import Ensemble, LangevinModel, chi2_pvalue, null_l1
from nhj.schema import CaseError
from nhj.sections import Case
from nhj.tensors import coordinate_names, flat_frame, tensor_at

TARGET_BINS = {1: 40, 2: 16, 3: 8}


def _field(entries: Any) -> Any:
    """A case tensor as a numpy function of points (n, K) -> (n, K, K)."""
    return lambda x: tensor_at(entries, x)


def langevin_model(case: Case) -> LangevinModel:
    """The coefficients of (2.5) for a Fokker–Planck case, as numpy functions.

    The loss and κ come from the same formulas as the finite-element forms
    (:func:`nhj.equations.potentials.harmonic`, the power law (2.9) of
    :mod:`nhj.equations.learning`), evaluated with the numpy backend.
    """
    dim, par, pot = case.dim, case.parameters, case.potential
    names = coordinate_names(dim)
    L = flat_frame(case.metric.entries)

    def loss(x: np.ndarray) -> np.ndarray:
        if pot.curvature is not None:
            y = x @ L.T if L is not None else x
            return np.asarray(harmonic(pot.curvature, y.T), dtype=float)
        assert pot.loss is not None  # a Fokker–Planck case has a loss (checked on load)
        env = {n: x[:, i] for i, n in enumerate(names)}
        return np.broadcast_to(to_numpy(pot.loss, {**env, **par.values()}), len(x))

    metric = None if case.metric.entries is None else _field(case.metric.entries)
    if case.noise.kappa is not None:
        kappa = _field(case.noise.kappa)
    else:
        power = 1.0 / case.noise.alpha

        def kappa(x: np.ndarray) -> np.ndarray:
            if metric is None:
                return power_law_kappa(np.broadcast_to(np.eye(dim), (len(x), dim, dim)), par.beta)
            return power_law_kappa(backends.NUMPY.matrix_power(metric(x), power), par.beta)

    constant = case.metric.is_constant and (
        case.noise.kappa is None or all(isinstance(e, float) for r in case.noise.kappa for e in r)
    )
    return LangevinModel(par.gamma, loss, metric, kappa, constant)


def choose_bins(case: Case) -> tuple[int, ...]:
    """Bins per direction: given (must divide the cells) or the largest divisor ≤ a target."""
    cells = case.mesh.cells
    spec = case.langevin.bins  # type: ignore[union-attr]
    if spec is not None:
        for i, (b, c) in enumerate(zip(spec, cells, strict=True)):
            if c % b:
                raise CaseError(
                    f"langevin.bins[{i}]",
                    f"must divide mesh.cells[{i}] = {c} so that bins are unions of cells; got {b}",
                )
        return spec
    target = TARGET_BINS[case.dim]
    return tuple(max(d for d in range(1, min(c, target) + 1) if c % d == 0) for c in cells)


class LangevinComparison:
    """Monitor: advance the particles to t and compare their histogram with p."""

    columns = ("langevin_l1", "langevin_l1_tolerance", "langevin_chi2_p", "langevin_mean_0")

    def __init__(self, case: Case, p: fem.Function, metric: Metric) -> None:
        spec = case.langevin
        assert spec is not None
        self.p, self.dt = p, spec.dt or case.discretisation.dt_used / 4
        msh = p.function_space.mesh
        self.comm = msh.comm
        lower, upper = np.array(case.mesh.lower), np.array(case.mesh.upper)
        self.bins = choose_bins(case)
        self.edges = [
            np.linspace(lo, hi, b + 1) for lo, hi, b in zip(lower, upper, self.bins, strict=True)
        ]
        self.ensemble = Ensemble(
            langevin_model(case),
            spec.particles,
            spec.seed,
            sampler(case, p),
            lower,
            upper,
            reflect=(case.boundary.condition or "zero_flux") == "zero_flux",
            comm=self.comm,
        )
        # ∫_cell p √g for every owned cell, then summed per bin
        DG0 = fem.functionspace(msh, ("DG", 0))
        self.cell_mass = fem.form(metric.volume(p * ufl.TestFunction(DG0)))
        tdim = msh.topology.dim
        n_owned = msh.topology.index_map(tdim).size_local
        mid = np.mean(msh.geometry.x[msh.geometry.dofmaps[0][:n_owned]], axis=1)[:, : case.dim]
        self.bin_of_cell = tuple(
            np.clip(np.searchsorted(e, mid[:, i], side="right") - 1, 0, len(e) - 2)
            for i, e in enumerate(self.edges)
        )
        self.n_owned = n_owned

    def expected(self) -> np.ndarray:
        """P_b = ∫_bin p √g from the finite-element density (collective)."""
        vec = fem.assemble_vector(self.cell_mass)
        vec.scatter_reverse(la.InsertMode.add)
        P = np.zeros(self.bins)
        np.add.at(P, self.bin_of_cell, vec.array[: self.n_owned])
        total = np.zeros_like(P)
        self.comm.Allreduce(P, total)
        return total

    def __call__(self, t: float) -> dict[str, float]:
        """Advance to t and compare (collective)."""
        self.ensemble.advance(t, self.dt)
        O = self.ensemble.histogram(self.edges)
        N = self.ensemble.n
        P = self.expected()
        l1 = float(np.abs(O / N - P).sum())
        _, tol = null_l1(P, N)
        _, pval, _ = chi2_pvalue(O, P * N)
        mean0 = float(self.ensemble.moments()["mean"][0])
        return {
            "langevin_l1": l1,
            "langevin_l1_tolerance": tol,
            "langevin_chi2_p": pval,
            "langevin_mean_0": mean0,
        }


def sampler(case: Case, p: fem.Function) -> Any:
    """Draw initial particles from the case's initial density."""
    init = case.initial
    lower, upper = np.array(case.mesh.lower), np.array(case.mesh.upper)
    if init.kind == "gaussian":
        center, width = np.array(init.center), np.array(init.width)

        def gaussian(rng: np.random.Generator, n: int) -> np.ndarray:
            x = center + width * rng.standard_normal((n, case.dim))
            return np.clip(x, lower, upper)

        return gaussian
    names = coordinate_names(case.dim)

    p0 = init.p
    assert p0 is not None  # kind = "expression" has p (checked on load)

    def density(x: np.ndarray) -> np.ndarray:
        env = {nm: x[:, i] for i, nm in enumerate(names)}
        return np.broadcast_to(to_numpy(p0, {**env, **case.parameters.values()}), len(x))

    grid = np.stack(
        np.meshgrid(
            *[
                np.linspace(a, b, 201 if case.dim < 3 else 41)
                for a, b in zip(lower, upper, strict=True)
            ]
        ),
        -1,
    )
    pmax = 1.25 * float(density(grid.reshape(-1, case.dim)).max())

    def rejection(rng: np.random.Generator, n: int) -> np.ndarray:
        out: list[np.ndarray] = []
        have = 0
        while have < n:
            x = lower + (upper - lower) * rng.random((4 * n, case.dim))
            x = x[rng.random(4 * n) * pmax < density(x)]
            out.append(x)
            have += len(x)
        return np.concatenate(out)[:n]

    return rejection


class ParticleMoments:
    """Surviving mass, ⟨L̄⟩ and the mean of each coordinate, with standard errors."""

    def __init__(self, ensemble: Ensemble, dim: int) -> None:
        self.ensemble = ensemble
        self.columns = (
            "mass",
            "mean_loss",
            "mean_loss_se",
            *(c for i in range(dim) for c in (f"mean_{i}", f"mean_{i}_se", f"var_{i}")),
        )

    def __call__(self, t: float) -> dict[str, float]:
        """Moments over all ranks (collective)."""
        e = self.ensemble
        m = e.moments()
        x = e.x[e.alive]
        L = e.model.loss(x) if len(x) else np.zeros(0)
        n = m["n"]
        sL = e.comm.allreduce(float(L.sum()), op=MPI.SUM)
        sL2 = e.comm.allreduce(float((L**2).sum()), op=MPI.SUM)
        meanL = sL / n
        out = {
            "mass": n / e.n,
            "mean_loss": meanL,
            "mean_loss_se": float(np.sqrt(max(sL2 / n - meanL**2, 0.0) / n)),
        }
        for i in range(len(m["mean"])):
            out[f"mean_{i}"] = float(m["mean"][i])
            out[f"mean_{i}_se"] = float(m["mean_se"][i])
            out[f"var_{i}"] = float(m["cov"][i, i])
        return out


class HistogramDensity:
    """The particle density on the mesh: per cell, count/(N · bin volume · √g) of its bin."""

    def __init__(
        self, comparison: LangevinComparison, density: fem.Function, sqrt_g: np.ndarray
    ) -> None:
        self.c, self.density, self.sqrt_g = comparison, density, sqrt_g
        widths = [e[1] - e[0] for e in comparison.edges]
        self.bin_volume = float(np.prod(widths))

    def __call__(self) -> None:
        """Refresh the DG0 density from the current particles (collective)."""
        counts = self.c.ensemble.histogram(self.c.edges)
        per_cell = counts[self.c.bin_of_cell] / (self.c.ensemble.n * self.bin_volume)
        n = self.c.n_owned
        self.density.x.array[:n] = per_cell / self.sqrt_g[:n]
        self.density.x.scatter_forward()
