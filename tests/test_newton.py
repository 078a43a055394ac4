"""nhj.solvers.NewtonSolver stops a diverging solve early, and only a diverging one.

F(u; v) = ∫ atan(u) v dx on P1: from a constant start u₀ every iterate stays constant
(atan of a constant is constant, so the update solves M du = atan(u) M 1 / (1 + u²)),
and the solve is scalar (chord-)Newton on atan, whose basin is |u₀| < 1.3917 (the root of
2u = (1 + u²) atan u). Outside it the iterates alternate in sign and grow, the classic
example of Newton's divergence; inside it they converge cubically to 0 (atan'' (0) = 0).
The numpy twin below is the same scalar iteration, so the iteration at which the solver
must give up is computed independently of the solver.
"""

from __future__ import annotations

import math

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem, mesh

from nhj.solvers import DIVERGENCE, NewtonFailure, NewtonSolver

MAX_RATE = 0.2  # the solver's refresh threshold, passed explicitly to both


def newton_on_atan(u0: float, max_iterations: int) -> list[float]:
    """|du| of the solver's iteration on scalar atan from u0 (numpy twin): the Jacobian
    1/(1 + u²) is refreshed at the first iteration and after any that contracted by less
    than MAX_RATE, else reused (a chord step)."""
    u, jacobian, stale, previous, steps = u0, 1.0, True, math.inf, []
    for _ in range(max_iterations):
        if stale:
            jacobian, stale = 1.0 / (1.0 + u * u), False
        du = math.atan(u) / jacobian if jacobian > 0 else math.inf
        u -= du
        steps.append(abs(du))
        if not math.isfinite(u) or abs(du) < 1e-14:
            break
        stale, previous = abs(du) > MAX_RATE * previous, abs(du)
    return steps


def solver(u0: float, max_iterations: int = 12) -> NewtonSolver:
    msh = mesh.create_unit_interval(MPI.COMM_WORLD, 4)
    V = fem.functionspace(msh, ("Lagrange", 1))
    u = fem.Function(V)
    u.x.array[:] = u0
    F = ufl.atan(u) * ufl.TestFunction(V) * ufl.dx
    return NewtonSolver(F, u, [], "test_newton_", max_iterations=max_iterations, max_rate=MAX_RATE)


def test_diverging_solve_stops_when_the_update_outgrows_its_smallest() -> None:
    steps = newton_on_atan(3.0, 12)
    # the first iteration whose update exceeds DIVERGENCE × the smallest before it
    expected = next(k + 1 for k in range(1, len(steps)) if steps[k] > DIVERGENCE * min(steps[:k]))
    assert expected < 12  # else the test would not tell the early stop from the cap
    s = solver(3.0)
    try:
        with pytest.raises(NewtonFailure, match="diverged"):
            s.solve()
        assert s.iterations == expected
    finally:
        s.close()


def test_converging_solve_is_not_stopped() -> None:
    s = solver(1.2)  # inside the basin, near its edge: the first updates are large
    try:
        s.solve()
        assert np.max(np.abs(s.u.x.array)) < 1e-10  # the root, to the solver's atol/rtol
    finally:
        s.close()
