"""Turn a validated case into the discrete objects of one run.

Small, named builders — mesh, metric, potential, initial state, exact
solution — composed by :func:`build`. Everything that depends on the mesh and
can still be wrong (an SPD metric at the mesh points, a negative initial
density) is checked here, before any result directory exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem

from nhj import backends
from nhj.case import Case, MetricSpec, coordinate_names
from nhj.covariant import Metric
from nhj.equations.potentials import effective_potential
from nhj.equations.schrodinger import Schrodinger
from nhj.exact import GaussianState
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
        V: The potential as a UFL expression.
        space: Function space of the unknown.
        u0: The initial state.
        bcs: Dirichlet conditions on the unknown.
        equation: The equation object (builds the UFL forms).
        exact: The exact solution, or None.
    """

    case: Case
    msh: Any
    metric: Metric
    V: Any
    space: Any
    u0: Any
    bcs: list[Any]
    equation: Any
    exact: GaussianState | None

    @property
    def dofs(self) -> int:
        """Global number of degrees of freedom of the unknown."""
        im = self.space.dofmap.index_map
        return im.size_global * self.space.dofmap.index_map_bs


def metric_matrix_at(spec: MetricSpec, points: np.ndarray) -> np.ndarray:
    """g_{μν} at points (shape (n, K, K)) from the case entries, in numpy."""
    dim = len(spec.entries)  # type: ignore[arg-type]
    env = {n: points[:, i] for i, n in enumerate(coordinate_names(dim))}
    G = np.empty((points.shape[0], dim, dim))
    for i, row in enumerate(spec.entries):  # type: ignore[union-attr]
        for j, e in enumerate(row):
            G[:, i, j] = e if isinstance(e, float) else to_numpy(e, env)
    return G


def make_metric(spec: MetricSpec, msh: Any) -> Metric:
    """The metric of the case, checked symmetric positive definite at the mesh points."""
    dim = msh.geometry.dim
    if spec.entries is None:
        return Metric.flat(dim)
    pts = msh.geometry.x[:, :dim]
    G = metric_matrix_at(spec, pts) if len(pts) else np.zeros((0, dim, dim))
    ok = bool(np.all(np.isfinite(G))) and (
        len(G) == 0 or bool(np.all(np.linalg.eigvalsh(G)[:, 0] > 0))
    )
    if not msh.comm.allreduce(ok, op=MPI.LAND):
        bad = np.flatnonzero(~np.all(np.linalg.eigvalsh(np.nan_to_num(G)) > 0, axis=1))
        where = f" (e.g. at x = {np.round(pts[bad[0]], 4).tolist()})" if len(bad) else ""
        where = msh.comm.allreduce([where], op=MPI.SUM)
        raise CaseError(
            "metric.g",
            "must be symmetric positive definite at every mesh point" + max(where, key=len),
        )
    if spec.is_constant:
        return Metric.from_matrix(msh, np.array(spec.entries, dtype=float))
    x = ufl.SpatialCoordinate(msh)
    env = {n: x[i] for i, n in enumerate(coordinate_names(dim))}
    return Metric.from_ufl(
        ufl.as_matrix([[e if isinstance(e, float) else to_ufl(e, env) for e in row]
                       for row in spec.entries])  # type: ignore[union-attr]
    )


def flat_frame(spec: MetricSpec, dim: int) -> np.ndarray | None:
    """L with Lᵀ L = g for a constant metric (the coordinates y = L x where g is flat)."""
    if spec.entries is None:
        return None
    G = np.array(spec.entries, dtype=float)
    return np.linalg.cholesky(G).T


def make_exact(case: Case) -> GaussianState | None:
    """The Gaussian state of the case if [initial] is one, else None.

    It is the exact solution when additionally the metric is constant and V is
    absent or harmonic (``potential.omega``); :func:`has_exact` tells which.
    """
    init, pot, par = case.initial, case.potential, case.parameters
    if init.kind == "expression":
        return None
    dim = case.dim
    omega = pot.omega if pot.omega is not None else (0.0,) * dim
    if init.kind == "coherent":
        if pot.omega is None or min(pot.omega) <= 0:
            raise CaseError(
                "initial.kind",
                "'coherent' needs a harmonic potential with every potential.omega > 0; "
                "use kind = 'gaussian' with a width otherwise",
            )
        width = tuple(float(np.sqrt(par.hbar / (2 * par.m * w))) for w in omega)
    else:
        width = init.width
    L = flat_frame(case.metric, dim) if case.metric.is_constant else None
    return GaussianState(init.center, width, init.momentum, omega, par.hbar, par.m, L)


