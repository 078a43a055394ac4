"""Cost of one checkpoint (write and read) at ~10⁵ dofs, against a time step (issue 11).

The 2D coherent Schrödinger state in P2×2 on an n×n rectangle (n = 110: 98 010 dofs)
is stepped a few times, then written with :class:`nhj.checkpoint.Checkpoint` (gather
to rank 0, state.npz + meta.json, atomic rename) and read back (rank 0's meta.json,
every rank maps its dofs by coordinates through a k-d tree), each ``--repeat`` times.
Writes benchmarks/results/checkpoint_cost.json (rank 0); runs under mpirun too, and
``--merge`` adds this rank count's numbers to an existing JSON.

    python benchmarks/checkpoint_cost.py [--cells 110] [--repeat 5]
    mpirun -n 2 python benchmarks/checkpoint_cost.py --merge
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from mpi4py import MPI

import numpy as np

import nhj  # noqa: F401  (imports dolfinx_solver first)
from nhj.case import case_from_dict
from nhj.checkpoint import Checkpoint
from nhj.registry import build, entry
from nhj.run import versions
from nhj.simulation import Simulation, Stop, make_stepper

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "checkpoint_cost.json"


def case(cells: int) -> dict:
    return {
        "equation": "schrodinger",
        "parameters": {"gamma": 1.0, "beta": 1.0},
        "mesh": {"type": "rectangle", "lower": [-6.0, -6.0], "upper": [6.0, 6.0]}
        | {"cells": [cells, cells]},
        "discretisation": {"degree": 2, "dt": 0.01, "t_end": 1.0},
        "potential": {"omega": [1.0, 1.5]},
        "initial": {"kind": "coherent", "center": [1.5, -0.5], "momentum": [0.0, 0.5]},
    }


def timed(fn, comm: MPI.Comm, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        comm.barrier()
        t0 = time.perf_counter()
        fn()
        comm.barrier()
        out.append(float(comm.bcast(time.perf_counter() - t0, root=0)))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cells", type=int, default=110)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--merge", action="store_true", help="add to an existing JSON")
    args = p.parse_args()
    comm = MPI.COMM_WORLD
    c = case_from_dict(case(args.cells), ROOT)
    problem = build(c, comm)
    stepper = make_stepper(problem, entry(c.equation).stepper)
    with Simulation(stepper, comm=comm, dt=c.discretisation.dt_used) as sim:
        sim.run(Stop(steps=3))  # JIT and the factorisation
        comm.barrier()
        t0 = time.perf_counter()
        sim.run(Stop(steps=3 + args.steps))
        comm.barrier()
        step = float(comm.bcast(time.perf_counter() - t0, root=0)) / args.steps
        tmp = comm.bcast(tempfile.mkdtemp(prefix="nhj-ckpt-") if comm.rank == 0 else None)
        ckpt = Checkpoint(Path(tmp), comm)
        space = problem.u0.function_space
        state = stepper.get_state()
        meta = {"case_sha": "-", "rows": [], "first": {}, "drift": {}}
        write = timed(lambda: ckpt.write(state, space, {}, meta), comm, args.repeat)

        def read() -> None:
            m = ckpt.read_meta()
            ckpt.read_state(m, space, 1e-6 * 12.0)

        read_s = timed(read, comm, args.repeat)
        back = ckpt.read_state(ckpt.read_meta(), space, 1e-6 * 12.0)
        same = all(
            np.array_equal(back.arrays[k], state.arrays[k][: len(back.arrays[k])])
            for k in state.arrays
        )
        size = sum(f.stat().st_size for f in ckpt.path.iterdir()) if comm.rank == 0 else 0
        comm.barrier()
        if comm.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
    if comm.rank != 0:
        return
    row = {
        "ranks": comm.size,
        "dofs": problem.dofs,
        "step_s": step,
        "write_s": float(np.median(write)),
        "read_s": float(np.median(read_s)),
        "write_all_s": write,
        "read_all_s": read_s,
        "bytes": size,
        "write_in_steps": float(np.median(write)) / step,
        "roundtrip_identical": bool(same),
    }
    data = json.loads(OUT.read_text()) if args.merge and OUT.exists() else {"runs": []}
    data["runs"] = [r for r in data.get("runs", []) if r["ranks"] != comm.size] + [row]
    worst = max(r["write_in_steps"] for r in data["runs"])
    parts = ", ".join(
        f"{r['ranks']} rank(s): write {r['write_s'] * 1e3:.0f} ms, read {r['read_s'] * 1e3:.0f} ms"
        for r in sorted(data["runs"], key=lambda r: r["ranks"])
    )
    data.update(
        case=f"coherent_2d Schrodinger, P2x2, rectangle {args.cells}x{args.cells}",
        goal="a checkpoint at 1e5 dofs costs well under a second and a few steps; off by default",
        verdict=f"one checkpoint at {problem.dofs} dofs costs at most {worst:.1f} time steps "
        f"({parts}): checkpoint_every = 100 adds <= {worst:.1f}% to a run",
        versions=versions(),
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=2) + "\n")
    print(data["verdict"])


if __name__ == "__main__":
    main()
