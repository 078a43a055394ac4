"""Cost of a Madelung time step relative to a Schrödinger step at equal dofs (issue 3).

Both equations advance the same 2D coherent state (P2, the same mesh, the same
dt) from the same initial data; the Madelung unknown (√p, S) and the
Schrödinger unknown (Re ψ, Im ψ) both live in P2×2, so the dof counts are
equal. Compilation and the first factorisation are excluded by warm-up steps.
Writes benchmarks/results/step_cost.json (rank 0); runs under mpirun too.

    python benchmarks/step_cost.py [--cells 64] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from mpi4py import MPI

import nhj  # noqa: F401  (imports dolfinx_solver first)
from nhj.case import load_case
from nhj.registry import build, entry
from nhj.run import versions
from nhj.simulation import Simulation, Stop, make_stepper

ROOT = Path(__file__).resolve().parents[1]


def seconds_per_step(case, comm, steps: int, warmup: int = 3) -> tuple[float, dict, int]:
    problem = build(case, comm)
    stepper = make_stepper(problem, entry(case.equation).stepper)
    with Simulation(stepper, comm=comm, dt=case.discretisation.dt_used) as sim:
        sim.run(Stop(steps=warmup))  # the first steps factorise and JIT-compile
        comm.barrier()
        t0 = time.perf_counter()
        outcome = sim.run(Stop(steps=warmup + steps))
        comm.barrier()
        elapsed = comm.bcast(time.perf_counter() - t0, root=0)
    return elapsed / steps, outcome.stats, problem.dofs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "step_cost.json")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    base = load_case(ROOT / "cases" / "madelung_coherent_2d.toml")
    mesh = replace(base.mesh, cells=(args.cells, args.cells))
    madelung = replace(base, mesh=mesh)
    schrodinger = replace(
        madelung,
        equation="schrodinger",
        discretisation=replace(base.discretisation, scheme="crank_nicolson"),
    )
    t_s, _, dofs_s = seconds_per_step(schrodinger, comm, args.steps)
    t_m, stats, dofs_m = seconds_per_step(madelung, comm, args.steps)
    result = {
        "benchmark": "step_cost",
        "case": base.name,
        "cells": args.cells,
        "degree": base.discretisation.degree,
        "ranks": comm.size,
        "dofs": {"schrodinger": dofs_s, "madelung": dofs_m},
        "dt": base.discretisation.dt_used,
        "seconds_per_step": {"schrodinger": t_s, "madelung": t_m},
        "ratio": t_m / t_s,
        "goal_ratio": 8.0,
        "madelung_newton": {
            k: stats.get(k) for k in ("accepted", "rejected", "newton_iterations", "factorisations")
        },
        "versions": versions(),
    }
    if comm.rank == 0:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
