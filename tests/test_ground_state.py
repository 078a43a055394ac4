"""Ground state ↔ Gibbs (theory.md, correspondence check 3): V from L̄ by (3.6).

The lowest eigenpair of H = −(ħ²/2m)Δ_g + V, ħ = γ/β (3.12), m = 1/γ (3.13), is
E₀ = 0 and |ψ₀|² = exp(−2βL̄/γ)/Z exactly, so every number below is a pure
discretisation error: E₀ > 0 (Galerkin upper bound of 0) converging as h^{2k},
and ‖ψ₀² − p∞‖₁ as h^{k+1} (‖ψ_h − ψ‖_{L²} times ‖ψ_h + ψ‖_{L²}).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem, mesh
from schrodinger_helpers import rates

import nhj  # noqa: F401
from nhj.case import Case, case_from_dict
from nhj.covariant import Metric
from nhj.diagnostics import GibbsDistance, global_scalar
from nhj.eigen import GroundState, gibbs_l1, ground_state, ground_state_check
from nhj.equations.learning import gibbs_log_weight
from nhj.equations.potentials import effective_potential
from nhj.equations.schrodinger import Schrodinger
from nhj.meshes import boundary_facets
from nhj.schema import CaseError
from nhj.solvers import SolverError

# ħ = 0.5, m = 1; p∞ ∝ exp(−4L̄) = exp(−(x²−1)²): two wells at ±1 and a barrier of e⁻¹ between,
# exp(−64) at x = ±3, so cutting the line at [−3, 3] changes nothing at double precision.
GAMMA, BETA = 1.0, 2.0
TILT = 0.1  # tilted well: the two minima no longer symmetric


def double_well(x: Any, tilt: float = 0.0) -> Any:
    """L̄ = (x² − 1)²/4 + tilt·x, for UFL or numpy x."""
    return (x**2 - 1) ** 2 / 4 + tilt * x


@dataclass
class Solved:
    """A ground state with the loss and metric it was computed for."""

    gs: GroundState
    loss: Any
    metric: Metric
    degree: int


def solve_1d(n: int, degree: int, tilt: float = 0.0, target: float | None = None) -> Solved:
    """Ground state of H with V from the double well (3.6), ψ = 0 at x = ±3."""
    msh = mesh.create_interval(MPI.COMM_WORLD, n, [-3.0, 3.0])
    loss = double_well(ufl.SpatialCoordinate(msh)[0], tilt)
    metric = Metric.flat(1)
    eq = Schrodinger(
        metric, effective_potential(metric, loss, GAMMA, BETA), GAMMA / BETA, 1.0 / GAMMA
    )
    space = fem.functionspace(msh, ("Lagrange", degree))
    dofs = fem.locate_dofs_topological(space, 0, boundary_facets(msh))
    bcs = [fem.dirichletbc(0.0, dofs, space)]
    return Solved(ground_state(eq, space, bcs, target=target), loss, metric, degree)


def l1(s: Solved, beta: float = BETA) -> float:
    """‖ψ₀² − exp(−2βL̄/γ)/Z‖₁."""
    return gibbs_l1(s.gs.psi**2, s.loss, GAMMA, beta, s.metric, s.degree, MPI.COMM_WORLD)


NS = {1: (100, 200, 400), 2: (50, 100, 200)}


@pytest.mark.parametrize("tilt", [0.0, TILT])
@pytest.mark.parametrize("degree", [1, 2])
def test_double_well_1d_orders(degree: int, tilt: float) -> None:
    """E₀ → 0 as h^{2k}, ‖ψ₀² − p∞‖₁ → 0 as h^{k+1}; ψ₀ normalised and positive."""
    solved = [solve_1d(n, degree, tilt) for n in NS[degree]]
    E = [s.gs.E0 for s in solved]
    L1 = [l1(s) for s in solved]
    assert all(e > 0 for e in E), E  # H ≥ 0 and Galerkin eigenvalues are upper bounds
    assert np.all(np.abs(rates(E) - 2 * degree) < 0.15), (E, rates(E))
    # the L1 norm of ψ_h² − ψ² nears h^{k+1} from above (P2: 3.16, 3.11, 3.04, 3.02 from
    # n = 25 on): the order is the one of the finest pair
    assert abs(rates(L1)[-1] - (degree + 1)) < 0.15, (L1, rates(L1))
    assert L1[-1] < 1e-3, L1
    psi = solved[-1].gs.psi
    norm = global_scalar(fem.form(psi**2 * ufl.dx), MPI.COMM_WORLD)
    assert abs(norm - 1) < 1e-10
    # ψ₀ > 0 inside (Perron–Frobenius); round-off where ψ₀ ~ exp(−32) near ±3
    low = MPI.COMM_WORLD.allreduce(psi.x.array.min(), op=MPI.MIN)
    assert low > -1e-12, low


def test_wrong_beta_is_detected() -> None:
    """Gibbs at 1.2β instead of β is more than 10× farther from ψ₀² than the right one."""
    s = solve_1d(NS[2][-1], 2, TILT)
    right, wrong = l1(s), l1(s, 1.2 * BETA)
    assert wrong > 10 * right, (right, wrong)
    assert wrong > 0.05, wrong  # a visible mismatch, not a resolution effect


def test_gibbs_l1_is_the_gibbs_distance_column() -> None:
    """gibbs_l1 of a Function equals GibbsDistance's gibbs_l1 (one definition, two entry points)."""
    s = solve_1d(50, 1)
    p = fem.Function(s.gs.psi.function_space)
    p.x.array[:] = s.gs.psi.x.array**2
    logw = gibbs_log_weight(s.loss, GAMMA, BETA)
    column = GibbsDistance(p, logw, s.loss, GAMMA / (2 * BETA), s.metric, 1)(0.0)["gibbs_l1"]
    ours = gibbs_l1(p, s.loss, GAMMA, BETA, s.metric, 1, MPI.COMM_WORLD)
    assert abs(ours - column) <= 1e3 * np.finfo(float).eps * column, (ours, column)


