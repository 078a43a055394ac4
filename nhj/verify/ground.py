"""Check 3: ground state ↔ Gibbs density ↔ the Fokker–Planck long-time state.

With V from the loss L̄ by (3.6), the lowest eigenpair of H = −(ħ²/2m)Δ_g + V
of (3.11) has E₀ = 0 and |ψ₀|² = exp(−2βL̄/γ)/Z, the Gibbs density that the
Fokker–Planck equation (2.7) at α = 1 relaxes to. ``ground_state_energy`` and
``ground_state_gibbs`` measure both on refined meshes; ``fokker_planck_gibbs``
runs (2.7) to t_end and compares its state with the Gibbs density and with ψ₀².
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem

from nhj.builders.common import boundary_conditions, make_loss, make_potential, mesh_and_metric
from nhj.covariant import Metric
from nhj.diagnostics import global_scalar, quadrature
from nhj.eigen import gibbs_l1, ground_state, mesh_size
from nhj.equations.learning import gibbs_log_weight
from nhj.equations.schrodinger import Schrodinger
from nhj.registry import EQUATIONS
from nhj.sections import Case
from nhj.simulation import Every, Stop, simulate
from nhj.solvers import SolverError
from nhj.verify.records import NONE, Check, Perturbation, Profile, failed, observed_orders
from nhj.verify.spec import VerifyCase, with_cells, with_pair


@dataclass
class Ground:
    """A ground state on one mesh, with what the Gibbs comparison needs."""

    E0: float
    psi: fem.Function
    loss: Any
    metric: Metric
    h: float
    dofs: int


def solve_ground(case: Case, msh: Any, metric: Metric) -> Ground:
    """Lowest eigenpair of H = −(ħ²/2m)Δ_g + V, V from L̄ by (3.6), ψ = 0 on ∂Ω (collective)."""
    par, degree = case.parameters, case.discretisation.degree
    eq = Schrodinger(metric, make_potential(case, msh, metric), par.hbar, par.m)
    space = fem.functionspace(msh, ("Lagrange", degree))
    gs = ground_state(eq, space, boundary_conditions(case, space, "dirichlet", 0.0))
    return Ground(
        gs.E0,
        gs.psi,
        make_loss(case, msh),
        metric,
        mesh_size(msh),
        space.dofmap.index_map.size_global,
    )


def ground_levels(
    vc: VerifyCase, comm: MPI.Comm, perturb: Perturbation = NONE
) -> dict[str, list[float]]:
    """E₀ and ‖ψ₀² − exp(−2β_g L̄/γ)/Z‖₁ on each refinement level (collective).

    ``perturb.beta_gibbs`` (default β) is the β of the Gibbs density compared
    with; ``perturb.hbar_H`` overrides ħ in H (V stays (3.6) at γ, β): both for
    tests that the checks fail.
    """
    par = vc.case.parameters
    case = with_pair(vc.case, par.gamma, par.beta, perturb.hbar_H)
    bg = par.beta if perturb.beta_gibbs is None else perturb.beta_gibbs
    out: dict[str, list[float]] = {"cells": [], "h": [], "dofs": [], "E0": [], "gibbs_l1": []}
    for n in vc.spec.refinement:
        c = with_cells(case, n)
        msh, metric = mesh_and_metric(c, comm)
        g = solve_ground(c, msh, metric)
        l1 = gibbs_l1(g.psi**2, g.loss, par.gamma, bg, metric, c.discretisation.degree, comm)
        for key, v in (("cells", n), ("h", g.h), ("dofs", g.dofs), ("E0", g.E0), ("gibbs_l1", l1)):
            out[key].append(v)
    return out


def check_ground_energy(vc: VerifyCase, levels: Mapping[str, Sequence[float]]) -> Check:
    """E₀ ≈ 0: |E₀| on the finest mesh ≤ its discretisation error |E₀(h) − E₀(h/2)|, shrinking."""
    E = list(levels["E0"])
    value, tol = abs(E[-1]), abs(E[-2] - E[-1])
    shrinking = all(abs(b) < abs(a) for a, b in zip(E, E[1:], strict=False))
    criterion = (
        "|E0| on the finest mesh <= |E0(coarser) - E0(finest)| (zero within the "
        "discretisation error) and |E0| shrinking under refinement"
    )
    return Check(
        f"ground_state_energy[{vc.name}]",
        bool(value <= tol and shrinking),
        value,
        tol,
        {
            "criterion": criterion,
            "case": vc.name,
            **levels,
            "order_E0": observed_orders(levels["h"], [abs(e) for e in E]),
            "shrinking": shrinking,
        },
    )


def check_ground_gibbs(
    vc: VerifyCase, levels: Mapping[str, Sequence[float]], perturb: Perturbation = NONE
) -> Check:
    """‖|ψ₀|² − exp(−2βL̄/γ)/Z‖₁ ≤ the tolerance on the finest mesh, shrinking.

    ``perturb.beta_gibbs``: the β_g the ``levels`` were measured with (reported).
    """
    tol = vc.spec.gibbs_tolerance
    L1 = list(levels["gibbs_l1"])
    shrinking = all(b < a for a, b in zip(L1, L1[1:], strict=False))
    criterion = (
        f"||psi0^2 - exp(-2 beta L/gamma)/Z||_1 <= {tol:g} on the finest mesh, "
        "shrinking under refinement"
    )
    par = vc.case.parameters
    return Check(
        f"ground_state_gibbs[{vc.name}]",
        bool(L1[-1] <= tol and shrinking),
        L1[-1],
        tol,
        {
            "criterion": criterion,
            "case": vc.name,
            **levels,
            "beta_gibbs": par.beta if perturb.beta_gibbs is None else perturb.beta_gibbs,
            "order_gibbs_l1": observed_orders(levels["h"], L1),
            "shrinking": shrinking,
        },
    )


def check_fokker_planck(
    vc: VerifyCase, comm: MPI.Comm, perturb: Perturbation = NONE
) -> tuple[Check, Profile | None]:
    """The Fokker–Planck (2.7) state at t_end equals the Gibbs density and |ψ₀|².

    value = max(‖p − exp(−2β_g L̄/γ)/Z‖₁, ‖p − ψ₀²‖₁) on the case's own mesh and
    time; ``perturb.beta_gibbs`` (default β) is β_g. The run takes the stepper of
    the case's registry entry, with an observer recording the distance to Gibbs.
    """
    case, spec = vc.case, vc.spec
    par, disc = case.parameters, case.discretisation
    bg = par.beta if perturb.beta_gibbs is None else perturb.beta_gibbs
    tol = spec.gibbs_tolerance
    name = f"fokker_planck_gibbs[{vc.name}]"
    criterion = (
        f"the Fokker-Planck density at t = {disc.t_end:g} is within {tol:g} (L1) of "
        "exp(-2 beta L/gamma)/Z and of the ground state psi0^2"
    )
    t0 = time.perf_counter()
    msh, metric = mesh_and_metric(case, comm)
    entry = EQUATIONS[case.equation]
    problem = entry.build(case, msh, metric)
    p = problem.u0
    loss = make_loss(case, msh)
    history: list[tuple[float, float]] = []

    def record(t: float, step: int) -> None:
        history.append((t, gibbs_l1(p, loss, par.gamma, bg, metric, disc.degree, comm)))

    every = Every(max(1, disc.steps // 10), record)
    outcome = simulate(problem, entry.stepper, [every], Stop(steps=disc.steps))
    if outcome.status != "completed":
        return failed(name, tol, criterion, SolverError(outcome.message)), None
    g = solve_ground(case, msh, metric)
    dx = quadrature(disc.degree)
    to_psi = global_scalar(fem.form(metric.volume(abs(p - g.psi**2), dx)), comm)
    value = max(history[-1][1], to_psi)
    check = Check(
        name,
        bool(value <= tol),
        value,
        tol,
        {
            "criterion": criterion,
            "case": vc.name,
            "t_end": disc.t_end,
            "dt": disc.dt_used,
            "scheme": disc.scheme,
            "beta_gibbs": bg,
            "gibbs_l1": history[-1][1],
            "l1_to_ground_state": to_psi,
            "E0": g.E0,
            "history": [list(r) for r in history],
            "wall_s": time.perf_counter() - t0,
        },
    )
    return check, profile(p, g, loss, par.gamma, bg) if case.dim == 1 else None


def profile(p: fem.Function, g: Ground, loss: Any, gamma: float, beta: float) -> Profile | None:
    """Nodal ψ₀², Gibbs density and p gathered on rank 0 (collective; 1D)."""
    space = g.psi.function_space
    comm = space.mesh.comm
    w = fem.Function(space)
    weight = ufl.exp(gibbs_log_weight(loss, gamma, beta))
    w.interpolate(fem.Expression(weight, space.element.interpolation_points))
    Z = global_scalar(fem.form(g.metric.volume(w, quadrature(2))), comm)
    n = space.dofmap.index_map.size_local
    x = space.tabulate_dof_coordinates()[:n, 0]
    pv = fem.Function(space)
    pv.interpolate(p)
    parts = comm.gather((x, g.psi.x.array[:n] ** 2, w.x.array[:n] / Z, pv.x.array[:n]), root=0)
    if comm.rank != 0:
        return None
    x, psi2, gibbs, pp = (np.concatenate(c) for c in zip(*parts, strict=True))
    order = np.argsort(x)
    return Profile(x[order], psi2[order], gibbs[order], pp[order])
