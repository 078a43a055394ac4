"""Turn a validated case into the discrete objects of one run.

Small, named builders — mesh, metric, loss and potential, initial state, exact
solution — composed per equation by the functions in :data:`BUILDERS`.
Everything that depends on the mesh and can still be wrong (an SPD metric or
noise tensor at the mesh points, a negative or zero initial density) is checked
here, before any result directory exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem

from nhj import backends
from nhj.case import Case, MetricSpec, coordinate_names
from nhj.covariant import Metric
from nhj.diagnostics import ExactError, GibbsDistance, MinValue
from nhj.equations.base import SemiDiscrete
from nhj.equations.fokker_planck import FokkerPlanck
from nhj.equations.learning import (
    diffusion,
    fisher,
    fisher_power_law,
    gibbs_log_weight,
    noise_tensor,
)
from nhj.equations.madelung import NeuralHJ, Vacuum
from nhj.equations.potentials import effective_potential
from nhj.equations.schrodinger import Schrodinger
from nhj.exact import GaussianState, OrnsteinUhlenbeck
from nhj.expressions import to_numpy, to_ufl
from nhj.meshes import boundary_facets, build_mesh
from nhj.schema import CaseError


@dataclass
class Problem:
    """The discrete pieces of a run (no time loop, no I/O).

    Attributes:
        case: The validated case.
        msh: The distributed mesh.
        metric: Covariant operators of g.
        space: Function space of the unknown.
        u0: The initial state (advanced in place by the run).
        bcs: Dirichlet conditions on the unknown.
        equation: The equation object (builds the UFL forms).
        semidiscrete: Its labelled pieces.
        fields: Scalar output fields, name → UFL expression of ``u0``.
        conserved: Functionals whose relative drift the summary reports.
        monitors: Further diagnostics per output step (each has ``columns``
            and returns a dict of them when called with t).
        info: Static facts for the summary.
        stepper: A ready stepper (particles); None means a finite-element
            TimeStepper over ``semidiscrete``.
    """

    case: Case
    msh: Any
    metric: Metric
    space: Any
    u0: Any
    bcs: list[Any]
    equation: Any
    semidiscrete: SemiDiscrete | None
    fields: dict[str, Any]
    conserved: tuple[str, ...]
    monitors: list[Any] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    stepper: Any = None

    @property
    def dofs(self) -> int:
        """Global number of degrees of freedom of the unknown."""
        im = self.space.dofmap.index_map
        return im.size_global * self.space.dofmap.index_map_bs


def coordinates(msh: Any, dim: int) -> dict[str, Any]:
    """x0, x1, x2 as UFL coordinates."""
    x = ufl.SpatialCoordinate(msh)
    return {n: x[i] for i, n in enumerate(coordinate_names(dim))}


def tensor_at(entries: Any, points: np.ndarray) -> np.ndarray:
    """A case tensor (numbers/expressions) at points, shape (n, K, K)."""
    dim = len(entries)
    env = {n: points[:, i] for i, n in enumerate(coordinate_names(dim))}
    T = np.empty((points.shape[0], dim, dim))
    for i, row in enumerate(entries):
        for j, e in enumerate(row):
            T[:, i, j] = e if isinstance(e, float) else to_numpy(e, env)
    return T


def check_spd(entries: Any, msh: Any, field_name: str) -> None:
    """Raise CaseError unless the tensor is SPD at every mesh point (collective)."""
    dim = msh.geometry.dim
    pts = msh.geometry.x[:, :dim]
    where = ""
    if len(pts):
        T = tensor_at(entries, pts)
        good = np.all(np.isfinite(T), axis=(1, 2))
        good[good] = np.linalg.eigvalsh(T[good])[:, 0] > 0
        if not good.all():
            where = f" (e.g. at x = {np.round(pts[np.argmin(good)], 4).tolist()})"
    where = max(msh.comm.allgather(where), key=len)
    if where:
        raise CaseError(
            field_name, "must be symmetric positive definite at every mesh point" + where
        )


def tensor_ufl(entries: Any, msh: Any) -> Any:
    """A case tensor as a UFL matrix."""
    env = coordinates(msh, len(entries))
    return ufl.as_matrix(
        [[e if isinstance(e, float) else to_ufl(e, env) for e in row] for row in entries]
    )


def sqrt_det_at(case: Case, x: np.ndarray) -> np.ndarray | float:
    """√g at points x (shape (3, n), as dolfinx interpolation passes them)."""
    if case.metric.entries is None:
        return 1.0
    G = tensor_at(case.metric.entries, x[: case.dim].T)
    return np.sqrt(np.linalg.det(G))


def make_metric(spec: MetricSpec, msh: Any, quadrature_degree: int | None = None) -> Metric:
    """The metric of the case, checked symmetric positive definite at the mesh points.

    A position-dependent metric integrates with ``quadrature_degree`` points
    (2k + 4 for degree k elements, as the error norms do).
    """
    if spec.entries is None:
        return Metric.flat(msh.geometry.dim)
    check_spd(spec.entries, msh, "metric.g")
    if spec.is_constant:
        return Metric.from_matrix(msh, np.array(spec.entries, dtype=float))
    return Metric.from_ufl(tensor_ufl(spec.entries, msh), quadrature_degree)


def flat_frame(spec: MetricSpec) -> np.ndarray | None:
    """L with Lᵀ L = g for a constant metric (the coordinates y = L x where g is flat)."""
    if spec.entries is None or not spec.is_constant:
        return None
    return np.linalg.cholesky(np.array(spec.entries, dtype=float)).T


def flat_coordinates(case: Case, msh: Any) -> list[Any]:
    """Y = L x in UFL (x itself for a flat or varying metric)."""
    x = ufl.SpatialCoordinate(msh)
    L = flat_frame(case.metric)
    if L is None:
        return [x[i] for i in range(case.dim)]
    return [sum(float(L[i, j]) * x[j] for j in range(case.dim)) for i in range(case.dim)]


def make_loss(case: Case, msh: Any) -> Any:
    """The average loss L̄ as UFL: an expression, or ½ Σ a_i y_i² from curvatures."""
    pot = case.potential
    if pot.curvature is not None:
        y = flat_coordinates(case, msh)
        return sum(0.5 * a * y[i] ** 2 for i, a in enumerate(pot.curvature))
    if pot.loss is not None:
        return to_ufl(pot.loss, {**coordinates(msh, case.dim), **case.parameters.values()})
    return None


def make_potential(case: Case, msh: Any, metric: Metric) -> Any:
    """V as UFL: given, from the loss via (3.6), harmonic ½ m Σ ω_i² y_i², or 0."""
    pot, par = case.potential, case.parameters
    if pot.V is not None:
        return to_ufl(pot.V, {**coordinates(msh, case.dim), **par.values()})
    if pot.has_loss:
        return effective_potential(metric, make_loss(case, msh), par.gamma, par.beta)
    if pot.omega is not None:
        y = flat_coordinates(case, msh)
        return sum(0.5 * par.m * w * w * y[i] ** 2 for i, w in enumerate(pot.omega) if w)
    return 0.0


def initial_values(case: Case, x: np.ndarray) -> np.ndarray:
    """The case's initial density p (expression kind) at points x, checked ≥ 0."""
    env: dict[str, Any] = {n: x[i] for i, n in enumerate(coordinate_names(case.dim))}
    env.update(case.parameters.values())
    p = np.broadcast_to(to_numpy(case.initial.p, env), x.shape[1:])  # type: ignore[arg-type]
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise CaseError("initial.p", "must be finite and >= 0 at every point of the mesh")
    return p


