"""Schrödinger (3.11): convergence orders, conservation, every time scheme."""

from __future__ import annotations

import numpy as np
import pytest
from schrodinger_helpers import evolve, interval, rates, square

import nhj  # noqa: F401
from nhj.exact import GaussianState
from nhj.timeschemes import SCHEMES, exact_in_time

# ħ = γ/β = 0.5 and m = 1/γ = 1 for γ = 1, β = 2
HBAR, M = 0.5, 1.0


def coherent_1d() -> GaussianState:
    """Coherent state of ω = 1 displaced and kicked."""
    w = 1.0
    return GaussianState((-1.0,), (np.sqrt(HBAR / (2 * M * w)),), (1.0,), (w,), HBAR, M)


def free_2d() -> GaussianState:
    """Free spreading packet with momentum in 2D."""
    return GaussianState((-1.0, 0.5), (0.8, 0.6), (1.0, -0.5), (0.0, 0.0), HBAR, M)


@pytest.mark.parametrize("degree, expected", [(1, 2.0), (2, 3.0)])
def test_h_convergence_1d(degree: int, expected: float) -> None:
    """L2 error of P_k decreases as h^{k+1} (dt small enough not to pollute)."""
    errors = [evolve(interval(n), coherent_1d(), degree, 1e-3, 0.4).error for n in (100, 200, 400)]
    r = rates(errors)
    assert errors[-1] < 0.01
    assert np.all(np.abs(r - expected) < 0.15), (errors, r)


@pytest.mark.parametrize("degree, expected", [(5, 6.0), (6, 7.0)])
def test_h_convergence_high_degree_1d(degree: int, expected: float) -> None:
    """P5 and P6 (the top of the case schema) converge as h^{k+1} under gauss3.

    gauss3 at dt = 0.025 keeps the time error (order 6; ~1e-9 extrapolated from the
    scheme test's 2.4e-6 at dt = 0.1) below the finest spatial error (~1e-7 for P6 on
    64 cells), so the observed rate of the finest pair is the spatial order.
    """
    ns = (16, 32, 64)
    errors = [evolve(interval(n), coherent_1d(), degree, 0.025, 0.4, "gauss3").error for n in ns]
    r = rates(errors)
    assert abs(r[-1] - expected) < 0.15, (errors, r)


@pytest.mark.mpi
@pytest.mark.parametrize("degree, expected", [(1, 2.0), (2, 3.0)])
def test_h_convergence_2d(degree: int, expected: float) -> None:
    """The same orders in 2D, for a free spreading packet."""
    ns = (16, 32, 64) if degree == 1 else (12, 24, 48)
    errors = [evolve(square(n), free_2d(), degree, 2e-3, 0.2).error for n in ns]
    r = rates(errors)
    assert abs(r[-1] - expected) < 0.15, (errors, r)


# dt levels per order: the time error must stay well above the spatial floor of P4 on
# 600 cells (~1e-9 here) at the finest dt, and in the asymptotic range at the coarsest.
DT_LEVELS = {1: (0.04, 0.02, 0.01), 2: (0.04, 0.02, 0.01), 4: (0.2, 0.1, 0.05), 6: (0.4, 0.2, 0.1)}


# A scheme exact in time has no order to observe: tests/test_separable.py checks it against
# the matrix exponential instead.
@pytest.mark.parametrize("name", sorted(n for n in SCHEMES if not exact_in_time(n)))
def test_time_order_of_every_scheme(name: str) -> None:
    """Each registered scheme converges at its declared order in dt and keeps ‖ψ‖².

    P4 on a fine mesh, so the time error dominates. The observed order of the
    finest pair is within 0.2 of the declared one (the leading error term
    dominates once dt halves twice; measured 1.99-2.00, 3.96 for gauss2, 5.84
    for gauss3). Every scheme here but implicit Euler and BDF2 conserves the
    quadratic invariant ‖ψ‖² of (3.11), to round-off: 1e-10 over these few
    hundred steps.
    """
    order = SCHEMES[name].order
    outs = [
        evolve(interval(600), coherent_1d(), 4, dt, 1.2, scheme=name, record_every=1)
        for dt in DT_LEVELS[order]
    ]
    errors = [o.error for o in outs]
    r = rates(errors)
    assert abs(r[-1] - order) < 0.2, (errors, r)
    if name not in ("implicit_euler", "bdf2"):
        drift = max(np.max(np.abs(np.array(o.mass) - o.mass[0])) / o.mass[0] for o in outs)
        assert drift < 1e-10, drift


@pytest.mark.mpi
def test_conservation_1000_steps() -> None:
    """Crank–Nicolson keeps ‖ψ‖² to < 1e-10 and ⟨H⟩ to < 1e-8 over 1000 steps (2D)."""
    out = evolve(square(24), free_2d(), 2, 1e-3, 1.0, record_every=100)
    mass, energy = np.array(out.mass), np.array(out.energy)
    assert len(mass) == 11
    assert np.max(np.abs(mass - mass[0])) / mass[0] < 1e-10
    assert np.max(np.abs(energy - energy[0])) / abs(energy[0]) < 1e-8


def test_energy_matches_exact_expectation() -> None:
    """⟨ψ|H|ψ⟩ of the discrete state approaches the exact ⟨H⟩ of the Gaussian."""
    state = coherent_1d()
    out = evolve(interval(400), state, 2, 1e-2, 0.1)
    assert abs(out.energy[-1] - state.energy()) / state.energy() < 1e-6
