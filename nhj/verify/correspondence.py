"""Check 1: Madelung vs Schrödinger vs exact, and the refinement study.

``correspondence`` — Madelung (3.7)–(3.9) at (γ, β) against Schrödinger (3.11)
with ħ = γ/β (3.12), m = 1/γ (3.13) from the same p₀, S₀, and both against the
exact Gaussian state where the equation's registry entry says there is one:
the relative L² mismatch of p against |ψ|² and of ∇S against ħ∇arg ψ
(p-weighted, on the support p > 10⁻³ max p) at each observation time
(:class:`~nhj.verify.observables.Mismatch`). ``refinement`` repeats the
Madelung–Schrödinger comparison on finer meshes (dt ∝ h) and measures the
observed order of the mismatch.
"""

from __future__ import annotations

import time
from pathlib import Path

from mpi4py import MPI

from dolfinx import fem

from nhj.builders.common import gaussian_state
from nhj.eigen import mesh_size
from nhj.equations.schrodinger import wrapped
from nhj.registry import EQUATIONS
from nhj.solvers import SolverError
from nhj.verify.observables import (
    Exact,
    MadelungRun,
    Mismatch,
    Snapshots,
    Support,
    Wave,
    madelung_run,
)
from nhj.verify.records import (
    NONE,
    Check,
    Comparison,
    Perturbation,
    failed,
    observed_orders,
    wave_fraction,
)
from nhj.verify.spec import SUPPORT, VerifyCase, VerifySpec, refined, with_pair


def compare(
    run: MadelungRun,
    spec: VerifySpec,
    perturb: Perturbation = NONE,
    panels: Path | None = None,
) -> Comparison:
    """Schrödinger with ħ = γ/β against a Madelung run, both against the exact state.

    The exact state enters where the case's registry entry says it applies.
    Collective. ``panels``: write p, S (wrapped to (−πħ, πħ]) and |ψ|², ħ arg ψ at
    the last time to this .vtu file (gathered on rank 0).

    Raises:
        SolverError: The Schrödinger run failed.
    """
    case, msh, metric, snaps = run.case, run.msh, run.metric, run.snaps
    comm = msh.comm
    degree = case.discretisation.degree
    u = fem.Function(snaps.space, name="R_S")
    hydro = snaps.pair(u)
    support = Support(u, hydro[0])
    wave = Wave(case, msh, metric, snaps.space, spec.schrodinger_degree, perturb)
    psi_pair = wave.pair()
    mismatch = {"MS": Mismatch(hydro, psi_pair, support, metric, degree, comm)}
    state = gaussian_state(case) if EQUATIONS[case.equation].exact(case) else None
    exact = Exact(state, msh) if state is not None else None
    if exact is not None:
        mismatch["ME"] = Mismatch(hydro, exact.pair, support, metric, degree, comm)
        mismatch["SE"] = Mismatch(psi_pair, exact.pair, support, metric, degree, comm)
    series: dict[str, dict[str, list[float]]] = {
        k: {c: [] for c in Mismatch.columns} for k in mismatch
    }

    def observe(i: int) -> None:
        u.x.array[:] = snaps.states[i]
        support.update()
        if exact is not None:
            exact.at(snaps.times[i])
        for k, m in mismatch.items():
            for c, e in m().items():
                series[k][c].append(e)

    wave.run(case.parameters.hbar, snaps.u0, snaps.steps, snaps.dt, observe)
    if panels is not None:
        write_panels(panels, u, snaps, wave, degree)
    return Comparison(
        tuple(spec.times),
        series,
        snaps.space.dofmap.index_map.size_global * 2,
        mesh_size(msh),
        snaps.wall_s,
        snaps.stats,
    )


def write_panels(path: Path, u: fem.Function, snaps: Snapshots, wave: Wave, degree: int) -> None:
    """The Madelung p and S, |ψ|² and ħ arg ψ, in one gathered .vtu file (collective)."""
    from nhj.output import write_gathered_vtu

    space = fem.functionspace(u.function_space.mesh, ("Lagrange", degree))
    exprs = {
        "p": snaps.equation.density(u),
        "S": wrapped(u[1], wave.hbar),  # like ħ arg ψ
        "p_psi": wave.eq.density(wave.psi),
        "hbar_arg_psi": wave.eq.phase(wave.psi),
    }
    fields = []
    for name, e in exprs.items():
        f = fem.Function(space, name=name)
        f.interpolate(fem.Expression(e, space.element.interpolation_points))
        fields.append(f)
    write_gathered_vtu(path, fields)