def interpolate_checked(u: fem.Function, values: Callable[[np.ndarray], np.ndarray]) -> None:
    """u.interpolate(values), turning a CaseError on any rank into one on every rank."""
    message = ""
    try:
        u.interpolate(values)
    except CaseError as e:
        message = str(e)
    message = max(u.function_space.mesh.comm.allgather(message), key=len)
    if message:
        field_name, reason = message.split(": ", 1)
        raise CaseError(field_name, reason)


def normalise(u: fem.Function, total: Callable[[Any], Any], power: float) -> None:
    """Scale u so that the functional total(u) = 1 (total is homogeneous of degree ``power``)."""
    comm = u.function_space.mesh.comm
    mass = comm.allreduce(fem.assemble_scalar(fem.form(total(u))), op=MPI.SUM)
    if not mass > 0:
        raise CaseError("initial.p", "has zero mass on the mesh; give a normalisable density")
    u.x.array[:] /= mass ** (1.0 / power)


def boundary_conditions(case: Case, space: Any, default: str, zero: Any) -> list[Any]:
    """Homogeneous Dirichlet conditions on ∂Ω when the case (or the default) asks for them."""
    if (case.boundary.condition or default) != "dirichlet":
        return []
    msh = space.mesh
    dofs = fem.locate_dofs_topological(space, msh.topology.dim - 1, boundary_facets(msh))
    return [fem.dirichletbc(zero, dofs, space)]


