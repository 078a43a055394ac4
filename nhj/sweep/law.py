"""The measured laws ħ = f(γ, β) and m = g(γ, β): least squares over a verification sweep.

Each point of a sweep over a verification case with the ``hbar_fit`` check gives ħ_fit,
the ħ that best explains its Madelung data with m = 1/γ; with ``mass_fit`` also m_fit,
the mass that best explains them with ħ = γ/β (docs/verify.md). The law

    log x_fit = log C + a log γ + b log β        (x = ħ: a = 1, b = −1, C = 1 by (3.12);
                                                  x = m: a = −1, b = 0, C = 1 by (3.13))

is fitted by least squares. When every point carries a discretisation uncertainty σ_i
(Roache's GCI, ``verify.fit_uncertainty_cells``) the fit is weighted by 1/σ_y² with
σ_y = σ_i/x_i (the uncertainty of log x) and the covariance is (XᵀWX)⁻¹ times the
Birge ratio χ²/(n − 3) when that exceeds 1 (the PDG scale factor): the standard errors
then carry the discretisation error of the points, which dominates their scatter —
the points' errors are systematic (a function of the resolution and of how far each
packet spreads), not noise. Without uncertainties it is ordinary least squares,
σ̂² (XᵀX)⁻¹ with σ̂² = RSS / (n − 3). C's error is by the delta method (C_se = C · se(log C)).
``worst_rel_error`` is max |x_fit/x_expected − 1|.
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

EXPECTED = {"hbar": (1.0, -1.0, 1.0), "m": (-1.0, 0.0, 1.0)}
"""(a, b, C) of ħ = γ/β (3.12) and m = 1/γ (3.13)."""
FIT_TABLES = {"hbar": ("hbar_fit", "hbar_fit"), "m": ("mass_fit", "m_fit")}
"""Per quantity: the report.json table and the column holding the fitted value."""


@dataclass(frozen=True)
class Law:
    """x_fit = C γ^a β^b with standard errors; n points, t975 the 95 % t-quantile.

    ``method`` is "wls-gci" (weighted by the points' GCI, Birge-scaled) or "ols";
    ``birge`` is χ²/(n − 3) of the weighted fit (nan for ols).
    """

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
    quantity: str = "hbar"
    method: str = "ols"
    birge: float = math.nan

    def ci(self, name: str) -> tuple[float, float]:
        """The 95 % confidence interval of a, b or C (C: from that of log C)."""
        v, se = getattr(self, name), getattr(self, f"{name}_se")
        if name == "C":
            h = self.t975 * se / v
            return v * math.exp(-h), v * math.exp(h)
        return v - self.t975 * se, v + self.t975 * se

    def expected(self) -> dict[str, float]:
        """The theory's a, b, C for this quantity."""
        return dict(zip(("a", "b", "C"), EXPECTED[self.quantity], strict=True))

    def off(self, name: str) -> tuple[float, float]:
        """(|v − expected| in standard errors, |v − expected| relative — absolute if 0)."""
        v, se, e = getattr(self, name), getattr(self, f"{name}_se"), self.expected()[name]
        d = abs(v - e)
        return (d / se if se > 0 else (0.0 if d == 0 else math.inf)), d / (abs(e) or 1.0)

    def as_dict(self) -> dict[str, Any]:
        """The record stored as ``law`` (``mass_law``) in sweep.json."""
        return asdict(self) | {"ci95": {k: list(self.ci(k)) for k in ("a", "b", "C")}}


def fit_law(
    gamma: Sequence[float],
    beta: Sequence[float],
    values: Sequence[float],
    names: Sequence[str] = (),
    sigma: Sequence[float] | None = None,
    quantity: str = "hbar",
) -> Law:
    """Least squares of log x = log C + a log γ + b log β (weighted when ``sigma`` is given).

    ``sigma``: the points' absolute uncertainties (all finite and > 0), or None.

    Raises:
        ValueError: Fewer than 4 points, a non-positive value, or γ and β not varying
            independently (the design matrix is rank-deficient).
    """
    g, b, h = (np.asarray(x, dtype=float) for x in (gamma, beta, values))
    if not g.shape == b.shape == h.shape or g.ndim != 1:
        raise ValueError("gamma, beta and the fitted values must be 1D arrays of the same length")
    if len(g) < 4:
        raise ValueError(
            f"the law has 3 coefficients and their errors need >= 4 points, got {len(g)}"
        )
    if np.any(g <= 0) or np.any(b <= 0) or np.any(h <= 0) or not np.all(np.isfinite(h)):
        raise ValueError("gamma, beta and the fitted values must be positive and finite")
    X = np.column_stack([np.ones_like(g), np.log(g), np.log(b)])
    if np.linalg.matrix_rank(X) < 3:
        raise ValueError("gamma and beta must vary independently (the grid is rank-deficient)")
    y = np.log(h)
    dof = len(g) - 3
    if sigma is None:
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        r = y - X @ coef
        cov = float(r @ r) / dof * np.linalg.inv(X.T @ X)
        method, birge = "ols", math.nan
    else:
        s = np.asarray(sigma, dtype=float)
        if s.shape != h.shape or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError("every uncertainty must be finite and > 0")
        w = (h / s) ** 2  # 1/σ_y², σ_y = σ/x the uncertainty of log x
        A = np.linalg.inv(X.T @ (w[:, None] * X))
        coef = A @ (X.T @ (w * y))
        r = y - X @ coef
        birge = float(w @ r**2) / dof
        cov = A * max(1.0, birge)
        method = "wls-gci"
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    C = float(np.exp(coef[0]))
    ea, eb, eC = EXPECTED[quantity]
    rel = np.abs(h / (eC * g**ea * b**eb) - 1.0)
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
        quantity=quantity,
        method=method,
        birge=birge,
    )


