"""Time to accuracy on the 2D harmonic oscillator: nhj against a spectral split-step peer.

The coherent state of cases/coherent_2d.toml (ω = (1, 2), ħ = 0.5, m = 1), on
[-7, 7]², is run to T = 1.5; its exact solution (nhj/exact.py) gives the relative L2 error.
For each target (1e-3, 1e-4, 1e-6) the benchmark searches a small grid of nhj
configurations (degree, cells, scheme, dt) and of split-step configurations
(grid N, dt) and keeps, per target, the cheapest one that reaches it.

* nhj: degree 2-6 on triangles, crank_nicolson / gauss2 / gauss3, dt halved from T/15
  while the error still improves; and Q3-Q6 on quadrilaterals with ``scheme =
  "exponential"`` (nhj/separable.py: H is separable here, the propagator exact in time, one
  step of T). Wall time of the whole run (build, factorisation or eigenvectors, stepping)
  on this process. ``--exponential-only`` skips the first search (half an hour).
* nhj's log-amplitude Madelung form (``vacuum.amplitude = "log"``, gauss2 / gauss3, P2)
  on the state's support domain (``mesh.type = "support"``, nhj/support.py, gmsh sizes 1
  and 0.7),
  reported beside the Schrödinger search, not in the verdict: it holds a Gaussian state
  exactly in space (ρ and S are quadratic), so it answers "how fast can nhj follow this
  packet", not "how fast does nhj propagate ψ" — the peers and the Schrödinger form take
  any ψ. Its wall time includes gmsh's meshing.
* peers, written here on the same periodic box: ``numpy_split_step`` (Strang
  splitting, order 2) and ``numpy_rk4ip`` (the fourth-order Runge–Kutta
  interaction-picture method that XMDS2 uses by default, so the comparison is
  against the strong spectral peer whether or not XMDS2 is installed). The
  ``xmds2`` program itself is not driven; the JSON records whether it is installed.

Writes benchmarks/results/time_to_accuracy.json and prints a one-line verdict
against the goal (nhj ≤ 3× the best peer's wall time at 1e-6). Serial; a few
minutes on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

import nhj  # noqa: F401  (imports dolfinx_solver first)
from nhj import backends
from nhj.case import load_case
from nhj.exact import GaussianState
from nhj.registry import build, entry
from nhj.run import versions
from nhj.simulation import simulate
from nhj.ufl_cache import release_ufl_caches

ROOT = Path(__file__).resolve().parents[1]
TARGETS = (1e-3, 1e-4, 1e-6)
T = 1.5
# The shipped case's box [-5, 5]² truncates the packet's tail at |ψ| ~ 5e-6 of its peak
# (measured floors: nhj 1.9e-5 with Dirichlet walls, split-step 1.4e-6 periodic), which
# would hide the 1e-6 target; both solvers get [-7, 7]² here.
HALF = 7.0


def timed(case: Any) -> dict[str, Any]:
    """Wall seconds, relative L2 error at T and the profile of one run of ``case``.

    ``build_s``: mesh, spaces, forms (JIT from a warm cache), initial state; ``steps_s``: the
    stepping, the factorisations included. A run that does not complete has error inf.
    Collective.
    """
    comm = MPI.COMM_WORLD
    comm.barrier()
    t0 = time.perf_counter()
    problem = build(case, comm)
    t1 = time.perf_counter()
    outcome = simulate(problem, entry(case.equation).stepper)
    (err,) = [m for m in problem.monitors if "error_l2" in m.columns]
    e = err(outcome.t)["error_l2"] if outcome.status == "completed" else float("inf")
    t2 = comm.bcast(time.perf_counter(), root=0)
    release_ufl_caches()  # ~300 runs in one process: let each run's mesh go (nhj/ufl_cache.py)
    return {
        "wall_s": t2 - t0, "error": float(e), "build_s": t1 - t0, "steps_s": t2 - t1,
        "steps": int(round(T / case.discretisation.dt)), "dofs": problem.dofs,
        "status": outcome.status,
    }  # fmt: skip


def nhj_run(
    base: Any, degree: int, cells: int, scheme: str, dt: float, cell: str | None = None
) -> dict[str, Any]:
    """One Schrödinger configuration on [-HALF, HALF]² (:func:`timed`); triangles by default."""
    from dataclasses import replace

    box = {"cells": (cells, cells), "lower": (-HALF, -HALF), "upper": (HALF, HALF), "cell": cell}
    case = replace(
        base,
        mesh=replace(base.mesh, **box),
        discretisation=replace(base.discretisation, degree=degree, scheme=scheme, dt=dt, t_end=T),
    )
    return timed(case)


def log_madelung_run(base: Any, h: float, scheme: str, dt: float) -> dict[str, Any]:
    """The same state as Madelung in the log amplitude on the support domain (:func:`timed`)."""
    from dataclasses import replace

    mesh = replace(base.mesh, type="support", size=h, lower=(), upper=(), cells=())
    disc = replace(base.discretisation, degree=2, scheme=scheme, dt=dt, t_end=T)
    case = replace(
        base,
        equation="madelung",
        mesh=mesh,
        discretisation=disc,
        vacuum=replace(base.vacuum, amplitude="log"),
    )
    return timed(case)


def search_log_madelung(base: Any, quick: bool) -> list[dict[str, Any]]:
    """The log form's configurations (mesh size, scheme, T/dt from 6 to 32 steps)."""
    rows = []
    for h in (1.0,) if quick else (1.0, 0.7):
        for scheme in ("gauss2",) if quick else ("gauss2", "gauss3"):
            log_madelung_run(base, h, scheme, T / 3)  # compiles the forms: not timed
            for k in (6, 8, 12, 16, 24, 32):  # steps to T: the error falls like k^-(2s)
                r = log_madelung_run(base, h, scheme, T / k)
                rows.append({"mesh_size": h, "scheme": scheme, "dt": T / k, **r})
                if r["error"] < min(TARGETS) / 3:  # no space error to stall on: only this
                    break
    return rows


