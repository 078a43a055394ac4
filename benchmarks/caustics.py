"""When does the pressureless flow of a case's initial phase cross itself? (analysis, issue 10)

The (√p, S) form holds a single-valued S. Without its pressure term (Q_N of (5.2)), the
Hamilton–Jacobi equation ∂ₜS + (γ/2)|∇S|²_g + V = 0 is solved by characteristics,

    ẋ = γ g⁻¹(x) p,    ṗ = −(γ/2) pᵀ ∂ₓg⁻¹(x) p − ∂ₓV,    p(0) = ∇S₀,

and S stays single-valued only until neighbouring characteristics cross: the first zero of
det ∂x(t)/∂x(0), a caustic. The pressure (the Fisher tensor F of (5.3)) is what keeps a
quantum (α = 1) flow smooth past that time — in the wave form a caustic becomes
interference, with nodes; where F is weak (α = ½ on a metric that shrinks F at large σ)
nothing keeps them apart. This script integrates the characteristics from a grid of
starting points over the case's domain (RK4, the case's own V and g through their numpy
twins), and reports per level of the initial density p₀/max p₀ the earliest crossing, where
it started and where it is. Compare with where and when a (√p, S) run stops.

    .venv/bin/python benchmarks/caustics.py /tmp/fisher_half.toml
    # cases/neural_hj_fisher_metric.toml with noise.alpha = 0.5

Writes benchmarks/results/caustics.json. Serial, seconds to a minute. Initial states of
kind "expression" or "gaussian"; V given, harmonic, or from a loss by (3.6) on the flat
metric; other cases are refused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

import nhj  # noqa: F401  (imports dolfinx_solver first)
from nhj.case import load_case
from nhj.equations.potentials import harmonic
from nhj.expressions import to_numpy
from nhj.tensors import coordinate_names, tensor_at

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (1e-2, 1e-4, 1e-6, 1e-8, 1e-10, 1e-12)


def field(expr: Any, x: np.ndarray, params: dict[str, float]) -> np.ndarray:
    """A case expression at points x of shape (n, K)."""
    env: dict[str, Any] = {n: x[:, i] for i, n in enumerate(coordinate_names(x.shape[1]))}
    env.update(params)
    with np.errstate(all="ignore"):
        return np.broadcast_to(np.asarray(to_numpy(expr, env), dtype=float), x.shape[:1])


def hamiltonian_parts(case: Any) -> tuple[Any, Any]:
    """(g⁻¹(x), V(x)) as numpy functions of points of shape (n, K)."""
    params = case.parameters.values()
    entries = case.metric.entries
    dim = case.dim

    def ginv(x: np.ndarray) -> np.ndarray:
        if entries is None:
            return np.broadcast_to(np.eye(dim), (x.shape[0], dim, dim))
        return np.linalg.inv(tensor_at(entries, x))

    pot = case.potential
    if pot.V is not None:
        return ginv, lambda x: field(pot.V, x, params)
    if pot.omega is not None:
        a = [case.parameters.m * w * w for w in pot.omega]
        return ginv, lambda x: harmonic(a, x.T)
    if pot.loss is not None and entries is None:
        return ginv, lambda x: effective_potential(pot.loss, x, case.parameters)
    if pot.has_loss:
        raise SystemExit("caustics.py takes a loss expression on the flat metric only")
    return ginv, lambda x: np.zeros(x.shape[0])


def effective_potential(loss: Any, x: np.ndarray, par: Any) -> np.ndarray:
    """V of (3.6) on the flat metric, (γ/2)|∇L̄|² − (γ²/2β)ΔL̄, by central differences."""
    h = 1e-4
    params = par.values()
    grad2 = np.zeros(x.shape[0])
    lap = np.zeros(x.shape[0])
    L0 = field(loss, x, params)
    for i in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[i] = h
        Lp, Lm = field(loss, x + e, params), field(loss, x - e, params)
        grad2 += ((Lp - Lm) / (2 * h)) ** 2
        lap += (Lp - 2 * L0 + Lm) / h**2
    return 0.5 * par.gamma * grad2 - par.gamma**2 / (2 * par.beta) * lap


def characteristics(case: Any, n: int, t_end: float, dt: float) -> dict[str, Any]:
    """Earliest crossing of the pressureless characteristics, per initial density level."""
    init = case.initial
    if init.kind == "coherent":
        raise SystemExit("caustics.py takes kind = 'expression' or 'gaussian' initial states")
    gamma = case.parameters.gamma
    params = case.parameters.values()
    lo, hi = np.array(case.mesh.lower), np.array(case.mesh.upper)
    dim = case.dim
    axes = [np.linspace(lo[i], hi[i], n) for i in range(dim)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dim)
    ginv, V = hamiltonian_parts(case)
    eps = 1e-6 * float(np.max(hi - lo))

    def partial(f: Any, x: np.ndarray, i: int) -> np.ndarray:
        e = np.zeros(dim)
        e[i] = eps
        return (f(x + e) - f(x - e)) / (2 * eps)

    if init.kind == "expression":
        S0 = lambda x: field(init.S, x, params)  # noqa: E731
        p = np.stack([partial(S0, grid, i) for i in range(dim)], axis=1)
        p0 = field(init.p, grid, params)
    else:  # a Gaussian packet: S₀ = momentum·x, p₀ ∝ exp(−Σ (x_i − c_i)²/(2 w_i²))
        p = np.broadcast_to(np.array(init.momentum or (0.0,) * dim, dtype=float), grid.shape)
        p = p.copy()
        z = (grid - np.array(init.center)) / np.array(init.width)
        p0 = np.exp(-0.5 * np.sum(z**2, axis=1))
    p0 = p0 / p0.max()

    def rhs(x: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        G = ginv(x)
        xdot = gamma * np.einsum("nij,nj->ni", G, p)
        pdot = np.stack(
            [
                -0.5 * gamma * np.einsum("ni,nij,nj->n", p, partial(ginv, x, i), p)
                - partial(V, x, i)
                for i in range(dim)
            ],
            axis=1,
        )
        return xdot, pdot

    def det_jacobian(x: np.ndarray) -> np.ndarray:
        X = x.reshape(*(n,) * dim, dim)
        # np.gradient returns a bare array in 1D, a list of arrays otherwise
        rows = [np.gradient(X[..., i], *axes) for i in range(dim)]
        J = np.stack([np.stack(r if dim > 1 else [r], axis=-1) for r in rows], axis=-2)
        return np.linalg.det(J).reshape(-1)

    x = grid.copy()
    first = np.full(x.shape[0], np.inf)
    where = np.full_like(x, np.nan)
    steps = int(round(t_end / dt))
    for k in range(1, steps + 1):
        k1 = rhs(x, p)
        k2 = rhs(x + 0.5 * dt * k1[0], p + 0.5 * dt * k1[1])
        k3 = rhs(x + 0.5 * dt * k2[0], p + 0.5 * dt * k2[1])
        k4 = rhs(x + dt * k3[0], p + dt * k3[1])
        x = x + dt / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        p = p + dt / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        crossed = (det_jacobian(x) <= 0) & np.isinf(first)
        first[crossed] = k * dt
        where[crossed] = x[crossed]
    # starting points on the grid's outer layer have one-sided differences: left out
    interior = np.all((grid > lo + (hi - lo) / (n - 1)) & (grid < hi - (hi - lo) / (n - 1)), 1)
    rows = []
    for level in LEVELS:
        m = interior & (p0 >= level) & np.isfinite(first)
        if not m.any():
            rows.append({"level": level, "t": None})
            continue
        i = int(np.flatnonzero(m)[np.argmin(first[m])])
        rows.append({
            "level": level, "t": float(first[i]), "start": grid[i].round(3).tolist(),
            "at": where[i].round(3).tolist(), "p0": float(p0[i]),
        })  # fmt: skip
    return {"grid": n, "dt": dt, "t_end": t_end, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case", type=Path)
    ap.add_argument("--grid", type=int, default=121, help="starting points per direction")
    ap.add_argument("--dt", type=float, default=1e-3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "caustics.json")
    args = ap.parse_args()
    case = load_case(args.case)
    result = {"case": str(args.case), **characteristics(case, args.grid, case.discretisation.t_end,
                                                         args.dt)}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for r in result["rows"]:
        if r["t"] is None:
            print(f"p0/max >= {r['level']:g}: no crossing before t = {result['t_end']:g}")
        else:
            print(
                f"p0/max >= {r['level']:g}: characteristics cross at t = {r['t']:.3f} near "
                f"x = {r['at']} (started at {r['start']}, p0/max = {r['p0']:.1e})"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
