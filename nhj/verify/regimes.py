"""Check 4: the neural HJ regimes α against Schrödinger, flat and anisotropic.

Neural HJ (5.2) with α ∈ {1, ½, 0} (κ = g^{1/α}/β by (2.9), and κ = δ/β for
α = 0) has the Fisher tensor F of (5.3); it is the quantum F = (ħ²/4m) g⁻¹ of
(3.9) on a flat metric for every α, and on any other metric for α = 1 only.
Regimes that theory.md says coincide with Schrödinger (3.11) must agree with it
within the tolerance; the others must differ by ``separation`` × the tolerance.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

from mpi4py import MPI

import numpy as np
from dolfinx import fem

from nhj.builders.common import mesh_and_metric
from nhj.schema import CaseError
from nhj.sections import Case, NoiseSpec
from nhj.solvers import SolverError
from nhj.verify.observables import Mismatch, Snapshots, Support, Wave, hydrodynamic_snapshots
from nhj.verify.records import (
    FLUID,
    JUDGED,
    NONE,
    Check,
    Perturbation,
    failed,
    forms_at,
    wave_fraction,
)
from nhj.verify.spec import VerifyCase


def regime_case(case: Case, alpha: float) -> Case:
    """neural_hj with the power law κ = g^{1/α}/β, or κ = δ/β given for α = 0."""
    if alpha == 0:
        b = case.parameters.beta
        kappa = tuple(
            tuple(1.0 / b if i == j else 0.0 for j in range(case.dim)) for i in range(case.dim)
        )
        noise = NoiseSpec(0.0, kappa)
    else:
        noise = NoiseSpec(float(alpha))
    return replace(case, equation="neural_hj", noise=noise)


def quantum_expected(case: Case, alpha: float) -> bool:
    """Whether theory.md says regime α equals Schrödinger here: F = (ħ²/4m) g⁻¹ (5.3).

    Flat metric with κ = δ/β: every α. Otherwise only α = 1 (κ = g/β).
    """
    G = None if case.metric.entries is None else np.array(case.metric.entries, dtype=float)
    flat = G is None or np.array_equal(G, np.eye(case.dim))
    return bool(flat or alpha == 1)


def check_regimes(vc: VerifyCase, comm: MPI.Comm, perturb: Perturbation = NONE) -> Check:
    """The neural HJ regimes α against Schrödinger (ħ = γ/β, m = 1/γ, Δ_g) on one mesh.

    Regimes that theory.md says coincide with Schrödinger must agree within the
    tolerance; the others must differ by more than separation × tolerance.
    ``perturb.m_factor`` ≠ 1 gives Schrödinger a wrong mass, ``perturb.coincide``
    replaces theory's claim of which regimes coincide (the check must then fail).
    """
    spec, case = vc.spec, vc.case
    if not case.metric.is_constant:
        raise CaseError("metric.g", "the regimes check needs a constant metric")
    alphas = tuple(spec.alphas)
    tol, far = spec.mismatch_tolerance, spec.separation * spec.mismatch_tolerance
    name = f"regimes[{vc.name}]"
    criterion = (
        f"alpha in {list(alphas)}: mismatch to Schrodinger <= {tol:g} where theory "
        f"says they coincide (flat metric, or alpha = 1), > {far:g} elsewhere"
    )
    t0 = time.perf_counter()
    msh, metric = mesh_and_metric(case, comm)
    degree = case.discretisation.degree
    runs: dict[float, Snapshots] = {}
    try:
        for a in alphas:
            runs[a] = hydrodynamic_snapshots(regime_case(case, a), msh, metric, spec.times)
    except SolverError as e:
        return failed(name, tol, criterion, e)
    first = runs[alphas[0]]
    u = fem.Function(first.space)
    hydro = first.pair(u)
    support = Support(u, hydro[0])
    wave = Wave(case, msh, metric, first.space, spec.schrodinger_degree, perturb)
    mismatch = Mismatch(hydro, wave.pair(), support, metric, degree, comm)
    series: dict[float, list[dict[str, float]]] = {a: [] for a in alphas}

    def observe(i: int) -> None:
        for a in alphas:
            u.x.array[:] = runs[a].states[i]
            support.update()
            series[a].append(mismatch())

    try:
        wave.run(case.parameters.hbar, first.u0, first.steps, first.dt, observe)
    except SolverError as e:
        return failed(name, tol, criterion, e)
    # only the (√p, S) states: a hybrid's wave-form interval is Schrödinger itself (NaN if none)
    judged = {
        a: [i for i, f in enumerate(forms_at(runs[a].stats, first.times)) if f == FLUID]
        for a in alphas
    }
    worst = {
        a: max((s[i][c] for i in judged[a] for c in JUDGED), default=math.nan)
        for a, s in series.items()
    }
    # how far each regime's (√p, S) is from the first's, nodally: 0 to round-off where F agrees
    n = first.space.dofmap.index_map.size_local * 2
    scale = comm.allreduce(float(np.abs(first.states[-1][:n]).max(initial=0.0)), op=MPI.MAX)
    apart = {
        a: comm.allreduce(
            float(np.abs(runs[a].states[-1][:n] - first.states[-1][:n]).max(initial=0.0)),
            op=MPI.MAX,
        )
        / scale
        for a in alphas
    }
    claim = perturb.coincide
    expected = {a: quantum_expected(case, a) if claim is None else claim for a in alphas}
    same = [worst[a] for a in alphas if expected[a]]
    other = [worst[a] for a in alphas if not expected[a]]
    passed = all(w <= tol for w in same) and all(w > far for w in other)
    value = max(same) if same else math.nan
    return Check(
        name,
        bool(passed),
        value,
        tol,
        {
            "criterion": criterion,
            "case": vc.name,
            "flat": all(quantum_expected(case, a) for a in alphas),
            "alphas": list(alphas),
            "equals_schrodinger": [expected[a] for a in alphas],
            "mismatch": [worst[a] for a in alphas],
            "separated_by": min(other) if other else None,
            "max_nodal_difference_to_first": [apart[a] for a in alphas],
            "separation_bound": far,
            "times": list(first.times),
            "judged_times": {str(a): [first.times[i] for i in judged[a]] for a in alphas},
            "fraction_wave": {str(a): wave_fraction(runs[a].stats) for a in alphas},
            **{c: {str(a): [e[c] for e in s] for a, s in series.items()} for c in Mismatch.columns},
            "wall_s": time.perf_counter() - t0,
        },
    )
