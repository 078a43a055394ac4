"""The report of ``nhj verify``: report.json, report.md and the figures, written by rank 0.

* ``report.json`` — ``checks`` (each {name, passed, value, tolerance, details}),
  ``hbar_fit`` (gamma, beta, hbar_expected, hbar_fit, rel_error, uncertainty per pair),
  ``mass_fit`` (the same with m_expected, m_fit), mode,
  overall ``passed``, ranks, wall time, versions.
* ``report.md`` — the same as tables, with the criterion of every check.
* the figures of :mod:`nhj.verify.figures`.

It reads the records of :mod:`nhj.verify.records` only: the CLI (through
:func:`nhj.verify.orchestrate.run_verification`) hands it a finished
:class:`~nhj.verify.records.Report`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from nhj.verify.figures import make_figures
from nhj.verify.records import Check, Report, jsonable


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
            "mass_fit": report.mass_table(),
        }
    )


def write_report(report: Report, out: Path, comm: MPI.Comm) -> list[Path]:
    """Write report.json, the figures and report.md to ``out`` on rank 0 (no collectives)."""
    if comm.rank != 0:
        return []
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.json"]
    tmp = out / ".report.json.tmp"  # readers see the old report or the new one, never half
    tmp.write_text(json.dumps(report_data(report), indent=2) + "\n", encoding="utf-8")
    tmp.replace(written[0])
    figures = make_figures(report, out)
    (out / "report.md").write_text(markdown(report, figures), encoding="utf-8")
    return [*written, out / "report.md", *figures]


def remove_stale(out: Path) -> None:
    """Remove an earlier report.json at the start of a verification (rank 0).

    An interrupted ``nhj verify`` then leaves no report rather than an old
    ``passed: true`` of other cases.
    """
    (out / "report.json").unlink(missing_ok=True)


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
    for title, x, fits in (
        ("hbar fit (m = 1/gamma)", "hbar", report.hbar_table()),
        ("mass fit (hbar = gamma/beta)", "m", report.mass_table()),
    ):
        if not fits:
            continue
        out.append(f"{title}:  gamma  beta  {x}_expected  {x}_fit  rel_error  GCI")
        out += [
            f"  {r['case'] or '-':>24s}  {fmt(r['gamma']):>5s}  {fmt(r['beta']):>4s}  "
            f"{fmt(r[f'{x}_expected'], '.6g'):>13s}  {fmt(r[f'{x}_fit'], '.6g'):>8s}  "
            f"{fmt(r['rel_error'], '.2e'):>9s}  {fmt(r['uncertainty'], '.2e'):>8s}"
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
    for check, x, title, fixed in (
        ("hbar_fit", "hbar", "ħ-fit", "the ħ that minimises the mismatch J(ħ) with m fixed at 1/γ"),
        ("mass_fit", "m", "Mass fit", "the m that minimises the mismatch J(m) with ħ fixed at γ/β"),
    ):
        fits = [c for c in report.checks if c.name.startswith(f"{check}[")]
        if not fits:
            continue
        md += [
            f"## {title}",
            "",
            f"The Madelung–Schrödinger fit: {fixed} (bounded Brent search over "
            "[x_e / B, B x_e]). *width* is the relative change over which J rises by its "
            "own minimum (from the curvature): a clear minimum has a width below the "
            "tolerance. *GCI* is the discretisation uncertainty of the fitted value "
            "(verify.fit_uncertainty_cells; — when not asked for).",
            "",
        ]
        md += _table(
            ["case", "γ", "β", "expected", "fit", "rel. error", "GCI", "J_min", "width", "evals"],
            [
                [
                    c.details.get("case", ""),
                    fmt(c.details.get("gamma")),
                    fmt(c.details.get("beta")),
                    fmt(c.details.get(f"{x}_expected"), ".6g"),
                    fmt(c.details.get(f"{x}_fit"), ".8g"),
                    fmt(c.details.get("rel_error"), ".2e"),
                    fmt(c.details.get("uncertainty"), ".2e"),
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
            "S = Schrödinger, E = exact. Wave: the fraction of the Madelung run's time "
            "spent in the hybrid's wave form (Schrödinger itself, nhj/hybrid.py); only "
            "observation times in the (√p, S) form are compared, and `judged` lists them.",
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
            judged = d.get("judged_times", d["times"])
            idx = [i for i, t in enumerate(d["times"]) if t in judged]
            for k in ("MS", "ME", "SE"):
                for q in ("p", "grad_S"):
                    v = d.get(f"{k}_{q}")
                    row.append(fmt(max(v[i] for i in idx)) if v and idx else "-")
            row.append(f"{d.get('fraction_wave', 0.0):.0%}")
            if len(idx) == len(d["times"]):
                row.append("all")
            else:
                row.append(", ".join(fmt(t) for t in judged) or "none")
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
                "wave",
                "judged",
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
