"""Strong and weak scaling to 64–1024 ranks, extrapolated from benchmarks/results/scaling.json.

docs/performance.md explains the model; this script is its only arithmetic, so the tables
there can be regenerated from a new measurement (``python benchmarks/extrapolate.py``).

Measured inputs, per (equation, solver) at the largest size run on 1 and 2 ranks:

* t₁, the seconds per step on one rank, and its Krylov share;
* the ghost dofs of a rank at 2 ranks, g₂ (one interface across the square: g₂ ∝ √N);
* the Krylov iterations per step k (iterative preset);
* the STREAM-like triad on 1 and 2 ranks, whose ratio b is what two ranks sharing this
  machine's memory can gain at most on bandwidth-bound work.

Model of one step on P ranks with N dofs (2D, square-ish subdomains):

* work: t₁ (N/N₁) / P: per-dof cost as measured on one core with the whole memory
  bandwidth, i.e. a node that gives each rank the bandwidth one core had here;
* serial part (direct solver): Amdahl's f from the 2-rank speed-up with the bandwidth
  ceiling removed, S₂ = 1 / (f + (1 − f)/b); f·t₁ does not shrink with P;
* halos: per exchange a latency α per neighbour (8 in 2D) and 8 bytes per ghost at link
  bandwidth β⁻¹, ghosts(P) = 4 g₂ √(N/N₁) / √P (a subdomain's perimeter against the one
  interface of the 2-rank split); per Krylov iteration 1 + 2·V·L exchanges, two V-cycles of
  ``V`` exchanges per level on L = ⌈log₈(N/(P·c))⌉ + 1 levels (aggregation coarsens ~8× per
  level in 2D; the coarsest of c = 1000 dofs per rank is solved redundantly);
* reductions: 2 allreduces per Krylov iteration (FGMRES orthogonalisation and norm), each
  2 α log₂ P.

Assumed network constants (a current InfiniBand cluster): α = 2 µs, β⁻¹ = 10 GB/s.
These are not measured here (one machine, no network): the tables say what the measured
per-rank figures imply under them, not what a cluster will show.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALPHA, BANDWIDTH = 2e-6, 10e9
NEIGHBOURS, V_EXCHANGES, COARSE = 8, 6, 1000
RANKS = (1, 2, 8, 64, 256, 1024)


def inputs(result: dict) -> dict[tuple[str, str], dict]:
    """Per (equation, solver): the measured figures at the largest size with 1 and 2 ranks."""
    rows = [r for r in result["rows"] if r.get("s_per_step")]
    bw = result.get("triad_gb_s") or {}
    b = (bw.get("2") or bw.get(2) or 0) / (bw.get("1") or bw.get(1) or 1) or 2.0
    out = {}
    for key in sorted({(r["equation"], r["solver"]) for r in rows}):
        mine = [r for r in rows if (r["equation"], r["solver"]) == key]
        top = max(r["dofs"] for r in mine)
        by = {r["ranks"]: r for r in mine if r["dofs"] == top}
        if 1 not in by or 2 not in by:
            continue
        one, two = by[1], by[2]
        s2 = one["s_per_step"] / two["s_per_step"]
        f = min(max((1 / s2 - 1 / b) / (1 - 1 / b), 0.0), 1.0) if b > 1 else 0.0
        out[key] = {
            "N1": top,
            "t1": one["s_per_step"],
            "s2": s2,
            "b": b,
            "serial_fraction": f,
            "ghosts2": two.get("ghost_dofs_max") or 0,
            "iterations": one.get("linear_iterations_per_step") or 0,
        }
    return out


def step_time(m: dict, n: float, p: int) -> float:
    """Seconds per step on ``p`` ranks at ``n`` dofs under the model of the module docstring."""
    work = m["t1"] * n / m["N1"]
    f = m["serial_fraction"] if m["iterations"] == 0 else 0.0
    t = f * work + (1 - f) * work / p
    if p == 1:
        return t
    ghosts = 4 * m["ghosts2"] * math.sqrt(n / m["N1"]) / math.sqrt(p)
    exchange = NEIGHBOURS * ALPHA + 8 * ghosts / BANDWIDTH
    if m["iterations"]:
        levels = max(1, math.ceil(math.log(max(n / (p * COARSE), 1.0), 8))) + 1
        per_iteration = (1 + 2 * V_EXCHANGES * levels) * exchange + 2 * 2 * ALPHA * math.log2(p)
        t += m["iterations"] * per_iteration
    else:  # a direct solve: forward and backward sweeps, one exchange per tree level
        t += 2 * math.log2(p) * exchange
    return t


def tables(result: dict) -> str:
    """Markdown: strong scaling at the measured N and 10N, weak scaling at N/P = measured/2."""
    lines = []
    for (eq, solver), m in inputs(result).items():
        lines.append(
            f"**{eq} / {solver}** — measured: N₁ = {m['N1']:.3g} dofs, t₁ = {m['t1']:.3g} s/step,"
            f" 2-rank speed-up {m['s2']:.2f}× (bandwidth ceiling b = {m['b']:.2f}×), "
            + (
                f"{m['iterations']:.1f} Krylov iterations/step"
                if m["iterations"]
                else f"serial fraction f = {m['serial_fraction']:.2f}"
            )
            + f", ghosts at 2 ranks {m['ghosts2']}."
        )
        lines.append("")
        lines.append("| ranks | " + " | ".join(str(p) for p in RANKS) + " |")
        lines.append("|---|" + "---|" * len(RANKS))
        for scale in (1, 10):
            n = m["N1"] * scale
            t1 = step_time(m, n, 1)
            cells = [f"{t1 / step_time(m, n, p) / p:.0%}" for p in RANKS]
            lines.append(f"| strong, N = {n:.2g}: efficiency | " + " | ".join(cells) + " |")
        per = m["N1"] / 2
        t1 = step_time(m, per, 1)
        cells = [f"{t1 / step_time(m, per * p, p):.0%}" for p in RANKS]
        lines.append(f"| weak, N/P = {per:.2g}: efficiency | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="?", type=Path, default=ROOT / "benchmarks/results/scaling.json")
    args = ap.parse_args()
    print(tables(json.loads(args.json.read_text())))


if __name__ == "__main__":
    main()