ALL = ("crank_nicolson", "gauss2", "gauss3")
# (degree, cell counts, schemes). P5/P6 only with the order-4/6 schemes: with them the
# space error at 1e-6 needs ~40 cells, where Crank–Nicolson would need dt ~ 1e-4.
SEARCH = [(2, (24, 32, 48, 64), ALL), (3, (24, 32, 48, 64), ALL), (4, (24, 32, 48, 64), ALL),
          (5, (16, 24, 32, 48), ALL[1:]), (6, (16, 24, 32, 48), ALL[1:])]  # fmt: skip
SEARCH_QUICK = [(2, (24, 32), ALL), (3, (24, 32), ALL)]
# scheme = "exponential" on quadrilaterals (nhj/separable.py): exact in time, so one step
# of T; the search is over the space alone.
EXPONENTIAL = [(3, (32, 48, 64)), (4, (24, 32, 48)), (5, (16, 24, 32, 40)),
               (6, (16, 24, 32, 40, 48))]  # fmt: skip


def search_exponential(base: Any) -> list[dict[str, Any]]:
    """Q_k on quadrilaterals with the exact propagator: one step to T per configuration.

    Each configuration runs twice and the second run is kept: the first compiles the 1D
    factors' forms (a warm cache, as for the other rows).
    """
    rows = []
    for degree, cell_counts in EXPONENTIAL:
        for cells in cell_counts:
            nhj_run(base, degree, cells, "exponential", T, "quadrilateral")
            r = nhj_run(base, degree, cells, "exponential", T, "quadrilateral")
            rows.append({"degree": degree, "cells": cells, "scheme": "exponential",
                         "cell": "quadrilateral", "dt": T, **r})  # fmt: skip
            if r["error"] < min(TARGETS) / 3:
                break  # finer meshes of this degree only cost more
    return rows


def search_nhj(base: Any, quick: bool) -> list[dict[str, Any]]:
    """Every configuration tried, with its wall time and error."""
    rows = []
    for degree, cell_counts, schemes in SEARCH_QUICK if quick else SEARCH:
        for cells in cell_counts:
            for scheme in schemes:
                previous = np.inf
                dt = T / 15
                for _ in range(6):
                    r = nhj_run(base, degree, cells, scheme, dt)
                    rows.append({"degree": degree, "cells": cells, "scheme": scheme,
                                 "cell": "triangle", "dt": dt, **r})  # fmt: skip
                    e = r["error"]
                    if e > 0.7 * previous or e < min(TARGETS) / 3:
                        break  # the spatial error dominates, or far below every target
                    previous, dt = e, dt / 2
    return rows


