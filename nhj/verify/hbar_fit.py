"""Check 2: the ħ that makes Schrödinger (3.11) reproduce a Madelung run is γ/β (3.12).

The Madelung run at (γ, β) is data; Schrödinger runs with a trial ħ and m
fixed at 1/γ (3.13) from the same p₀, S₀ (one factorisation per trial ħ,
reused over its steps; ħ is a ``fem.Constant`` so the forms compile once). The
mismatch J(ħ) = mean over times of (e_p² + e_∇S²) is minimised by a bounded
Brent search over [ħ_e/B, B ħ_e] (ħ_e = γ/β, B the bracket factor, 4 by
default): the minimiser must be γ/β within the tolerance, and the minimum must
be resolved at that tolerance (the relative change of ħ over which J rises by
its own minimum value, from the curvature, is below the tolerance) — a plateau
fails.
"""

from __future__ import annotations

import math
import time

from mpi4py import MPI

import numpy as np
from dolfinx import fem

from nhj.solvers import SolverError
from nhj.verify.observables import MadelungRun, Mismatch, Support, Wave, madelung_run
from nhj.verify.records import JUDGED, NONE, Check, Fit, Perturbation, failed
from nhj.verify.spec import VerifyCase, VerifySpec, with_pair

OFFSETS = (-0.05, -0.02, -0.01, -0.005, -0.0025, 0.0, 0.0025, 0.005, 0.01, 0.02, 0.05)
"""Relative offsets s of ħ = ħ_fit (1 + s) at which J is tabulated around the minimum."""


def fit_hbar(
    run: MadelungRun, spec: VerifySpec, perturb: Perturbation = NONE, xatol: float = 1e-6
) -> Fit:
    """The ħ minimising the mismatch J(ħ) of Schrödinger(ħ, m = m_factor/γ) to a Madelung run.

    J(ħ) = mean over the observation times of e_p² + e_∇S² (collective).
    Bounded Brent search in log ħ over [γ/β / bracket, bracket · γ/β]; then J on
    ħ_fit·(1 + s) for s in :data:`OFFSETS`, and the curvature a of a parabola
    J ≈ J_min + a s² fitted on |s| ≤ 1 %: the width √(J_min/a) is the relative
    change of ħ over which J rises by its own minimum value.

    Raises:
        SolverError: A Schrödinger run failed.
    """
    from scipy.optimize import minimize_scalar

    times, bracket = spec.times, spec.bracket
    case, msh, metric, snaps = run.case, run.msh, run.metric, run.snaps
    comm = msh.comm
    u = fem.Function(snaps.space)
    hydro = snaps.pair(u)
    support = Support(u, hydro[0])
    wave = Wave(case, msh, metric, snaps.space, spec.schrodinger_degree, perturb)
    mismatch = Mismatch(hydro, wave.pair(), support, metric, case.discretisation.degree, comm)
    memo: dict[float, float] = {}

    def J(hbar: float) -> float:
        if hbar in memo:
            return memo[hbar]
        total = [0.0]

        def observe(i: int) -> None:
            u.x.array[:] = snaps.states[i]
            support.update()
            e = mismatch()
            total[0] += sum(e[c] ** 2 for c in JUDGED)

        wave.run(hbar, snaps.u0, snaps.steps, snaps.dt, observe)
        memo[hbar] = comm.bcast(total[0] / len(times), root=0)  # one Brent path on all ranks
        return memo[hbar]

    h_e = case.parameters.gamma / case.parameters.beta
    lo, hi = math.log(h_e / bracket), math.log(h_e * bracket)
    res = minimize_scalar(
        lambda s: J(math.exp(s)), bounds=(lo, hi), method="bounded", options={"xatol": xatol}
    )
    h_fit = math.exp(float(res.x))
    evaluations = sorted(memo.items())
    curve = [(s, J(h_fit * (1 + s))) for s in OFFSETS]
    near = [(s, j) for s, j in curve if abs(s) <= 0.01]
    a = float(np.polyfit([s for s, _ in near], [j for _, j in near], 2)[0])
    J_min = J(h_fit)
    width = math.sqrt(J_min / a) if a > 0 else math.inf
    at_bound = min(abs(res.x - lo), abs(res.x - hi)) < 1e-3 * (hi - lo)
    return Fit(h_e, h_fit, J_min, evaluations, curve, 2 * a, width, bool(at_bound))


def check_hbar_fit(
    vc: VerifyCase,
    gamma: float,
    beta: float,
    comm: MPI.Comm,
    perturb: Perturbation = NONE,
    run: MadelungRun | None = None,
) -> tuple[Check, Fit | None]:
    """ħ_fit = γ/β within the tolerance, and the minimum resolved at that tolerance.

    ``perturb.m_factor`` ≠ 1 fits with a wrong mass; ``perturb.hbar_expected``
    compares with another value than γ/β: both for tests that the check fails when
    it should. ``run``: the Madelung run at (γ, β) if already done.
    """
    spec = vc.spec
    tol = spec.hbar_tolerance
    expected = gamma / beta if perturb.hbar_expected is None else perturb.hbar_expected
    name = f"hbar_fit[{vc.name}] gamma={gamma:g} beta={beta:g}"
    criterion = (
        f"|hbar_fit/hbar_expected - 1| <= {tol:g} with m = 1/gamma, and a clear "
        f"minimum: width sqrt(J_min/a) <= {tol:g} (J ~ J_min + a s^2, s = "
        "hbar/hbar_fit - 1), not at the search bounds"
    )
    t0 = time.perf_counter()
    try:
        run = run or madelung_run(with_pair(vc.case, gamma, beta), comm, spec.times)
        fit = fit_hbar(run, spec, perturb)
    except SolverError as e:
        return failed(
            name, tol, criterion, e, case=vc.name, gamma=gamma, beta=beta, hbar_expected=expected
        ), None
    rel = abs(fit.hbar_fit / expected - 1)
    passed = rel <= tol and fit.width <= tol and not fit.at_bound
    return Check(
        name,
        bool(passed),
        rel,
        tol,
        {
            "criterion": criterion,
            "case": vc.name,
            "gamma": gamma,
            "beta": beta,
            "m": perturb.m_factor / gamma,
            "hbar_expected": expected,
            "hbar_fit": fit.hbar_fit,
            "rel_error": rel,
            "J_min": fit.J_min,
            "curvature": fit.curvature,
            "width": fit.width,
            "at_bound": fit.at_bound,
            "bracket": spec.bracket,
            "evaluations": len(fit.evaluations),
            "search": [list(e) for e in fit.evaluations],
            "curve": [list(c) for c in fit.curve],
            "wall_s": time.perf_counter() - t0,
        },
    ), fit
