"""``nhj verify``: the correspondence check of theory.md turned into measured evidence.

The claim: learning dynamics with learning rate γ and Lagrange multiplier β
evolves like Schrödinger dynamics (3.11) with ħ = γ/β (3.12) and m = 1/γ (3.13).
Each check below is a small function returning a :class:`Check` record
(name, passed, value, tolerance, details); ``details["criterion"]`` states in
words what ``passed`` means.

1. ``correspondence`` — Madelung (3.7)–(3.9) at (γ, β) against Schrödinger
   (3.11) with ħ = γ/β, m = 1/γ from the same p₀, S₀ (ψ₀ = √p₀ e^{iS₀/ħ}, the
   nodal values of the Madelung initial state), and both against the exact
   Gaussian state where there is one: the relative L² mismatch of p against
   |ψ|², and of ∇S against ħ∇arg ψ = ħ(ψ_r∇ψ_i − ψ_i∇ψ_r)/|ψ|² weighted by p on
   the support p > 10⁻³ max p, at each observation time (:class:`Mismatch`).
   The Schrödinger reference may have a higher degree than the Madelung run on
   the same mesh (``schrodinger_degree``). ``refinement`` repeats the
   Madelung–Schrödinger comparison on finer meshes (dt ∝ h) and measures the
   observed order of the mismatch.
2. ``hbar_fit`` — the Madelung run at (γ, β) is data; Schrödinger runs with a
   trial ħ and m fixed at 1/γ (one factorisation per trial ħ, reused over its
   steps; ħ is a ``fem.Constant`` so the forms compile once) from the same
   p₀, S₀. The mismatch J(ħ) = mean over times of (e_p² + e_∇S²) is minimised
   by a bounded Brent search over [ħ_e/B, B ħ_e] (ħ_e = γ/β, B the bracket
   factor, 4 by default): the minimiser must be γ/β within the tolerance, and
   the minimum must be resolved at that tolerance (the relative change of ħ
   over which J rises by its own minimum value, from the curvature, is below
   the tolerance) — a plateau fails.
3. ``ground_state_energy``, ``ground_state_gibbs``, ``fokker_planck_gibbs`` —
   with V from the loss L̄ by (3.6), the lowest eigenpair of H has E₀ = 0 and
   |ψ₀|² = exp(−2βL̄/γ)/Z, the Gibbs density that the Fokker–Planck equation
   (2.7) at α = 1 relaxes to.
4. ``regimes`` — neural HJ (5.2) with α ∈ {1, ½, 0} (κ = g^{1/α}/β, and κ = δ/β
   for α = 0) against Schrödinger: all agree on a flat metric, only α = 1 on an
   anisotropic one; the others must differ by ``separation`` × the tolerance.

Verification cases are ordinary case files with a ``[verify]`` table (which
checks, the (γ, β) pairs, observation times, refinement levels, tolerances)
and an optional ``[full]`` table deep-merged over the file for ``--full``; the
shipped ones are in ``cases/verify/`` (docs/verify.md).

MPI: every rank computes every check (all scalars are assembled and reduced
on every rank, so all ranks take the same branches); files are written by
rank 0 (:mod:`nhj.verify_report`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem

from nhj import backends
from nhj.case import Case, NoiseSpec, read_toml
from nhj.covariant import Metric
from nhj.diagnostics import global_scalar, quadrature
from nhj.eigen import gibbs_l1, ground_state, mesh_size
from nhj.equations.schrodinger import Schrodinger
from nhj.meshes import build_mesh
from nhj.problem import (
    BUILDERS,
    boundary_conditions,
    gaussian_state,
    make_loss,
    make_metric,
    make_potential,
)
from nhj.schema import CaseError, as_float, as_floats, as_int, as_str, as_table, check_keys
from nhj.solvers import SolverError
from nhj.stepper import TimeStepper

log = logging.getLogger(__name__)

VERIFY_DIR = Path(__file__).resolve().parents[1] / "cases" / "verify"
"""The shipped verification cases."""

MODES = ("quick", "full")
CHECKS = ("correspondence", "refinement", "hbar_fit", "ground_state", "fokker_planck", "regimes")
SUPPORT = 1e-3
"""The support of p for the phase comparison: p > SUPPORT · max p."""
JUDGED = ("p", "grad_S")
"""The mismatches (:attr:`Mismatch.columns`) that checks are judged on."""


# --------------------------------------------------------------------------------------
# records


@dataclass
class Check:
    """The outcome of one check.

    Attributes:
        name: Check and case, e.g. ``"hbar_fit[packet_1d] gamma=1 beta=2"``.
        passed: Whether the criterion holds.
        value: The measured number the criterion is about.
        tolerance: The bound it is held to (upper or lower: see ``details["criterion"]``).
        details: The criterion in words, the measured series, wall time, ...
    """

    name: str
    passed: bool
    value: float
    tolerance: float
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record (non-finite numbers become None)."""
        return {
            "name": self.name,
            "passed": bool(self.passed),
            "value": finite(self.value),
            "tolerance": finite(self.tolerance),
            "details": jsonable(self.details),
        }


def finite(x: Any) -> float | None:
    """The number as a float, or None if it is not finite."""
    x = float(x)
    return x if math.isfinite(x) else None