def gaussian_state(case: Case) -> GaussianState | None:
    """The Gaussian state of a Schrödinger case ([initial] gaussian or coherent)."""
    init, pot, par = case.initial, case.potential, case.parameters
    if init.kind == "expression":
        return None
    omega = pot.omega if pot.omega is not None else (0.0,) * case.dim
    if init.kind == "coherent":
        if pot.omega is None or min(pot.omega) <= 0:
            raise CaseError(
                "initial.kind",
                "'coherent' needs a harmonic potential with every "
                "potential.omega > 0; use kind = 'gaussian' with a width otherwise",
            )
        width = tuple(float(np.sqrt(par.hbar / (2 * par.m * w))) for w in omega)
    else:
        width = init.width
    return GaussianState(
        init.center, width, init.momentum, omega, par.hbar, par.m, flat_frame(case.metric)
    )


def build_schrodinger(case: Case, msh: Any, metric: Metric) -> Problem:
    """Schrödinger (3.11) with ħ = γ/β, m = 1/γ: ψ = (Re ψ, Im ψ) in P_k×2."""
    par, degree = case.parameters, case.discretisation.degree
    state = gaussian_state(case)
    eq = Schrodinger(metric, make_potential(case, msh, metric), par.hbar, par.m)
    space = fem.functionspace(msh, ("Lagrange", degree, (2,)))
    u0 = fem.Function(space, name="psi")
    if state is not None:
        C = state.coefficients(0.0)
        u0.interpolate(lambda x: np.vstack(state.psi(x, C, backends.NUMPY)))
    else:

        def values(x: np.ndarray) -> np.ndarray:
            R = np.sqrt(initial_values(case, x))
            env = {n: x[i] for i, n in enumerate(coordinate_names(case.dim))}
            S = np.broadcast_to(to_numpy(case.initial.S, {**env, **par.values()}), R.shape)
            return np.vstack((R * np.cos(S / par.hbar), R * np.sin(S / par.hbar)))

        interpolate_checked(u0, values)
        normalise(u0, eq.norm2, 2.0)
    bcs = boundary_conditions(case, space, "dirichlet", np.zeros(2))
    for bc in bcs:  # start from a state with ψ = 0 on ∂Ω, so mass is conserved from t = 0
        bc.set(u0.x.array)
    exact = (
        state is not None
        and case.output.exact
        and case.metric.is_constant
        and case.potential.V is None
        and not case.potential.has_loss
    )
    monitors = [ExactError(u0, state, metric, degree)] if exact else []
    return Problem(
        case,
        msh,
        metric,
        space,
        u0,
        bcs,
        eq,
        eq.semidiscrete(space),
        fields={"p": eq.density(u0), "S": eq.phase(u0)},
        conserved=("mass", "energy"),
        monitors=monitors,
    )


def make_noise(case: Case, msh: Any, metric: Metric) -> Any:
    """κ as UFL: given (checked SPD at the mesh points) or from the power law (2.9)."""
    noise = case.noise
    if noise.kappa is not None:
        check_spd(noise.kappa, msh, "noise.kappa")
        return tensor_ufl(noise.kappa, msh)
    return noise_tensor(metric, noise.alpha, case.parameters.beta)


def mesh_scales(msh: Any) -> tuple[float, float]:
    """(h, ℓ): the largest cell diameter and the domain diameter (collective)."""
    tdim = msh.topology.dim
    n = msh.topology.index_map(tdim).size_local
    h = float(msh.h(tdim, np.arange(n, dtype=np.int32)).max()) if n else 0.0
    x = msh.geometry.x
    lo = x.min(axis=0) if len(x) else np.full(3, np.inf)
    hi = x.max(axis=0) if len(x) else np.full(3, -np.inf)
    # buffer reductions: the pickled allreduce compares whole arrays (ambiguous truth value)
    msh.comm.Allreduce(MPI.IN_PLACE, lo, op=MPI.MIN)
    msh.comm.Allreduce(MPI.IN_PLACE, hi, op=MPI.MAX)
    return msh.comm.allreduce(h, op=MPI.MAX), float(np.linalg.norm(hi - lo))


