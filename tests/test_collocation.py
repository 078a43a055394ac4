"""Gauss–Legendre collocation for the Newton-stepped equations (nhj/collocation.py).

The tableau satisfies the order conditions of order 2s and not 2s + 1; on a flow whose
space error is zero (a Gaussian in the log form, P2 holds ρ and S exactly) the error of
``gauss2``/``gauss3`` falls at order 4/6 in dt; the (√p, S) form keeps ∫R²√g to the Newton
remainder per sub-step, as the midpoint rule does.
"""

from __future__ import annotations

import numpy as np
import pytest
from case_helpers import merged
from test_madelung import coherent_state, drifts, mass_correction_bound
from test_madelung_log import packet, run

from nhj.collocation import extrapolation, gauss_legendre


@pytest.mark.parametrize("s", [1, 2, 3])
def test_tableau_has_order_2s_and_no_more(s: int) -> None:
    """Σ b_i c_i^{k−1} = 1/k for k ≤ 2s (quadrature order) and 𝒜 c^{k−1} = c^k/k for k ≤ s
    (stage order), to round-off; the k = 2s + 1 condition fails (by 1/((2s+1)·C(2s,s)²)
    relative, ≥ 1/120, so the check can fail); s = 1 is the implicit midpoint rule.
    """
    A, b, c = gauss_legendre(s)
    for k in range(1, 2 * s + 1):
        assert b @ c ** (k - 1) == pytest.approx(1 / k, abs=1e-14)
    for k in range(1, s + 1):
        assert np.allclose(A @ c ** (k - 1), c**k / k, atol=1e-14)
    assert abs(b @ c ** (2 * s) - 1 / (2 * s + 1)) > 1e-3 / (2 * s + 1)
    if s == 1:
        assert np.allclose([A[0, 0], b[0], c[0]], [0.5, 1.0, 0.5], atol=1e-15)


@pytest.mark.parametrize(
    ("scheme", "order", "dt"),
    [("implicit_midpoint", 2, 0.1), ("gauss2", 4, 0.25), ("gauss3", 6, 0.5)],
)
def test_order_where_the_space_error_is_zero(scheme: str, order: int, dt: float) -> None:
    """The free packet in the log form (test_madelung_log.packet: P2 holds it exactly, uniform
    steps, Newton to 1e-12) to t = 2 with dt and dt/2 (each scheme's dt keeps its error ≫ the
    Newton remainder, 1e-12): the error is C h^{2s}(1 + O((ω h)²)), ω ~ ħ/(mσ²) = 1 the
    fastest rate of the packet's coefficients, so halving dt divides it by 2^order up to a
    relative (ω dt)² ≤ 0.25: the observed order is within log2(1.25) ≈ 0.3 of it. The
    outflux of the mass balance is integrated at the scheme's Gauss points; at the midpoint
    instead it capped gauss3 at order ≈ 1.3 over this run (the packet's tail at the walls).
    """
    errors = []
    for h in (dt, dt / 2):
        d = packet(discretisation={"dt": h, "scheme": scheme, "t_end": 2.0})
        _, outcome, rows = run(d)
        assert outcome.status == "completed", outcome.message
        assert outcome.stats["rejected"] == 0  # uniform steps: the scheme's error at h
        errors.append(rows[-1]["error_l2"])
    observed = np.log2(errors[0] / errors[1])
    assert observed == pytest.approx(order, abs=0.3), (errors, observed)


def test_the_sqrt_form_keeps_its_mass_to_the_newton_remainder() -> None:
    """The 1D coherent state in the (√p, S) form with gauss2: the mass rescale after each
    sub-step corrects only the Newton remainder (mass_correction below the bound that the
    midpoint rule meets, test_madelung.mass_correction_bound): the collocation conserves
    ∫R²√g by itself; a scheme that does not would show its truncation error (≫ 1e-8).
    """
    d = merged(coherent_state(1.0, 1.0), {"discretisation": {"scheme": "gauss2", "dt": 0.1}})
    mass, _, stats = drifts(d)
    assert mass < 1e-13
    assert stats["mass_correction"] < mass_correction_bound(), stats


@pytest.mark.parametrize("s", [2, 3])
def test_the_stage_polynomial_extrapolates_degree_s_exactly(s: int) -> None:
    """The predictor's weights reproduce every polynomial of degree ≤ s at the next sub-step's
    stage times and end (to round-off), and not degree s + 1: the prediction is O(h^{s+1}).
    """
    _, _, c = gauss_legendre(s)
    for ratio in (0.5, 1.0, 2.0):
        W = extrapolation(c, ratio)
        nodes = np.concatenate([[0.0], c])
        targets = 1.0 + ratio * np.concatenate([c, [1.0]])
        for k in range(s + 1):
            assert np.allclose(W @ nodes**k, targets**k, atol=1e-12)
        assert not np.allclose(W @ nodes ** (s + 1), targets ** (s + 1), atol=1e-6)


@pytest.mark.parametrize(("scheme", "dt"), [("gauss2", 0.125), ("gauss3", 0.25)])
def test_the_step_controller_sees_the_schemes_order(scheme: str, dt: float) -> None:
    """Under the default step control a Gauss scheme takes its output step whole.

    The controller's estimate is ‖u − u_pred‖/‖u‖ ≤ tolerance (1e-2). A line through the
    last two states makes that O(h²) whatever the scheme: on this packet it took 46 and 38
    sub-steps for the 16 and 8 output steps below (measured), while the scheme's error at
    these dt is 2e-9 and 2e-10. The last sub-step's stage polynomial makes it O(h^{s+1}),
    and every output step is one sub-step: the error is the uniform-step run's, to the
    Newton remainder (1e-12 of max √p against errors ≥ 1e-10: relative 1e-2).
    """
    uniform = packet(discretisation={"dt": dt, "scheme": scheme, "t_end": 2.0})
    controlled = merged(uniform, {"nonlinear": {"tolerance": 1e-2}})
    e = {}
    for name, d in (("uniform", uniform), ("controlled", controlled)):
        _, outcome, rows = run(d)
        assert outcome.status == "completed", outcome.message
        e[name] = rows[-1]["error_l2"]
    assert outcome.stats["accepted"] == round(2.0 / dt), outcome.stats
    assert outcome.stats["rejected"] == 0, outcome.stats
    assert e["controlled"] == pytest.approx(e["uniform"], rel=1e-2), e
