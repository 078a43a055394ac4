"""Case → UFL pieces that several builders share: mesh, metric, loss, V, initial data.

Everything that depends on the mesh and can still be wrong (an SPD metric or
noise tensor at the mesh points, a negative or zero initial density) is
checked here, before any result directory exists, and raised as a CaseError
naming the field. The formulas themselves live in :mod:`nhj.equations`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem

from nhj.covariant import Metric
from nhj.equations.learning import noise_tensor
from nhj.equations.potentials import effective_potential, harmonic
from nhj.exact import GaussianState
from nhj.expressions import to_numpy, to_ufl
from nhj.meshes import MeshSpec, boundary_facets, build_mesh, check_dofs
from nhj.schema import CaseError
from nhj.sections import Case, MetricSpec
from nhj.support import support_geo
from nhj.tensors import check_spd, coordinate_names, coordinates, flat_frame, tensor_ufl


def mesh_and_metric(case: Case, comm: MPI.Comm) -> tuple[Any, Metric]:
    """The case's mesh and metric (collective); the input is checked on the mesh first.

    A gmsh mesh's size (mesh.max_dofs), V and an expression loss finite at the mesh
    points, a Gaussian's centre inside the domain: see :func:`check_on_mesh`.
    """
    msh = build_mesh(support_domain(case) if case.mesh.type == "support" else case.mesh, comm)
    if case.mesh.is_gmsh:
        cells = msh.topology.index_map(msh.topology.dim).size_global
        check_dofs(case.mesh, case.discretisation.degree, case.equation, cells)
    check_on_mesh(case, msh)
    return msh, make_metric(case.metric, msh, 2 * case.discretisation.degree + 4)


def support_domain(case: Case) -> MeshSpec:
    """The case's ``type = "support"`` mesh with its .geo: the sweep of its Gaussian state.

    The level sets are those of the exact state (nhj/exact.py), so the case must be one
    that state solves (:func:`gaussian_solves`) in Cartesian
    coordinates (nhj/support.py).
    """
    state = gaussian_state(case)
    if state is None or not gaussian_solves(case) or state.L is not None or state.dim != 2:
        raise CaseError(
            "mesh.type",
            "'support' needs a 2D Gaussian state (kind gaussian/coherent, V harmonic or 0, "
            "constant diagonal g); else use 'gmsh'",
        )
    return replace(case.mesh, text=support_geo(state, case.discretisation.t_end, case.mesh.tail))


def check_on_mesh(case: Case, msh: Any) -> None:
    """V and an expression loss finite at every mesh point; a centre inside the domain.

    ``V = "sqrt(x0)"`` on x0 < 0 or ``loss = "x0/0"`` would otherwise reach the
    solver as NaN (collective: every rank raises the same CaseError).
    """
    dim = case.dim
    x = msh.geometry.x[:, :dim].T
    env: dict[str, Any] = {n: x[i] for i, n in enumerate(coordinate_names(dim))}
    env.update(case.parameters.values())
    problem = ""
    for name in ("V", "loss"):
        expr = getattr(case.potential, name)
        if expr is None or not x.shape[1]:
            continue
        with np.errstate(all="ignore"):
            values = np.broadcast_to(to_numpy(expr, env), x.shape[1:])
        bad = ~np.isfinite(values)
        if bad.any():
            at = np.round(x[:, int(np.argmax(bad))], 4).tolist()
            problem = f"potential.{name}: must be finite at every mesh point (not at x = {at})"
            break
    lo, hi = x.min(axis=1) if x.size else None, x.max(axis=1) if x.size else None
    los = [a for a in msh.comm.allgather(lo) if a is not None]
    his = [a for a in msh.comm.allgather(hi) if a is not None]
    lower, upper = np.min(los, axis=0), np.max(his, axis=0)
    center = case.initial.center
    if not problem and case.initial.kind != "expression" and len(center) == dim:
        tol = 1e-12 * float(np.max(upper - lower))
        if np.any(np.array(center) < lower - tol) or np.any(np.array(center) > upper + tol):
            problem = (
                f"initial.center: {list(center)} lies outside the domain "
                f"[{np.round(lower, 6).tolist()}, {np.round(upper, 6).tolist()}]"
            )
    problem = max(msh.comm.allgather(problem), key=len)
    if problem:
        field_name, reason = problem.split(": ", 1)
        raise CaseError(field_name, reason)


def shifted_log_weight(logw: Any, space: Any) -> Any:
    """log w − max log w (over the dofs of ``space``, where |max| > 100): no overflow.

    The Gibbs density e^{log w}/∫e^{log w} is unchanged (log-sum-exp); a loss with a
    constant offset of ±400 would otherwise give Z = 0 or inf (collective).
    """
    f = fem.Function(space)
    f.interpolate(fem.Expression(logw, space.element.interpolation_points))
    n = space.dofmap.index_map.size_local
    top = float(f.x.array[:n].max()) if n else -np.inf
    top = space.mesh.comm.allreduce(top, op=MPI.MAX)
    return logw - top if np.isfinite(top) and abs(top) > 100 else logw


def make_metric(spec: MetricSpec, msh: Any, quadrature_degree: int | None = None) -> Metric:
    """The metric of the case, checked symmetric positive definite at the mesh points.

    A position-dependent metric integrates with ``quadrature_degree`` points
    (2k + 4 for degree k elements, as the error norms do): UFL's own estimate
    for inv(g) and √det g is far higher and 3.5× slower.
    """
    if spec.entries is None:
        return Metric.flat(msh.geometry.dim)
    check_spd(spec.entries, msh, "metric.g")
    if spec.is_constant:
        return Metric.from_matrix(msh, np.array(spec.entries, dtype=float))
    return Metric.from_ufl(tensor_ufl(spec.entries, msh), quadrature_degree)


def flat_coordinates(case: Case, msh: Any) -> list[Any]:
    """y = L x in UFL (x itself for a flat or varying metric)."""
    x = ufl.SpatialCoordinate(msh)
    L = flat_frame(case.metric.entries)
    if L is None:
        return [x[i] for i in range(case.dim)]
    return [sum(float(L[i, j]) * x[j] for j in range(case.dim)) for i in range(case.dim)]


def make_loss(case: Case, msh: Any) -> Any:
    """The average loss L̄ as UFL: an expression, or ½ Σ a_i y_i² from curvatures."""
    pot = case.potential
    if pot.curvature is not None:
        return harmonic(pot.curvature, flat_coordinates(case, msh))
    if pot.loss is not None:
        loss = to_ufl(pot.loss, {**coordinates(msh, case.dim), **case.parameters.values()})
        if not ufl.domain.extract_domains(loss):  # a constant loss: no drift, flat Gibbs
            return fem.Constant(msh, float(to_numpy(pot.loss, case.parameters.values())))
        return loss
    return None


def _on_mesh(V: Any, msh: Any) -> Any:
    """A V without a domain (a number, e.g. from a constant loss) as 0.0 or a Constant."""
    if isinstance(V, (int, float)) or not ufl.domain.extract_domains(V):
        value = float(V)
        return 0.0 if value == 0 else fem.Constant(msh, value)
    return V


def make_potential(case: Case, msh: Any, metric: Metric) -> Any:
    """V as UFL: given, from the loss via (3.6), harmonic ½ m Σ ω_i² y_i², or 0."""
    pot, par = case.potential, case.parameters
    if pot.V is not None:
        return _on_mesh(to_ufl(pot.V, {**coordinates(msh, case.dim), **par.values()}), msh)
    if pot.has_loss:
        return _on_mesh(effective_potential(metric, make_loss(case, msh), par.gamma, par.beta), msh)
    if pot.omega is not None:
        return harmonic([par.m * w * w for w in pot.omega], flat_coordinates(case, msh))
    return 0.0


def make_noise(case: Case, msh: Any, metric: Metric) -> Any:
    """κ as UFL: given (checked SPD at the mesh points) or from the power law (2.9)."""
    noise = case.noise
    if noise.kappa is not None:
        check_spd(noise.kappa, msh, "noise.kappa")
        return tensor_ufl(noise.kappa, msh)
    try:
        return noise_tensor(metric, noise.alpha, case.parameters.beta)
    except ValueError as e:
        raise CaseError("noise.alpha", str(e)) from None


def initial_values(case: Case, x: np.ndarray) -> np.ndarray:
    """The case's initial density p (expression kind) at points x, checked ≥ 0."""
    env: dict[str, Any] = {n: x[i] for i, n in enumerate(coordinate_names(case.dim))}
    env.update(case.parameters.values())
    with np.errstate(all="ignore"):
        p = np.broadcast_to(to_numpy(case.initial.p, env), x.shape[1:])  # type: ignore[arg-type]
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise CaseError("initial.p", "must be finite and >= 0 at every point of the mesh")
    return p