def vacuum(case: Case, msh: Any, R_max: float) -> Vacuum:
    """The absolute phase diffusion ν_h = ν₀ max R₀ ℓ² (h/ℓ)^{k+1} (h cell size, ℓ domain size)."""
    h, ell = mesh_scales(msh)
    return Vacuum(
        nu=case.vacuum.nu * R_max * ell**2 * (h / ell) ** (case.discretisation.degree + 1)
    )


def wavefunction_error(u: np.ndarray, pred: np.ndarray, hbar: float) -> tuple[float, float]:
    """(max |δψ|, max |ψ|) for nodal (R, S) pairs: |δψ| ≈ |δR| + R|δS|/ħ by (3.10).

    The phase counts only where the amplitude does: a change of S in the
    vacuum is invisible in ψ and must not shrink the time step.
    """
    R, S = u.reshape(-1, 2).T
    dR, dS = (u - pred).reshape(-1, 2).T
    err = np.abs(dR) + np.abs(R * dS) / hbar
    return float(err.max(initial=0.0)), float(np.abs(R).max(initial=0.0))


class NodeGuard:
    """Stops a (p, S) run at a node of ψ: √p changing sign inside the support.

    ψ = √p e^{iS/ħ} (3.10) vanishes at a node and S jumps by πħ across it; the
    amplitude form cannot follow that, the Schrödinger form (3.11) can.
    """

    def __init__(self, u: fem.Function, threshold: float) -> None:
        self.u, self.threshold = u, threshold
        space = u.function_space
        self.n = space.dofmap.index_map.size_local
        self.x = space.tabulate_dof_coordinates()[: self.n, : space.mesh.geometry.dim]

    def __call__(self, t: float) -> str | None:
        """A one-line message if the current state has a node, else None (collective)."""
        comm = self.u.function_space.mesh.comm
        R = self.u.x.array.reshape(-1, 2)[: self.n, 0]
        R_max = comm.allreduce(float(R.max(initial=0.0)), op=MPI.MAX)
        i = int(np.argmin(R)) if len(R) else -1
        lowest = comm.allgather(
            (float(R[i]) if len(R) else np.inf, self.x[i].tolist() if len(R) else None)
        )
        R_min, where = min(lowest, key=lambda p: p[0])
        if R_min >= -self.threshold * R_max:
            return None
        return node_message(where, t)

    def explain(self, where: Any, t: float) -> str:
        """Why a step failed at ``where``: a node in the support, or the vacuum (collective)."""
        comm = self.u.function_space.mesh.comm
        R = self.u.x.array.reshape(-1, 2)[: self.n, 0]
        R_max = comm.allreduce(float(np.abs(R).max(initial=0.0)), op=MPI.MAX)
        if where is None or R_max == 0:
            return ""
        d = np.linalg.norm(self.x - np.asarray(where)[: self.x.shape[1]], axis=1)
        i = int(np.argmin(d)) if len(d) else -1
        near = comm.allgather((float(d[i]), float(R[i])) if len(d) else (np.inf, 0.0))
        level = abs(min(near)[1]) / R_max
        if level < 1e-3:
            at = np.round(np.asarray(where), 4).tolist()
            return (
                f"; it failed in the far tail of p near x = {at} (sqrt(p)/max sqrt(p) = "
                f"{level:.1e}), where S is unresolved or undefined: refine the mesh or raise "
                "vacuum.nu; if it persists, psi has nodes there (interfering tails) and "
                "equation = 'schrodinger' is the form to use"
            )
        return "; " + node_message(where, t, certain=False)


def node_message(where: Any, t: float, certain: bool = True) -> str:
    """The one-line explanation of a run stopped at (or near) a node of ψ."""
    at = "" if where is None else f" near x = {np.round(np.asarray(where), 4).tolist()}"
    what = "the flow reaches a node of psi" if certain else "most likely a node of psi"
    return (
        f"{what}{at} at t = {t:.6g}: p vanishes inside the support and S is undefined "
        "there; use equation = 'schrodinger' for this flow (last good state saved)"
    )


