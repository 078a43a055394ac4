"""The report of ``nhj verify``: report.json, report.md and figures, written by rank 0.

* ``report.json`` — ``checks`` (each {name, passed, value, tolerance, details}),
  ``hbar_fit`` (gamma, beta, hbar_expected, hbar_fit, rel_error per pair), mode,
  overall ``passed``, ranks, wall time, versions.
* ``report.md`` — the same as tables, with the criterion of every check.
* figures (serial, off-screen): ``hbar_fit.png`` (the mismatch J(ħ) over the search
  interval and around the minimum), ``mismatch_time.png`` (Madelung–Schrödinger
  mismatch vs t per pair), ``mismatch_h.png`` (the refinement study),
  ``fields_2d.png`` (pyvista: p and S next to |ψ|² and ħ arg ψ of a 2D case),
  ``gibbs.png`` (ψ₀², the Gibbs density and the Fokker–Planck state), ``regimes.png``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from nhj.verify import Check, Report, jsonable

log = logging.getLogger(__name__)

SUPPORT_SHOWN = 1e-3
"""The phase panels show S and ħ arg ψ where p > SUPPORT_SHOWN · max p (the checked support)."""


def report_data(report: Report) -> dict[str, Any]:
    """The content of report.json."""
    from nhj.run import versions

    return jsonable(
        {
            "mode": report.mode,
            "passed": report.passed,
            "checks_passed": sum(c.passed for c in report.checks),
            "checks_total": len(report.checks),
            "ranks": report.ranks,
            "wall_s": report.wall_s,
            "versions": versions(),
            "checks": [c.as_dict() for c in report.checks],
            "hbar_fit": report.hbar_table(),
        }
    )


def write_report(report: Report, out: Path, comm: MPI.Comm) -> list[Path]:
    """Write report.json, the figures and report.md to ``out`` on rank 0 (no collectives)."""
    if comm.rank != 0:
        return []
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.json"]
    written[0].write_text(json.dumps(report_data(report), indent=2) + "\n", encoding="utf-8")
    figures = make_figures(report, out)
    (out / "report.md").write_text(markdown(report, figures), encoding="utf-8")
    return [*written, out / "report.md", *figures]


def fmt(x: Any, spec: str = ".3g") -> str:
    """A number for a table ('-' for None/NaN)."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(x)
    return format(float(x), spec)


def criterion_sense(c: Check) -> str:
    """'>=' for checks whose value must reach the tolerance, '<=' for the others."""
    return ">=" if c.name.startswith("refinement") else "<="