def spectral_setup(state: GaussianState, n: int, L: float = HALF) -> tuple[Any, ...]:
    """Grid points, ψ(0), V and |k|² of an n×n periodic grid on [-L, L)²."""
    x = np.linspace(-L, L, n, endpoint=False)
    X, Y = np.meshgrid(x, x, indexing="ij")
    pts = np.vstack([X.ravel(), Y.ravel(), np.zeros(X.size)])
    k = 2 * np.pi * np.fft.fftfreq(n, d=2 * L / n)
    KX, KY = np.meshgrid(k, k, indexing="ij")
    re, im = state.psi(pts, state.coefficients(0.0), backends.NUMPY)
    psi = (np.asarray(re) + 1j * np.asarray(im)).reshape(n, n)
    V = np.asarray(state.potential(pts, backends.NUMPY)).reshape(n, n)
    return pts, psi, V, KX**2 + KY**2


def spectral_error(state: GaussianState, pts: Any, psi: Any, t: float) -> float:
    """Relative discrete L2 error of ψ against the exact state at t."""
    re, im = state.psi(pts, state.coefficients(t), backends.NUMPY)
    exact = (np.asarray(re) + 1j * np.asarray(im)).reshape(psi.shape)
    return float(np.linalg.norm(psi - exact) / np.linalg.norm(exact))


def split_step(state: GaussianState, n: int, dt: float) -> tuple[float, float]:
    """(wall seconds, relative L2 error at T) of Strang split-step Fourier (order 2)."""
    hbar, m = state.hbar, state.m
    t0 = time.perf_counter()
    pts, psi, V, k2 = spectral_setup(state, n)
    half_v = np.exp(-0.5j * dt * V / hbar)
    kinetic = np.exp(-0.5j * dt * hbar * k2 / m)
    steps = int(round(T / dt))
    for _ in range(steps):
        psi = half_v * np.fft.ifft2(kinetic * np.fft.fft2(half_v * psi))
    wall = time.perf_counter() - t0
    return wall, spectral_error(state, pts, psi, steps * dt)


def rk4ip(state: GaussianState, n: int, dt: float) -> tuple[float, float]:
    """(wall seconds, relative L2 error at T) of the fourth-order Runge–Kutta interaction
    picture method (Hult 2007; XMDS2's default ARK45/RK4IP family), Fourier in space.

    The kinetic part is exact in Fourier space (D = e^{-iħk²h/4m}, half a step); the
    potential N(ψ) = −iVψ/ħ is taken by classical RK4 in the interaction picture: 4 FFT
    pairs per step.
    """
    hbar, m = state.hbar, state.m
    t0 = time.perf_counter()
    pts, psi, V, k2 = spectral_setup(state, n)
    half = np.exp(-0.5j * dt * hbar * k2 / (2 * m))
    nv = -1j * V / hbar

    def d(u: Any) -> Any:
        return np.fft.ifft2(half * np.fft.fft2(u))

    steps = int(round(T / dt))
    for _ in range(steps):
        pi = d(psi)
        k1 = d(nv * psi)
        k2_ = nv * (pi + 0.5 * dt * k1)
        k3 = nv * (pi + 0.5 * dt * k2_)
        k4 = nv * d(pi + dt * k3)
        psi = d(pi + dt / 6 * (k1 + 2 * k2_ + 2 * k3)) + dt / 6 * k4
    wall = time.perf_counter() - t0
    return wall, spectral_error(state, pts, psi, steps * dt)


PEERS = {"numpy_split_step": split_step, "numpy_rk4ip": rk4ip}


def search_peer(state: GaussianState, method: Any) -> list[dict[str, Any]]:
    """Every configuration of one spectral peer tried (grid n, dt halved while it helps).

    RK4IP takes the potential explicitly: it is unstable until dt·max|V|/ħ is below RK4's
    bound (~2.8), so errors above 1 only shorten the step, without ending the search.
    """
    rows = []
    for n in (32, 64, 128, 256):
        previous, dt = np.inf, T / 15
        for _ in range(14):
            wall, e = method(state, n, dt)
            rows.append({"grid": n, "dt": dt, "wall_s": wall, "error": e})
            if not e <= 1:
                dt /= 2
                continue
            if e > 0.7 * previous or e < min(TARGETS) / 3:
                break
            previous, dt = e, dt / 2
    return rows


