"""Cost per simulated time: a Madelung run to t_end against the Schrödinger run of equal error.

What a user pays is the wall time of a run to t_end, not of a step (issue 10, item 3).
Goal: a madelung run to t_end at ≤ 3× the wall time of the Schrödinger run that
reaches the same error; the (√p, S) form is more accurate per mesh, so it may use a
coarser one. Three flows with an exact Gaussian solution (nhj/exact.py):

* ``coherent_2d``: cases/madelung_coherent_2d.toml (coherent_2d.toml is the same
  kind of state with other parameters, so its twin here is this case with
  equation = "schrodinger");
* ``squeezed_2d``: cases/verify/squeezed_2d.toml (a squeezed Gaussian with momentum in
  an anisotropic harmonic V);
* ``packet_1d``: cases/madelung_free_packet_1d.toml (free_packet_1d.toml is its
  Schrödinger twin on another mesh and dt; here the same case with equation = "schrodinger").

Per flow, Madelung runs in two forms (P2, the case's scheme and dt, adaptive sub-steps,
the wave–fluid hybrid as shipped):

* ``sqrt`` (the default unknown R = √p, Dirichlet walls) on the shipped domain, on the
  shipped mesh and one other level;
* ``log`` (``vacuum.amplitude = "log"``, ρ = log √p with open walls,
  nhj/equations/madelung_log.py) on the flow's region (below), on two coarse meshes, and
  on the coarser one with ``gauss2`` (order 4, nhj/collocation.py) at 4× and 8× the case's
  dt. For these Gaussian states ρ and S are quadratic, so P2 holds them exactly and only
  the time error is left — the "more accurate per mesh, so a coarser one" of the goal.
* ``log`` on the support domain (2D flows: :func:`nhj.support.support_geo`, the union of
  the exact state's level sets p/max p = 1e-6 over the run, meshed by gmsh at two sizes)
  with ``gauss2`` at 4× the case's dt (and 8× on the coarser): no corners deeper than the
  packet's sweep, where the box's are at R/R_max ~ 1e-14.

The region of a flow is the box outside which p/max p < FIT_TAIL at every time of the run
(from the exact state): where the packet is, to a millionth of its peak density. Open walls
need no margin beyond it (no reflection); the log form needs the box to be no deeper than
that (its tail-depth limit: on the box where p/max p ≥ 1e-12 the coherent flow's S loses
its accuracy at t = 1.3). Every run's error is also measured on the region alone
(``error_box``, ``error_p_box``), and runs are matched on that: the same error on the same
region.

Schrödinger runs on a ladder of degrees, meshes, schemes and dt: first the exact propagator
``exponential`` (nhj/separable.py; quadrilaterals in 2D, the interval in 1D, one step of
t_end: these flows' H separates), which has only the space's error and so runs Q6 down to Q2;
then Gauss–Legendre 2 and Crank–Nicolson (P2–P4, dt halved), kept for completeness: they
are normally cut at their first run, which costs more than an exponential run that already
reached the target. The ladder's domain is the box outside which the exact
|ψ|²/max < LADDER_TAIL = 1e-20 at every time of the run (``fitted_box`` with that tail,
rounded outwards to 0.5; ``ladder_box`` in the JSON), with n cells along its longest side
and the others in proportion. Its Dirichlet walls then cut ψ at ~1e-10 of its peak, below
every error in play. The shipped domains do cut it: on them the exact propagator stalls at
8.8e-6 (coherent) and 2.4e-5 (squeezed), so every Madelung run more accurate than that only
got an upper bound on its ratio; Dirichlet walls on the region itself would cut ψ at 1e-3.
Each branch is refined until it reaches the target, the best ``error_box`` of every
completed Madelung run (the support domain's included), or costs more than a run that
already reached it, or more than ``cap`` (10× the dearest Madelung run), or the case's rules
refuse the mesh (the exact propagator: ≤ 3000 nodes per axis). The errors are those of
nhj.diagnostics.ExactError (the runs' own monitors), ‖ψ_h − ψ_ex‖/‖ψ_ex‖ (√g-weighted, at
t_end, ψ_h = √p e^{iS/ħ} for Madelung) and ``error_p`` = ‖p − |ψ_ex|²‖/‖|ψ_ex|²‖, each on
the region and on the run's domain (``error``: summary.json's error_l2). The Schrödinger
wall time at the Madelung error is interpolated log-log on the ladder's front
(the rows no cheaper row beats); the JSON says how each ratio was obtained (``kind``:
interpolated, an upper bound if the ladder never reached the error, a lower bound if its
cheapest run is already below it; a flow's verdict counts no lower bound).

Wall time is that of build + stepping to t_end on this process (no output, errors
evaluated afterwards; a run under 2 s is timed three times and the least time counts, all
three in ``wall_s_runs``), with a warm JIT cache: every configuration (equation, degree,
mesh, scheme) first runs one output step, which compiles its forms (Madelung's
depend on the mesh: the vacuum's ν_h is a number in them); the timed run then loads
them from the cache and still pays the build and every factorisation. PETSc's log
splits each run's time into LU factorisations, triangular solves and the rest. One BLAS
thread (OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = 1 unless set, by ``import nhj``): a serial
comparison, and with OpenBLAS's default thread per core the exponential propagator's runs
were 7–35× slower while another process used one of the 2 cores.

Writes benchmarks/results/madelung_cost.json (rank 0; ``--quick``: small meshes and a
short t_end, ~1.5 min, to madelung_cost_quick.json) and prints a one-line verdict.

    python benchmarks/madelung_cost.py [--quick] [--flows packet_1d ...] [--note "..."]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# nhj first: it sets one BLAS thread per process (unless the caller set another) before
# numpy and PETSc load OpenBLAS. With a thread per core and another process on one of the 2
# cores, the exponential propagator's runs were 7-35x slower.
import nhj  # noqa: F401  (and imports dolfinx_solver first)

# isort: split
from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import ufl

from nhj.builders.common import gaussian_state
from nhj.case import load_case
from nhj.diagnostics import ExactError
from nhj.registry import build, entry
from nhj.run import versions
from nhj.schema import CaseError
from nhj.simulation import Simulation, Stop, make_stepper
from nhj.timeschemes import exact_in_time
from nhj.ufl_cache import release_ufl_caches
from nhj.verify.spec import load_verify_case

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
GOAL = 3.0
#: How a ratio was obtained, as printed: interpolated, an upper or a lower bound.
SIGN = {"interpolated": "", "upper_bound": "<=", "lower_bound": ">="}
#: PETSc events of a direct solve: factorisations and triangular solves.
EVENTS = {"lu": ("MatLUFactorSym", "MatLUFactorNum"), "solve": ("MatSolve",)}
#: Runs shorter than REPEAT_BELOW seconds are timed REPEATS times; the least wall time counts
#: (most runs here take 0.03–1 s, where another process's load is most of the spread).
REPEATS, REPEAT_BELOW = 3, 2.0
#: Statistics of the adaptive (Newton) stepper of a Madelung run.
NEWTON = ("accepted", "rejected", "newton_iterations", "factorisations", "dt_min")


@dataclass(frozen=True)
class Flow:
    """One flow: its Madelung case, the meshes of both equations, and the quick variant."""

    path: str
    madelung_cells: tuple[int, ...]  # the shipped mesh first
    cells: tuple[int, ...]  # the Schrödinger ladder (cells along the ladder box's longest side)
    quick_madelung_cells: tuple[int, ...]
    quick_cells: tuple[int, ...]
    quick_t_end: float
    log_cells: tuple[int, ...] = (8, 16)  # the log form on the fitted box (per side)
    support_h: tuple[float, ...] = ()  # the log form on the support domain (gmsh size h, 2D)
    exponential_cells: tuple[int, ...] = ()  # the exponential branch's, if not ``cells``

    def load(self) -> Any:
        path = ROOT / self.path
        return load_verify_case(path).case if path.parent.name == "verify" else load_case(path)


FLOWS = {
    "coherent_2d": Flow(
        "cases/madelung_coherent_2d.toml", (64, 32), (16, 24, 32, 48, 64, 96, 128),
        (16,), (8, 12, 16, 24), 0.2, support_h=(1.0, 0.5),
    ),
    "squeezed_2d": Flow(  # 64² is the case's [full] mesh
        "cases/verify/squeezed_2d.toml", (32, 64), (16, 24, 32, 48, 64, 96, 128),
        (16,), (8, 12, 16, 24), 0.2, support_h=(1.0, 0.6),
    ),
    "packet_1d": Flow(
        "cases/madelung_free_packet_1d.toml", (400, 200), (100, 200, 400, 800, 1600, 3200),
        (100,), (25, 50, 100, 200), 1.0, (12, 24),
        exponential_cells=(25, 50, 100, 200, 400, 800, 1600),
    ),
}  # fmt: skip
Box = tuple[tuple[float, ...], tuple[float, ...]]
#: A flow's region (and the log form's box): outside it p/max p < FIT_TAIL at every time.
FIT_TAIL = 1e-6
#: The Schrödinger ladder's box: outside it |ψ_ex|²/max < LADDER_TAIL at every time, so its
#: Dirichlet walls cut ψ at ~1e-10 of its peak, below every error in play.
LADDER_TAIL = 1e-20
# Schrödinger: exponential (nhj/separable.py: exact in time on quadrilaterals or an interval
# for these harmonic/free flows; one step of t_end, no dt to halve, so only the space's error:
# degrees up to 6, highest first: it reaches the target cheapest, and every run dearer than
# that is then skipped, as no match can use it); gauss2 starts at 4× the case's dt
SCHEMES = ("exponential", "gauss2", "crank_nicolson")
DEGREES = {
    "full": {"exponential": (6, 5, 4, 3, 2), "gauss2": (2, 3, 4), "crank_nicolson": (2, 3, 4)},
    "quick": {"exponential": (6, 5, 4, 3, 2), "gauss2": (2, 3), "crank_nicolson": (2, 3)},
}


def fitted_box(base: Any, t_end: float, tail: float = FIT_TAIL, step: float = 0.25) -> Box:
    """The box outside which the exact state's p/max p < ``tail`` over [0, t_end], rounded
    outwards to ``step`` (a flat metric: p is a product of 1D Gaussians, exp(−2 C₃ (y − y_c)²)).
    """
    state = gaussian_state(base)
    assert state is not None and state.L is None
    lo, hi = np.full(state.dim, np.inf), np.full(state.dim, -np.inf)
    for t in np.linspace(0.0, t_end, 401):
        C = state.coefficients(float(t))
        half = np.sqrt(np.log(1.0 / tail) / (2.0 * C[3]))
        lo, hi = np.minimum(lo, C[0] - half), np.maximum(hi, C[0] + half)
    return (
        tuple(float(v) for v in np.floor(lo / step) * step),
        tuple(float(v) for v in np.ceil(hi / step) * step),
    )


def on_box(case: Any, box: Box) -> Any:
    return replace(case, mesh=replace(case.mesh, lower=box[0], upper=box[1]))


def on_support(case: Any, h: float) -> Any:
    """``case`` on its support domain (``mesh.type = "support"``, nhj/support.py) at size h."""
    mesh = replace(case.mesh, type="support", size=h, tail=FIT_TAIL, lower=(), upper=(), cells=())
    return replace(case, mesh=mesh)


def petsc_times() -> dict[str, float]:
    """Seconds (rank 0) spent so far in factorisations and triangular solves."""
    out = {}
    for key, names in EVENTS.items():
        info = [PETSc.Log.Event(n).getPerfInfo() for n in names]
        out[f"{key}_s"] = sum(i["time"] for i in info)
        out[f"{key}_count"] = int(info[-1]["count"])
    return MPI.COMM_WORLD.bcast(out, root=0)


def variant(base: Any, equation: str, degree: int, cells: int, scheme: str, dt: float,
            t_end: float) -> Any:  # fmt: skip
    mesh = replace(base.mesh, cells=(cells,) * base.mesh.dim)
    if exact_in_time(scheme) and len(mesh.cells) > 1:
        mesh = replace(mesh, cell="quadrilateral" if len(mesh.cells) == 2 else "hexahedron")
    disc = replace(base.discretisation, degree=degree, scheme=scheme, dt=dt, t_end=t_end)
    return replace(base, equation=equation, mesh=mesh, discretisation=disc)


def ladder_case(base: Any, box: Box, degree: int, n: int, scheme: str, dt: float,
                t_end: float) -> Any:  # fmt: skip
    """Schrödinger on ``box`` with n cells along its longest side, the others in proportion
    (about square cells)."""
    lengths = [b - a for a, b in zip(*box, strict=True)]
    cells = tuple(max(1, round(n * a / max(lengths))) for a in lengths)
    case = variant(on_box(base, box), "schrodinger", degree, n, scheme, dt, t_end)
    return replace(case, mesh=replace(case.mesh, cells=cells))


def inside(msh: Any, box: Box) -> Any:
    """The indicator of ``box`` (UFL)."""
    x = ufl.SpatialCoordinate(msh)
    w: Any = 1.0
    for i, (a, b) in enumerate(zip(*box, strict=True)):
        w = w * ufl.conditional(ufl.And(ufl.ge(x[i], a), ufl.le(x[i], b)), 1.0, 0.0)
    return w


def errors(problem: Any, t: float, region: Box) -> dict[str, float]:
    """error_l2 and error_p at t against the exact state, on the run's domain and on the
    flow's region (error_box, error_p_box), with the classes of the runs' own monitors:
    ψ_h = √p e^{iS/ħ} (3.10) for Madelung (collective; compiles forms).
    """
    case, eq, u = problem.case, problem.equation, problem.u0
    psi = u if case.equation == "schrodinger" else eq.wavefunction(u)
    state, degree = gaussian_state(case), case.discretisation.degree
    vals: dict[str, float] = {}
    for suffix, weight in (("", None), ("_box", inside(problem.msh, region))):
        e = ExactError(
            psi, state, problem.metric, degree, problem.msh, eq.density(u), weight=weight
        )
        got = e(t)
        vals["error" + suffix], vals["error_p" + suffix] = got["error_l2"], got["error_p"]
    return vals


def run(case: Any, comm: MPI.Comm, region: Box, steps: int | None = None,
        measure: bool = True) -> dict[str, Any]:  # fmt: skip
    """One run from scratch (build + stepping, timed), then (``measure``) its errors
    (collective)."""
    disc = case.discretisation
    comm.barrier()
    before = petsc_times()
    t0 = time.perf_counter()
    problem = build(case, comm)
    stepper = make_stepper(problem, entry(case.equation).stepper)
    with Simulation(stepper, comm=comm, dt=disc.dt_used) as sim:
        outcome = sim.run(Stop(steps=disc.steps if steps is None else steps))
    comm.barrier()
    wall = comm.bcast(time.perf_counter() - t0, root=0)
    after = petsc_times()
    row: dict[str, Any] = {
        "equation": case.equation,
        "degree": disc.degree,
        "cells": max(case.mesh.cells) if case.mesh.cells else None,
        "cells_per_axis": list(case.mesh.cells),
        "domain": case.mesh.type if case.mesh.type == "support" else "box",
        "mesh_size": case.mesh.size,
        "scheme": disc.scheme,
        "dt": disc.dt_used,
        "box": [list(case.mesh.lower), list(case.mesh.upper)],
        "amplitude": case.vacuum.amplitude or "sqrt" if case.equation != "schrodinger" else None,
        "dofs": problem.dofs,
        "status": outcome.status,
        "t_final": outcome.t,
        "steps": outcome.steps,
        "wall_s": wall,
    }
    if measure:
        row.update(errors(problem, outcome.t, region))
    row.update({k: after[k] - before[k] for k in after})
    row["other_s"] = wall - row["lu_s"] - row["solve_s"]  # assembly, Python, build
    s = outcome.stats
    if "accepted" in s:  # the adaptive (Newton) stepper
        row.update({k: s.get(k) for k in NEWTON})
        forms = s.get("forms", {})
        row["switches"], row["fraction_wave"] = forms.get("switches", 0), forms.get("fraction_wave")
    if outcome.status != "completed":
        row["message"] = outcome.message
    return row


class Runner:
    """Timed runs with a warm JIT cache: each configuration's first run is one output step.

    A run under ``repeat_below`` seconds is timed REPEATS times and the fastest counts (the
    errors are the first run's: the runs are deterministic). Schrödinger's forms do not
    depend on the mesh, so its configurations are warmed once per (degree, scheme, cell).
    """

    def __init__(self, comm: MPI.Comm, region: Box) -> None:
        self.comm, self.region, self.warmup_s = comm, region, 0.0
        self.warm: set[tuple[Any, ...]] = set()

    def __call__(self, case: Any, repeat_below: float = REPEAT_BELOW) -> dict[str, Any]:
        d = case.discretisation
        m = case.mesh
        cells = None if case.equation == "schrodinger" else m.cells
        key = (case.equation, d.degree, m.type, m.cell, cells, m.lower, m.upper, m.file,
               m.size, d.scheme, case.vacuum)  # fmt: skip
        if key not in self.warm:
            self.warm.add(key)
            self.warmup_s += run(case, self.comm, self.region, steps=1)["wall_s"]
        row = run(case, self.comm, self.region)
        release_ufl_caches()
        walls = [row["wall_s"]]
        while walls[0] < repeat_below and len(walls) < REPEATS:  # wall_s: bcast, collective
            again = run(case, self.comm, self.region, measure=False)
            release_ufl_caches()
            walls.append(again["wall_s"])
            if again["wall_s"] < row["wall_s"]:
                for k in ("wall_s", "lu_s", "solve_s", "other_s"):
                    row[k] = again[k]
        row["wall_s_runs"] = walls
        if self.comm.rank == 0:
            e = row["error_box"]
            form = row["amplitude"] or ""
            mesh = f"{row['cells']:5d}" if row["cells"] else f"h={row['mesh_size']:<3g}"
            print(
                f"  {row['equation']:11s} {form:4s} P{row['degree']} {mesh} "
                f"{row['scheme']:17s}"
                f" dt={row['dt']:.4g}  {row['wall_s']:7.2f} s  error {e:.3e}  {row['status']}",
                flush=True,
            )
        return row


def ladder(base: Any, runner: Runner, target: float, cap: float, box: Box,
           degrees: dict[str, tuple[int, ...]], cells: dict[str, tuple[int, ...]],
           t_end: float) -> list[dict[str, Any]]:  # fmt: skip
    """Schrödinger rows on ``box``: per (scheme, degree), meshes refined and dt halved towards
    ``target``.

    dt is halved while the error still falls by 30 % (else the spatial error dominates;
    ``exponential`` has one step of t_end and no dt to halve); a branch stops at the first
    mesh that reaches ``target`` (finer is dearer), at the first mesh the case's rules
    refuse (finer ones would be too), or once a run costs more than the cheapest run that
    reached it, or more than ``cap``.
    """
    rows: list[dict[str, Any]] = []
    best = math.inf  # the cheapest wall time that reached the target
    for scheme in SCHEMES:
        exact = exact_in_time(scheme)
        dt0 = t_end if exact else base.discretisation.dt * (4 if scheme == "gauss2" else 1)
        for degree in degrees[scheme]:
            for n in cells[scheme]:
                dt, previous, reached = dt0, math.inf, False
                first: float | None = None
                for _ in range(1 if exact else 6):
                    case = ladder_case(base, box, degree, n, scheme, dt, t_end)
                    try:  # e.g. too many nodes per axis for the dense exact propagator
                        entry("schrodinger").rules(case)
                    except CaseError:
                        break
                    # a run dearer than one that reached the target is matched with nothing:
                    # it is timed once
                    r = runner(case, repeat_below=min(REPEAT_BELOW, best))
                    rows.append(r)
                    first = r["wall_s"] if first is None else first
                    e = r["error_box"] if r["status"] == "completed" else math.inf
                    if e <= target:
                        best, reached = min(best, r["wall_s"]), True
                        break
                    if r["wall_s"] > min(best, cap) or not e < 0.7 * previous:
                        break
                    previous, dt = e, dt / 2
                if reached or first is None or first > min(best, cap):
                    break
    return rows


def label(r: dict[str, Any]) -> str:
    if r["cells"] is None:
        mesh = f"size {r['mesh_size']:g} on the support domain"
    else:
        box = "x".join(f"[{a:g}, {b:g}]" for a, b in zip(*r["box"], strict=True))
        mesh = f"{'x'.join(str(n) for n in r['cells_per_axis'])} cells on {box}"
    return f"P{r['degree']} {mesh} {r['scheme']} dt={r['dt']:.4g}"


def at_error(rows: list[dict[str, Any]], target: float, key: str) -> dict[str, Any]:
    """The Schrödinger wall time at error ``target`` from the ladder's front (log-log)."""
    front: list[dict[str, Any]] = []
    for r in sorted((r for r in rows if r["status"] == "completed"), key=lambda r: r["wall_s"]):
        if not front or r[key] < front[-1][key]:
            front.append(r)
    reach = [i for i, r in enumerate(front) if r[key] <= target]
    if not reach:
        last = front[-1] if front else None
        return {
            "how": "not reached: the ratio is an upper bound (against the most accurate run)",
            "kind": "upper_bound",
            "matched": None, "most_accurate": last, "wall_s": last and last["wall_s"],
        }  # fmt: skip
    i = reach[0]
    b = front[i]  # the cheapest run that reaches the target
    if i == 0:
        return {
            "how": "the cheapest ladder run is already below: the ratio is a lower bound",
            "kind": "lower_bound",
            "matched": b, "wall_s": b["wall_s"],
        }  # fmt: skip
    a = front[i - 1]
    s = math.log(target / a[key]) / math.log(b[key] / a[key])
    wall = math.exp(math.log(a["wall_s"]) + s * math.log(b["wall_s"] / a["wall_s"]))
    return {
        "how": f"log-log interpolation of wall vs {key} between front runs "
               f"'{label(a)}' ({a[key]:.3g}, {a['wall_s']:.3g} s) and "
               f"'{label(b)}' ({b[key]:.3g}, {b['wall_s']:.3g} s)",
        "kind": "interpolated",
        "matched": b, "wall_s": wall,
    }  # fmt: skip


def match(m: dict[str, Any], rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """How the Madelung run ``m`` compares with the Schrödinger ladder on error ``key``."""
    s = at_error(rows, m[key], key)
    matched = s["matched"]
    return {
        "error_measure": key,
        "target": m[key],
        "matched": matched and {k: matched[k] for k in
                                ("degree", "cells_per_axis", "box", "scheme", "dt", "wall_s",
                                 "error",
                                 "error_p", "error_box", "error_p_box")},
        "ratio_matched": matched and m["wall_s"] / matched["wall_s"],
        "schrodinger_wall_at_same_error": s["wall_s"],
        "ratio": s["wall_s"] and m["wall_s"] / s["wall_s"],
        "kind": s["kind"],
        "how": s["how"],
    }  # fmt: skip


def flow(name: str, spec: Flow, quick: bool, comm: MPI.Comm) -> dict[str, Any]:
    base = spec.load()
    d = base.discretisation
    t_end = spec.quick_t_end if quick else d.t_end
    box = fitted_box(base, t_end)
    runner = Runner(comm, box)
    t0 = time.perf_counter()
    if comm.rank == 0:
        print(f"{name}: {base.name}, t_end = {t_end:g}", flush=True)
    log = replace(on_box(base, box), vacuum=replace(base.vacuum, amplitude="log"))
    madelung = (
        [
            runner(variant(base, base.equation, d.degree, n, d.scheme, d.dt, t_end))
            for n in (spec.quick_madelung_cells if quick else spec.madelung_cells)
        ]
        + [
            runner(variant(log, base.equation, d.degree, n, d.scheme, d.dt, t_end))
            for n in (spec.log_cells[:1] if quick else spec.log_cells)
        ]
        + [  # order 4 (nhj/collocation.py): its time error allows 4–8× the case's dt
            runner(
                variant(log, base.equation, d.degree, spec.log_cells[0], "gauss2", k * d.dt, t_end)
            )
            for k in ((4,) if quick else (4, 8))
        ]
    )
    if spec.support_h:  # the log form without the box's deep corners (nhj/support.py)
        for i, h in enumerate(spec.support_h[:1] if quick else spec.support_h):
            for k in (4, 8) if i == 0 and not quick else (4,):
                c = variant(log, base.equation, d.degree, 1, "gauss2", k * d.dt, t_end)
                madelung.append(runner(on_support(c, h)))
    done = [m for m in madelung if m["status"] == "completed"]
    # the ladder chases the best error of every completed Madelung row (support included):
    # on its non-truncating box the exact propagator gets there, so every row is interpolated
    target = min((m["error_box"] for m in done), default=math.inf)
    cap = 10 * max(m["wall_s"] for m in madelung)  # beyond: the ratio is below 0.1 anyway
    degrees = DEGREES["quick" if quick else "full"]
    cells = spec.quick_cells if quick else spec.cells
    # the exponential branch is cheap (one step): in --quick it goes to twice the quick
    # meshes, so that it reaches the quick rows' errors (down to 1e-10) and interpolates them
    exp_cells = spec.exponential_cells or spec.cells
    if quick:
        finest = 2 * max(spec.quick_cells)
        exp_cells = tuple(sorted({*spec.quick_cells, *(n for n in exp_cells if n <= finest)}))
    per_scheme = {s: exp_cells if exact_in_time(s) else cells for s in SCHEMES}
    wide = fitted_box(base, t_end, LADDER_TAIL, 0.5)
    schrodinger = (
        ladder(base, runner, target, cap, wide, degrees, per_scheme, t_end) if done else []
    )
    for m in madelung:
        if m["status"] == "completed":
            m["match"] = match(m, schrodinger, "error_box")
            m["match_p"] = match(m, schrodinger, "error_p_box")

    def form(m: dict[str, Any]) -> str:
        return m["amplitude"] + ("_support" if m["domain"] == "support" else "")

    ratios = [(m["match"]["ratio"], label(m), form(m), m["match"]["kind"]) for m in done
              if m["match"]["ratio"] is not None]  # fmt: skip
    # the verdict: a lower bound (the ladder's cheapest run is already more accurate) proves
    # nothing below the goal; per form the smallest ratio of any kind, with its kind
    proven = [r for r in ratios if r[3] != "lower_bound"]
    ratio, cells_best, form_best, kind_best = min(proven) if proven else (None,) * 4
    best = {a: min((r for r in ratios if r[2] == a), default=None)
            for a in ("sqrt", "log", "log_support")}  # fmt: skip
    return {
        "case": str(spec.path),
        "t_end": t_end,
        "region": [list(box[0]), list(box[1])],
        "ladder_box": [list(wide[0]), list(wide[1])],
        "ladder_target": target,
        "madelung": madelung,
        "schrodinger": schrodinger,
        "ratio": ratio,
        "ratio_kind": kind_best,
        "ratio_by_amplitude": {a: r and r[0] for a, r in best.items()},
        "ratio_kind_by_amplitude": {a: r and r[3] for a, r in best.items()},
        "ratio_madelung_run": cells_best,
        "ratio_madelung_amplitude": form_best,
        "goal_ratio": GOAL,
        "pass": ratio is not None and ratio <= GOAL,
        "warmup_s": runner.warmup_s,
        "benchmark_s": time.perf_counter() - t0,
    }


def source() -> dict[str, Any]:
    """The git commit of the nhj that ran and its files changed since (another engineer may
    edit the tree during a run); None outside a git checkout."""
    git = ["git", "-C", str(ROOT)]
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        status = subprocess.run(
            [*git, "status", "--porcelain", "--", "nhj"], capture_output=True, text=True
        )
    except OSError:
        return {"commit": None}
    if head.returncode != 0:
        return {"commit": None}
    changed = [line[3:] for line in status.stdout.splitlines()]
    return {"commit": head.stdout.strip(), "nhj_changed": changed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small meshes, short t_end (smoke run)")
    ap.add_argument("--flows", nargs="+", choices=tuple(FLOWS), default=list(FLOWS))
    ap.add_argument("--note", default="", help="recorded in the JSON (e.g. the machine's load)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or RESULTS / ("madelung_cost_quick.json" if args.quick else "madelung_cost.json")
    comm = MPI.COMM_WORLD
    PETSc.Log.begin()
    started = source()
    flows = {name: flow(name, FLOWS[name], args.quick, comm) for name in args.flows}
    if comm.rank != 0:
        return
    result = {
        "benchmark": "madelung_cost",
        "mode": "quick" if args.quick else "full",
        "ranks": comm.size,
        "blas_threads": {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
        "note": args.note,
        "goal": f"madelung wall time to t_end <= {GOAL:g}x the Schrodinger run of equal error",
        "error_measure": (
            "error_box: |psi_h - psi_exact| / |psi_exact| on the flow's region (relative L2, "
            "sqrt(g)-weighted, at t_end; psi_h = sqrt(p) e^(iS/hbar) for madelung), the box "
            f"outside which p/max p < {FIT_TAIL:g} at every time; error_p_box the same for p "
            "(match_p); error / error_p: the same on the run's own domain (the error_l2 of "
            "summary.json)"
        ),
        "timing": (
            "wall time of build + stepping to t_end on this process, no output; runs under "
            f"{REPEAT_BELOW:g} s: the least of {REPEATS} (wall_s_runs); warm JIT "
            "cache: every (equation, degree, mesh, scheme) first runs one output step "
            "(warmup_s, not counted); lu_s / solve_s: PETSc LU factorisations and "
            "triangular solves (rank 0), other_s: the rest (assembly, Python, build)"
        ),
        "ratio": (
            "wall_madelung / schrodinger_wall_at_same_error (see each match's 'how' and "
            "'kind': interpolated, upper_bound or lower_bound); a flow's 'ratio' and 'pass' "
            "count no lower bound"
        ),
        "flows": flows,
        "versions": versions(),
        "source": {"at_start": started, "at_end": source()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    parts = []
    for name, f in flows.items():
        r = f["ratio"]
        kinds = f["ratio_kind_by_amplitude"]
        forms = ", ".join(
            f"{a} {SIGN[kinds[a]]}{v:.2g}x" for a, v in f["ratio_by_amplitude"].items() if v
        )
        at = (
            f"{SIGN[f['ratio_kind']]}{r:.2g}x (madelung {f['ratio_madelung_amplitude']}, "
            f"{f['ratio_madelung_run']}; "
            f"by amplitude: {forms})"
            if r is not None
            else "n/a"
        )
        parts.append(f"{name} {at}")
    ok = all(f["pass"] for f in flows.values())
    print(
        f"{'PASS' if ok else 'FAIL'}: madelung wall time to t_end / schrodinger's at the same "
        f"error_l2: {', '.join(parts)} (goal <= {GOAL:g}x)"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
