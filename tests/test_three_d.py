"""Every equation once on a 3D box (P1/Q1, 6×6×6 cells, a few steps).

The linear equations use a hexahedral mesh, where the check is exact: on Q1 elements the
mass and stiffness matrices of a separable problem (harmonic V or quadratic L̄, isotropic
coefficients) are Kronecker sums of the 1D ones, so the semi-discrete solution from a
product state ψ₁(x)ψ₂(y)ψ₃(z) is the product of the three 1D semi-discrete solutions. The
only difference left is the time scheme's: Crank–Nicolson of a sum is not the product of
Crank–Nicolson of its parts, an O(dt²) commutator. So the 3D run must equal the product of
three 1D runs up to a difference that falls as dt² — a wrong 3D term (a missing direction,
a wrong √g or tensor in 3D) would leave a dt-independent difference. The 1D solutions are
checked against the exact states, at their orders, in test_schrodinger/test_fokker_planck.

The nonlinear equations run on tetrahedra: conservation of their quadratic invariants to
round-off, and identities between equations that must hold to the Newton tolerance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from case_helpers import merged
from dolfinx import fem

import nhj  # noqa: F401  (orders dolfinx_solver first)
from nhj.case import case_from_dict
from nhj.diagnostics import Functionals, global_scalar
from nhj.equations.madelung_nodes import wavefunction_error
from nhj.problem import Problem
from nhj.reference import ParticleMoments
from nhj.registry import EQUATIONS, build
from nhj.simulation import Every, Simulation, Stop, simulate
from nhj.stepper import AdaptiveStepper, StepControl

COMM = MPI.COMM_WORLD
CELLS = 6
LOWER, UPPER = -3.0, 3.0


def problem(d: dict[str, Any]) -> Problem:
    """The built problem of a case dict."""
    return build(case_from_dict(d, Path(".")), COMM)


def box(d: dict[str, Any], cell: str = "tetrahedron") -> dict[str, Any]:
    """The case on [-3, 3]³ with 6 cells a side."""
    mesh = {"type": "box", "lower": [LOWER] * 3, "upper": [UPPER] * 3, "cells": [CELLS] * 3}
    return merged(d, {"mesh": {**mesh, "cell": cell}})


def line(d3: dict[str, Any], i: int, per_direction: tuple[tuple[str, str], ...]) -> dict:
    """Direction i of a separable 3D case: the interval, and the i-th entry of each list."""
    d = merged(d3, {"mesh": {"type": "interval", "lower": [LOWER], "upper": [UPPER]}})
    d["mesh"] = {k: v for k, v in d["mesh"].items() if k != "cell"} | {"cells": [CELLS]}
    for section, key in per_direction:
        d[section] = dict(d[section]) | {key: [d3[section][key][i]]}
    return d


def values(p: Problem) -> np.ndarray:
    """Nodal values of the unknown: complex ψ for a (ψ_r, ψ_i) pair, else real."""
    u = p.u0.x.array
    if p.space.dofmap.index_map_bs == 2:
        u = u.reshape(-1, 2)
        return u[:, 0] + 1j * u[:, 1]
    return u.copy()


def l2(f: Any, msh: Any) -> float:
    """‖f‖_L2 (collective)."""
    return float(np.sqrt(global_scalar(fem.form(ufl.inner(f, f) * ufl.dx(domain=msh)), COMM)))


def relative_error(p: Problem, t: float) -> float:
    """error_l2 of a problem against its exact state at t."""
    (monitor,) = [m for m in p.monitors if "error_l2" in m.columns]
    return monitor(t)["error_l2"]


def product_run(
    d3: dict[str, Any], per_direction: tuple[tuple[str, str], ...], dt: float
) -> dict[str, Any]:
    """Run the 3D hexahedral case and its three 1D factors at dt; compare.

    Returns the relative L2 difference ‖u₃ − u₁⊗u₂⊗u₃‖/‖u₃‖, the 3D and 1D relative
    errors against the exact states, and the 3D mass drift.
    """
    d3 = merged(d3, {"discretisation": {"dt": dt}})
    p = problem(d3)
    functionals = Functionals(p.u0, p.semidiscrete.functionals)
    mass0 = functionals()["mass"]
    kind = EQUATIONS[d3["equation"]].stepper
    outcome = simulate(p, kind)
    assert outcome.status == "completed", outcome.message
    x = p.space.tabulate_dof_coordinates()
    product = np.ones(len(x), dtype=complex)
    errors = []
    for i in range(3):
        q = problem(line(d3, i, per_direction))
        simulate(q, kind)
        errors.append(relative_error(q, outcome.t))
        x1 = q.space.tabulate_dof_coordinates()[:, 0]
        u1 = COMM.allgather((x1, values(q)))  # the 1D line is tiny: every rank gets all of it
        xs = np.concatenate([a for a, _ in u1])
        us = np.concatenate([b for _, b in u1])
        k = np.argmin(np.abs(x[:, i, None] - xs[None, :]), axis=1)
        assert np.allclose(xs[k], x[:, i], atol=1e-12)  # the 3D nodes lie on the 1D nodes
        product *= us[k]
    w = fem.Function(p.space)
    if p.space.dofmap.index_map_bs == 2:
        w.x.array[:] = np.column_stack((product.real, product.imag)).ravel()
    else:
        w.x.array[:] = product.real
    diff = l2(p.u0 - w, p.msh) / l2(p.u0, p.msh)
    drift = abs(functionals()["mass"] / mass0 - 1)
    return {"diff": diff, "error": relative_error(p, outcome.t), "errors": errors, "drift": drift}


def assert_product(runs: list[dict[str, Any]]) -> None:
    """The 3D/1D difference falls as dt² (Crank–Nicolson's commutator) and the 3D error is
    bounded by the 1D ones.

    Margin 0.15 on the order: the next term of the commutator's expansion, O(dt³),
    measured 0.011 (Schrödinger) and 0.0003 (Fokker–Planck) off 2. The error bound is the
    product rule ‖Πuᵢ − Πψᵢ‖ ≤ Σᵢ ‖uᵢ − ψᵢ‖ Π_{j<i}‖ψⱼ‖ Π_{j>i}‖uⱼ‖, relative
    Π(1 + rᵢ) − 1, plus the difference itself (twice: it is relative to ‖u₃‖ rather
    than to the exact norm, and e₃ < 1).
    """
    order = np.log2(runs[0]["diff"] / runs[1]["diff"])
    assert abs(order - 2.0) < 0.15, runs
    fine = runs[1]
    assert fine["diff"] < 1e-2 * fine["error"], runs  # far below the spatial error
    bound = np.prod(1.0 + np.array(fine["errors"])) - 1.0 + 2.0 * fine["diff"]
    assert fine["error"] <= bound, (fine, bound)


@pytest.mark.mpi
def test_schrodinger_3d_is_the_product_of_1d_runs() -> None:
    """A 3D coherent state in V = ½(x² + 1.44y² + 1.96z²) on Q1 hexahedra: ‖ψ‖² conserved to
    round-off (Crank–Nicolson conserves quadratic invariants: 1e-10 bounds 10 solves'
    round-off with room; measured 6e-15), ψ₃ = ψ₁ψ₂ψ₃ up to O(dt²), error bounded by the
    1D errors. Measured: relative L2 difference 9.4e-4, 2.4e-4 at dt = 0.05, 0.025 (order
    1.99); 3D error 0.19, bound 0.31. On tetrahedra (not a tensor product) the same
    comparison differs by 0.06 whatever dt.
    """
    d = box(
        {
            "equation": "schrodinger",
            "parameters": {"gamma": 1.0, "beta": 1.0},
            "discretisation": {"degree": 1, "dt": 0.05, "t_end": 0.25},
            "potential": {"omega": [1.0, 1.2, 1.4]},
            "initial": {
                "kind": "coherent",
                "center": [0.5, -0.3, 0.2],
                "momentum": [0.3, 0.0, -0.2],
            },
        },
        cell="hexahedron",
    )
    per = (("potential", "omega"), ("initial", "center"), ("initial", "momentum"))
    runs = [product_run(d, per, dt) for dt in (0.05, 0.025)]
    assert all(r["drift"] < 1e-10 for r in runs), runs
    assert_product(runs)


@pytest.mark.mpi
def test_fokker_planck_3d_is_the_product_of_1d_runs() -> None:
    """OU in L̄ = ½(x² + 1.5y² + 2z²), κ = δ/β, zero flux on Q1 hexahedra: ∫p conserved to
    round-off (the constant 1 is a test function, so the discrete flux sums to zero; 1e-10
    bounds 20 solves' round-off; measured 3e-15), p₃ = p₁p₂p₃ up to O(dt²), and the error
    against the exact transient bounded by the 1D ones. Measured: difference 2.3e-5,
    5.7e-6 at dt = 0.02, 0.01 (order 2.000); 3D error 0.48 (6 cells for widths of 0.4-0.5),
    bound 1.07.
    """
    d = box(
        {
            "equation": "fokker_planck",
            "parameters": {"gamma": 1.0, "beta": 2.0},
            "discretisation": {"degree": 1, "dt": 0.02, "t_end": 0.2, "scheme": "crank_nicolson"},
            "potential": {"curvature": [1.0, 1.5, 2.0]},
            "initial": {"kind": "gaussian", "center": [0.4, -0.3, 0.2], "width": [0.5, 0.45, 0.4]},
        },
        cell="hexahedron",
    )
    per = (("potential", "curvature"), ("initial", "center"), ("initial", "width"))
    runs = [product_run(d, per, dt) for dt in (0.02, 0.01)]
    assert all(r["drift"] < 1e-10 for r in runs), runs
    assert_product(runs)


PACKET_3D = box(
    {
        "parameters": {"gamma": 1.0, "beta": 1.0},
        "discretisation": {"degree": 1, "dt": 0.05, "t_end": 0.25},
        "potential": {"omega": [1.0, 1.2, 1.4]},
        "initial": {"kind": "coherent", "center": [0.5, -0.3, 0.2], "momentum": [0.3, 0.0, -0.2]},
    }
)


def mass_drift(p: Problem, kind: str, stepper: Any = None) -> tuple[float, Any]:
    """(max relative drift of ∫|u|²√g over the steps, outcome) of a run."""
    functionals = Functionals(p.u0, p.semidiscrete.functionals)
    first, worst = functionals()["mass"], [0.0]

    def record(t: float, step: int) -> None:
        worst[0] = max(worst[0], abs(functionals()["mass"] / first - 1))

    if stepper is None:
        outcome = simulate(p, kind, [Every(1, record)])
    else:
        with Simulation(stepper, [Every(1, record)], COMM, dt=p.case.discretisation.dt) as sim:
            outcome = sim.run(Stop(steps=p.case.discretisation.steps))
    assert outcome.status == "completed", outcome.message
    return worst[0], outcome


@pytest.mark.mpi
def test_madelung_and_neural_hj_3d() -> None:
    """(√p, S) on tetrahedra: ∫R² conserved to round-off (the midpoint rule keeps quadratic
    invariants of nonlinear flows too; 1e-10 bounds round-off and the Newton tolerance's
    effect on a quadratic form; measured 4e-12); neural_hj with α = ½ on the flat metric
    has F = (γ³/4β²)δ, the same as madelung, so its run agrees to the Newton tolerance
    (measured: bit for bit); and the (R, S) solution is as close to the exact ψ as
    Schrödinger's on the same mesh (both P1 approximations of one ψ: measured error ratio
    0.94; a missing or wrong 3D term gives an O(1) error, not a factor 2).
    """
    # nodes = "stop": this compares the fluid forms; on 6 cells a side the hybrid's phase
    # test finds the P1 tails' S unresolved (a 3 rad step at |psi| ~ 1e-3 max) and would
    # run most of the interval as Schrödinger, which neural_hj (alpha = 1/2) has no form for
    madelung = problem(merged(PACKET_3D, {"equation": "madelung", "nonlinear": {"nodes": "stop"}}))
    drift, outcome = mass_drift(madelung, "adaptive")
    assert drift < 1e-10
    neural = problem(merged(PACKET_3D, {"equation": "neural_hj", "noise": {"alpha": 0.5}}))
    drift_nhj, _ = mass_drift(neural, "adaptive")
    assert drift_nhj < 1e-10
    n = madelung.space.dofmap.index_map.size_local * 2
    err, scale = wavefunction_error(neural.u0.x.array[:n], madelung.u0.x.array[:n], 1.0)
    assert COMM.allreduce(err, op=MPI.MAX) <= 1e-8 * COMM.allreduce(scale, op=MPI.MAX)

    schrodinger = problem(merged(PACKET_3D, {"equation": "schrodinger"}))
    drift_s, outcome_s = mass_drift(schrodinger, "linear")
    assert drift_s < 1e-10 and outcome_s.t == pytest.approx(outcome.t)
    e_m, e_s = relative_error(madelung, outcome.t), relative_error(schrodinger, outcome.t)
    assert e_m <= 2 * e_s and e_s < 0.5, (e_m, e_s)


@pytest.mark.mpi
def test_gross_pitaevskii_3d() -> None:
    """g = 0.5 on tetrahedra: ∫|ψ|² conserved to round-off by the midpoint rule despite the
    cubic term (measured 3.5e-14). With g = 0 and uniform steps the Newton stepper's
    midpoint rule is Crank–Nicolson of the linear equation: the run equals Schrödinger's to
    the Newton tolerance (relative update 1e-8, so 1e-7 over 5 steps; measured 9e-16),
    while g = 0.5 moves ψ by 1.2e-2 of max|ψ|.
    """
    coupled = problem(merged(PACKET_3D, {"equation": "gross_pitaevskii", "coupling": {"g": 0.5}}))
    drift, outcome = mass_drift(coupled, "adaptive")
    assert drift < 1e-10 and outcome.stats["accepted"] >= 5

    free = problem(merged(PACKET_3D, {"equation": "gross_pitaevskii", "coupling": {"g": 0.0}}))
    stepper = AdaptiveStepper(
        free.semidiscrete, "implicit_midpoint", free.u0, 0.05, free.bcs, None,
        StepControl(tolerance=None),
    )  # fmt: skip
    mass_drift(free, "adaptive", stepper)
    schrodinger = problem(merged(PACKET_3D, {"equation": "schrodinger"}))
    simulate(schrodinger, "linear")
    a, b = free.u0.x.array, schrodinger.u0.x.array
    diff = COMM.allreduce(float(np.max(np.abs(a - b), initial=0.0)), op=MPI.MAX)
    assert diff <= 1e-7 * COMM.allreduce(float(np.max(np.abs(b), initial=0.0)), op=MPI.MAX)
    # and the coupling does something: g = 0.5 moves ψ by far more than that
    c = coupled.u0.x.array
    moved = COMM.allreduce(float(np.max(np.abs(c - b), initial=0.0)), op=MPI.MAX)
    assert moved > 1e-3 * COMM.allreduce(float(np.max(np.abs(b), initial=0.0)), op=MPI.MAX)


@pytest.mark.mpi
def test_langevin_3d_moments() -> None:
    """20000 particles in L̄ = ½(x² + 1.5y² + 2z²) (box tetrahedra for the histogram): mean
    and variance of each coordinate at every output equal those of the Euler–Maruyama
    recursion, m ← (1 − γaₖh)m, v ← (1 − γaₖh)²v + (γ²/β)h (exact for the scheme; the
    continuous OU differs by O(h)), within 4 standard errors: √(v/N) for the mean and
    v√(2/N) for the variance of Gaussian samples (measured ≤ 1.6). Reflecting walls 6
    widths away keep the mass at 1.
    """
    d = box(
        {
            "equation": "langevin",
            "parameters": {"gamma": 1.0, "beta": 2.0},
            "discretisation": {"degree": 1, "dt": 0.05, "t_end": 0.3},
            "potential": {"curvature": [1.0, 1.5, 2.0]},
            "initial": {"kind": "gaussian", "center": [0.4, -0.3, 0.2], "width": [0.5, 0.45, 0.4]},
            "langevin": {"particles": 20000, "seed": 5, "dt": 0.0125},
        }
    )
    p = problem(d)
    (moments,) = [m for m in p.monitors if isinstance(m, ParticleMoments)]
    rows: list[dict[str, float]] = []
    outcome = simulate(p, "particles", [Every(2, lambda t, s: rows.append(moments(t)))])
    assert outcome.status == "completed" and len(rows) == 4  # t = 0, 0.1, 0.2, 0.3
    a, h, N = np.array([1.0, 1.5, 2.0]), 0.0125, 20000
    gamma, beta = 1.0, 2.0  # γ = 1, so γaₖ = aₖ below
    m, v = np.array([0.4, -0.3, 0.2]), np.array([0.5, 0.45, 0.4]) ** 2
    for k, row in enumerate(rows):
        if k:
            for _ in range(8):  # 2 output steps of 0.05, 4 particle steps each
                m, v = (1 - a * h) * m, (1 - a * h) ** 2 * v + h * gamma**2 / beta
        assert row["mass"] == 1.0
        for i in range(3):
            assert abs(row[f"mean_{i}"] - m[i]) <= 4 * np.sqrt(v[i] / N), (k, i, row, m)
            assert abs(row[f"var_{i}"] - v[i]) <= 4 * v[i] * np.sqrt(2 / N), (k, i, row, v)