def cheapest(rows: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The fastest row whose error reaches ``target`` (None if none does)."""
    ok = [r for r in rows if r["error"] <= target]
    return min(ok, key=lambda r: r["wall_s"]) if ok else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smaller nhj search (smoke run)")
    ap.add_argument(
        "--exponential-only",
        action="store_true",
        help="of nhj's Schrodinger configurations only the exponential ones (minutes, not half "
        "an hour; the Gauss/Crank-Nicolson rows of docs/performance.md do not win)",
    )
    default_out = ROOT / "benchmarks" / "results" / "time_to_accuracy.json"
    ap.add_argument("--out", type=Path, default=default_out)
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    base = load_case(ROOT / "cases" / "coherent_2d.toml")
    par, init = base.parameters, base.initial
    width = tuple(float(np.sqrt(par.hbar / (2 * par.m * w))) for w in base.potential.omega or ())
    state = GaussianState(init.center, width, init.momentum, base.potential.omega, par.hbar, par.m)
    nhj_rows = [] if args.exponential_only else search_nhj(base, args.quick)
    nhj_rows += search_exponential(base)
    log_rows = search_log_madelung(base, args.quick)
    if comm.rank != 0:
        return
    peer_rows = {name: search_peer(state, method) for name, method in PEERS.items()}
    result: dict[str, Any] = {
        "benchmark": "time_to_accuracy",
        "case": "coherent_2d (T = 1.5)",
        "ranks": comm.size,
        "targets": {},
        "search": "exponential only" if args.exponential_only else "full",
        "tried": {"nhj": nhj_rows, "nhj_madelung_log": log_rows, **peer_rows},
        "xmds2": "installed but not driven" if shutil.which("xmds2") else "not installed",
        "goal": "nhj wall time <= 3x the best peer's at 1e-6",
        "versions": versions(),
    }
    for target in TARGETS:
        best = cheapest(nhj_rows, target)
        log_best = cheapest(log_rows, target)
        peers = {name: cheapest(rows, target) for name, rows in peer_rows.items()}
        result["targets"][f"{target:g}"] = {
            "nhj": None if best is None else {
                "wall_s": best["wall_s"], "error": best["error"],
                "config": {k: best[k] for k in ("degree", "cells", "cell", "scheme", "dt")},
                "profile": {k: best[k] for k in ("build_s", "steps_s", "steps", "dofs")}},
            "nhj_madelung_log": None if log_best is None else {
                "wall_s": log_best["wall_s"], "error": log_best["error"],
                "config": {k: log_best[k] for k in ("mesh_size", "scheme", "dt")},
                "profile": {k: log_best[k] for k in ("build_s", "steps_s", "steps", "dofs")}},
            "peers": {name: None if peer is None else {
                "wall_s": peer["wall_s"], "error": peer["error"],
                "config": {"grid": peer["grid"], "dt": peer["dt"]}}
                for name, peer in peers.items()},
        }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    at = result["targets"]["1e-06"]
    n = at["nhj"]
    reached = {k: v for k, v in at["peers"].items() if v is not None}
    if n is None or not reached:
        verdict = f"no configuration reached 1e-6 (nhj: {n is not None}, peers: {sorted(reached)})"
    else:
        name, p = min(reached.items(), key=lambda kv: kv[1]["wall_s"])
        ratio = n["wall_s"] / p["wall_s"]
        prof = n["profile"]
        verdict = (
            f"{'PASS' if ratio <= 3 else 'FAIL'}: at 1e-6 nhj {n['wall_s']:.2f} s "
            f"({n['config']}) vs the best peer, {name} {p['config']}, {p['wall_s']:.2f} s: "
            f"{ratio:.1f}x (goal <= 3x); nhj's profile: build {prof['build_s']:.2f} s, "
            f"{prof['steps']} steps on {prof['dofs']} dofs in {prof['steps_s']:.2f} s "
            f"({prof['steps_s'] / prof['steps'] * 1e3:.0f} ms/step) against the peer's "
            f"{round(T / p['config']['dt'])} steps on a {p['config']['grid']}² grid "
            f"({p['wall_s'] / round(T / p['config']['dt']) * 1e3:.1f} ms/step)"
        )
    lg = at["nhj_madelung_log"]
    if lg is not None and reached:
        name, p = min(reached.items(), key=lambda kv: kv[1]["wall_s"])
        verdict += (
            f". Beside it (Gaussian states only, not the verdict): the log-amplitude Madelung "
            f"form on the support domain, {lg['wall_s']:.2f} s ({lg['config']}, error "
            f"{lg['error']:.2g}): {lg['wall_s'] / p['wall_s']:.1f}x the best peer"
        )
    result["verdict"] = verdict
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(verdict)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