def has_exact(case: Case) -> bool:
    """Whether to compare with the Gaussian state (constant g, V = 0 or harmonic, not disabled)."""
    return (
        case.output.exact
        and case.initial.kind != "expression"
        and case.metric.is_constant
        and case.potential.V is None
        and case.potential.loss is None
    )


def make_potential(case: Case, msh: Any, metric: Metric, state: GaussianState | None) -> Any:
    """V as UFL: given, from the loss via (3.6), harmonic ½ m Σ ω_i² y_i², or 0."""
    pot, par = case.potential, case.parameters
    x = ufl.SpatialCoordinate(msh)
    env: dict[str, Any] = {n: x[i] for i, n in enumerate(coordinate_names(case.dim))}
    env.update(par.values())
    if pot.V is not None:
        return to_ufl(pot.V, env)
    if pot.loss is not None:
        return effective_potential(metric, to_ufl(pot.loss, env), par.gamma, par.beta)
    if pot.omega is not None:
        L = flat_frame(case.metric, case.dim) if case.metric.is_constant else None
        harmonic = GaussianState((0.0,) * case.dim, (1.0,) * case.dim, (0.0,) * case.dim,
                                 pot.omega, par.hbar, par.m, L)
        return harmonic.potential(x, backends.UFL)
    return fem.Constant(msh, 0.0)


def initial_psi(case: Case, state: GaussianState | None, metric: Metric, space: Any) -> Any:
    """ψ(·, 0) interpolated into the (Re ψ, Im ψ) space, normalised for expression states."""
    u0 = fem.Function(space, name="psi")
    if state is not None:
        C = state.coefficients(0.0)
        u0.interpolate(lambda x: np.vstack(state.psi(x, C, backends.NUMPY)))
        return u0
    init, par = case.initial, case.parameters
    names = coordinate_names(case.dim)

    def values(x: np.ndarray) -> np.ndarray:
        env: dict[str, Any] = {n: x[i] for i, n in enumerate(names)}
        env.update(par.values())
        p = np.broadcast_to(to_numpy(init.p, env), x.shape[1:])  # type: ignore[arg-type]
        if np.any(p < 0) or not np.all(np.isfinite(p)):
            raise CaseError("initial.p", "must be finite and >= 0 at every point of the mesh")
        S = np.broadcast_to(to_numpy(init.S, env), x.shape[1:])  # type: ignore[arg-type]
        R = np.sqrt(p)
        return np.vstack((R * np.cos(S / par.hbar), R * np.sin(S / par.hbar)))

    ok = True
    try:
        u0.interpolate(values)
    except CaseError:
        ok = False
    if not space.mesh.comm.allreduce(ok, op=MPI.LAND):
        raise CaseError("initial.p", "must be finite and >= 0 at every point of the mesh")
    mass = space.mesh.comm.allreduce(
        fem.assemble_scalar(fem.form(metric.volume(ufl.inner(u0, u0)))), op=MPI.SUM
    )
    if not mass > 0:
        raise CaseError("initial.p", "has zero mass on the mesh; give a normalisable density")
    u0.x.array[:] /= np.sqrt(mass)
    return u0


def build(case: Case, comm: MPI.Comm) -> Problem:
    """All discrete pieces of ``case`` on ``comm``; raises CaseError on bad input."""
    msh = build_mesh(case.mesh, comm)
    metric = make_metric(case.metric, msh)
    state = make_exact(case)
    V = make_potential(case, msh, metric, state)
    space = fem.functionspace(msh, ("Lagrange", case.discretisation.degree, (2,)))
    u0 = initial_psi(case, state, metric, space)
    dofs = fem.locate_dofs_topological(space, msh.topology.dim - 1, boundary_facets(msh))
    bcs = [fem.dirichletbc(np.zeros(2), dofs, space)]
    for bc in bcs:  # start from a state that satisfies ψ = 0 on ∂Ω, so mass is conserved from t = 0
        bc.set(u0.x.array)
    par = case.parameters
    eq = Schrodinger(metric, V, par.hbar, par.m)
    return Problem(case, msh, metric, V, space, u0, bcs, eq, state if has_exact(case) else None)