def hydrodynamic_state(case: Case, space: Any, eq: NeuralHJ) -> tuple[fem.Function, Any]:
    """u₀ = (√p₀, S₀) and the exact Gaussian state if the case has one."""
    par = case.parameters
    u0 = fem.Function(space, name="R_S")
    state = gaussian_state(case)
    if state is not None:
        C = state.coefficients(0.0)

        def values(x: np.ndarray) -> np.ndarray:
            A, phase = state.amplitude_phase(x, C, backends.NUMPY)  # unwrapped: S smooth
            return np.vstack((A, par.hbar * phase))

        u0.interpolate(values)
    else:

        def values(x: np.ndarray) -> np.ndarray:
            R = np.sqrt(initial_values(case, x))
            env = {n: x[i] for i, n in enumerate(coordinate_names(case.dim))}
            S = np.broadcast_to(to_numpy(case.initial.S, {**env, **par.values()}), R.shape)
            return np.vstack((R, S))

        interpolate_checked(u0, values)
        comm = space.mesh.comm
        mass = comm.allreduce(fem.assemble_scalar(fem.form(eq.total(u0))), op=MPI.SUM)
        if not mass > 0:
            raise CaseError("initial.p", "has zero mass on the mesh; give a normalisable density")
        u0.x.array.reshape(-1, 2)[:, 0] /= np.sqrt(mass)
    return u0, state


def build_neural_hj(case: Case, msh: Any, metric: Metric) -> Problem:
    """(3.7) + (5.2) for (√p, S) in P_k×2; madelung is the case α = 1 (F = (ħ²/4m) g⁻¹)."""
    from nhj.stepper import AdaptiveStepper, StepControl

    par, degree = case.parameters, case.discretisation.degree
    if case.noise.kappa is None:
        F = fisher_power_law(metric, case.noise.alpha, par.beta, par.gamma)
    else:
        F = fisher(metric, make_noise(case, msh, metric), par.gamma)
    V = make_potential(case, msh, metric)
    space = fem.functionspace(msh, ("Lagrange", degree, (2,)))
    eq = NeuralHJ(metric, V, F, par.gamma, par.hbar)
    u0, state = hydrodynamic_state(case, space, eq)
    n = space.dofmap.index_map.size_local
    R_max = msh.comm.allreduce(float(u0.x.array.reshape(-1, 2)[:n, 0].max(initial=0.0)), op=MPI.MAX)
    eq = replace(eq, vacuum=vacuum(case, msh, R_max))
    bcs = boundary_conditions(case, space.sub(0), "dirichlet", 0.0)
    for bc in bcs:  # √p = 0 on ∂Ω from t = 0, like ψ for (3.11)
        bc.set(u0.x.array)
    sd = eq.semidiscrete(space)
    nl = case.nonlinear
    guard = NodeGuard(u0, nl.node_threshold)
    control = StepControl(
        tolerance=nl.tolerance,
        dt_min=nl.dt_min,
        max_iterations=nl.max_iterations,
        newton_rtol=nl.newton_rtol,
    )
    stepper = AdaptiveStepper(
        sd,
        case.discretisation.scheme,
        u0,
        case.discretisation.dt_used,
        bcs,
        case.solver.petsc_options,
        control,
        guard=guard,
        hint=guard.explain,
        error_norm=partial(wavefunction_error, hbar=par.hbar),
    )
    quantum = case.noise.alpha == 1 and case.noise.kappa is None  # Q_N = Q of (3.9)
    exact = (
        state is not None
        and quantum
        and case.output.exact
        and case.metric.is_constant
        and case.potential.V is None
        and not case.potential.has_loss
    )
    psi = eq.wavefunction(u0)
    monitors: list[Any] = [NewtonMonitor(stepper)]
    if exact:
        monitors.insert(0, ExactError(psi, state, metric, degree, msh=msh, density=eq.density(u0)))
    return Problem(
        case,
        msh,
        metric,
        space,
        u0,
        bcs,
        eq,
        sd,
        fields={"p": eq.density(u0), "S": u0[1], "velocity": eq.velocity(u0)},
        conserved=("mass", "energy"),
        monitors=monitors,
        info={
            "alpha": case.noise.alpha if case.noise.kappa is None else None,
            "vacuum_nu": eq.vacuum.nu,
        },
        stepper=stepper,
    )


class NewtonMonitor:
    """Newton iterations and rejected sub-steps per output step of an adaptive run."""

    columns = ("newton_iterations", "rejected_steps")

    def __init__(self, stepper: Any) -> None:
        self.stepper = stepper

    def __call__(self, t: float) -> dict[str, float]:
        """Iterations of the last output step and rejections so far."""
        return {
            "newton_iterations": self.stepper.last_iterations,
            "rejected_steps": self.stepper.stats["rejected"],
        }