def summary_table(report: Report) -> str:
    """The plain-text table printed at the end of ``nhj verify``."""
    rows = [
        (c.name, "PASS" if c.passed else "FAIL", fmt(c.value), criterion_sense(c), fmt(c.tolerance))
        for c in report.checks
    ]
    head = ("check", "result", "value", "", "tolerance")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), line]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    out.append(line)
    fits = report.hbar_table()
    if fits:
        out.append("hbar fit (m = 1/gamma):  gamma  beta  hbar_expected  hbar_fit  rel_error")
        out += [
            f"  {r['case'] or '-':>24s}  {fmt(r['gamma']):>5s}  {fmt(r['beta']):>4s}  "
            f"{fmt(r['hbar_expected'], '.6g'):>13s}  {fmt(r['hbar_fit'], '.6g'):>8s}  "
            f"{fmt(r['rel_error'], '.2e'):>9s}"
            for r in fits
        ]
    n = sum(c.passed for c in report.checks)
    verdict = "PASSED" if report.passed else "FAILED"
    out.append(
        f"nhj verify --{report.mode}: {verdict} ({n}/{len(report.checks)} checks, "
        f"{report.wall_s:.0f} s on {report.ranks} rank(s))"
    )
    return "\n".join(out)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def markdown(report: Report, figures: list[Path]) -> str:
    """The content of report.md."""
    n = sum(c.passed for c in report.checks)
    verdict = "PASSED" if report.passed else "FAILED"
    md = [
        f"# nhj verify --{report.mode}: {verdict}",
        "",
        f"{n} of {len(report.checks)} checks passed in {report.wall_s:.0f} s on "
        f'{report.ranks} MPI rank(s). The claim under test (theory.md, "The correspondence '
        'check"): learning dynamics with learning rate γ and Lagrange multiplier β evolves '
        "like Schrödinger dynamics with ħ = γ/β and m = 1/γ.",
        "",
        "## Checks",
        "",
    ]
    md += _table(
        ["check", "result", "value", "", "tolerance"],
        [
            [
                f"`{c.name}`",
                "pass" if c.passed else "**FAIL**",
                fmt(c.value),
                criterion_sense(c).replace("<=", "≤").replace(">=", "≥"),
                fmt(c.tolerance),
            ]
            for c in report.checks
        ],
    )
    fits = [c for c in report.checks if c.name.startswith("hbar_fit")]
    if fits:
        md += [
            "## ħ-fit",
            "",
            "The ħ that minimises the Madelung–Schrödinger mismatch J(ħ) with m fixed at "
            "1/γ (bounded Brent search over [γ/β / B, B γ/β]). *width* is the relative "
            "change of ħ over which J rises by its own minimum (from the curvature): a "
            "clear minimum has a width below the tolerance.",
            "",
        ]
        md += _table(
            [
                "case",
                "γ",
                "β",
                "ħ expected",
                "ħ fit",
                "rel. error",
                "J_min",
                "width",
                "evaluations",
            ],
            [
                [
                    c.details.get("case", ""),
                    fmt(c.details.get("gamma")),
                    fmt(c.details.get("beta")),
                    fmt(c.details.get("hbar_expected"), ".6g"),
                    fmt(c.details.get("hbar_fit"), ".8g"),
                    fmt(c.details.get("rel_error"), ".2e"),
                    fmt(c.details.get("J_min"), ".2e"),
                    fmt(c.details.get("width"), ".2e"),
                    fmt(c.details.get("evaluations")),
                ]
                for c in fits
            ],
        )
    corr = [c for c in report.checks if c.name.startswith("correspondence") and "MS_p" in c.details]
    if corr:
        md += [
            "## Madelung vs Schrödinger vs exact",
            "",
            "Largest relative L² mismatch over the observation times: p against |ψ|², and "
            "∇S against ħ∇arg ψ (p-weighted, on the support p > 10⁻³ max p). M = Madelung, "
            "S = Schrödinger, E = exact.",
            "",
        ]
        rows = []
        for c in corr:
            d = c.details
            row = [
                d["case"],
                fmt(d["gamma"]),
                fmt(d["beta"]),
                fmt(d["hbar"]),
                fmt(d["m"]),
                str(d["dim"]),
                str(d["dofs"]),
            ]
            for k in ("MS", "ME", "SE"):
                for q in ("p", "grad_S"):
                    v = d.get(f"{k}_{q}")
                    row.append(fmt(max(v)) if v else "-")
            rows.append(row)
        md += _table(
            [
                "case",
                "γ",
                "β",
                "ħ",
                "m",
                "dim",
                "dofs",
                "M–S p",
                "M–S ∇S",
                "M–E p",
                "M–E ∇S",
                "S–E p",
                "S–E ∇S",
            ],
            rows,
        )
    for c in report.checks:
        d = c.details
        if c.name.startswith("refinement") and "cells" in d:
            md += [
                f"## Refinement: `{c.name}`",
                "",
                "h and dt refined together (dt ∝ h); observed order between consecutive "
                f"levels (expected {d['expected_order']}).",
                "",
            ]
            rows = [
                [
                    str(d["cells"][i]),
                    fmt(d["h"][i]),
                    fmt(d["dt"][i]),
                    fmt(d["p"][i]),
                    fmt(d["order_p"][i - 1], ".2f") if i else "-",
                    fmt(d["grad_S"][i]),
                    fmt(d["order_grad_S"][i - 1], ".2f") if i else "-",
                ]
                for i in range(len(d["cells"]))
            ]
            md += _table(["cells", "h", "dt", "M–S p", "order", "M–S ∇S", "order"], rows)
    ground = [
        c for c in report.checks if c.name.startswith("ground_state_energy") and "E0" in c.details
    ]
    if ground:
        md += [
            "## Ground state ↔ Gibbs",
            "",
            "Lowest eigenpair of H = −(ħ²/2m)Δ_g + V with V from L̄ by (3.6): E₀ = 0 and "
            "|ψ₀|² = exp(−2βL̄/γ)/Z exactly, so both columns are discretisation errors.",
            "",
        ]
        rows = []
        for c in ground:
            d = c.details
            gibbs = next(
                (g.details for g in report.checks if g.name == c.name.replace("energy", "gibbs")),
                {},
            )
            for i in range(len(d["cells"])):
                rows.append(
                    [
                        d["case"],
                        str(d["cells"][i]),
                        fmt(d["h"][i]),
                        fmt(d["E0"][i]),
                        fmt(d["order_E0"][i - 1], ".2f") if i else "-",
                        fmt(d["gibbs_l1"][i]),
                        fmt(gibbs.get("order_gibbs_l1", [None] * 9)[i - 1], ".2f") if i else "-",
                    ]
                )
        md += _table(["case", "cells", "h", "E₀", "order", "‖ψ₀² − p∞‖₁", "order"], rows)
    fp = [
        c for c in report.checks if c.name.startswith("fokker_planck") and "gibbs_l1" in c.details
    ]
    if fp:
        md += ["## Fokker–Planck long-time state", ""]
        md += _table(
            ["case", "t_end", "‖p − p∞‖₁", "‖p − ψ₀²‖₁"],
            [
                [
                    c.details["case"],
                    fmt(c.details["t_end"]),
                    fmt(c.details["gibbs_l1"]),
                    fmt(c.details["l1_to_ground_state"]),
                ]
                for c in fp
            ],
        )
    reg = [c for c in report.checks if c.name.startswith("regimes") and "alphas" in c.details]
    if reg:
        md += [
            "## Regimes",
            "",
            "neural HJ (5.2) at each α against Schrödinger (largest mismatch over p and ∇S "
            "and the times).",
            "",
        ]
        rows = [
            [
                c.details["case"],
                "flat" if c.details["flat"] else "anisotropic",
                fmt(a),
                "yes" if eq else "no",
                fmt(m),
            ]
            for c in reg
            for a, eq, m in zip(
                c.details["alphas"],
                c.details["equals_schrodinger"],
                c.details["mismatch"],
                strict=True,
            )
        ]
        md += _table(["case", "metric", "α", "theory: = Schrödinger", "mismatch"], rows)
    if figures:
        md += ["## Figures", ""] + [f"![{f.stem}]({f.name})" for f in figures] + [""]
    md += ["## Criteria", ""]
    md += [
        f"- `{c.name}`: {c.details.get('criterion', '')}"
        + (f" — **error: {c.details['error']}**" if "error" in c.details else "")
        for c in report.checks
    ]
    return "\n".join(md) + "\n"


# --------------------------------------------------------------------------------------
# figures


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
    support = grid.threshold(SUPPORT_SHOWN * pmax, scalars="p")
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
