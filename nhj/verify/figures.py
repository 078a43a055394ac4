"""The figures of the ``nhj verify`` report (serial, off-screen, rank 0).

``hbar_fit.png`` (the mismatch J(ħ) over the search interval and around the
minimum), ``mismatch_time.png`` (Madelung–Schrödinger mismatch vs t per pair),
``mismatch_h.png`` (the refinement study), ``fields_2d.png`` (pyvista: p and S
next to |ψ|² and ħ arg ψ of a 2D case), ``gibbs.png`` (ψ₀², the Gibbs density
and the Fokker–Planck state), ``regimes.png``. A figure that fails is logged,
not fatal: it must not hide the verdict.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nhj.verify.records import Report
from nhj.verify.spec import SUPPORT

log = logging.getLogger(__name__)


def make_figures(report: Report, out: Path) -> list[Path]:
    """Every figure the report has data for; a figure that fails is logged, not fatal."""
    makers: list[Callable[[Report, Path], Path | None]] = [
        fig_hbar_fit,
        fig_mismatch_time,
        fig_mismatch_h,
        fig_fields_2d,
        fig_gibbs,
        fig_regimes,
    ]
    paths = []
    for make in makers:
        try:
            p = make(report, out)
        except Exception as e:  # a missing figure must not hide the verdict
            log.warning("figure %s failed: %s", make.__name__, e)
            continue
        if p is not None:
            paths.append(p)
    return paths


def _save(plt: Any, fig: Any, path: Path) -> Path:
    """Write a figure as PNG and free it."""
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fig_hbar_fit(report: Report, out: Path) -> Path | None:
    """J(ħ)/J_min over the whole search and around the minimum, per pair."""
    if not report.fits:
        return None
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for key, f in report.fits:
        h = np.array([e[0] for e in f.evaluations]) / f.hbar_expected
        J = np.array([e[1] for e in f.evaluations])
        order = np.argsort(h)
        a.loglog(h[order], J[order], "o-", ms=3, label=key)
        s = np.array([c[0] for c in f.curve])
        b.semilogy(
            100 * (f.hbar_fit * (1 + s) / f.hbar_expected - 1),
            np.array([c[1] for c in f.curve]),
            "o-",
            ms=3,
            label=key,
        )
    for ax in (a, b):
        ax.axvline(1.0 if ax is a else 0.0, color="k", lw=0.8, ls="--")
    a.set(xlabel="ħ / (γ/β)", ylabel="J(ħ)", title="mismatch over the search interval")
    b.set(xlabel="ħ / (γ/β) − 1  [%]", ylabel="J(ħ)", title="around the minimum (m = 1/γ)")
    b.legend(fontsize=7)
    return _save(plt, fig, out / "hbar_fit.png")


def fig_mismatch_time(report: Report, out: Path) -> Path | None:
    """Madelung–Schrödinger mismatch of p and ∇S against t, per pair."""
    if not report.comparisons:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for key, cmp in report.comparisons:
        for ax, q in zip(axes, ("p", "grad_S"), strict=True):
            (line,) = ax.semilogy(cmp.times, cmp.series["MS"][q], "o-", ms=3, label=key)
            if "ME" in cmp.series:
                ax.semilogy(cmp.times, cmp.series["ME"][q], ":", color=line.get_color())
    axes[0].set(
        xlabel="t", title="p vs |ψ|²  (solid: Madelung–Schrödinger, dotted: Madelung–exact)"
    )
    axes[1].set(xlabel="t", title="∇S vs ħ∇arg ψ (p-weighted, on the support)")
    axes[1].legend(fontsize=7)
    return _save(plt, fig, out / "mismatch_time.png")


def fig_mismatch_h(report: Report, out: Path) -> Path | None:
    """The refinement study: mismatch against h (log–log) with the expected slope."""
    ref = [c for c in report.checks if c.name.startswith("refinement") and "cells" in c.details]
    if not ref:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    for c in ref:
        d = c.details
        h = np.array(d["h"])
        for q, mark in (("p", "o-"), ("grad_S", "s-")):
            ax.loglog(h, d[q], mark, ms=4, label=f"{q} ({d['case']})")
        e0 = d["grad_S"][-1]
        k = d["expected_order"]["grad_S"]
        ax.loglog(h, e0 * (h / h[-1]) ** k, "k--", lw=0.8, label=f"h^{k}")
    ax.set(
        xlabel="h (dt ∝ h)",
        ylabel="max_t relative mismatch",
        title="Madelung–Schrödinger mismatch under refinement",
    )
    ax.legend(fontsize=7)
    return _save(plt, fig, out / "mismatch_h.png")


def fig_fields_2d(report: Report, out: Path) -> Path | None:
    """Panels (pyvista): p | |ψ|² above S | ħ arg ψ (S wrapped like the phase, on the support)."""
    if report.panels is None or not report.panels.exists():
        return None
    os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
    import pyvista

    from nhj.plotting import _quiet_vtk

    pv: Any = pyvista  # its stubs reject plain strings and tuples that it accepts

    pv.OFF_SCREEN = True
    _quiet_vtk()
    grid = pv.read(str(report.panels))
    pmax = float(np.max(grid.point_data["p"]))
    support = grid.threshold(SUPPORT * pmax, scalars="p")
    # zoom on the packet: its support, grown by half its extent
    lo, hi = np.array(support.bounds[0::2]), np.array(support.bounds[1::2])
    pad = 0.5 * (hi - lo)
    box = [v for pair in zip(lo - pad, hi + pad, strict=True) for v in pair]
    box[4:6] = [-1.0, 1.0]
    window = grid.clip_box(box, invert=False)
    hb = float(np.max(np.abs(grid.point_data["hbar_arg_psi"]))) or 1.0
    # VTK's font has no Greek letters: ASCII titles
    panels = [
        ("p", window, "Madelung p", "viridis", (0, pmax)),
        ("p_psi", window, "Schrodinger abs(psi)^2", "viridis", (0, pmax)),
        ("S", support, "Madelung S mod 2 pi hbar", "twilight", (-hb, hb)),
        ("hbar_arg_psi", support, "Schrodinger hbar arg psi", "twilight", (-hb, hb)),
    ]
    plotter = pv.Plotter(shape=(2, 2), off_screen=True, window_size=(1200, 1100))
    for k, (name, data, title, cmap, clim) in enumerate(panels):
        plotter.subplot(k // 2, k % 2)
        plotter.add_mesh(window.outline(), color="gray")
        plotter.add_mesh(
            data.copy(), scalars=name, cmap=cmap, clim=clim, scalar_bar_args={"title": title}
        )
        plotter.view_xy()
    path = out / "fields_2d.png"
    plotter.screenshot(str(path))
    plotter.close()
    return path


def fig_gibbs(report: Report, out: Path) -> Path | None:
    """ψ₀², exp(−2βL̄/γ)/Z and the Fokker–Planck state at t_end, per 1D case."""
    if not report.profiles:
        return None
    plt = _pyplot()
    n = len(report.profiles)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.8), constrained_layout=True, squeeze=False)
    for ax, (name, pr) in zip(axes[0], report.profiles, strict=True):
        ax.plot(pr.x, pr.gibbs, "k-", lw=2.5, alpha=0.35, label="exp(−2βL̄/γ)/Z")
        ax.plot(pr.x, pr.psi2, "C0--", label="ground state |ψ₀|²")
        ax.plot(pr.x, pr.p, "C3:", label="Fokker–Planck p(t_end)")
        ax.set(xlabel="x0", title=name)
        ax.legend(fontsize=7)
    return _save(plt, fig, out / "gibbs.png")


def fig_regimes(report: Report, out: Path) -> Path | None:
    """Mismatch to Schrödinger against t for each α (solid: ∇S, dashed: p)."""
    reg = [c for c in report.checks if c.name.startswith("regimes") and "alphas" in c.details]
    if not reg:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(reg), figsize=(5.5 * len(reg), 4), constrained_layout=True, squeeze=False
    )
    for ax, c in zip(axes[0], reg, strict=True):
        d = c.details
        for i, a in enumerate(d["alphas"]):
            key = str(a)
            ax.semilogy(d["times"], d["grad_S"][key], "o-", color=f"C{i}", label=f"α = {a:g}")
            ax.semilogy(d["times"], d["p"][key], "--", color=f"C{i}")
        ax.axhline(c.tolerance, color="k", lw=0.8)
        if d.get("separation_bound"):
            ax.axhline(d["separation_bound"], color="k", lw=0.8, ls=":")
        ax.set(xlabel="t", title=f"{d['case']} ({'flat' if d['flat'] else 'anisotropic'})")
        ax.legend(fontsize=7)
    return _save(plt, fig, out / "regimes.png")
