"""Figures from a result directory (serial, off-screen).

``diagnostics.png``: mass drift, energy drift and error against t, from
diagnostics.csv. ``fields.png``: the final p and S from final.vtu, rendered by
pyvista off-screen (no display needed).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from nhj.schema import CaseError


def read_diagnostics(path: Path) -> dict[str, np.ndarray]:
    """Columns of diagnostics.csv as float arrays (empty cells become NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {
        k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows])
        for k in rows[0]
    }


def plot_diagnostics(result: Path) -> Path:
    """Drifts of the conserved quantities and the error/distance columns vs t."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = read_diagnostics(result / "diagnostics.csv")
    drifts: list[str] = [k for k in ("mass", "energy") if k in d]
    errors: list[str] = [
        k
        for k in ("error_l2", "error_p", "gibbs_l1", "langevin_l1", "rel_entropy")
        if k in d and np.isfinite(d[k]).any()
    ]
    panels = len(drifts) + 1
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.5), constrained_layout=True)
    for ax, key in zip(axes, drifts, strict=False):
        rel = np.abs(d[key] - d[key][0]) / max(abs(d[key][0]), 1e-300)
        ax.semilogy(d["t"], np.maximum(rel, 1e-17), "o-", ms=3)
        ax.set(xlabel="t", title=f"relative {key} drift")
    ax = axes[-1]
    for key in errors:
        ax.semilogy(d["t"], np.abs(d[key]), "o-", ms=3, label=key)
    if "langevin_l1_tolerance" in d:
        ax.semilogy(d["t"], d["langevin_l1_tolerance"], "k--", label="langevin_l1 bound")
    if errors:
        ax.set(xlabel="t", title="errors and distances")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no exact solution or reference", ha="center", va="center")
        ax.set_axis_off()
    out = result / "diagnostics.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_fields(result: Path) -> Path:
    """Final p and S side by side (1D as curves, 2D/3D as pyvista renders)."""
    os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
    import pyvista

    pyvista.OFF_SCREEN = True
    _quiet_vtk()  # a corrupt file is reported once, as a CaseError, not by VTK's logger
    grid = pyvista.read(str(result / "final.vtu"))
    if grid.n_points == 0 or "p" not in grid.point_data:
        raise ValueError("final.vtu has no points or no field p")
    out = result / "fields.png"
    if np.ptp(grid.points[:, 1]) == 0 and np.ptp(grid.points[:, 2]) == 0:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        order = np.argsort(grid.points[:, 0])
        names = [n for n in ("p", "S") if n in grid.point_data]
        fig, axes = plt.subplots(
            1, len(names), figsize=(5 * len(names), 3.5), constrained_layout=True, squeeze=False
        )
        for ax, name in zip(axes[0], names, strict=True):
            ax.plot(grid.points[order, 0], grid.point_data[name][order])
            ax.set(xlabel="x0", title=name)
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return out
    _quiet_vtk()
    # S = ħ arg ψ is noise where ψ ≈ 0: show it only where p carries information
    panels = [("p", grid)]
    if "S" in grid.point_data:
        support = grid.threshold(1e-4 * float(np.max(grid.point_data["p"])), scalars="p")
        panels.append(("S", support))
    plotter = pyvista.Plotter(
        shape=(1, len(panels)), off_screen=True, window_size=(700 * len(panels), 650)
    )
    for k, (name, data) in enumerate(panels):
        plotter.subplot(0, k)
        if k:
            plotter.add_mesh(grid.outline(), color="gray")
        plotter.add_mesh(
            data.copy(),
            scalars=name,
            cmap="viridis" if name == "p" else "twilight",
            show_scalar_bar=True,
            scalar_bar_args={"title": name},
        )
        plotter.view_xy()
    plotter.screenshot(str(out))
    plotter.close()
    return out


def _quiet_vtk() -> None:
    """Silence VTK's complaint about a missing X display (rendering is off-screen anyway)."""
    import vtk

    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)
    vtk.vtkObject.GlobalWarningDisplayOff()


def plot_result(result: Path) -> list[Path]:
    """All figures of a result directory; CaseError if it is not one."""
    result = Path(result)
    missing = [n for n in ("diagnostics.csv", "final.vtu") if not (result / n).exists()]
    if missing:
        raise CaseError(
            "result",
            f"{result} is not a complete nhj result directory (missing {', '.join(missing)})",
        )
    try:
        return [plot_diagnostics(result), plot_fields(result)]
    except (OSError, ValueError, KeyError, IndexError, TypeError, csv.Error) as e:
        what = " ".join(str(e).split()) or type(e).__name__
        raise CaseError(
            "result", f"{result} has an unreadable diagnostics.csv or final.vtu: {what}"
        ) from None
