"""The support of a Gaussian state over a run, as a gmsh domain for the log-amplitude form.

The log form (ρ = log √p, :mod:`nhj.equations.madelung_log`) carries a perturbation
from the support into the tail growing like R_max/R, so its domain must not reach
deeper into the tail than it needs: on a box fitted to where a moving packet goes,
the corners away from the packet reach R/R_max ~ 1e-16 and a finer mesh then loses
the run. The domain built here is the union over [0, t_end] of the level sets
p/max p ≥ ``tail`` of the exact state (nhj/exact.py): every point of it is in the
support at some time, and no point is deeper than the packet's own sweep makes it.
For the coherent flow of benchmarks/madelung_cost.py (to t = 2) that bounds the depth
by R/R_max ≥ 4.6e-9 (the fitted box: 2e-14 at its corners) and the error becomes the
time scheme's on every mesh (tests/test_support.py). A packet that breathes sweeps
itself deep: the squeezed flow (cases/verify/squeezed_2d.toml) reaches 2e-24 on its
support at its narrowest (3e-28 on the box), and there a finer mesh still loses the
fluid; only a domain that moved and breathed with the packet would bound that.

For a Gaussian state on a flat metric the level set at time t is the ellipse
Σ_i (y_i − y_c,i)² / a_i² ≤ 1 with a_i² = log(1/tail) / (2 Im a_i/ħ) (|ψ|² ∝
exp(−2 Im a (y − y_c)²/ħ), :meth:`nhj.exact.GaussianState.coefficients`); the union
is sampled at up to ``SAMPLES`` times and meshed by gmsh (OpenCASCADE disks fused into one
surface, uniform size h). A case asks for it with ``mesh.type = "support"`` (``size``,
``tail``; nhj.builders.common.support_domain makes the text from the case's state). Stdlib
and numpy only: the .geo text is the product, and it goes through nhj's .geo allow-list
like any other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: p/max p on the boundary of the support domain, at the time the packet is nearest.
TAIL = 1e-6
#: Level sets sampled along the run, at most: OpenCASCADE's fusion of n disks costs
#: superlinearly (9: 0.1 s, 17: 0.9 s, 41: 12 s on the coherent flow of benchmarks/).
SAMPLES = 17
#: Between two sampled level sets the centre moves at most this fraction of the smaller
#: semi-axis, so the union's boundary dips inside the sweep's by < 2 % of it (the sagitta
#: of an ellipse of semi-axis a over a chord of 0.25 a is a/128).
STRIDE = 0.25


def level_sets(state: Any, t_end: float, tail: float = TAIL, times: int = 401) -> np.ndarray:
    """Rows (t, y_c, a) of the ellipses p/max p = ``tail`` at ``times`` times in [0, t_end].

    Raises:
        ValueError: For a state in rotated flat coordinates (``state.L``), whose
            level sets are not axis-aligned in x.
    """
    if getattr(state, "L", None) is not None:
        raise ValueError("the support domain needs a state in Cartesian coordinates (L = None)")
    rows = []
    for t in np.linspace(0.0, t_end, times):
        C = state.coefficients(float(t))
        rows.append([t, *C[0], *np.sqrt(np.log(1.0 / tail) / (2.0 * C[3]))])
    return np.asarray(rows)


def sampled(sets: np.ndarray, dim: int, most: int = SAMPLES) -> np.ndarray:
    """The rows of ``sets`` to fuse, at most ``most``: the first, the last and those between.

    Consecutive rows are at most STRIDE × the smallest semi-axis apart, in the centre and
    the semi-axes together (a breathing packet changes shape without moving).
    """
    axes = sets[:, 1 + dim :]
    steps = np.abs(np.diff(sets[:, 1:], axis=0)).sum(axis=1)
    path = np.concatenate([[0.0], np.cumsum(steps)])
    n = int(np.clip(np.ceil(path[-1] / (STRIDE * axes.min())) + 1, 2, most))
    keep = np.searchsorted(path, np.linspace(0.0, path[-1], n))
    return sets[np.unique(np.minimum(keep, len(sets) - 1))]


def support_geo(state: Any, t_end: float, tail: float = TAIL) -> str:
    """The .geo text of the 2D support domain of ``state`` over [0, t_end] (mesh size h).

    h is a ``Parameters/h`` constant, so a case sets it with ``mesh.size``.
    """
    if state.dim != 2:
        raise ValueError(f"the support domain is built in 2D; this state has {state.dim}")
    sets = sampled(level_sets(state, t_end, tail), state.dim)
    n = len(sets)
    lines = [
        f"// The support of a Gaussian state over t in [0, {t_end:g}]: the union of its",
        f"// level sets p/max p = {tail:g} at {n} times (nhj.support.support_geo).",
        'DefineConstant[ h = {0.5, Name "Parameters/h"} ];',
        'SetFactory("OpenCASCADE");',
    ]
    for k, (_, xc, yc, ax, ay) in enumerate(sets, start=1):
        # OpenCASCADE wants the x radius the larger: a taller ellipse is a turned wide one
        c = f"{xc:.9g}, {yc:.9g}, 0"
        lines.append(f"Disk({k}) = {{{c}, {max(ax, ay):.9g}, {min(ax, ay):.9g}}};")
        if ay > ax:
            lines.append(f"Rotate {{{{0, 0, 1}}, {{{c}}}, Pi/2}} {{ Surface{{{k}}}; }}")
    fused = n + 1 if n > 1 else 1
    if n > 1:
        lines.append(
            f"BooleanUnion({fused}) = {{ Surface{{1}}; Delete; }}{{ Surface{{2:{n}}}; Delete; }};"
        )
    lines += [
        f'Physical Surface("domain", 1) = {{{fused}}};',
        f'Physical Curve("boundary", 2) = Boundary{{ Surface{{{fused}}}; }};',
        "Mesh.MeshSizeMin = h;",
        "Mesh.MeshSizeMax = h;",
    ]
    return "\n".join(lines) + "\n"