def initial_phase(case: Case, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The case's initial phase S (expression kind) at points x."""
    env: dict[str, Any] = {n: x[i] for i, n in enumerate(coordinate_names(case.dim))}
    env.update(case.parameters.values())
    with np.errstate(all="ignore"):
        S = np.broadcast_to(to_numpy(case.initial.S, env), shape)  # type: ignore[arg-type]
    if not np.all(np.isfinite(S)):
        raise CaseError("initial.S", "must be finite at every point of the mesh")
    return S


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


def initial_mass(u: fem.Function, total: Callable[[Any], Any]) -> float:
    """The functional total(u) of the initial state, checked > 0 (collective)."""
    comm = u.function_space.mesh.comm
    mass = comm.allreduce(fem.assemble_scalar(fem.form(total(u))), op=MPI.SUM)
    if not mass > 0:
        raise CaseError("initial.p", "has zero mass on the mesh; give a normalisable density")
    return float(mass)


def normalise(u: fem.Function, total: Callable[[Any], Any], power: float) -> None:
    """Scale u so that the functional total(u) = 1 (total is homogeneous of degree ``power``)."""
    u.x.array[:] /= initial_mass(u, total) ** (1.0 / power)


def boundary_conditions(case: Case, space: Any, default: str, zero: Any) -> list[Any]:
    """Homogeneous Dirichlet conditions on ∂Ω when the case (or the default) asks for them."""
    if (case.boundary.condition or default) != "dirichlet":
        return []
    msh = space.mesh
    dofs = fem.locate_dofs_topological(space, msh.topology.dim - 1, boundary_facets(msh))
    return [fem.dirichletbc(zero, dofs, space)]


def gaussian_state(case: Case) -> GaussianState | None:
    """The Gaussian state of a wave case ([initial] gaussian or coherent), or None."""
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
        init.center, width, init.momentum, omega, par.hbar, par.m, flat_frame(case.metric.entries)
    )


def gaussian_solves(case: Case) -> bool:
    """Whether the Gaussian state solves the case: a Gaussian p₀, V harmonic or 0, g constant."""
    return (
        case.initial.kind != "expression"
        and case.metric.is_constant
        and case.potential.V is None
        and not case.potential.has_loss
    )


def gaussian_exact(case: Case) -> bool:
    """Whether the Gaussian state solves the case and the case asks for it (output.exact)."""
    return case.output.exact and gaussian_solves(case)


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


def owned_max(u: fem.Function, component: int, size: int) -> float:
    """max over the owned dofs of component ``component`` of a blocked function (collective)."""
    n = u.function_space.dofmap.index_map.size_local
    local = float(u.x.array.reshape(-1, size)[:n, component].max(initial=0.0))
    return float(u.function_space.mesh.comm.allreduce(local, op=MPI.MAX))
