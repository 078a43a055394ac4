"""The resolution test of the fluid's phase (nhj/phase_jumps.py): jumps of ∇S between cells.

For S in the space (a quadratic on P2) the jumps are round-off whatever its curvature; for
an S the space does not hold (a cubic on P2) the phase error they imply across a dof
spacing is O(h^{k+1}|∇^{k+1}S|)/ħ: h³ on P2, so halving h divides it by 8. The value does
not depend on the partition (the mean at a dof is summed over ranks).
"""

from __future__ import annotations

from typing import Any

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem, mesh

import nhj  # noqa: F401  (orders dolfinx_solver first)
from nhj.phase_jumps import GradientJumps

pytestmark = pytest.mark.mpi
COMM = MPI.COMM_WORLD
HBAR = 0.5


def largest(n: int, S: Any, comm: MPI.Comm = COMM) -> float:
    """The jump measure of S (a callable of x) interpolated on P2×2 over n×n cells of [0, 1]²."""
    msh = mesh.create_unit_square(comm, n, n)
    space = fem.functionspace(msh, ("Lagrange", 2, (2,)))
    u = fem.Function(space)
    u.interpolate(lambda x: np.vstack((np.ones_like(x[0]), S(x))))
    u.x.scatter_forward()
    jumps = GradientJumps(space, ufl.grad(u[1]), HBAR)
    z = np.ones(len(space.tabulate_dof_coordinates()), dtype=complex)  # all in the support
    return jumps(z, 0.5)[0]


def test_a_quadratic_phase_has_no_jumps_however_curved() -> None:
    """S = 40 (x² − xy + 2y²): the second difference across a dof spacing is ~10 ħ here."""
    v = largest(4, lambda x: 40 * (x[0] ** 2 - x[0] * x[1] + 2 * x[1] ** 2))
    assert v < 1e-10, v


def test_an_unrepresented_phase_shows_at_order_h_cubed() -> None:
    """S = 3 sin(2x) cos(y)·4: observed order of the largest jump within 0.5 of 3 (P2)."""
    S = lambda x: 12 * np.sin(2 * x[0]) * np.cos(x[1])  # noqa: E731
    coarse, fine = largest(8, S), largest(16, S)
    assert coarse > 1e-4  # visible, unlike the quadratic's round-off
    order = np.log2(coarse / fine)
    assert order == pytest.approx(3.0, abs=0.5), (coarse, fine, order)


def test_the_value_does_not_depend_on_the_partition() -> None:
    """The mean at a dof is summed over the ranks that hold cells around it: one rank and
    all ranks give the same number (to round-off; the same cells, summed in another order).
    """
    S = lambda x: 12 * np.sin(2 * x[0]) * np.cos(x[1])  # noqa: E731
    alone = largest(8, S, MPI.COMM_SELF)
    together = largest(8, S)
    assert together == pytest.approx(alone, rel=1e-10)