def test_target_below_spectrum() -> None:
    """Any shift below E₀ gives the same pair; a shift above E₀ is refused, not misreported."""
    default = solve_1d(100, 1)
    lower = solve_1d(100, 1, target=-2.0)
    assert default.gs.target < 0
    assert abs(lower.gs.E0 - default.gs.E0) < 1e-10 * abs(default.gs.E0 - default.gs.target)
    with pytest.raises(SolverError, match="not above the shift"):
        solve_1d(100, 1, target=0.01)  # E₀ ≈ 6e-4 < 0.01 < E₁


def case_2d(n: int, g: Any = None) -> Case:
    """A tilted 2D double well as a Schrödinger case (ψ = 0 on ∂Ω by default)."""
    d: dict[str, Any] = {
        "equation": "schrodinger",
        "parameters": {"gamma": GAMMA, "beta": BETA},
        "mesh": {"type": "rectangle", "lower": [-3.0, -3.0], "upper": [3.0, 3.0], "cells": [n, n]},
        "discretisation": {"degree": 1, "dt": 0.01, "t_end": 0.01},
        "potential": {"loss": f"(x0**2 - 1)**2/4 + x1**2/2 + {TILT}*x0"},
        "initial": {"kind": "gaussian", "center": [0.0, 0.0], "width": [1.0, 1.0]},
    }
    if g is not None:
        d["metric"] = {"g": g}
    return case_from_dict(d, Path(__file__).parent, name="ground_state_2d")


@pytest.mark.mpi
@pytest.mark.parametrize(
    "g",
    [None, [[1.5, 0.3], [0.3, 1.0]], [["1 + 0.2*x0**2", "0.1*x1"], ["0.1*x1", "1"]]],
    ids=["flat", "constant", "varying"],
)
def test_case_2d(g: Any) -> None:
    """ground_state_check on a case: E₀ and the Gibbs L1 converge at 2 in h for P1, any metric."""
    results = [ground_state_check(case_2d(n, g), MPI.COMM_WORLD) for n in (16, 32, 64)]
    E = [r["E0"] for r in results]
    L1 = [r["gibbs_l1"] for r in results]
    assert all(e > 0 for e in E), E
    assert abs(rates(E)[-1] - 2) < 0.15, (E, rates(E))
    assert abs(rates(L1)[-1] - 2) < 0.15, (L1, rates(L1))
    assert L1[-1] < 0.02, L1
    assert [r["dofs"] for r in results] == [(n + 1) ** 2 for n in (16, 32, 64)]
    assert results[-1]["h"] == pytest.approx(6 / 64 * np.sqrt(2))


def test_case_without_loss_rejected() -> None:
    """A harmonic V given by ω has no Gibbs density to compare with."""
    d = {
        "equation": "schrodinger",
        "parameters": {"gamma": GAMMA, "beta": BETA},
        "mesh": {"type": "interval", "lower": [-3.0], "upper": [3.0], "cells": [10]},
        "discretisation": {"degree": 1, "dt": 0.01, "t_end": 0.01},
        "potential": {"omega": [1.0]},
        "initial": {"kind": "coherent"},
    }
    with pytest.raises(CaseError, match="potential.loss"):
        ground_state_check(case_from_dict(d, Path(__file__).parent), MPI.COMM_WORLD)