def build_fokker_planck(case: Case, msh: Any, metric: Metric) -> Problem:
    """Covariant Fokker–Planck (2.7): p in P_k, zero flux on ∂Ω by default."""
    par, degree = case.parameters, case.discretisation.degree
    loss = make_loss(case, msh)
    kappa = make_noise(case, msh, metric)
    eq = FokkerPlanck(metric, loss, diffusion(metric, kappa, par.gamma), par.gamma)
    space = fem.functionspace(msh, ("Lagrange", degree))
    u0 = fem.Function(space, name="p")
    init = case.initial
    exact = None
    if init.kind == "gaussian":
        # q is normally distributed: its coordinate density is N, so p = N/√g
        normal = OrnsteinUhlenbeck(
            init.center, init.width, (1.0,) * case.dim, np.eye(case.dim), par.gamma
        )
        C = normal.coefficients(0.0)
        u0.interpolate(lambda x: normal.density(x, C, backends.NUMPY) / sqrt_det_at(case, x))
        if (
            case.potential.curvature is not None
            and case.metric.entries is None
            and case.output.exact
            and (
                case.noise.kappa is None
                or all(isinstance(e, float) for r in case.noise.kappa for e in r)
            )
        ):
            K = (
                np.eye(case.dim) / par.beta
                if case.noise.kappa is None
                else np.array(case.noise.kappa, dtype=float)
            )
            exact = OrnsteinUhlenbeck(
                init.center, init.width, case.potential.curvature, K, par.gamma
            )
    else:
        interpolate_checked(u0, lambda x: initial_values(case, x))
        normalise(u0, eq.total, 1.0)
    bcs = boundary_conditions(case, space, "zero_flux", 0.0)
    for bc in bcs:
        bc.set(u0.x.array)
    monitors: list[Any] = [MinValue(u0, "min_p")]
    if exact is not None:
        monitors.append(ExactError(u0, exact, metric, degree))
    if case.noise.alpha == 1 and case.noise.kappa is None and not bcs:
        logw = gibbs_log_weight(loss, par.gamma, par.beta)
        monitors.append(GibbsDistance(u0, logw, loss, par.gamma / (2 * par.beta), metric, degree))
    if case.langevin is not None:
        from nhj.reference import LangevinComparison

        monitors.append(LangevinComparison(case, u0, metric))
    return Problem(
        case,
        msh,
        metric,
        space,
        u0,
        bcs,
        eq,
        eq.semidiscrete(space),
        fields={"p": u0},
        conserved=("mass",) if not bcs else (),
        monitors=monitors,
        info={"alpha": case.noise.alpha},
    )


def build_langevin(case: Case, msh: Any, metric: Metric) -> Problem:
    """Particles of (2.5) alone: moments with standard errors and a histogram density."""
    from nhj.reference import (
        HistogramDensity,
        LangevinComparison,
        ParticleMoments,
        ParticleStepper,
    )

    space = fem.functionspace(msh, ("DG", 0))
    density = fem.Function(space, name="p")
    probe = fem.Function(fem.functionspace(msh, ("Lagrange", 1)))  # bins need a p to compare
    comparison = LangevinComparison(case, probe, metric)
    mid = np.mean(msh.geometry.x[msh.geometry.dofmaps[0]], axis=1)
    sqrt_g = np.broadcast_to(sqrt_det_at(case, mid.T), (len(mid),)).astype(float)
    update = HistogramDensity(comparison, density, sqrt_g)
    update()
    ensemble = comparison.ensemble
    spec = case.langevin
    assert spec is not None  # the case schema gives langevin runs a [langevin] section
    disc = case.discretisation
    stepper = ParticleStepper(ensemble, disc.dt_used, spec.dt or disc.dt_used / 4, update)
    return Problem(
        case,
        msh,
        metric,
        space,
        density,
        [],
        ensemble.model,
        None,
        fields={"p": density},
        conserved=("mass",),
        monitors=[ParticleMoments(ensemble, case.dim)],
        info={"alpha": case.noise.alpha, "particles": spec.particles, "seed": spec.seed},
        stepper=stepper,
    )


BUILDERS: dict[str, Callable[[Case, Any, Metric], Problem]] = {
    "schrodinger": build_schrodinger,
    "fokker_planck": build_fokker_planck,
    "langevin": build_langevin,
    "madelung": build_neural_hj,
    "neural_hj": build_neural_hj,
}


def build(case: Case, comm: MPI.Comm) -> Problem:
    """All discrete pieces of ``case`` on ``comm``; raises CaseError on bad input."""
    msh = build_mesh(case.mesh, comm)
    metric = make_metric(case.metric, msh, 2 * case.discretisation.degree + 4)
    return BUILDERS[case.equation](case, msh, metric)
