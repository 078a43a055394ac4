"""Absorbing (Dirichlet) walls for Fokker–Planck (2.7) and its particles (2.5), and the
histogram bins of the particle comparison.

With p = 0 on ∂Ω the mass ∫p√g leaves through the walls: d/dt ∫p = −(outward flux) ≤ 0.
The particles are absorbed when an Euler–Maruyama step ends outside the box. Checking only
at the ends of steps misses the excursions in between, so the particles see walls moved out
by β₁σ√h (β₁ = −ζ(½)/√(2π) = 0.5826; Broadie, Glasserman & Kou 1997, "A continuity
correction for discrete barrier options"; Asmussen, Glynn & Pitman 1995): their survival is
compared with Fokker–Planck on that widened box, within its sampling error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
import pytest
from case_helpers import merged, write_case

import nhj  # noqa: F401  (orders dolfinx_solver first)
from nhj.case import case_from_dict
from nhj.cli import main
from nhj.diagnostics import Functionals
from nhj.langevin import null_l1
from nhj.problem import Problem
from nhj.reference import LangevinComparison
from nhj.registry import build
from nhj.simulation import Every, simulate

COMM = MPI.COMM_WORLD
BETA_1 = 0.5826  # −ζ(1/2)/√(2π)

# OU in L̄ = ¾x² on [-1, 1] with absorbing walls: the Gibbs sd (0.41) reaches the walls, so
# about 6 % of the mass leaves by t = 0.6; the start (4 widths from the nearer wall) is
# zero there to 3e-4 of its peak.
WALLS = {
    "equation": "fokker_planck",
    "parameters": {"gamma": 1.0, "beta": 2.0},
    "mesh": {"type": "interval", "lower": [-1.0], "upper": [1.0], "cells": [100]},
    "discretisation": {"degree": 2, "scheme": "bdf2", "dt": 0.02, "t_end": 0.6},
    "potential": {"curvature": [1.5]},
    "initial": {"kind": "gaussian", "center": [0.2], "width": [0.2]},
    "boundary": {"condition": "dirichlet"},
    "langevin": {"particles": 20000, "seed": 1, "dt": 0.001},
    "output": {"fields": False, "exact": False},
}
N = WALLS["langevin"]["particles"]


def problem(d: dict[str, Any]) -> Problem:
    """The built problem of a case dict."""
    return build(case_from_dict(d, Path(".")), COMM)


def fp_mass(d: dict[str, Any], every: int) -> np.ndarray:
    """∫p of a Fokker–Planck case every ``every`` steps (no particles)."""
    p = problem(merged(d, {"langevin": None}))
    functionals = Functionals(p.u0, p.semidiscrete.functionals)
    mass: list[float] = []
    outcome = simulate(p, "linear", [Every(every, lambda t, s: mass.append(functionals()["mass"]))])
    assert outcome.status == "completed", outcome.message
    return np.array(mass)


def widened(d: dict[str, Any]) -> dict[str, Any]:
    """The case on the box the discretely monitored particles see (walls out by β₁σ√h).

    σ² = 2D = γ²/β for α = 1 on the flat metric (κ = δ/β, D = (γ²/2)κ).
    """
    par = d["parameters"]
    shift = BETA_1 * par["gamma"] / np.sqrt(par["beta"]) * np.sqrt(d["langevin"]["dt"])
    lo, hi = d["mesh"]["lower"][0] - shift, d["mesh"]["upper"][0] + shift
    return merged(d, {"mesh": {"lower": [lo], "upper": [hi]}})


def test_absorbing_walls_fokker_planck_and_particles() -> None:
    """Mass leaves through the walls, monotonically, and the particles agree with (2.7):

    * ∫p never increases (round-off allowed: 1e-14 per step) and has lost > 3 % by t = 0.6
      (measured 5.7 %, 35 sampling standard errors, so the comparison below sees the walls);
    * the surviving fraction of particles equals ∫p on the widened box within 4 standard
      errors √(m(1 − m)/N) at every output (measured ≤ 0.8 se; against the box itself the
      gap is 2.6 se by t = 0.6, and 4.8 se by t = 1 with 40000 particles, so the continuity
      correction is needed; the gap doubles for 4× the particle step, as √h says);
    * the histogram and p agree as in the reflecting case: χ² p > 1e-3 (false alarm 0.1 %
      per output) and L1 below its mean + 5 sd bound.
    """
    p = problem(WALLS)
    functionals = Functionals(p.u0, p.semidiscrete.functionals)
    (comparison,) = [m for m in p.monitors if isinstance(m, LangevinComparison)]
    rows: list[dict[str, float]] = []

    def record(t: float, step: int) -> None:
        row = comparison(t)
        row.update(mass=functionals()["mass"], alive=comparison.ensemble.moments()["n"] / N)
        rows.append(row)

    outcome = simulate(p, "linear", [Every(5, record)])
    assert outcome.status == "completed", outcome.message
    assert len(rows) == 7  # t = 0, 0.1, ..., 0.6
    mass = np.array([r["mass"] for r in rows])
    alive = np.array([r["alive"] for r in rows])
    assert np.all(np.diff(mass) <= 1e-14 * 5) and mass[0] - mass[-1] > 0.03, mass
    assert np.all(np.diff(alive) <= 0) and alive[-1] < 1.0, alive

    expected = fp_mass(widened(WALLS), 5)
    se = np.sqrt(expected * (1 - expected) / N)
    assert np.all(np.abs(alive[1:] - expected[1:]) <= 4 * se[1:]), (alive, expected, se)
    for r in rows[1:]:  # at t = 0 the particles clipped onto the walls are not in p
        assert r["langevin_chi2_p"] > 1e-3, r
        assert r["langevin_l1"] < r["langevin_l1_tolerance"], r


@pytest.mark.mpi
def test_langevin_alone_absorbs_at_the_walls(tmp_dir: Path) -> None:
    """Equation = "langevin" with Dirichlet walls: the particle mass column decreases
    monotonically from 1, and at every output it is the Fokker–Planck mass on the widened
    box within 4 standard errors (the same particles on any number of ranks).
    """
    d = merged(WALLS, {"equation": "langevin", "output": {"every": 5}})
    path = write_case(tmp_dir, "walls", d) if COMM.rank == 0 else None
    path = COMM.bcast(path, root=0)
    out = tmp_dir / "out"
    assert main(["-q", "run", str(path), "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "completed" and s["particles"] == N
    import csv

    with (out / "diagnostics.csv").open() as f:
        mass = np.array([float(r["mass"]) for r in csv.DictReader(f)])
    assert mass[0] == 1.0 and np.all(np.diff(mass) <= 0) and mass[-1] < 0.97, mass
    expected = fp_mass(widened(WALLS), 5)
    se = np.sqrt(expected * (1 - expected) / N)
    assert np.all(np.abs(mass[1:] - expected[1:]) <= 4 * se[1:]), (mass, expected, se)


@pytest.mark.mpi
@pytest.mark.parametrize("equation", ["fokker_planck", "langevin"])
def test_explicit_bins_are_used(equation: str) -> None:
    """langevin.bins = [5] on 100 cells (the default would be 25): the comparison bins and
    compares with 5 bins, and the particle density of equation = "langevin" is constant on
    each of the 5 bins (20 cells each) and takes 5 values.
    """
    d = merged(WALLS, {"equation": equation, "langevin": {"bins": [5]}})
    p = problem(d)
    if equation == "fokker_planck":
        (comparison,) = [m for m in p.monitors if isinstance(m, LangevinComparison)]
        assert comparison.bins == (5,) and len(comparison.edges[0]) == 6
        P = comparison.expected()
        assert P.shape == (5,)
        row = comparison(0.02)
        assert row["langevin_l1_tolerance"] == pytest.approx(null_l1(P, N)[1], rel=1e-12)
        default = LangevinComparison(
            case_from_dict(merged(WALLS, {"langevin": {"bins": None}}), Path(".")),
            p.u0,
            p.metric,
        )
        assert default.bins == (25,)
        return
    simulate(p, "particles", stop=None)
    msh = p.msh
    n = msh.topology.index_map(msh.topology.dim).size_local
    mid = np.mean(msh.geometry.x[msh.geometry.dofmaps[0][:n]], axis=1)[:, 0]
    values = p.u0.x.array[:n]
    bin_of = np.clip(((mid + 1.0) / 0.4).astype(int), 0, 4)  # 5 bins of width 0.4
    for b in range(5):
        inside = values[bin_of == b]
        if len(inside):  # this rank may own no cell of a bin
            assert np.ptp(inside) == 0.0, (b, inside)
    distinct = COMM.allgather(np.unique(values))
    assert len(np.unique(np.concatenate(distinct))) <= 5 < 25


@pytest.mark.skip_in_parallel
@pytest.mark.parametrize("equation", ["fokker_planck", "langevin"])
@pytest.mark.parametrize(
    "bins, message",
    [
        ([7], "langevin.bins[0]: must divide mesh.cells[0] = 100"),
        ([5, 5], "langevin.bins: must be a list of 1 integers >= 2"),
        ([1], "langevin.bins[0]:"),
    ],
    ids=["non_divisor", "wrong_length", "one_bin"],
)
def test_bad_bins_are_refused(
    equation: str, bins: list[int], message: str, tmp_path: Path, capsys
) -> None:
    """Bins that are not unions of cells are refused: exit 2, one line, no result directory."""
    case = write_case(
        tmp_path, "bins", merged(WALLS, {"equation": equation, "langevin": {"bins": bins}})
    )
    out = tmp_path / "res"
    assert main(["run", str(case), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()