def jsonable(x: Any) -> Any:
    """Nested data with numpy scalars/arrays as Python numbers and NaN/inf as None."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return finite(x)
    return x


# --------------------------------------------------------------------------------------
# verification cases


@dataclass(frozen=True)
class VerifySpec:
    """The ``[verify]`` table of a verification case.

    Attributes:
        checks: Which checks the case feeds (names in :data:`CHECKS`).
        pairs: (γ, β) pairs for correspondence and hbar_fit (default: the case's).
        times: Observation times (> 0, multiples of dt, ≤ t_end).
        refinement: Cells along x0 per refinement level (other directions in
            proportion; dt ∝ 1/cells from the case's cells and dt).
        alphas: The regimes α of the ``regimes`` check.
        bracket: The ħ search interval is [ħ_e/bracket, bracket·ħ_e], ħ_e = γ/β.
        mismatch_tolerance: Bound on relative L² mismatches (correspondence, regimes).
        hbar_tolerance: Bound on |ħ_fit/(γ/β) − 1| and on the width of the minimum.
        gibbs_tolerance: Bound on L¹ distances to the Gibbs density.
        separation: Regimes that must differ do so by more than separation × tolerance.
        schrodinger_degree: Degree of the Schrödinger reference (None: the case's degree);
            on the same mesh, a higher degree makes ψ the more accurate side.
    """

    checks: tuple[str, ...]
    pairs: tuple[tuple[float, float], ...] = ()
    times: tuple[float, ...] = ()
    refinement: tuple[int, ...] = ()
    alphas: tuple[float, ...] = (1.0, 0.5, 0.0)
    bracket: float = 4.0
    mismatch_tolerance: float = 1e-2
    hbar_tolerance: float = 5e-3
    gibbs_tolerance: float = 1e-3
    separation: float = 10.0
    schrodinger_degree: int | None = None

    KEYS = (
        "checks",
        "pairs",
        "times",
        "refinement",
        "alphas",
        "bracket",
        "mismatch_tolerance",
        "hbar_tolerance",
        "gibbs_tolerance",
        "separation",
        "schrodinger_degree",
    )

    @classmethod
    def from_table(cls, t: Mapping[str, Any], case: Case) -> VerifySpec:
        """Validate [verify] against the case it belongs to."""
        s = "verify"
        check_keys(t, cls.KEYS, s)
        raw = t.get("checks")
        if not isinstance(raw, list) or not raw:
            raise CaseError(f"{s}.checks", f"must be a non-empty list of {', '.join(CHECKS)}")
        checks = tuple(as_str(c, f"{s}.checks[{i}]", CHECKS) for i, c in enumerate(raw))
        par = case.parameters
        pairs: tuple[tuple[float, float], ...] = ((par.gamma, par.beta),)
        if "pairs" in t:
            if not isinstance(t["pairs"], list) or not t["pairs"]:
                raise CaseError(f"{s}.pairs", "must be a non-empty list of [gamma, beta] pairs")
            pairs = tuple(
                as_floats(p, f"{s}.pairs[{i}]", 2, positive=True)  # type: ignore[misc]
                for i, p in enumerate(t["pairs"])
            )
        times = as_floats(t.get("times", []), f"{s}.times", positive=True)
        refinement = tuple(
            as_int(n, f"{s}.refinement[{i}]", lo=1)
            for i, n in enumerate(_list(t.get("refinement", []), f"{s}.refinement"))
        )
        spec = cls(
            checks=checks,
            pairs=pairs,
            times=times,
            refinement=refinement,
            alphas=as_floats(t.get("alphas", [1.0, 0.5, 0.0]), f"{s}.alphas", lo=0.0, hi=1.0),
            bracket=as_float(t.get("bracket", 4.0), f"{s}.bracket", lo=1.01, hi=100.0),
            mismatch_tolerance=as_float(
                t.get("mismatch_tolerance", 1e-2), f"{s}.mismatch_tolerance", positive=True
            ),
            hbar_tolerance=as_float(
                t.get("hbar_tolerance", 5e-3), f"{s}.hbar_tolerance", positive=True
            ),
            gibbs_tolerance=as_float(
                t.get("gibbs_tolerance", 1e-3), f"{s}.gibbs_tolerance", positive=True
            ),
            separation=as_float(t.get("separation", 10.0), f"{s}.separation", lo=1.0),
            schrodinger_degree=None
            if "schrodinger_degree" not in t
            else as_int(t["schrodinger_degree"], f"{s}.schrodinger_degree", lo=1, hi=4),
        )
        spec.validate(case)
        return spec

    def validate(self, case: Case) -> None:
        """Cross-checks between the checks asked for and the case."""
        s = "verify"
        hydro = {"correspondence", "refinement", "hbar_fit"} & set(self.checks)
        if hydro and case.equation != "madelung":
            raise CaseError(
                f"{s}.checks",
                f"{', '.join(sorted(hydro))} need equation = "
                f"'madelung' (the data are p and S), not {case.equation!r}",
            )
        if "regimes" in self.checks and case.equation not in ("madelung", "neural_hj"):
            raise CaseError(f"{s}.checks", "regimes needs equation = 'neural_hj' or 'madelung'")
        gibbs = {"ground_state", "fokker_planck"} & set(self.checks)
        if gibbs and (case.equation != "fokker_planck" or not case.potential.has_loss):
            raise CaseError(
                f"{s}.checks",
                f"{', '.join(sorted(gibbs))} need equation = 'fokker_planck' with potential.loss",
            )
        if gibbs and (case.noise.alpha != 1 or case.noise.kappa is not None):
            raise CaseError(
                "noise.alpha",
                "the Gibbs density is the stationary state at alpha = 1 (kappa = g/beta) only",
            )
        if (hydro or "regimes" in self.checks) and not self.times:
            raise CaseError(
                f"{s}.times", "is required for correspondence, refinement, hbar_fit and regimes"
            )
        if self.times:
            step_indices(self.times, case.discretisation, f"{s}.times")
        if {"refinement", "ground_state"} & set(self.checks):
            r = self.refinement
            if len(r) < 2 or any(b <= a for a, b in zip(r, r[1:], strict=False)):
                raise CaseError(
                    f"{s}.refinement", f"needs at least two increasing cell counts, got {list(r)}"
                )
            if case.mesh.type == "gmsh":
                raise CaseError(
                    f"{s}.refinement", "needs a built-in mesh (interval, rectangle, box)"
                )
            if "refinement" in self.checks:
                for n in r:
                    step_indices(
                        self.times,
                        refined(case, n).discretisation,
                        f"{s}.times (at the refinement level of {n} cells)",
                    )


def _list(value: Any, f: str) -> list[Any]:
    if not isinstance(value, list):
        raise CaseError(f, f"must be a list, got {value!r}")
    return value


@dataclass(frozen=True)
class VerifyCase:
    """A validated verification case: the case (with ``[full]`` applied) and its [verify]."""

    name: str
    case: Case
    spec: VerifySpec
    path: Path


def deep_merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with the tables of ``over`` merged in recursively (other values replaced)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merged(out[k], v)
        else:
            out[k] = v
    return out


def load_verify_case(path: str | Path, mode: str = "quick") -> VerifyCase:
    """Read a verification case; ``mode = "full"`` merges its [full] table first."""
    path = Path(path)
    text, d = read_toml(path)
    vc = verify_case_from_dict(d, path.resolve().parent, path.stem, mode)
    return replace(vc, case=replace(vc.case, path=path, text=text), path=path)


def verify_case_from_dict(
    d: Mapping[str, Any], base_dir: Path, name: str, mode: str = "quick"
) -> VerifyCase:
    """Validate a parsed verification case (a case with [verify] and optional [full])."""
    if mode not in MODES:
        raise CaseError("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    d = dict(d)
    full = as_table(d.pop("full", {}), "full")
    if mode == "full":
        d = deep_merged(d, full)
    if "verify" not in d:
        raise CaseError("verify", f"{name} has no [verify] table: it is not a verification case")
    verify = as_table(d.pop("verify"), "verify")
    case = Case.from_dict(d, base_dir, name=name)
    return VerifyCase(name, case, VerifySpec.from_table(verify, case), base_dir / f"{name}.toml")


def find_cases(names: Sequence[str] | None) -> list[Path]:
    """Paths of verification cases: names in cases/verify/ or files (default: all shipped)."""
    shipped = sorted(VERIFY_DIR.glob("*.toml")) if VERIFY_DIR.is_dir() else []
    if not names:
        if not shipped:
            raise CaseError("--cases", f"no verification cases in {VERIFY_DIR}; name case files")
        return shipped
    paths = []
    for n in names:
        p = Path(n)
        if p.suffix == ".toml" and p.is_file():
            paths.append(p)
        elif (VERIFY_DIR / f"{n}.toml").is_file():
            paths.append(VERIFY_DIR / f"{n}.toml")
        else:
            known = ", ".join(q.stem for q in shipped) or "none"
            raise CaseError(
                "--cases", f"no verification case {n!r} (a .toml file or one of: {known})"
            )
    return paths


# --------------------------------------------------------------------------------------
# case variants and time indices


def with_pair(case: Case, gamma: float, beta: float, hbar: float | None = None) -> Case:
    """The case at (γ, β) (ħ = γ/β unless ``hbar`` overrides it)."""
    return replace(
        case,
        parameters=replace(
            case.parameters, gamma=float(gamma), beta=float(beta), hbar_override=hbar
        ),
    )


def refined(case: Case, cells: int) -> Case:
    """The case with ``cells`` along x0 (others in proportion) and dt ∝ 1/cells."""
    c0 = case.mesh.cells[0]
    f = cells / c0
    mesh = replace(case.mesh, cells=tuple(max(1, round(n * f)) for n in case.mesh.cells))
    disc = replace(case.discretisation, dt=case.discretisation.dt_used / f)
    return replace(case, mesh=mesh, discretisation=disc)


def with_cells(case: Case, cells: int) -> Case:
    """The case with ``cells`` along x0 (others in proportion), dt unchanged."""
    f = cells / case.mesh.cells[0]
    return replace(
        case, mesh=replace(case.mesh, cells=tuple(max(1, round(n * f)) for n in case.mesh.cells))
    )


def step_indices(times: Sequence[float], disc: Any, f: str = "verify.times") -> list[int]:
    """Step numbers of the observation times; CaseError unless each is a multiple of dt ≤ t_end."""
    dt = disc.dt_used
    out = []
    for t in times:
        k = round(t / dt)
        if abs(k * dt - t) > 1e-9 * max(1.0, t) or k < 1 or t > disc.t_end * (1 + 1e-12):
            raise CaseError(
                f, f"{t:g} is not a positive multiple of dt = {dt:g} up to t_end = {disc.t_end:g}"
            )
        out.append(k)
    if out != sorted(set(out)):
        raise CaseError(f, "must be increasing")
    return out


def mesh_metric(case: Case, comm: MPI.Comm) -> tuple[Any, Metric]:
    """The case's mesh and metric (collective)."""
    msh = build_mesh(case.mesh, comm)
    return msh, make_metric(case.metric, msh)


# --------------------------------------------------------------------------------------
# runs


@dataclass
class Snapshots:
    """States of a Madelung / neural HJ run at the observation times.

    Attributes:
        space: The (√p, S) space.
        u0: The initial state (local values with ghosts).
        states: The state at each observation time.
        times: The observation times.
        steps: Their step numbers.
        dt: The output step.
        stats: The adaptive stepper's statistics.
        wall_s: Wall time of the run.
    """

    space: Any
    u0: np.ndarray
    states: list[np.ndarray]
    times: tuple[float, ...]
    steps: list[int]
    dt: float
    stats: dict[str, Any]
    wall_s: float


def hydrodynamic_snapshots(
    case: Case, msh: Any, metric: Metric, times: Sequence[float]
) -> Snapshots:
    """Run (3.7) + (5.2) on ``msh`` and keep (√p, S) at ``times`` (collective).

    Raises:
        SolverError: The run failed (e.g. no acceptable time step).
    """
    t0 = time.perf_counter()
    problem = BUILDERS[case.equation](case, msh, metric)
    steps = step_indices(times, case.discretisation)
    u = problem.u0
    u0 = u.x.array.copy()
    states = []
    try:
        for k in range(1, steps[-1] + 1):
            problem.stepper.advance()
            if k in steps:
                states.append(u.x.array.copy())
    finally:
        problem.stepper.close()
    return Snapshots(
        problem.space,
        u0,
        states,
        tuple(times),
        steps,
        case.discretisation.dt_used,
        dict(problem.stepper.stats),
        time.perf_counter() - t0,
    )


class Wave:
    """Schrödinger (3.11) on the mesh of a hydrodynamic run, started from its p₀, S₀.

    ψ₀ = √p₀ e^{iS₀/ħ} (3.10) is interpolated from the Madelung initial state
    (R₀, S₀), so every trial ħ starts from the same p₀ and S₀ (on the Madelung
    space itself, ψ₀ takes the nodal values R₀ e^{iS₀/ħ}). ħ is a
    ``fem.Constant``: a scan over ħ compiles the forms once and factorises the
    Crank–Nicolson matrix once per ħ. ``m_factor`` ≠ 1 runs with a deliberately
    wrong mass (m = m_factor/γ), for tests that a check can fail.
    """

    def __init__(
        self,
        case: Case,
        msh: Any,
        metric: Metric,
        hydro_space: Any,
        m_factor: float = 1.0,
        degree: int | None = None,
    ) -> None:
        par = case.parameters
        degree = case.discretisation.degree if degree is None else degree
        self.case = case
        # a Constant, not a float: every ħ of a scan reuses the compiled forms
        self.hbar: Any = cast(Any, fem.Constant(msh, par.hbar))
        self.eq = Schrodinger(
            metric, make_potential(case, msh, metric), self.hbar, par.m * m_factor
        )
        self.space = fem.functionspace(msh, ("Lagrange", degree, (2,)))
        self.psi = fem.Function(self.space, name="psi")
        self._u0 = fem.Function(hydro_space)
        R, S = self._u0[0], self._u0[1]
        self._initial = fem.Expression(
            ufl.as_vector((R * ufl.cos(S / self.hbar), R * ufl.sin(S / self.hbar))),
            self.space.element.interpolation_points,
        )
        self.bcs = boundary_conditions(case, self.space, "dirichlet", np.zeros(2))

    def run(
        self,
        hbar: float,
        u0: np.ndarray,
        steps: Sequence[int],
        dt: float,
        observe: Callable[[int], None],
    ) -> None:
        """Step to the last of ``steps`` with ħ = hbar; observe(i) at steps[i] (collective)."""
        self.hbar.value = hbar
        self._u0.x.array[:] = u0
        self.psi.interpolate(self._initial)
        for bc in self.bcs:
            bc.set(self.psi.x.array)
        stepper = TimeStepper(
            self.eq.semidiscrete(self.space),
            "crank_nicolson",
            self.psi,
            dt,
            self.bcs,
            self.case.solver.petsc_options,
            prefix="nhj_verify_",
        )
        try:
            for k in range(1, steps[-1] + 1):
                stepper.advance()
                if k in steps:
                    observe(steps.index(k))
        finally:
            stepper.close()


Pair = tuple[Any, Any]
"""(p, ∇S) as UFL expressions."""


def of_hydro(u: Any) -> Pair:
    """(p, ∇S) = (R², ∇S) of a (√p, S) state."""
    return u[0] ** 2, ufl.grad(u[1])


def of_psi(psi: Any, hbar: Any) -> Pair:
    """(|ψ|², ħ∇arg ψ) with ħ∇arg ψ = ħ(ψ_r∇ψ_i − ψ_i∇ψ_r)/|ψ|² (no branch cut)."""
    p = psi[0] ** 2 + psi[1] ** 2
    return p, hbar * (psi[0] * ufl.grad(psi[1]) - psi[1] * ufl.grad(psi[0])) / p


class Exact:
    """(|ψ|², ħ∇arg ψ) of the exact Gaussian state, its time coefficients in a Constant."""

    def __init__(self, state: Any, msh: Any) -> None:
        self.state = state
        self.C = fem.Constant(msh, state.coefficients(0.0))
        A, phase = state.amplitude_phase(ufl.SpatialCoordinate(msh), self.C, backends.UFL)
        self.pair: Pair = (A**2, state.hbar * ufl.grad(phase))

    def at(self, t: float) -> None:
        """Move the expression to time t."""
        self.C.value[:] = self.state.coefficients(t)


class Support:
    """The support χ = 1 where p = R² > SUPPORT · max R² (nodal maximum), else 0, and p itself."""

    def __init__(self, u: fem.Function) -> None:
        self.u = u
        self.threshold = fem.Constant(u.function_space.mesh, 0.0)
        self.p = u[0] ** 2
        self.chi = ufl.conditional(ufl.gt(self.p, self.threshold), 1.0, 0.0)

    def update(self) -> None:
        """Recompute the threshold from the current u (collective)."""
        n = self.u.function_space.dofmap.index_map.size_local
        local = float(np.max(self.u.x.array.reshape(-1, 2)[:n, 0] ** 2, initial=0.0))
        comm = self.u.function_space.mesh.comm
        self.threshold.value = SUPPORT * comm.allreduce(local, op=MPI.MAX)


class Mismatch:
    """Relative L² mismatches (√g-weighted) of a = (p_a, v_a) against a reference b.

    ``p`` = ‖p_a − p_b‖/‖p_b‖ over the domain. For the phase gradients v
    (covectors, |v|²_g = g^{μν}v_μv_ν) on the support χ of the Madelung density p:
    ``grad_S`` = ‖χ√p (v_a − v_b)‖_g / ‖χ√p v_b‖_g, the velocity mismatch in the
    probability-weighted norm of the kinetic energy ∫ p|∇S|²_g; and
    ``grad_S_unweighted`` = ‖χ(v_a − v_b)‖_g / ‖χ v_b‖_g, reported only: at the edge
    of the support (p ~ 10⁻³ max p) ħ∇arg ψ amplifies the error of ψ by |ψ|⁻¹ ~ 30.
    """

    columns = ("p", "grad_S", "grad_S_unweighted")

    def __init__(
        self, a: Pair, b: Pair, support: Support, metric: Metric, degree: int, comm: MPI.Comm
    ) -> None:
        dx = quadrature(degree)
        (pa, va), (pb, vb) = a, b
        dv = va - vb
        chi, w = support.chi, support.chi * support.p
        self.comm = comm
        integrands = [
            (pa - pb) ** 2,
            pb**2,
            w * metric.inner(dv, dv),
            w * metric.inner(vb, vb),
            chi * metric.inner(dv, dv),
            chi * metric.inner(vb, vb),
        ]
        self.forms = [fem.form(metric.volume(f, dx)) for f in integrands]

    def __call__(self) -> dict[str, float]:
        """The three mismatches now (collective; the same numbers on every rank)."""
        n = [global_scalar(f, self.comm) for f in self.forms]
        e = [math.sqrt(n[i] / n[i + 1]) if n[i + 1] > 0 else math.inf for i in (0, 2, 4)]
        return dict(zip(self.columns, self.comm.bcast(e, root=0), strict=True))


# --------------------------------------------------------------------------------------
# check 1: correspondence and refinement


@dataclass
class Comparison:
    """Madelung (M), Schrödinger (S) and exact (E) compared at the observation times.

    ``series[k][c]`` lists the mismatch ``c`` (:attr:`Mismatch.columns`) per time for
    k in "MS", "ME", "SE" (the latter two only when the case has an exact solution).
    """

    times: tuple[float, ...]
    series: dict[str, dict[str, list[float]]]
    dofs: int
    h: float
    madelung_wall_s: float
    stats: dict[str, Any]

    def worst(self, key: str = "MS") -> dict[str, float]:
        """The judged mismatches (p, grad_S), each maximised over the times."""
        return {c: max(self.series[key][c]) for c in JUDGED}


@dataclass
class MadelungRun:
    """A Madelung run of a case: its mesh, metric and snapshots (shared between checks)."""

    case: Case
    msh: Any
    metric: Metric
    snaps: Snapshots


def madelung_run(case: Case, comm: MPI.Comm, times: Sequence[float]) -> MadelungRun:
    """Run the case's Madelung equation and keep the states at ``times`` (collective).

    Raises:
        SolverError: The run failed.
    """
    msh, metric = mesh_metric(case, comm)
    return MadelungRun(case, msh, metric, hydrodynamic_snapshots(case, msh, metric, times))


def compare(
    run: MadelungRun, spec: VerifySpec, m_factor: float = 1.0, panels: Path | None = None
) -> Comparison:
    """Schrödinger with ħ = γ/β against a Madelung run, both against the exact state.

    The exact state enters where the case has one. Collective.
    ``panels``: write p, S (wrapped to (−πħ, πħ]) and |ψ|², ħ arg ψ at the last time to
    this .vtu file (gathered on rank 0).
    """
    case, msh, metric, snaps = run.case, run.msh, run.metric, run.snaps
    comm = msh.comm
    degree = case.discretisation.degree
    u = fem.Function(snaps.space, name="R_S")
    support = Support(u)
    wave = Wave(case, msh, metric, snaps.space, m_factor, spec.schrodinger_degree)
    psi_pair = of_psi(wave.psi, wave.hbar)
    mismatch = {"MS": Mismatch(of_hydro(u), psi_pair, support, metric, degree, comm)}
    state = gaussian_state(case) if exact_applies(case) else None
    exact = Exact(state, msh) if state is not None else None
    if exact is not None:
        mismatch["ME"] = Mismatch(of_hydro(u), exact.pair, support, metric, degree, comm)
        mismatch["SE"] = Mismatch(psi_pair, exact.pair, support, metric, degree, comm)
    series: dict[str, dict[str, list[float]]] = {
        k: {c: [] for c in Mismatch.columns} for k in mismatch
    }

    def observe(i: int) -> None:
        u.x.array[:] = snaps.states[i]
        support.update()
        if exact is not None:
            exact.at(snaps.times[i])
        for k, m in mismatch.items():
            for c, e in m().items():
                series[k][c].append(e)

    wave.run(case.parameters.hbar, snaps.u0, snaps.steps, snaps.dt, observe)
    if panels is not None:
        write_panels(panels, u, wave, degree)
    return Comparison(
        tuple(spec.times),
        series,
        snaps.space.dofmap.index_map.size_global * 2,
        mesh_size(msh),
        snaps.wall_s,
        snaps.stats,
    )


def exact_applies(case: Case) -> bool:
    """Whether the case's Gaussian state is exact for its equation (V harmonic or 0, g constant)."""
    return (
        case.initial.kind != "expression"
        and case.metric.is_constant
        and case.potential.V is None
        and not case.potential.has_loss
        and case.output.exact
    )


def write_panels(path: Path, u: fem.Function, wave: Wave, degree: int) -> None:
    """The Madelung p and S, |ψ|² and ħ arg ψ, in one gathered .vtu file (collective)."""
    from nhj.output import write_gathered_vtu

    msh = u.function_space.mesh
    space = fem.functionspace(msh, ("Lagrange", degree))
    hb = wave.hbar
    S = u[1]
    exprs = {
        "p": u[0] ** 2,
        "S": hb * ufl.atan2(ufl.sin(S / hb), ufl.cos(S / hb)),  # wrapped like ħ arg ψ
        "p_psi": wave.psi[0] ** 2 + wave.psi[1] ** 2,
        "hbar_arg_psi": hb * ufl.atan2(wave.psi[1], wave.psi[0]),
    }
    fields = []
    for name, e in exprs.items():
        f = fem.Function(space, name=name)
        f.interpolate(fem.Expression(e, space.element.interpolation_points))
        fields.append(f)
    write_gathered_vtu(path, fields)


def check_correspondence(
    vc: VerifyCase,
    gamma: float,
    beta: float,
    comm: MPI.Comm,
    m_factor: float = 1.0,
    panels: Path | None = None,
    run: MadelungRun | None = None,
) -> tuple[Check, Comparison | None]:
    """Madelung vs Schrödinger vs exact at (γ, β): every mismatch ≤ the tolerance.

    ``m_factor`` ≠ 1 gives Schrödinger a wrong mass (the check must then fail);
    ``run``: the Madelung run at (γ, β) if already done.
    """
    spec = vc.spec
    tol = spec.mismatch_tolerance
    name = f"correspondence[{vc.name}] gamma={gamma:g} beta={beta:g}"
    criterion = (
        f"relative L2 mismatch of p vs |psi|^2, and of grad S vs hbar grad arg psi "
        f"(p-weighted, on the support p > {SUPPORT:g} max p) <= {tol:g} at every time, "
        "for Madelung vs Schrodinger and both vs the exact state"
    )
    t0 = time.perf_counter()
    case = with_pair(vc.case, gamma, beta)
    try:
        run = run or madelung_run(case, comm, spec.times)
        cmp = compare(run, spec, m_factor, panels)
    except SolverError as e:
        return failed(name, tol, criterion, e), None
    worst = {k: cmp.worst(k) for k in cmp.series}
    value = max(worst["MS"].values())
    passed = all(e <= tol for w in worst.values() for e in w.values())
    details = {
        "criterion": criterion,
        "case": vc.name,
        "gamma": gamma,
        "beta": beta,
        "hbar": gamma / beta,
        "m": 1.0 / gamma * m_factor,
        "dim": case.dim,
        "dofs": cmp.dofs,
        "h": cmp.h,
        "times": list(cmp.times),
        **{f"{k}_{c}": v for k, s in cmp.series.items() for c, v in s.items()},
        "madelung_steps": cmp.stats,
        "madelung_wall_s": cmp.madelung_wall_s,
        "wall_s": time.perf_counter() - t0,
    }
    return Check(name, passed, value, tol, details), cmp


def observed_orders(h: Sequence[float], e: Sequence[float]) -> list[float]:
    """log(e_i/e_{i+1}) / log(h_i/h_{i+1}) for consecutive levels."""
    return [
        math.log(e[i] / e[i + 1]) / math.log(h[i] / h[i + 1])
        if e[i] > 0 and e[i + 1] > 0
        else math.nan
        for i in range(len(e) - 1)
    ]


def check_refinement(vc: VerifyCase, comm: MPI.Comm, m_factor: float = 1.0) -> Check:
    """The Madelung–Schrödinger mismatch → 0 under refinement (h and dt together).

    Expected orders with dt ∝ h (P_k, second-order schemes): p min(k + 1, 2),
    ∇S min(k, 2); the order of the finest pair of levels must be within ½ of it
    and the mismatch must decrease from level to level.
    """
    spec, case = vc.spec, vc.case
    gamma, beta = spec.pairs[0]
    k = case.discretisation.degree
    expected = {"p": min(k + 1, 2), "grad_S": min(k, 2)}
    tol = min(expected.values()) - 0.5
    name = f"refinement[{vc.name}] gamma={gamma:g} beta={beta:g}"
    criterion = (
        "observed order of the Madelung-Schrodinger mismatch (finest two levels, "
        f"dt ~ h) >= expected - 0.5 (p: {expected['p']}, grad S: "
        f"{expected['grad_S']}), decreasing at every level"
    )
    t0 = time.perf_counter()
    levels: dict[str, list[float]] = {"cells": [], "h": [], "dt": [], "p": [], "grad_S": []}
    try:
        for n in spec.refinement:
            c = refined(with_pair(case, gamma, beta), n)
            cmp = compare(madelung_run(c, comm, spec.times), spec, m_factor)
            w = cmp.worst("MS")
            ep, ev = w["p"], w["grad_S"]
            for key, v in (
                ("cells", n),
                ("h", cmp.h),
                ("dt", c.discretisation.dt_used),
                ("p", ep),
                ("grad_S", ev),
            ):
                levels[key].append(v)
    except SolverError as e:
        return failed(name, tol, criterion, e)
    orders = {key: observed_orders(levels["h"], levels[key]) for key in ("p", "grad_S")}
    finest = {key: o[-1] for key, o in orders.items()}
    decreasing = all(
        b < a for key in ("p", "grad_S") for a, b in zip(levels[key], levels[key][1:], strict=False)
    )
    passed = decreasing and all(finest[key] >= expected[key] - 0.5 for key in finest)
    value = min(finest[key] - expected[key] for key in finest) + min(expected.values())
    return Check(
        name,
        bool(passed),
        value,
        tol,
        {
            "criterion": criterion,
            "case": vc.name,
            **levels,
            "order_p": orders["p"],
            "order_grad_S": orders["grad_S"],
            "expected_order": expected,
            "decreasing": decreasing,
            "wall_s": time.perf_counter() - t0,
        },
    )


# --------------------------------------------------------------------------------------
# check 2: ħ-fit


@dataclass
class Fit:
    """An ħ-fit: the minimiser, the evaluations and the curve around the minimum."""

    hbar_expected: float
    hbar_fit: float
    J_min: float
    evaluations: list[tuple[float, float]]
    curve: list[tuple[float, float]]
    curvature: float
    width: float
    at_bound: bool


def fit_hbar(run: MadelungRun, spec: VerifySpec, m_factor: float = 1.0, xatol: float = 1e-6) -> Fit:
    """The ħ minimising the mismatch J(ħ) of Schrödinger(ħ, m = m_factor/γ) to a Madelung run.

    J(ħ) = mean over the observation times of e_p² + e_∇S² (collective).
    Bounded Brent search in log ħ over [γ/β / bracket, bracket · γ/β]; then J on
    ħ_fit·(1 + s), s = 0, ±0.25, ±0.5, ±1, ±2, ±5 %, and the curvature a of a
    parabola J ≈ J_min + a s² fitted on |s| ≤ 1 %: the width √(J_min/a) is the
    relative change of ħ over which J rises by its own minimum value.
    """
    from scipy.optimize import minimize_scalar

    times, bracket = spec.times, spec.bracket
    case, msh, metric, snaps = run.case, run.msh, run.metric, run.snaps
    comm = msh.comm
    u = fem.Function(snaps.space)
    support = Support(u)
    wave = Wave(case, msh, metric, snaps.space, m_factor, spec.schrodinger_degree)
    mismatch = Mismatch(
        of_hydro(u), of_psi(wave.psi, wave.hbar), support, metric, case.discretisation.degree, comm
    )
    memo: dict[float, float] = {}

    def J(hbar: float) -> float:
        if hbar in memo:
            return memo[hbar]
        total = [0.0]

        def observe(i: int) -> None:
            u.x.array[:] = snaps.states[i]
            support.update()
            e = mismatch()
            total[0] += sum(e[c] ** 2 for c in JUDGED)

        wave.run(hbar, snaps.u0, snaps.steps, snaps.dt, observe)
        memo[hbar] = comm.bcast(total[0] / len(times), root=0)  # one Brent path on all ranks
        return memo[hbar]

    h_e = case.parameters.gamma / case.parameters.beta
    lo, hi = math.log(h_e / bracket), math.log(h_e * bracket)
    res = minimize_scalar(
        lambda s: J(math.exp(s)), bounds=(lo, hi), method="bounded", options={"xatol": xatol}
    )
    h_fit = math.exp(float(res.x))
    evaluations = sorted(memo.items())
    offsets = (-0.05, -0.02, -0.01, -0.005, -0.0025, 0.0, 0.0025, 0.005, 0.01, 0.02, 0.05)
    curve = [(s, J(h_fit * (1 + s))) for s in offsets]
    near = [(s, j) for s, j in curve if abs(s) <= 0.01]
    a = float(np.polyfit([s for s, _ in near], [j for _, j in near], 2)[0])
    J_min = J(h_fit)
    width = math.sqrt(J_min / a) if a > 0 else math.inf
    at_bound = min(abs(res.x - lo), abs(res.x - hi)) < 1e-3 * (hi - lo)
    return Fit(h_e, h_fit, J_min, evaluations, curve, 2 * a, width, bool(at_bound))


def check_hbar_fit(
    vc: VerifyCase,
    gamma: float,
    beta: float,
    comm: MPI.Comm,
    m_factor: float = 1.0,
    hbar_expected: float | None = None,
    run: MadelungRun | None = None,
) -> tuple[Check, Fit | None]:
    """ħ_fit = γ/β within the tolerance, and the minimum resolved at that tolerance.

    ``m_factor`` ≠ 1 fits with a wrong mass; ``hbar_expected`` compares with another
    value than γ/β: both for tests that the check fails when it should. ``run``: the
    Madelung run at (γ, β) if already done.
    """
    spec = vc.spec
    tol = spec.hbar_tolerance
    expected = gamma / beta if hbar_expected is None else hbar_expected
    name = f"hbar_fit[{vc.name}] gamma={gamma:g} beta={beta:g}"
    criterion = (
        f"|hbar_fit/hbar_expected - 1| <= {tol:g} with m = 1/gamma, and a clear "
        f"minimum: width sqrt(J_min/a) <= {tol:g} (J ~ J_min + a s^2, s = "
        "hbar/hbar_fit - 1), not at the search bounds"
    )
    t0 = time.perf_counter()
    try:
        run = run or madelung_run(with_pair(vc.case, gamma, beta), comm, spec.times)
        fit = fit_hbar(run, spec, m_factor)
    except SolverError as e:
        return failed(
            name, tol, criterion, e, case=vc.name, gamma=gamma, beta=beta, hbar_expected=expected
        ), None
    rel = abs(fit.hbar_fit / expected - 1)
    passed = rel <= tol and fit.width <= tol and not fit.at_bound
    return Check(
        name,
        bool(passed),
        rel,
        tol,
        {
            "criterion": criterion,
            "case": vc.name,
            "gamma": gamma,
            "beta": beta,
            "m": m_factor / gamma,
            "hbar_expected": expected,
            "hbar_fit": fit.hbar_fit,
            "rel_error": rel,
            "J_min": fit.J_min,
            "curvature": fit.curvature,
            "width": fit.width,
            "at_bound": fit.at_bound,
            "bracket": spec.bracket,
            "evaluations": len(fit.evaluations),
            "search": [list(e) for e in fit.evaluations],
            "curve": [list(c) for c in fit.curve],
            "wall_s": time.perf_counter() - t0,
        },
    ), fit


# --------------------------------------------------------------------------------------
# check 3: ground state ↔ Gibbs, and the Fokker–Planck long-time state


@dataclass
class Ground:
    """A ground state on one mesh, with what the Gibbs comparison needs."""

    E0: float
    psi: fem.Function
    loss: Any
    metric: Metric
    h: float
    dofs: int


def solve_ground(case: Case, msh: Any, metric: Metric) -> Ground:
    """Lowest eigenpair of H = −(ħ²/2m)Δ_g + V, V from L̄ by (3.6), ψ = 0 on ∂Ω (collective)."""
    par, degree = case.parameters, case.discretisation.degree
    eq = Schrodinger(metric, make_potential(case, msh, metric), par.hbar, par.m)
    space = fem.functionspace(msh, ("Lagrange", degree))
    gs = ground_state(eq, space, boundary_conditions(case, space, "dirichlet", 0.0))
    return Ground(
        gs.E0,
        gs.psi,
        make_loss(case, msh),
        metric,
        mesh_size(msh),
        space.dofmap.index_map.size_global,
    )


def ground_levels(
    vc: VerifyCase, comm: MPI.Comm, beta_gibbs: float | None = None, hbar: float | None = None
) -> dict[str, list[float]]:
    """E₀ and ‖ψ₀² − exp(−2β_g L̄/γ)/Z‖₁ on each refinement level (collective).

    ``beta_gibbs`` (default β) is the β of the Gibbs density compared with; ``hbar``
    overrides ħ in H (V stays (3.6) at γ, β): both for tests that the checks fail.
    """
    par = vc.case.parameters
    case = with_pair(vc.case, par.gamma, par.beta, hbar)
    bg = par.beta if beta_gibbs is None else beta_gibbs
    out: dict[str, list[float]] = {"cells": [], "h": [], "dofs": [], "E0": [], "gibbs_l1": []}
    for n in vc.spec.refinement:
        c = with_cells(case, n)
        msh, metric = mesh_metric(c, comm)
        g = solve_ground(c, msh, metric)
        l1 = gibbs_l1(g.psi**2, g.loss, par.gamma, bg, metric, c.discretisation.degree, comm)
        for key, v in (("cells", n), ("h", g.h), ("dofs", g.dofs), ("E0", g.E0), ("gibbs_l1", l1)):
            out[key].append(v)
    return out


def check_ground_energy(vc: VerifyCase, levels: Mapping[str, Sequence[float]]) -> Check:
    """E₀ ≈ 0: |E₀| on the finest mesh ≤ its discretisation error |E₀(h) − E₀(h/2)|, shrinking."""
    E = list(levels["E0"])
    value, tol = abs(E[-1]), abs(E[-2] - E[-1])
    shrinking = all(abs(b) < abs(a) for a, b in zip(E, E[1:], strict=False))
    criterion = (
        "|E0| on the finest mesh <= |E0(coarser) - E0(finest)| (zero within the "
        "discretisation error) and |E0| shrinking under refinement"
    )
    return Check(
        f"ground_state_energy[{vc.name}]",
        bool(value <= tol and shrinking),
        value,
        tol,
        {
            "criterion": criterion,
            "case": vc.name,
            **levels,
            "order_E0": observed_orders(levels["h"], [abs(e) for e in E]),
            "shrinking": shrinking,
        },
    )


def check_ground_gibbs(
    vc: VerifyCase, levels: Mapping[str, Sequence[float]], beta_gibbs: float | None = None
) -> Check:
    """‖|ψ₀|² − exp(−2βL̄/γ)/Z‖₁ ≤ the tolerance on the finest mesh, shrinking."""
    tol = vc.spec.gibbs_tolerance
    L1 = list(levels["gibbs_l1"])
    shrinking = all(b < a for a, b in zip(L1, L1[1:], strict=False))
    criterion = (
        f"||psi0^2 - exp(-2 beta L/gamma)/Z||_1 <= {tol:g} on the finest mesh, "
        "shrinking under refinement"
    )
    par = vc.case.parameters
    return Check(
        f"ground_state_gibbs[{vc.name}]",
        bool(L1[-1] <= tol and shrinking),
        L1[-1],
        tol,
        {
            "criterion": criterion,
            "case": vc.name,
            **levels,
            "beta_gibbs": par.beta if beta_gibbs is None else beta_gibbs,
            "order_gibbs_l1": observed_orders(levels["h"], L1),
            "shrinking": shrinking,
        },
    )


@dataclass
class Profile:
    """1D profiles of ψ₀², the Gibbs density and the Fokker–Planck p (rank 0 only)."""

    x: np.ndarray
    psi2: np.ndarray
    gibbs: np.ndarray
    p: np.ndarray


def check_fokker_planck(
    vc: VerifyCase,
    comm: MPI.Comm,
    beta_gibbs: float | None = None,
) -> tuple[Check, Profile | None]:
    """The Fokker–Planck (2.7) state at t_end equals the Gibbs density and |ψ₀|².

    value = max(‖p − exp(−2β_g L̄/γ)/Z‖₁, ‖p − ψ₀²‖₁) on the case's own mesh and time.
    """
    case, spec = vc.case, vc.spec
    par, disc = case.parameters, case.discretisation
    bg = par.beta if beta_gibbs is None else beta_gibbs
    tol = spec.gibbs_tolerance
    name = f"fokker_planck_gibbs[{vc.name}]"
    criterion = (
        f"the Fokker-Planck density at t = {disc.t_end:g} is within {tol:g} (L1) of "
        "exp(-2 beta L/gamma)/Z and of the ground state psi0^2"
    )
    t0 = time.perf_counter()
    msh, metric = mesh_metric(case, comm)
    problem = BUILDERS["fokker_planck"](case, msh, metric)
    p = problem.u0
    loss = make_loss(case, msh)

    def distance() -> float:
        return gibbs_l1(p, loss, par.gamma, bg, metric, disc.degree, comm)

    history = [(0.0, distance())]
    assert problem.semidiscrete is not None  # Fokker–Planck is a finite-element equation
    stepper = TimeStepper(
        problem.semidiscrete,
        disc.scheme,
        p,
        disc.dt_used,
        problem.bcs,
        case.solver.petsc_options,
        prefix="nhj_verify_fp_",
    )
    every = max(1, disc.steps // 10)
    try:
        for k in range(1, disc.steps + 1):
            stepper.advance()
            if k % every == 0 or k == disc.steps:
                history.append((stepper.t, distance()))
    except SolverError as e:
        return failed(name, tol, criterion, e), None
    finally:
        stepper.close()
    g = solve_ground(case, msh, metric)
    dx = quadrature(disc.degree)
    to_psi = global_scalar(fem.form(metric.volume(abs(p - g.psi**2), dx)), comm)
    value = max(history[-1][1], to_psi)
    check = Check(
        name,
        bool(value <= tol),
        value,
        tol,
        {
            "criterion": criterion,
            "case": vc.name,
            "t_end": disc.t_end,
            "dt": disc.dt_used,
            "scheme": disc.scheme,
            "beta_gibbs": bg,
            "gibbs_l1": history[-1][1],
            "l1_to_ground_state": to_psi,
            "E0": g.E0,
            "history": [list(r) for r in history],
            "wall_s": time.perf_counter() - t0,
        },
    )
    return check, profile(p, g, loss, par.gamma, bg) if case.dim == 1 else None


def profile(p: fem.Function, g: Ground, loss: Any, gamma: float, beta: float) -> Profile | None:
    """Nodal ψ₀², Gibbs density and p gathered on rank 0 (collective; 1D)."""
    space = g.psi.function_space
    msh = space.mesh
    comm = msh.comm
    w = fem.Function(space)
    w.interpolate(
        fem.Expression(ufl.exp(-2.0 * beta * loss / gamma), space.element.interpolation_points)
    )
    Z = global_scalar(fem.form(g.metric.volume(w, quadrature(2))), comm)
    n = space.dofmap.index_map.size_local
    x = space.tabulate_dof_coordinates()[:n, 0]
    pv = fem.Function(space)
    pv.interpolate(p)
    parts = comm.gather((x, g.psi.x.array[:n] ** 2, w.x.array[:n] / Z, pv.x.array[:n]), root=0)
    if comm.rank != 0:
        return None
    x, psi2, gibbs, pp = (np.concatenate(c) for c in zip(*parts, strict=True))
    order = np.argsort(x)
    return Profile(x[order], psi2[order], gibbs[order], pp[order])


# --------------------------------------------------------------------------------------
# check 4: regimes


def regime_case(case: Case, alpha: float) -> Case:
    """neural_hj with the power law κ = g^{1/α}/β, or κ = δ/β given for α = 0."""
    if alpha == 0:
        b = case.parameters.beta
        kappa = tuple(
            tuple(1.0 / b if i == j else 0.0 for j in range(case.dim)) for i in range(case.dim)
        )
        noise = NoiseSpec(0.0, kappa)
    else:
        noise = NoiseSpec(float(alpha))
    return replace(case, equation="neural_hj", noise=noise)


def quantum_expected(case: Case, alpha: float) -> bool:
    """Whether theory.md says regime α equals Schrödinger here: F = (ħ²/4m) g⁻¹ (5.3).

    Flat metric with κ = δ/β: every α. Otherwise only α = 1 (κ = g/β).
    """
    G = None if case.metric.entries is None else np.array(case.metric.entries, dtype=float)
    flat = G is None or np.array_equal(G, np.eye(case.dim))
    return bool(flat or alpha == 1)


def check_regimes(
    vc: VerifyCase, comm: MPI.Comm, alphas: Sequence[float] | None = None, m_factor: float = 1.0
) -> Check:
    """The neural HJ regimes α against Schrödinger (ħ = γ/β, m = 1/γ, Δ_g) on one mesh.

    Regimes that theory.md says coincide with Schrödinger must agree within the
    tolerance; the others must differ by more than separation × tolerance.
    ``m_factor`` ≠ 1 gives Schrödinger a wrong mass (the check must then fail).
    """
    spec, case = vc.spec, vc.case
    if not case.metric.is_constant:
        raise CaseError("metric.g", "the regimes check needs a constant metric")
    alphas = tuple(spec.alphas if alphas is None else alphas)
    tol, far = spec.mismatch_tolerance, spec.separation * spec.mismatch_tolerance
    name = f"regimes[{vc.name}]"
    criterion = (
        f"alpha in {list(alphas)}: mismatch to Schrodinger <= {tol:g} where theory "
        f"says they coincide (flat metric, or alpha = 1), > {far:g} elsewhere"
    )
    t0 = time.perf_counter()
    msh, metric = mesh_metric(case, comm)
    degree = case.discretisation.degree
    runs: dict[float, Snapshots] = {}
    try:
        for a in alphas:
            runs[a] = hydrodynamic_snapshots(regime_case(case, a), msh, metric, spec.times)
    except SolverError as e:
        return failed(name, tol, criterion, e)
    first = runs[alphas[0]]
    u = fem.Function(first.space)
    support = Support(u)
    wave = Wave(case, msh, metric, first.space, m_factor, spec.schrodinger_degree)
    mismatch = Mismatch(of_hydro(u), of_psi(wave.psi, wave.hbar), support, metric, degree, comm)
    series: dict[float, list[dict[str, float]]] = {a: [] for a in alphas}

    def observe(i: int) -> None:
        for a in alphas:
            u.x.array[:] = runs[a].states[i]
            support.update()
            series[a].append(mismatch())

    wave.run(case.parameters.hbar, first.u0, first.steps, first.dt, observe)
    worst = {a: max(e[c] for e in s for c in JUDGED) for a, s in series.items()}
    # how far each regime's (√p, S) is from the first's, nodally: 0 to round-off where F agrees
    n = first.space.dofmap.index_map.size_local * 2
    scale = comm.allreduce(float(np.abs(first.states[-1][:n]).max(initial=0.0)), op=MPI.MAX)
    apart = {
        a: comm.allreduce(
            float(np.abs(runs[a].states[-1][:n] - first.states[-1][:n]).max(initial=0.0)),
            op=MPI.MAX,
        )
        / scale
        for a in alphas
    }
    expected = {a: quantum_expected(case, a) for a in alphas}
    same = [worst[a] for a in alphas if expected[a]]
    other = [worst[a] for a in alphas if not expected[a]]
    passed = all(w <= tol for w in same) and all(w > far for w in other)
    value = max(same) if same else math.nan
    return Check(
        name,
        bool(passed),
        value,
        tol,
        {
            "criterion": criterion,
            "case": vc.name,
            "flat": all(expected.values()),
            "alphas": list(alphas),
            "equals_schrodinger": [expected[a] for a in alphas],
            "mismatch": [worst[a] for a in alphas],
            "separated_by": min(other) if other else None,
            "max_nodal_difference_to_first": [apart[a] for a in alphas],
            "separation_bound": far,
            "times": list(first.times),
            **{c: {str(a): [e[c] for e in s] for a, s in series.items()} for c in Mismatch.columns},
            "wall_s": time.perf_counter() - t0,
        },
    )


# --------------------------------------------------------------------------------------
# the whole verification


def failed(name: str, tol: float, criterion: str, error: Exception, **details: Any) -> Check:
    """A check whose computation failed (e.g. a run with no acceptable time step)."""
    return Check(
        name, False, math.nan, tol, {"criterion": criterion, "error": str(error), **details}
    )


@dataclass
class Report:
    """Everything ``nhj verify`` measured."""

    mode: str
    checks: list[Check] = field(default_factory=list)
    fits: list[tuple[str, Fit]] = field(default_factory=list)
    comparisons: list[tuple[str, Comparison]] = field(default_factory=list)
    profiles: list[tuple[str, Profile]] = field(default_factory=list)
    panels: Path | None = None
    wall_s: float = 0.0
    ranks: int = 1

    @property
    def passed(self) -> bool:
        """Whether every check passed (and there was at least one)."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    def hbar_table(self) -> list[dict[str, Any]]:
        """Rows gamma, beta, hbar_expected, hbar_fit, rel_error of every ħ-fit."""
        return [
            {
                k: c.details.get(k)
                for k in ("case", "gamma", "beta", "hbar_expected", "hbar_fit", "rel_error")
            }
            | {"passed": c.passed}
            for c in self.checks
            if c.name.startswith("hbar_fit")
        ]


def run_verification(
    mode: str = "quick",
    out: Path | None = Path("results/verify"),
    comm: MPI.Comm = MPI.COMM_WORLD,
    cases: Sequence[str] | None = None,
) -> Report:
    """Run every check of every verification case; write the report to ``out`` (collective).

    Raises:
        CaseError: A verification case is invalid (before anything runs).
    """
    if mode not in MODES:
        raise CaseError("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    t0 = time.perf_counter()
    vcs = [load_verify_case(p, mode) for p in find_cases(cases)]
    if out is not None and comm.rank == 0:
        Path(out).mkdir(parents=True, exist_ok=True)
    comm.barrier()
    report = Report(mode, ranks=comm.size)
    for vc in vcs:
        run_case_checks(vc, comm, report, out)
    order = ("correspondence", "refinement", "hbar_fit", "ground_state", "fokker_planck", "regimes")
    report.checks.sort(
        key=lambda c: next(i for i, o in enumerate(order) if c.name.startswith(o))
    )  # stable: case order kept
    report.wall_s = comm.bcast(time.perf_counter() - t0, root=0)
    if out is not None:
        from nhj.verify_report import write_report

        write_report(report, Path(out), comm)
    return report


def run_case_checks(vc: VerifyCase, comm: MPI.Comm, report: Report, out: Path | None) -> None:
    """The checks ``vc`` asks for, appended to ``report`` (collective)."""
    spec = vc.spec

    def add(check: Check) -> None:
        report.checks.append(check)
        log.info(
            "%s %s: value %.3g, tolerance %.3g (%.1f s)",
            "PASS" if check.passed else "FAIL",
            check.name,
            check.value,
            check.tolerance,
            check.details.get("wall_s", 0.0),
        )

    for gamma, beta in spec.pairs:
        key = f"{vc.name} gamma={gamma:g} beta={beta:g}"
        run = None
        if {"correspondence", "hbar_fit"} & set(spec.checks):
            try:  # one Madelung run for both checks; a failure fails both
                run = madelung_run(with_pair(vc.case, gamma, beta), comm, spec.times)
            except SolverError as e:
                pair = {
                    "case": vc.name,
                    "gamma": gamma,
                    "beta": beta,
                    "hbar_expected": gamma / beta,
                }
                for c, tol in (
                    ("correspondence", spec.mismatch_tolerance),
                    ("hbar_fit", spec.hbar_tolerance),
                ):
                    if c in spec.checks:
                        add(
                            failed(
                                f"{c}[{vc.name}] gamma={gamma:g} beta={beta:g}",
                                tol,
                                "the Madelung run completes",
                                e,
                                **pair,
                            )
                        )
                continue
        if "correspondence" in spec.checks:
            panels = None
            if out is not None and vc.case.dim == 2 and report.panels is None:
                panels = report.panels = Path(out) / "fields_2d.vtu"
            check, cmp = check_correspondence(vc, gamma, beta, comm, panels=panels, run=run)
            add(check)
            if cmp is not None:
                report.comparisons.append((key, cmp))
        if "hbar_fit" in spec.checks:
            check, fit = check_hbar_fit(vc, gamma, beta, comm, run=run)
            add(check)
            if fit is not None:
                report.fits.append((key, fit))
    if "refinement" in spec.checks:
        add(check_refinement(vc, comm))
    if "ground_state" in spec.checks:
        t0 = time.perf_counter()
        try:
            levels = ground_levels(vc, comm)
        except SolverError as e:
            add(failed(f"ground_state[{vc.name}]", math.nan, "eigensolve", e))
        else:
            wall = time.perf_counter() - t0
            for check in (check_ground_energy(vc, levels), check_ground_gibbs(vc, levels)):
                check.details["wall_s"] = wall
                add(check)
    if "fokker_planck" in spec.checks:
        check, prof = check_fokker_planck(vc, comm)
        add(check)
        if prof is not None:
            report.profiles.append((vc.name, prof))
    if "regimes" in spec.checks:
        add(check_regimes(vc, comm))


__all__ = [
    "Check",
    "Report",
    "VerifyCase",
    "VerifySpec",
    "check_correspondence",
    "check_fokker_planck",
    "check_ground_energy",
    "check_ground_gibbs",
    "check_hbar_fit",
    "check_refinement",
    "check_regimes",
    "find_cases",
    "ground_levels",
    "load_verify_case",
    "run_verification",
]