def fit_rows(
    sweep_dir: Path, record: Mapping[str, Any], quantity: str = "hbar"
) -> list[dict[str, Any]]:
    """(point, γ, β, fitted value, uncertainty) of every fit in the points' report.json."""
    import json

    table, col = FIT_TABLES[quantity]
    rows = []
    for p in record["points"]:
        try:
            report = json.loads((sweep_dir / p["dir"] / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for r in report.get(table) or []:
            h = r.get(col)
            if isinstance(h, (int, float)) and math.isfinite(h) and h > 0:
                u = r.get("uncertainty")
                ok = isinstance(u, (int, float)) and math.isfinite(u) and u > 0
                rows.append(
                    {
                        "point": p["name"],
                        "gamma": r["gamma"],
                        "beta": r["beta"],
                        "value": h,
                        "uncertainty": float(u) if ok else None,
                    }
                )
    return rows


def law_of(
    sweep_dir: Path, record: Mapping[str, Any], quantity: str = "hbar"
) -> tuple[Law, list[dict[str, Any]]]:
    """The law of a sweep's ħ-fits (or mass fits): weighted when every point has a GCI.

    Raises:
        CaseError("DIR", ...): No (or too few) fits in the sweep's points.
    """
    rows = fit_rows(sweep_dir, record, quantity)
    table = FIT_TABLES[quantity][0]
    if not rows:
        raise CaseError(
            "DIR",
            f"{sweep_dir} has no {table} results (a sweep over a verification case whose "
            f"[verify].checks include {table}, with completed points)",
        )
    g, b, h = ([float(r[k]) for r in rows] for k in ("gamma", "beta", "value"))
    u = [r["uncertainty"] for r in rows]
    sigma = None if any(x is None for x in u) else [float(x) for x in u]
    try:
        law = fit_law(g, b, h, names=[r["point"] for r in rows], sigma=sigma, quantity=quantity)
    except ValueError as e:
        raise CaseError("DIR", f"{sweep_dir}: cannot fit the {quantity} law: {e}") from None
    return law, rows


def describe(law: Law) -> str:
    """a, b, C with standard errors and 95 % intervals, and the worst relative error."""
    x = "hbar" if law.quantity == "hbar" else "m"
    how = (
        f"weighted by the points' GCI (Birge ratio {law.birge:.2f})"
        if law.method == "wls-gci"
        else "ordinary least squares (no point uncertainties)"
    )
    lines = [f"{x} law: {x}_fit = C gamma^a beta^b over {law.n} fits, in logs, {how}"]
    for k, expected in law.expected().items():
        v, se = getattr(law, k), getattr(law, f"{k}_se")
        lo, hi = law.ci(k)
        n_se, rel = law.off(k)
        how_far = "relative" if expected else "absolute"
        lines.append(
            f"  {k} = {v:+.6f} ± {se:.2e}  (95% CI [{lo:+.6f}, {hi:+.6f}]; expected {expected:+g}, "
            f"{n_se:.1f} se and {rel:.2e} {how_far} away)"
        )
    at = f" at {law.worst_point}" if law.worst_point else ""
    ref = "gamma/beta" if x == "hbar" else "1/gamma"
    lines.append(f"  worst |{x}_fit/({ref}) - 1| = {law.worst_rel_error:.3e}{at}")
    return "\n".join(lines)


def _edges(v: np.ndarray) -> np.ndarray:
    """Cell edges at geometric midpoints (log axes)."""
    if len(v) == 1:
        return np.array([v[0] / 1.5, v[0] * 1.5])
    m = np.sqrt(v[1:] * v[:-1])
    return np.concatenate([[v[0] ** 2 / m[0]], m, [v[-1] ** 2 / m[-1]]])


def plot_law(
    path: Path,
    law: Law,
    rows: Iterable[Mapping[str, Any]],
    mass: tuple[Law, Iterable[Mapping[str, Any]]] | None = None,
) -> Path:
    """ħ_fit against γ/β (log axes) beside the relative error over the (γ, β) grid.

    With ``mass`` (the mass law and its rows) a third panel: m_fit against 1/γ.
    Error bars are the points' GCI where they have one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    g, b, h = (np.array([r[k] for r in rows], dtype=float) for k in ("gamma", "beta", "value"))
    u = np.array([r.get("uncertainty") or np.nan for r in rows], dtype=float)
    x, rel = g / b, h / (g / b) - 1.0
    panels = 3 if mass is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.8 * panels, 4.6), constrained_layout=True)
    ax, hm = axes[0], axes[1]
    _law_panel(ax, law, x, h, u, "γ/β", "ħ_fit", "ħ = γ/β (3.12)")
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
    if mass is not None:
        mlaw, mrows = mass[0], list(mass[1])
        mg = np.array([r["gamma"] for r in mrows], dtype=float)
        mv = np.array([r["value"] for r in mrows], dtype=float)
        mu = np.array([r.get("uncertainty") or np.nan for r in mrows], dtype=float)
        _law_panel(axes[2], mlaw, 1.0 / mg, mv, mu, "1/γ", "m_fit", "m = 1/γ (3.13)")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _law_panel(
    ax: Any, law: Law, x: np.ndarray, y: np.ndarray, u: np.ndarray, xl: str, yl: str, line: str
) -> None:
    """y against x on log axes with the identity line, error bars and the fitted law."""
    span = np.array([x.min() / 1.5, x.max() * 1.5])
    ax.loglog(span, span, "k-", lw=1, label=line)
    ax.errorbar(x, y, yerr=np.where(np.isfinite(u), u, 0.0), fmt="o", ms=5, mfc="none",
                label=f"{yl} ({law.n} points)")  # fmt: skip
    ax.set(xlabel=xl, ylabel=yl, title=f"{yl} against {xl}")
    from matplotlib.ticker import NullFormatter

    for axis in (ax.xaxis, ax.yaxis):  # minor labels on a one-decade axis overlap
        axis.set_minor_formatter(NullFormatter())
    ax.text(
        0.03, 0.97,
        f"{yl} = C γ^a β^b ({law.method})\na = {law.a:.5f} ± {law.a_se:.1e}\n"
        f"b = {law.b:.5f} ± {law.b_se:.1e}\nC = {law.C:.5f} ± {law.C_se:.1e}",
        transform=ax.transAxes, va="top", fontsize=9,
    )  # fmt: skip
    ax.legend(loc="lower right")
