"""The log-amplitude form (ρ = log √p, S) of Madelung (3.7)–(3.9), nhj/equations/madelung_log.py.

For a Gaussian state ρ and S are quadratic polynomials at every t and the weak
form keeps its boundary integrals (open walls), so P2 holds the exact solution
and the only error left is the implicit midpoint rule's, C·dt²: these tests
assert that (order 2 in dt, no change under mesh refinement), that a packet
leaves through an open wall at that error with the right mass, that the mass
projection keeps ∫p√g on its balance, the depth limit of the form, and the case
errors of ``vacuum.amplitude``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
import pytest
from case_helpers import merged
from dolfinx import fem
from scipy.special import erf

import nhj  # noqa: F401  (orders dolfinx_solver first)
from nhj.case import Case, case_from_dict
from nhj.equations.madelung import from_amplitude_phase, to_amplitude_phase
from nhj.problem import Problem
from nhj.registry import EQUATIONS, build
from nhj.schema import CaseError
from nhj.simulation import Every, Outcome, simulate

COMM = MPI.COMM_WORLD


def case_of(d: dict[str, Any]) -> Case:
    """A validated case from a dict."""
    return case_from_dict(d, Path("."))


def packet(**over: Any) -> dict[str, Any]:
    """A free packet (σ = 1, wavenumber 2, ħ = m = 1) in the log form, fixed steps h = dt.

    nonlinear.tolerance = 1 lets every sub-step be dt (the estimate, O(dt²) ≈ 1e-3,
    stays below it), so the error is that of the midpoint rule at exactly dt; the
    walls at ±8 keep min p/max p ≥ e^{-50}, inside the form's depth limit.
    """
    d = {
        "equation": "madelung",
        "parameters": {"gamma": 1.0, "beta": 1.0},
        "mesh": {"type": "interval", "lower": [-8.0], "upper": [8.0], "cells": [40]},
        "discretisation": {"degree": 2, "dt": 0.04, "t_end": 1.0},
        "initial": {"kind": "gaussian", "center": [-2.0], "width": [1.0], "momentum": [2.0]},
        "vacuum": {"amplitude": "log"},
        "nonlinear": {"tolerance": 1.0, "newton_rtol": 1e-12, "nodes": "stop"},
    }
    return merged(d, over)


def coherent(**over: Any) -> dict[str, Any]:
    """A displaced, kicked coherent state of V = ½x² (ω = 1) on [−5, 5] (depth ≤ 22)."""
    d = packet(
        mesh={"lower": [-5.0], "upper": [5.0], "cells": [20]},
        discretisation={"t_end": 2.0},
        potential={"omega": [1.0]},
        initial={"kind": "coherent", "center": [1.5], "momentum": [0.5], "width": None},
    )
    return merged(d, over)


def run(d: dict[str, Any], every: int = 0) -> tuple[Problem, Outcome, list[dict[str, float]]]:
    """Build and run a case; the exact-error monitor and ∫p√g at every ``every`` steps."""
    p = build(case_of(d), COMM)
    (monitor,) = [m for m in p.monitors if "error_l2" in m.columns]
    mass = fem.form(p.semidiscrete.functionals["mass"](p.u0))  # type: ignore[union-attr]
    rows: list[dict[str, float]] = []

    def observe(t: float, step: int) -> None:
        row = {k: float(v) for k, v in monitor(t).items()}
        row["mass"] = COMM.allreduce(fem.assemble_scalar(mass), op=MPI.SUM)
        rows.append({"t": t, **row})

    steps = p.case.discretisation.steps
    outcome = simulate(p, EQUATIONS["madelung"].stepper, [Every(every or steps, observe)])
    return p, outcome, rows


# ---------------------------------------------------------------------------------------------
# P2 holds the Gaussian: the error is the time scheme's, C·dt², on every mesh


@pytest.mark.parametrize("flow", ["free", "coherent"])
def test_gaussian_error_is_the_midpoint_rules_only(flow: str) -> None:
    """Order 2 in dt, and no change under refinement (the spatial error is zero).

    The midpoint rule's error is C dt² + O(dt⁴): halving dt divides it by
    4(1 + O((ω dt)²)), with ω ~ ħ/(mσ²) = 1 the fastest rate of the Gaussian's
    coefficients, i.e. by 4 to 0.2 % at dt = 0.04; 3.9–4.1 leaves room for the
    algebraic error (Newton to 1e-12, ~1e-10 ≪ C dt² ≈ 1e-5). Halving h changes
    nothing but round-off: relative 1e-3 bounds that (round-off ~1e-12 over 50
    steps against errors ≥ 1e-6). Both meshes complete (refinement does not make
    the run fail earlier).
    """
    make = packet if flow == "free" else coherent
    cells = make()["mesh"]["cells"][0]
    e = {}
    for dt, n in ((0.04, cells), (0.02, cells), (0.04, 2 * cells)):
        _, outcome, rows = run(make(discretisation={"dt": dt}, mesh={"cells": [n]}))
        assert outcome.status == "completed", outcome.message
        e[dt, n] = rows[-1]["error_l2"]
    assert 3.9 < e[0.04, cells] / e[0.02, cells] < 4.1, e
    assert abs(e[0.04, 2 * cells] / e[0.04, cells] - 1) < 1e-3, e


def test_two_dimensional_packet_on_a_constant_metric() -> None:
    """g = diag(1, 2): √g and g⁻¹ in every term, the walls' integrals included; order 2 in dt.

    The Gaussian is exact for a constant metric (nhj/exact.py, flat frame), so the
    same argument as in 1D gives a dt-ratio of 4 to 0.2 %.
    """
    d = packet(
        mesh={"type": "rectangle", "lower": [-6.0, -5.0], "upper": [6.0, 5.0], "cells": [6, 5]},
        metric={"g": [[1.0, 0.0], [0.0, 2.0]]},
        initial={"center": [-1.0, 0.5], "width": [1.0, 1.2], "momentum": [1.5, -0.5]},
        discretisation={"t_end": 0.8},
    )
    e = []
    for dt in (0.04, 0.02):
        _, outcome, rows = run(merged(d, {"discretisation": {"dt": dt}}))
        assert outcome.status == "completed", outcome.message
        e.append(rows[-1]["error_l2"])
    assert 3.9 < e[0] / e[1] < 4.1, e


# ---------------------------------------------------------------------------------------------
# the outflow wall: the packet leaves, error and mass as in free space


def test_packet_leaves_through_the_open_wall() -> None:
    """The packet runs into the wall at x = 8 and half of it leaves by t = 4.

    With ψ = 0 walls it would reflect; the open walls follow free space. Checks:
    the error stays the midpoint rule's (dt-ratio 4 as above, the wall adds no
    error of its own); the mass left in the domain matches the exact one,
    ½[erf((8 − c)/√2s) − erf((−8 − c)/√2s)] with c = 8, s = √5 — to within
    |‖ψ_h‖² − ‖ψ‖²| ≤ ‖ψ_h − ψ‖(‖ψ_h‖ + ‖ψ‖) ≈ 2 e_l2 ‖ψ‖² (Cauchy–Schwarz), a
    bound that a projection onto the initial mass (which keeps 1, not ½) fails
    by far; and ∫p√g + outflow = 1 to round-off (the mass balance the projection
    enforces).
    """
    d = packet(initial={"center": [0.0]}, discretisation={"t_end": 4.0}, mesh={"cells": [80]})
    e = []
    for dt in (0.04, 0.02):
        p, outcome, rows = run(merged(d, {"discretisation": {"dt": dt}}))
        assert outcome.status == "completed", outcome.message
        e.append(rows[-1]["error_l2"])
    assert 3.9 < e[0] / e[1] < 4.1, e
    s = np.sqrt(1.0 + (4.0 / 2.0) ** 2)  # |ψ|² width √(1 + (ħt/2mσ²)²)
    exact_mass = 0.5 * (erf(0.0) - erf(-16.0 / (np.sqrt(2) * s)))
    mass = rows[-1]["mass"]
    assert 0.45 < exact_mass < 0.55  # the check is about a packet half out
    assert abs(mass - exact_mass) <= 2 * e[1] * exact_mass, (mass, exact_mass)
    projection = p.hooks.guard
    assert abs(mass + projection.outflow - 1.0) < 1e-12  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# mass: not a quadratic invariant of (ρ, S); projected


def test_mass_projection_keeps_the_mass_and_is_needed() -> None:
    """Coherent state: ∫p√g stays on its balance M₀ − outflow to 1e-10 projected, not without.

    The near wall is ~3.4 from the packet (p ~ e^{-12} max p there), so mass really
    crosses the open walls (~3e-7 here): the balance, not M₀, is what is conserved.
    The projection's target follows the outflux (midpoint rule in time), so the state
    sits on it to round-off (1e-10 is far above round-off, far below the O(dt²)
    drift). Without the projection the midpoint rule drifts by O(dt²) (∫e^{2ρ} is
    not a quadratic invariant), measured here well above 1e-10, so the check can fail.
    """
    d = coherent(discretisation={"t_end": 1.0, "dt": 0.05})
    p0, outcome, rows = run(d, every=5)
    assert outcome.status == "completed", outcome.message
    projection = p0.hooks.guard
    assert abs(projection.outflow) > 1e-9  # the walls are open: there is a balance to keep
    drift = abs(rows[-1]["mass"] - projection.target)
    assert drift <= 1e-10, drift
    p = build(case_of(d), COMM)
    p = replace(p, hooks=replace(p.hooks, guard=None))  # no projection
    simulate(p, EQUATIONS["madelung"].stepper)
    M = fem.assemble_scalar(fem.form(p.semidiscrete.functionals["mass"](p.u0)))  # type: ignore[union-attr]
    assert abs(COMM.allreduce(M, op=MPI.SUM) - projection.target) > 1e-10


# ---------------------------------------------------------------------------------------------
# the depth limit and the case errors


def test_deep_tail_fails_cleanly() -> None:
    """On [−30, 30] (min p/max p ~ e^{-500}) amplified round-off breaks the form: a clean stop.

    The module docstring explains the limit (measured: t = 0.60 at h = 0.2 and 0.1);
    the message names the log form.
    """
    d = packet(mesh={"lower": [-30.0], "upper": [30.0], "cells": [300]})
    _, outcome, _ = run(d)
    assert outcome.status == "failed"
    assert "log-amplitude" in outcome.message
    assert outcome.t < 1.0


def test_amplitude_case_errors() -> None:
    """vacuum.amplitude: one of log, sqrt; 'log' refuses ψ = 0 walls and a p₀ with zeros."""
    with pytest.raises(CaseError, match="vacuum.amplitude.*log, sqrt"):
        case_of(packet(vacuum={"amplitude": "exp"}))
    with pytest.raises(CaseError, match="vacuum.amplitude"):
        build(case_of(packet(boundary={"condition": "dirichlet"})), COMM)
    no_gaussian = {"center": None, "width": None, "momentum": None}
    zeros = packet(
        initial={"kind": "expression", "p": "max(1 - x0**2, 0)", "S": "0", **no_gaussian}
    )
    with pytest.raises(CaseError, match="vacuum.amplitude"):
        build(case_of(zeros), COMM)
    sqrt = build(case_of(packet(vacuum={"amplitude": "sqrt"})), COMM)
    default = build(case_of(merged(packet(), {"vacuum": None})), COMM)
    assert sqrt.info["amplitude"] == default.info["amplitude"] == "sqrt"


def test_conversions_round_trip() -> None:
    """to_amplitude_phase ∘ from_amplitude_phase = id above the floor, for both forms."""
    rng = np.random.default_rng(0)
    RS = np.column_stack((rng.uniform(1e-6, 2.0, 50), rng.uniform(-5, 5, 50))).ravel()
    for amplitude in ("sqrt", "log"):
        u = from_amplitude_phase(RS, amplitude, 2.0)
        assert np.allclose(to_amplitude_phase(u, amplitude), RS, rtol=1e-14, atol=0)
    assert np.allclose(from_amplitude_phase(RS, "log", 2.0)[::2], np.log(RS[::2]))