def check_correspondence(
    vc: VerifyCase,
    gamma: float,
    beta: float,
    comm: MPI.Comm,
    perturb: Perturbation = NONE,
    panels: Path | None = None,
    run: MadelungRun | None = None,
) -> tuple[Check, Comparison | None]:
    """Madelung vs Schrödinger vs exact at (γ, β): every mismatch ≤ the tolerance.

    ``perturb.m_factor`` ≠ 1 gives Schrödinger a wrong mass (the check must then
    fail); ``run``: the Madelung run at (γ, β) if already done.
    """
    spec = vc.spec
    tol = spec.mismatch_tolerance
    name = f"correspondence[{vc.name}] gamma={gamma:g} beta={beta:g}"
    criterion = (
        f"relative L2 mismatch of p vs |psi|^2, and of grad S vs hbar grad arg psi "
        f"(p-weighted, on the support p > {SUPPORT:g} max p) <= {tol:g} at every time, "
        "for Madelung vs Schrodinger and both vs the exact state; only at the times the "
        "Madelung run was in the (sqrt p, S) form (a wave-form interval of the hybrid is "
        "Schrodinger itself, no evidence)"
    )
    t0 = time.perf_counter()
    case = with_pair(vc.case, gamma, beta)
    try:
        run = run or madelung_run(case, comm, spec.times)
        cmp = compare(run, spec, perturb, panels)
    except SolverError as e:
        return failed(name, tol, criterion, e), None
    worst = {k: cmp.worst(k) for k in cmp.series}
    value = max(worst["MS"].values())
    passed = all(e <= tol for w in worst.values() for e in w.values())
    judged = cmp.judged()
    forms = {
        "forms": cmp.forms,
        "judged_times": [cmp.times[i] for i in judged],
        "fraction_wave": wave_fraction(cmp.stats),
    }
    if not judged:
        forms["error"] = (
            "every observation time fell in a wave-form interval of the hybrid: "
            "the run was Schrodinger there, so nothing was compared"
        )
    details = {
        "criterion": criterion,
        "case": vc.name,
        "gamma": gamma,
        "beta": beta,
        "hbar": gamma / beta,
        "m": 1.0 / gamma * perturb.m_factor,
        "dim": case.dim,
        "dofs": cmp.dofs,
        "h": cmp.h,
        "times": list(cmp.times),
        **forms,
        **{f"{k}_{c}": v for k, s in cmp.series.items() for c, v in s.items()},
        "madelung_steps": cmp.stats,
        "madelung_wall_s": cmp.madelung_wall_s,
        "wall_s": time.perf_counter() - t0,
    }
    return Check(name, passed, value, tol, details), cmp


def check_refinement(vc: VerifyCase, comm: MPI.Comm, perturb: Perturbation = NONE) -> Check:
    """The Madelung–Schrödinger mismatch → 0 under refinement (h and dt together).

    Expected orders with dt ∝ h (P_k, second-order schemes): p min(k + 1, 2),
    ∇S min(k, 2); the order of the finest pair of levels must be within ½ of it
    and the mismatch must decrease from level to level.
    """
    spec, case = vc.spec, vc.case
    gamma, beta = spec.pairs[0]
    k = case.discretisation.degree
    expected = {"p": min(k + 1, 2), "grad_S": min(k, 2)}
    tol = min(expected.values()) - 0.5
    name = f"refinement[{vc.name}] gamma={gamma:g} beta={beta:g}"
    criterion = (
        "observed order of the Madelung-Schrodinger mismatch (finest two levels, "
        f"dt ~ h) >= expected - 0.5 (p: {expected['p']}, grad S: "
        f"{expected['grad_S']}), decreasing at every level"
    )
    t0 = time.perf_counter()
    levels: dict[str, list[float]] = {"cells": [], "h": [], "dt": [], "p": [], "grad_S": []}
    try:
        for n in spec.refinement:
            c = refined(with_pair(case, gamma, beta), n)
            cmp = compare(madelung_run(c, comm, spec.times), spec, perturb)
            w = cmp.worst("MS")
            for key, v in (
                ("cells", n),
                ("h", cmp.h),
                ("dt", c.discretisation.dt_used),
                ("p", w["p"]),
                ("grad_S", w["grad_S"]),
            ):
                levels[key].append(v)
    except SolverError as e:
        return failed(name, tol, criterion, e)
    orders = {key: observed_orders(levels["h"], levels[key]) for key in ("p", "grad_S")}
    finest = {key: o[-1] for key, o in orders.items()}
    decreasing = all(
        b < a for key in ("p", "grad_S") for a, b in zip(levels[key], levels[key][1:], strict=False)
    )
    passed = decreasing and all(finest[key] >= expected[key] - 0.5 for key in finest)
    value = min(finest[key] - expected[key] for key in finest) + min(expected.values())
    return Check(
        name,
        bool(passed),
        value,
        tol,
        {
            "criterion": criterion,
            "case": vc.name,
            **levels,
            "order_p": orders["p"],
            "order_grad_S": orders["grad_S"],
            "expected_order": expected,
            "decreasing": decreasing,
            "wall_s": time.perf_counter() - t0,
        },
    )
