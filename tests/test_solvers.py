"""ConstantMatrixProblem: the right-hand side by stored products b = Σ_c (∂L/∂c) c.

Each test compares a solve against a fresh LinearProblem with the same forms, which
assembles L itself; both use the same LU, so they agree to round-off (1e-11 relative:
the products sum the same quadrature in another order, a few ulps per entry times
the condition of the mass-plus-stiffness matrix, ~10² here). The cases cover when the
products may be used and when they must not be.
"""

from __future__ import annotations

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem, mesh
from dolfinx.fem import petsc as fem_petsc

from nhj.solvers import ConstantMatrixProblem

LU = {"ksp_type": "preonly", "pc_type": "lu"}
RTOL = 1e-11


def _space():
    msh = mesh.create_unit_square(MPI.COMM_WORLD, 8, 8)
    return msh, fem.functionspace(msh, ("Lagrange", 2))


def _reference(F, V, bcs):
    """Solve the same F with a freshly assembled right-hand side."""
    u = fem.Function(V)
    problem = fem_petsc.LinearProblem(
        ufl.lhs(F), ufl.rhs(F), u=u, bcs=bcs, petsc_options=LU, petsc_options_prefix="ref_"
    )
    problem.solve()
    return u


def _rel(a: fem.Function, b: fem.Function) -> float:
    comm = a.function_space.mesh.comm
    n = a.x.index_map.size_local * a.function_space.dofmap.index_map_bs
    d = comm.allreduce(float(np.sum((a.x.array[:n] - b.x.array[:n]) ** 2)))
    s = comm.allreduce(float(np.sum(b.x.array[:n] ** 2)))
    return float(np.sqrt(d / s))


def _heat(V, rhs):
    """One implicit heat step (M + dt K) u = rhs(u0, v), u0 a smooth bump."""
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    u0 = fem.Function(V)
    u0.interpolate(lambda x: np.exp(-10 * ((x[0] - 0.4) ** 2 + (x[1] - 0.6) ** 2)))
    dt = fem.Constant(V.mesh, 0.01)
    F = u * v * ufl.dx + dt * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - rhs(u0, v)
    return F, u0, dt


@pytest.mark.mpi
def test_linear_rhs_uses_products_and_matches_assembly() -> None:
    _, V = _space()
    F, u0, _ = _heat(V, lambda u0, v: u0 * v * ufl.dx)
    out = fem.Function(V)
    problem = ConstantMatrixProblem(F, out, [], "t1_", LU)
    assert problem.rhs_mode == "unverified"
    for _step in range(3):  # the state changes each step: the products must follow it
        problem.solve()
        assert _rel(out, _reference(F, V, [])) < RTOL
        u0.x.array[:] = out.x.array
    assert problem.rhs_mode == "products"


def test_constant_only_in_rhs_is_assembled() -> None:
    """A Constant in L but not in the matrix may change after the first solve."""
    msh, V = _space()
    k = fem.Constant(msh, 1.0)
    F, _, _ = _heat(V, lambda u0, v: k * u0 * v * ufl.dx)
    out = fem.Function(V)
    problem = ConstantMatrixProblem(F, out, [], "t2_", LU)
    assert problem.rhs_mode == "assembly"
    problem.solve()
    k.value = 3.0
    problem.solve()
    assert _rel(out, _reference(F, V, [])) < RTOL


def test_nonlinear_rhs_falls_back_after_the_check() -> None:
    """L = u0² v is not Σ B_c c (that is 2L): the first-solve check must reject it."""
    _, V = _space()
    F, u0, _ = _heat(V, lambda u0, v: u0 * u0 * v * ufl.dx)
    out = fem.Function(V)
    problem = ConstantMatrixProblem(F, out, [], "t3_", LU)
    problem.solve()
    assert problem.rhs_mode == "assembly"
    assert _rel(out, _reference(F, V, [])) < RTOL
    u0.x.array[:] = out.x.array
    problem.solve()
    assert _rel(out, _reference(F, V, [])) < RTOL


def test_zero_state_postpones_the_check() -> None:
    """A zero L agrees with 2L too: the check waits for a nonzero right-hand side."""
    _, V = _space()
    F, u0, _ = _heat(V, lambda u0, v: u0 * u0 * v * ufl.dx)
    saved = u0.x.array.copy()
    u0.x.array[:] = 0.0
    out = fem.Function(V)
    problem = ConstantMatrixProblem(F, out, [], "t4_", LU)
    problem.solve()
    assert problem.rhs_mode == "unverified"
    u0.x.array[:] = saved
    problem.solve()
    assert problem.rhs_mode == "assembly"
    assert _rel(out, _reference(F, V, [])) < RTOL


def test_inhomogeneous_dirichlet_is_assembled() -> None:
    """Lifting adds -A g to b, which no product of L's Functions gives."""
    msh, V = _space()
    F, _, _ = _heat(V, lambda u0, v: u0 * v * ufl.dx)
    msh.topology.create_connectivity(1, 2)
    facets = mesh.exterior_facet_indices(msh.topology)
    bc = fem.dirichletbc(fem.Constant(msh, 0.5), fem.locate_dofs_topological(V, 1, facets), V)
    out = fem.Function(V)
    problem = ConstantMatrixProblem(F, out, [bc], "t5_", LU)
    assert problem.rhs_mode == "assembly"
    problem.solve()
    assert _rel(out, _reference(F, V, [bc])) < RTOL
