"""The measured law ħ = f(γ, β): least squares over the ħ-fits of a verification sweep.

Each point of a sweep over a verification case with the ``hbar_fit`` check gives ħ_fit,
the ħ that best explains its Madelung data with m = 1/γ (docs/verify.md). The law

    log ħ_fit = log C + a log γ + b log β

is fitted by ordinary least squares; the standard errors are those of the coefficients,
σ̂² (XᵀX)⁻¹ with σ̂² = RSS / (n − 3), and C's by the delta method (C_se = C · se(log C)).
The claim (3.12) is a = 1, b = −1, C = 1. ``worst_rel_error`` is max |ħ_fit/(γ/β) − 1|.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from nhj.schema import CaseError


@dataclass(frozen=True)
class Law:
    """ħ_fit = C γ^a β^b with standard errors; n points, t975 the 95 % t-quantile."""

    a: float
    b: float
    C: float
    a_se: float
    b_se: float
    C_se: float
    worst_rel_error: float
    n: int
    t975: float
    worst_point: str = ""

    def ci(self, name: str) -> tuple[float, float]:
        """The 95 % confidence interval of a, b or C (C: from that of log C)."""
        v, se = getattr(self, name), getattr(self, f"{name}_se")
        if name == "C":
            h = self.t975 * se / v
            return v * math.exp(-h), v * math.exp(h)
        return v - self.t975 * se, v + self.t975 * se

    def as_dict(self) -> dict[str, Any]:
        """The record stored as ``law`` in sweep.json."""
        return asdict(self) | {"ci95": {k: list(self.ci(k)) for k in ("a", "b", "C")}}


def fit_law(
    gamma: Sequence[float], beta: Sequence[float], hbar: Sequence[float], names: Sequence[str] = ()
) -> Law:
    """Least squares of log ħ = log C + a log γ + b log β.

    Raises:
        ValueError: Fewer than 4 points, a non-positive value, or γ and β not varying
            independently (the design matrix is rank-deficient).
    """
    g, b, h = (np.asarray(x, dtype=float) for x in (gamma, beta, hbar))
    if not g.shape == b.shape == h.shape or g.ndim != 1:
        raise ValueError("gamma, beta and hbar must be 1D arrays of the same length")
    if len(g) < 4:
        raise ValueError(
            f"the law has 3 coefficients and their errors need >= 4 points, got {len(g)}"
        )
    if np.any(g <= 0) or np.any(b <= 0) or np.any(h <= 0) or not np.all(np.isfinite(h)):
        raise ValueError("gamma, beta and hbar must be positive and finite")
    X = np.column_stack([np.ones_like(g), np.log(g), np.log(b)])
    if np.linalg.matrix_rank(X) < 3:
        raise ValueError("gamma and beta must vary independently (the grid is rank-deficient)")
    y = np.log(h)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ coef
    dof = len(g) - 3
    cov = float(r @ r) / dof * np.linalg.inv(X.T @ X)
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    C = float(np.exp(coef[0]))
    rel = np.abs(h / (g / b) - 1.0)
    worst = int(np.argmax(rel))
    return Law(
        a=float(coef[1]),
        b=float(coef[2]),
        C=C,
        a_se=float(se[1]),
        b_se=float(se[2]),
        C_se=C * float(se[0]),
        worst_rel_error=float(rel[worst]),
        n=len(g),
        t975=float(stats.t.ppf(0.975, dof)),
        worst_point=names[worst] if len(names) == len(g) else "",
    )


def hbar_rows(sweep_dir: Path, record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """(point, γ, β, ħ_fit) of every ħ-fit in the points' report.json files."""
    import json

    rows = []
    for p in record["points"]:
        try:
            report = json.loads((sweep_dir / p["dir"] / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for r in report.get("hbar_fit") or []:
            h = r.get("hbar_fit")
            if isinstance(h, (int, float)) and math.isfinite(h) and h > 0:
                rows.append(
                    {"point": p["name"], "gamma": r["gamma"], "beta": r["beta"], "hbar_fit": h}
                )
    return rows


def law_of(sweep_dir: Path, record: Mapping[str, Any]) -> tuple[Law, list[dict[str, Any]]]:
    """The law of a sweep's ħ-fits.

    Raises:
        CaseError("DIR", ...): No (or too few) ħ-fits in the sweep's points.
    """
    rows = hbar_rows(sweep_dir, record)
    if not rows:
        raise CaseError(
            "DIR",
            f"{sweep_dir} has no hbar_fit results (a sweep over a verification case whose "
            "[verify].checks include hbar_fit, with completed points)",
        )
    g, b, h = ([float(r[k]) for r in rows] for k in ("gamma", "beta", "hbar_fit"))
    try:
        law = fit_law(g, b, h, names=[r["point"] for r in rows])
    except ValueError as e:
        raise CaseError("DIR", f"{sweep_dir}: cannot fit the law: {e}") from None
    return law, rows


def describe(law: Law) -> str:
    """a, b, C with standard errors and 95 % intervals, and the worst relative error."""
    lines = [f"law: hbar_fit = C gamma^a beta^b, least squares in logs over {law.n} fits"]
    for k, expected in (("a", 1.0), ("b", -1.0), ("C", 1.0)):
        v, se = getattr(law, k), getattr(law, f"{k}_se")
        lo, hi = law.ci(k)
        off = abs(v - expected) / se if se > 0 else (0.0 if v == expected else math.inf)
        lines.append(
            f"  {k} = {v:+.6f} ± {se:.2e}  (95% CI [{lo:+.6f}, {hi:+.6f}]; expected {expected:+g}, "
            f"{off:.1f} se and {abs(v - expected) / abs(expected):.2e} relative away)"
        )
    at = f" at {law.worst_point}" if law.worst_point else ""
    lines.append(f"  worst |hbar_fit/(gamma/beta) - 1| = {law.worst_rel_error:.3e}{at}")
    return "\n".join(lines)


def _edges(v: np.ndarray) -> np.ndarray:
    """Cell edges at geometric midpoints (log axes)."""
    if len(v) == 1:
        return np.array([v[0] / 1.5, v[0] * 1.5])
    m = np.sqrt(v[1:] * v[:-1])
    return np.concatenate([[v[0] ** 2 / m[0]], m, [v[-1] ** 2 / m[-1]]])


def plot_law(path: Path, law: Law, rows: Iterable[Mapping[str, Any]]) -> Path:
    """ħ_fit against γ/β (log axes) beside the relative error over the (γ, β) grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    g, b, h = (np.array([r[k] for r in rows], dtype=float) for k in ("gamma", "beta", "hbar_fit"))
    x, rel = g / b, h / (g / b) - 1.0
    fig, (ax, hm) = plt.subplots(1, 2, figsize=(11.5, 4.6), constrained_layout=True)
    span = np.array([x.min() / 1.5, x.max() * 1.5])
    ax.loglog(span, span, "k-", lw=1, label="ħ = γ/β (3.12)")
    ax.loglog(x, h, "o", ms=5, mfc="none", label=f"ħ_fit ({law.n} points)")
    ax.set(xlabel="γ/β", ylabel="ħ_fit", title="ħ_fit against γ/β")
    ax.text(
        0.03, 0.97,
        f"ħ_fit = C γ^a β^b\na = {law.a:.5f} ± {law.a_se:.1e}\nb = {law.b:.5f} ± {law.b_se:.1e}\n"
        f"C = {law.C:.5f} ± {law.C_se:.1e}",
        transform=ax.transAxes, va="top", fontsize=9,
    )  # fmt: skip
    ax.legend(loc="lower right")
    G, B = np.unique(g), np.unique(b)
    E = np.full((len(B), len(G)), np.nan)
    for gi, bi, e in zip(g, b, rel, strict=True):
        E[np.searchsorted(B, bi), np.searchsorted(G, gi)] = e
    lim = float(np.nanmax(np.abs(E))) or 1.0
    mesh = hm.pcolormesh(_edges(G), _edges(B), E, cmap="RdBu_r", vmin=-lim, vmax=lim)
    hm.set(xscale="log", yscale="log", xlabel="γ", ylabel="β", title="ħ_fit/(γ/β) − 1")
    for axis, v in ((hm.xaxis, G), (hm.yaxis, B)):
        axis.set_ticks(v, [f"{x:g}" for x in v])
        axis.set_ticks([], minor=True)
    if E.size <= 100:
        for i, bv in enumerate(B):
            for j, gv in enumerate(G):
                if np.isfinite(E[i, j]):
                    dark = abs(E[i, j]) > 0.6 * lim
                    hm.text(gv, bv, f"{E[i, j]:.1e}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")  # fmt: skip
    fig.colorbar(mesh, ax=hm, label="relative error")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
