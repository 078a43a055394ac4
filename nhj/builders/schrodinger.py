"""Builder and registry entry of the Schrödinger equation (3.11), ħ = γ/β, m = 1/γ."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem, mesh

from nhj import backends
from nhj.builders.common import (
    boundary_conditions,
    gaussian_exact,
    gaussian_state,
    initial_phase,
    initial_values,
    interpolate_checked,
    make_metric,
    make_potential,
    normalise,
)
from nhj.covariant import Metric
from nhj.diagnostics import ExactError
from nhj.equations.potentials import harmonic
from nhj.equations.schrodinger import Schrodinger
from nhj.exact import GaussianState
from nhj.problem import Equation, Problem
from nhj.schema import CaseError
from nhj.sections import Case
from nhj.separable import AxisFactor
from nhj.timeschemes import exact_in_time


def wave_initial_state(case: Case, u0: fem.Function, state: GaussianState | None) -> bool:
    """Interpolate ψ₀ = √p₀ e^{iS₀/ħ} (3.10) into u0; whether it still needs normalising."""
    hbar = case.parameters.hbar
    if state is not None:
        C = state.coefficients(0.0)
        u0.interpolate(lambda x: np.vstack(state.psi(x, C, backends.NUMPY)))
        return False

    def values(x: np.ndarray) -> np.ndarray:
        R = np.sqrt(initial_values(case, x))
        S = initial_phase(case, x, R.shape)
        return np.vstack((R * np.cos(S / hbar), R * np.sin(S / hbar)))

    interpolate_checked(u0, values)
    return True


def build(case: Case, msh: Any, metric: Metric) -> Problem:
    """ψ = (Re ψ, Im ψ) in P_k×2, ψ = 0 on ∂Ω unless the case says zero_flux."""
    par, degree = case.parameters, case.discretisation.degree
    state = gaussian_state(case)
    eq = Schrodinger(metric, make_potential(case, msh, metric), par.hbar, par.m)
    space = fem.functionspace(msh, ("Lagrange", degree, (2,)))
    u0 = fem.Function(space, name="psi")
    if wave_initial_state(case, u0, state):
        normalise(u0, eq.norm2, 2.0)
    bcs = boundary_conditions(case, space, "dirichlet", np.zeros(2))
    for bc in bcs:  # start from a state with ψ = 0 on ∂Ω, so mass is conserved from t = 0
        bc.set(u0.x.array)
    monitors = [ExactError(u0, state, metric, degree)] if exact(case) else []
    sd = eq.semidiscrete(space)
    if exact_in_time(case.discretisation.scheme):
        sd = replace(sd, factors=axis_factors(case, bool(bcs)))
    return Problem(
        case, msh, metric, space, u0, bcs, eq, sd,
        fields={"p": eq.density(u0), "S": eq.phase(u0)},
        conserved=("mass", "energy"),
        monitors=monitors,
    )  # fmt: skip


def exact(case: Case) -> bool:
    """The Gaussian/coherent state of :mod:`nhj.exact` solves (3.11) with harmonic or zero V."""
    return gaussian_exact(case)


TENSOR_CELLS = ("quadrilateral", "hexahedron")
#: Nodes per axis the exact propagator accepts: it keeps dense n×n factors (three complex
#: ones, 16 n² bytes each: 0.4 GB at 3000) and solves a dense eigenproblem, O(n³) (seconds
#: at 3000, hours at 4·10⁴, where a fine 1D mesh would otherwise take the machine down).
MAX_AXIS_NODES = 3000


def separable_rules(case: Case) -> None:
    """A scheme exact in time needs H to be a Kronecker sum of 1D operators (nhj/separable.py).

    That holds on an interval for any V and g, and on a rectangle or box of quadrilateral or
    hexahedral cells (Q_k: products of 1D nodes) for a constant diagonal g and V harmonic
    (separable in y = L x) or absent. The case is refused, naming the field, otherwise.
    """
    if not exact_in_time(case.discretisation.scheme):
        return
    name, msh = case.discretisation.scheme, case.mesh
    if msh.type != "interval" and not (
        msh.type in ("rectangle", "box") and msh.cell in TENSOR_CELLS
    ):
        raise CaseError(
            "mesh",
            f"scheme {name!r} needs a tensor-product mesh: type 'interval', or 'rectangle'/'box' "
            f"with cell = 'quadrilateral'/'hexahedron' (got type {msh.type!r}, cell {msh.cell!r})",
        )
    nodes = [case.discretisation.degree * n + 1 for n in msh.cells]
    if max(nodes) > MAX_AXIS_NODES:
        raise CaseError(
            "mesh.cells",
            f"scheme {name!r} keeps a dense matrix per axis: at most {MAX_AXIS_NODES} nodes per "
            f"axis (degree x cells + 1), got {max(nodes)}; use fewer cells or gauss3",
        )
    if case.dim == 1:
        return
    entries = case.metric.entries
    if entries is not None and (
        not case.metric.is_constant
        or any(entries[i][j] != 0 for i in range(case.dim) for j in range(case.dim) if i != j)
    ):
        raise CaseError(
            "metric.g",
            f"scheme {name!r} in {case.dim}D needs a constant diagonal metric (or none)",
        )
    pot = case.potential
    if pot.V is not None or pot.has_loss:
        raise CaseError(
            "potential",
            f"scheme {name!r} in {case.dim}D needs a separable V: potential.omega or no "
            "potential (V and loss may couple the axes)",
        )


def axis_factors(case: Case, dirichlet: bool) -> tuple[AxisFactor, ...]:
    """The (3.11) operator of ``case`` on each axis: a 1D mesh, its metric, its part of V.

    Built on COMM_SELF: the factors are small and every rank holds them whole. In 1D the
    factor is the case itself; in 2D/3D axis i carries g_ii and ½ m ω_i² y_i², y_i = √g_ii x_i
    (:func:`separable_rules` has checked that the case separates).
    """
    par, spec, degree = case.parameters, case.mesh, case.discretisation.degree
    factors = []
    for i in range(case.dim):
        line = mesh.create_interval(MPI.COMM_SELF, spec.cells[i], [spec.lower[i], spec.upper[i]])
        if case.dim == 1:
            metric = make_metric(case.metric, line, 2 * degree + 4)
            V = make_potential(case, line, metric)
        else:
            g = 1.0 if case.metric.entries is None else float(case.metric.entries[i][i])
            metric = Metric.from_matrix(line, np.array([[g]]))
            omega = case.potential.omega
            x = ufl.SpatialCoordinate(line)[0]
            V = harmonic([par.m * omega[i] ** 2], [np.sqrt(g) * x]) if omega else 0.0
        eq = Schrodinger(metric, V, par.hbar, par.m)
        space = fem.functionspace(line, ("Lagrange", degree))
        w, v = ufl.TrialFunction(space), ufl.TestFunction(space)
        factors.append(AxisFactor(space, eq.h(w, v), eq.mass(None, w, v), dirichlet))
    return tuple(factors)


ENTRY = Equation(
    name="schrodinger",
    summary="Schrödinger (3.11) with hbar = gamma/beta, m = 1/gamma",
    build=build,
    stepper="linear",
    default_scheme="crank_nicolson",
    rules=separable_rules,
    exact=exact,
    exact_schemes=("exponential",),
)
