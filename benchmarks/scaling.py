"""MPI strong scaling per time step: 1 and 2 ranks at ~10⁵ and ~10⁶ dofs (issue 13).

For each (equation, solver preset, size) the script launches
``mpirun -n R python benchmarks/scaling.py --worker ...`` for R = 1, 2; a
worker builds the shipped 2D case at the requested size (P2; schrodinger:
coherent_2d, Crank–Nicolson; madelung: madelung_coherent_2d; fokker_planck:
fp_double_well_2d, BDF2), takes warm-up steps (JIT, factorisation or AMG
set-up), times steps, and profiles them: KSPSolve (PETSc log event; for a
direct solver the triangular solves, for an iterative one the Krylov
iterations) against the rest (right-hand-side assembly, Newton residuals,
Python), plus the output path once (diagnostics row, a VTX write, the
gathered final.vtu), and records the owned and ghost dofs per rank (the halo
each product exchanges). A STREAM-like triad on 1 and 2 concurrent ranks gives
the memory-bandwidth ceiling of the speed-up on this machine. Rows go to
benchmarks/results/scaling.json; the verdict compares 2 ranks against 1 at the
largest size with the goal 1.6×.

    python benchmarks/scaling.py [--quick] [--sizes 1e5 1e6] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "scaling.json"
GOAL = 1.6
CASES = {
    "schrodinger": ("coherent_2d", 2),
    "madelung": ("madelung_coherent_2d", 2),
    "fokker_planck": ("fp_double_well_2d", 1),
}
CONFIGS = [
    ("schrodinger", "direct"),
    ("schrodinger", "iterative"),
    ("madelung", "direct"),
    ("fokker_planck", "direct"),
    ("fokker_planck", "iterative"),
]


def cells_for(dofs: float, components: int) -> int:
    """n with components·(2n + 1)² ≈ dofs (P2 on an n×n triangulated square)."""
    return max(4, round((math.sqrt(dofs / components) - 1) / 2))


def worker(args: argparse.Namespace) -> None:
    """One timed run on the ranks of this mpirun; prints a JSON row on rank 0."""
    from mpi4py import MPI
    from petsc4py import PETSc

    import nhj  # noqa: F401  (orders dolfinx_solver first)
    from nhj.case import load_case
    from nhj.diagnostics import Functionals
    from nhj.output import write_gathered_vtu
    from nhj.registry import build, entry
    from nhj.run import Fields
    from nhj.simulation import Simulation, Stop, make_stepper

    comm = MPI.COMM_WORLD
    name, comps = CASES[args.equation]
    base = load_case(ROOT / "cases" / f"{name}.toml")
    n = cells_for(args.dofs, comps)
    case = replace(
        base,
        mesh=replace(base.mesh, cells=(n, n)),
        solver=replace(base.solver, preset=args.solver),
    )
    t0 = time.perf_counter()
    problem = build(case, comm)
    stepper = make_stepper(problem, entry(case.equation).stepper)
    t_build = time.perf_counter() - t0
    PETSc.Log.begin()
    ksp = PETSc.Log.Event("KSPSolve")
    with Simulation(stepper, comm=comm, dt=case.discretisation.dt_used) as sim:
        t0 = time.perf_counter()
        # a multistep scheme (BDF2) factorises its own matrix at its first full step, after
        # the start-up steps: the warm-up covers those, or that factorisation is timed
        from nhj.timeschemes import get_scheme

        warmup = max(args.warmup, getattr(get_scheme(case.discretisation.scheme), "steps", 1))
        sim.run(Stop(steps=warmup))  # JIT, factorisation / AMG set-up
        comm.barrier()
        t_warm = time.perf_counter() - t0
        ksp0 = ksp.getPerfInfo()["time"]
        t0 = time.perf_counter()
        outcome = sim.run(Stop(steps=warmup + args.steps))
        comm.barrier()
        elapsed = time.perf_counter() - t0
        ksp_s = ksp.getPerfInfo()["time"] - ksp0
        # the output path, once each (a run does them every `every` steps)
        sd = problem.semidiscrete
        functionals = Functionals(problem.u0, sd.functionals if sd is not None else {})
        functionals()
        t0 = time.perf_counter()
        functionals()
        t_diag = time.perf_counter() - t0
        fields = Fields(problem)
        tmp = comm.bcast(tempfile.mkdtemp(prefix="nhj-scaling-") if comm.rank == 0 else None)
        from dolfinx import io

        t0 = time.perf_counter()
        fields.update()
        with io.VTXWriter(comm, Path(tmp) / "f.bp", fields.functions) as w:
            w.write(0.0)
        comm.barrier()
        t_vtx = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_gathered_vtu(Path(tmp) / "final.vtu", fields.functions)
        comm.barrier()
        t_vtu = time.perf_counter() - t0
    ksp_max = comm.allreduce(ksp_s, op=MPI.MAX)
    # the halo each matrix-vector product exchanges: the input of the scaling model of
    # docs/performance.md (communication volume per rank against work per rank)
    space = problem.u0.function_space
    im, bs = space.dofmap.index_map, space.dofmap.index_map_bs
    owned, ghosts = im.size_local * bs, im.num_ghosts * bs
    stats = {
        k: v
        for k, v in outcome.stats.items()
        if k in ("linear_iterations_per_step", "newton_iterations", "factorisations")
    }
    row = {
        "equation": args.equation,
        "solver": args.solver,
        "dofs": problem.dofs,
        "cells": n,
        "ranks": comm.size,
        "s_per_step": elapsed / args.steps,
        "steps": args.steps,
        "profile": {
            "ksp_solve_s_per_step": ksp_max / args.steps,
            "rest_s_per_step": (elapsed - ksp_max) / args.steps,
            "build_s": t_build,
            "warmup_s": t_warm,
            "diagnostics_row_s": t_diag,
            "vtx_write_s": t_vtx,
            "gathered_vtu_s": t_vtu,
        },
        "owned_dofs_max": comm.allreduce(owned, op=MPI.MAX),
        "ghost_dofs_max": comm.allreduce(ghosts, op=MPI.MAX),
        "ghost_dofs_sum": comm.allreduce(ghosts, op=MPI.SUM),
        **stats,
    }
    if comm.rank == 0:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        print("ROW " + json.dumps(row), flush=True)


def triad() -> None:
    """STREAM-like triad a = b + s·c on every rank of this mpirun at once; GB/s on rank 0.

    Sparse triangular solves, matrix-vector products and assembly are bound by memory
    bandwidth: the ratio of the aggregate bandwidth of 2 ranks to that of 1 is the ceiling of
    their speed-up on this machine, whatever the code does.
    """
    from mpi4py import MPI

    import numpy as np

    comm = MPI.COMM_WORLD
    n = 20_000_000  # 3 × 160 MB per rank: far beyond any cache
    b, c = np.random.default_rng(0).random((2, n))
    a = np.empty(n)
    best = float("inf")
    for _ in range(5):
        comm.barrier()
        t0 = time.perf_counter()
        np.multiply(c, 3.0, out=a)
        np.add(a, b, out=a)
        comm.barrier()
        best = min(best, time.perf_counter() - t0)
    # two passes: multiply reads c, writes a; add reads a, b and writes a (5 × 8n bytes)
    if comm.rank == 0:
        print("ROW " + json.dumps({"ranks": comm.size, "gb_s": 5 * 8 * n * comm.size / best / 1e9}))


def launch_triad(ranks: int) -> float | None:
    """Aggregate triad bandwidth of ``ranks`` concurrent processes (GB/s)."""
    mpirun = Path(sys.executable).parent / "mpirun"
    cmd = [str(mpirun), "-n", str(ranks), sys.executable, __file__, "--triad"]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    rows = [ln[4:] for ln in p.stdout.splitlines() if ln.startswith("ROW ")]
    return json.loads(rows[-1])["gb_s"] if rows else None


def launch(equation: str, solver: str, dofs: float, ranks: int, steps: int, warmup: int) -> dict:
    """Run one worker under mpirun; its JSON row (or a row saying why it failed)."""
    mpirun = Path(sys.executable).parent / "mpirun"
    cmd = [
        str(mpirun),
        "-n",
        str(ranks),
        sys.executable,
        __file__,
        "--worker",
        f"--equation={equation}",
        f"--solver={solver}",
        f"--dofs={dofs}",
        f"--steps={steps}",
        f"--warmup={warmup}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    rows = [ln[4:] for ln in p.stdout.splitlines() if ln.startswith("ROW ")]
    if p.returncode != 0 or not rows:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {"equation": equation, "solver": solver, "dofs": dofs, "ranks": ranks,
                "s_per_step": None, "error": " | ".join(tail)}  # fmt: skip
    return json.loads(rows[-1])


def verdict(rows: list[dict]) -> tuple[str, list[dict]]:
    """Speed-up of 2 ranks over 1 per (equation, solver) at its largest size."""
    out = []
    for eq, solver in sorted({(r["equation"], r["solver"]) for r in rows}):
        mine = [r for r in rows if (r["equation"], r["solver"]) == (eq, solver) and r["s_per_step"]]
        if not mine:
            continue
        top = max(r["dofs"] for r in mine)
        by = {r["ranks"]: r["s_per_step"] for r in mine if r["dofs"] == top}
        if 1 in by and 2 in by:
            out.append({"equation": eq, "solver": solver, "dofs": top, "speedup": by[1] / by[2]})
    met = [s for s in out if s["speedup"] >= GOAL and s["dofs"] >= 9e5]
    words = ", ".join(f"{s['equation']}/{s['solver']} {s['speedup']:.2f}x" for s in out)
    ok = len(met) == len(out) and out
    return (
        f"{'MET' if ok else 'NOT MET'}: 2 ranks vs 1 at the largest size ({words}); "
        f"goal >= {GOAL}x at >= 1e6 dofs",
        out,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--triad", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--equation", default="schrodinger")
    ap.add_argument("--solver", default="direct")
    ap.add_argument("--dofs", type=float, default=1e5)
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e5, 1e6])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", nargs="*", help="equation/solver pairs, e.g. schrodinger/iterative")
    ap.add_argument("--quick", action="store_true", help="sizes 2e4 and 1e5, 2 steps")
    ap.add_argument(
        "--merge", action="store_true", help="keep the other configurations' rows of --out"
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    if args.triad:
        triad()
        return
    if args.quick:
        args.sizes, args.steps = [2e4, 1e5], 2
    configs = [c for c in CONFIGS if not args.only or "/".join(c) in args.only]
    rows = []
    t_start = time.perf_counter()
    for dofs in args.sizes:
        for eq, solver in configs:
            for ranks in args.ranks:
                row = launch(eq, solver, dofs, ranks, args.steps, args.warmup)
                rows.append(row)
                s = row["s_per_step"]
                took = f"{s:.3f} s/step" if s else f"failed: {row['error']}"
                print(f"{eq:14s} {solver:9s} {row['dofs']:>9} dofs {ranks} rank(s): {took}")
    if args.merge and args.out.is_file():
        mine = {(r["equation"], r["solver"]) for r in rows}
        old = json.loads(args.out.read_text())["rows"]
        rows = [r for r in old if (r["equation"], r["solver"]) not in mine] + rows
    line, speedups = verdict(rows)
    bandwidth = {r: launch_triad(r) for r in args.ranks}
    if bandwidth.get(1) and bandwidth.get(2):
        line += f"; memory-bandwidth ceiling of 2 ranks: {bandwidth[2] / bandwidth[1]:.2f}x"
    result = {
        "benchmark": "scaling",
        "goal": f"2 ranks >= {GOAL}x faster than 1 per step at >= 1e6 dofs",
        "machine_cores": os.cpu_count(),
        "load_average": os.getloadavg(),  # other jobs on the 2 cores skew the 2-rank figures
        "wall_s": time.perf_counter() - t_start,
        "rows": rows,
        "speedups": speedups,
        "triad_gb_s": bandwidth,
        "verdict": line,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(line)


if __name__ == "__main__":
    main()
