"""Covariant Fokker–Planck (2.7): OU transient orders, relaxation to Gibbs, vs Langevin (2.5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from case_helpers import merged, write_case

from nhj.case import case_from_dict
from nhj.cli import main
from nhj.reference import LangevinComparison
from nhj.registry import build
from nhj.simulation import simulate

OU = {
    "equation": "fokker_planck",
    "parameters": {"gamma": 1.0, "beta": 2.0},
    "mesh": {"type": "interval", "lower": [-4.0], "upper": [4.0], "cells": [100]},
    "discretisation": {"degree": 1, "scheme": "bdf2", "dt": 0.01, "t_end": 0.5},
    "potential": {"curvature": [1.5]},
    "initial": {"kind": "gaussian", "center": [1.0], "width": [0.3]},
}


def run(d: dict, tmp_dir, comm) -> tuple[dict, list[dict]]:
    """Run a case dict through the CLI to completion; (summary, diagnostics rows).

    Every run here is expected to complete (exit 0, status "completed", a last row at
    t_end): a failed run cannot pass a test by leaving rows unchecked.
    """
    import csv

    path = write_case(tmp_dir, "case", d) if comm.rank == 0 else None
    path = comm.bcast(path, root=0)
    out = tmp_dir / "out"
    code = main(["-q", "run", str(path), "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0 and summary["status"] == "completed", summary.get("message")
    rows = list(csv.DictReader((out / "diagnostics.csv").open()))
    t_end = d["discretisation"]["t_end"]
    assert float(rows[-1]["t"]) == pytest.approx(t_end) == summary["t_final"]
    return summary, rows


def error_at(d: dict, comm) -> float:
    """error_l2 of the OU run at t_end (library API, no files)."""
    case = case_from_dict(d, base_dir=__import__("pathlib").Path("."))
    problem = build(case, comm)
    outcome = simulate(problem, "linear")
    (err,) = [m for m in problem.monitors if "error_l2" in m.columns]
    return err(outcome.t)["error_l2"]


@pytest.mark.mpi
@pytest.mark.parametrize("degree, expected", [(1, 2.0), (2, 3.0)])
def test_ou_h_convergence(degree: int, expected: float, comm) -> None:
    """Against the exact Gaussian transient: P1 → 2, P2 → 3 in h (dt small)."""
    ns = (40, 80, 160) if degree == 1 else (20, 40, 80)
    errs = [
        error_at(
            merged(OU, {"mesh": {"cells": [n]}, "discretisation": {"degree": degree, "dt": 0.001}}),
            comm,
        )
        for n in ns
    ]
    rates = np.log2(np.array(errs[:-1]) / errs[1:])
    assert abs(rates[-1] - expected) < 0.2, (errs, rates)


@pytest.mark.parametrize("scheme", ["bdf2", "crank_nicolson"])
def test_ou_dt_convergence(scheme: str, comm) -> None:
    """Second order in dt for BDF2 and Crank–Nicolson (P3, fine mesh)."""
    errs = [
        error_at(
            merged(
                OU,
                {
                    "mesh": {"cells": [200]},
                    "discretisation": {"degree": 3, "dt": dt, "scheme": scheme},
                },
            ),
            comm,
        )
        for dt in (0.04, 0.02, 0.01)
    ]
    rates = np.log2(np.array(errs[:-1]) / errs[1:])
    assert abs(rates[-1] - 2.0) < 0.2, (errs, rates)


DOUBLE_WELL_1D = {
    "equation": "fokker_planck",
    "parameters": {"gamma": 1.0, "beta": 1.0},
    "mesh": {"type": "interval", "lower": [-2.5], "upper": [2.5], "cells": [200]},
    "discretisation": {"degree": 2, "scheme": "bdf2", "dt": 0.05, "t_end": 40.0},
    "potential": {"loss": "(x0**2 - 1)**2"},
    "initial": {"kind": "gaussian", "center": [0.7], "width": [0.3]},
    "output": {"every": 20},
}


@pytest.mark.mpi
def test_double_well_1d_relaxes_to_gibbs(tmp_dir, comm) -> None:
    """α = 1: L1 distance to exp(−2βL̄/γ)/Z < 1e-3; relative entropy decreases monotonically."""
    s, rows = run(DOUBLE_WELL_1D, tmp_dir, comm)
    assert s["status"] == "completed" and s["mass_drift"] < 1e-10
    assert s["gibbs_l1"] < 1e-3
    H = np.array([float(r["rel_entropy"]) for r in rows])
    assert np.all(np.diff(H) <= 1e-12 * max(1.0, H[0])) and H[-1] < 1e-3 * H[0]
    F = np.array([float(r["free_energy"]) for r in rows])
    assert np.all(np.diff(F) <= 1e-12)


@pytest.mark.mpi
def test_double_well_2d_relaxes_to_gibbs(tmp_dir, comm) -> None:
    """The 2D double well reaches Gibbs (L1 < 1e-3) with monotone entropy; no undershoot."""
    d = {
        "equation": "fokker_planck",
        "parameters": {"gamma": 1.0, "beta": 1.0},
        "mesh": {
            "type": "rectangle",
            "lower": [-2.0, -2.0],
            "upper": [2.0, 2.0],
            "cells": [32, 32],
        },
        "discretisation": {"degree": 2, "scheme": "bdf2", "dt": 0.1, "t_end": 40.0},
        "potential": {"loss": "(x0**2 - 1)**2 + 0.5*x1**2"},
        "initial": {"kind": "gaussian", "center": [0.6, 0.3], "width": [0.3, 0.3]},
        "output": {"every": 25, "fields": False},
    }
    s, rows = run(d, tmp_dir, comm)
    assert s["gibbs_l1"] < 1e-3, s["gibbs_l1"]
    H = np.array([float(r["rel_entropy"]) for r in rows])
    assert np.all(np.diff(H) <= 1e-12)
    assert s["min_p"] > -1e-6


@pytest.mark.parametrize("cells, resolved", [(400, True), (20, False)])
def test_sharp_gibbs_peak(cells: int, resolved: bool, tmp_dir, comm) -> None:
    """Drift-dominated (β/γ = 25): resolving the Gibbs width (0.115) gives L1 < 1e-3 and no
    undershoot; an under-resolved mesh is caught by the reported min p, never clipped.
    """
    d = merged(
        OU,
        {
            "parameters": {"beta": 25.0},
            "mesh": {"cells": [cells]},
            "discretisation": {"degree": 2, "dt": 0.02, "t_end": 8.0},
            "initial": {"width": [0.05], "center": [1.5]},
        },
    )
    s, _ = run(d, tmp_dir, comm)
    if resolved:
        assert s["gibbs_l1"] < 1e-3 and s["min_p"] > -1e-8 and s["error_l2"] < 1e-2
    else:
        assert s["gibbs_l1"] > 1e-2  # the coarse run is visibly wrong and says so


ANISO = {
    "equation": "fokker_planck",
    "parameters": {"gamma": 0.5, "beta": 1.0},
    "mesh": {"type": "rectangle", "lower": [-3.0, -3.0], "upper": [3.0, 3.0], "cells": [32, 32]},
    "discretisation": {"degree": 2, "scheme": "bdf2", "dt": 0.02, "t_end": 0.6},
    "noise": {"alpha": 0.0, "kappa": [[2.0, 0.8], [0.8, 0.6]]},
    "potential": {"loss": "0.5*(x0 - 0.5)**2 + x1**2 + 0.3*x0*x1"},
    "initial": {"kind": "gaussian", "center": [-1.0, 0.8], "width": [0.4, 0.3]},
    "langevin": {"particles": 100000, "seed": 3, "dt": 0.002},
    "output": {"every": 10, "fields": False},
}
HALF = merged(
    ANISO,
    {
        "noise": {"alpha": 0.5, "kappa": None},
        "metric": {"g": [[1.5, 0.4], [0.4, 0.8]]},
        "parameters": {"gamma": 0.7},
    },
)


@pytest.mark.parametrize("d", [ANISO, HALF], ids=["alpha0_kappa", "alpha_half_metric"])
def test_fp_matches_langevin(d: dict, tmp_dir, comm) -> None:
    """FP density and SGD particles agree within sampling error at every output time.

    Pass criteria (false-alarm rates): χ² p-value > 1e-3 (0.1 %), and L1 below its
    mean + 5 sd bound under multinomial sampling (< 1e-6).
    """
    s, rows = run(d, tmp_dir, comm)
    assert s["status"] == "completed"
    assert len(rows) == 4
    for r in rows[1:]:
        assert float(r["langevin_chi2_p"]) > 1e-3, r
        assert float(r["langevin_l1"]) < float(r["langevin_l1_tolerance"]), r
    assert s["langevin_l1"] < s["langevin_l1_tolerance"] < 0.05


def test_five_percent_mismatch_fails(comm) -> None:
    """The comparison can fail: particles with 5 % more noise than the FP density are rejected."""
    from pathlib import Path

    fp_case = case_from_dict(ANISO, Path("."))
    noisy = merged(ANISO, {"noise": {"kappa": [[2.1, 0.84], [0.84, 0.63]]}})
    problem = build(fp_case, comm)
    wrong = LangevinComparison(case_from_dict(noisy, Path(".")), problem.u0, problem.metric)
    right = LangevinComparison(fp_case, problem.u0, problem.metric)
    outcome = simulate(problem, "linear")
    bad, good = wrong(outcome.t), right(outcome.t)
    assert good["langevin_chi2_p"] > 1e-3
    assert bad["langevin_chi2_p"] < 1e-3, bad


@pytest.mark.skip_in_parallel
def test_mpi_agrees_with_serial(tmp_path, venv_bin) -> None:
    """FP to 1e-8 and the Langevin histogram exactly (same seeds) on 1 and 2 ranks."""
    import csv
    import subprocess
    import sys

    d = merged(ANISO, {"langevin": {"particles": 20000}, "discretisation": {"t_end": 0.2}})
    case = write_case(tmp_path, "aniso", d)
    outs = {}
    for n in (1, 2):
        out = tmp_path / f"r{n}"
        r = subprocess.run(
            [
                str(venv_bin / "mpirun"),
                "-n",
                str(n),
                sys.executable,
                "-m",
                "mpi4py",
                "-m",
                "nhj.cli",
                "-q",
                "run",
                str(case),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr
        outs[n] = list(csv.DictReader((out / "diagnostics.csv").open()))
    for a, b in zip(outs[1], outs[2], strict=True):
        for k in ("mass", "mean_loss"):
            assert abs(float(a[k]) - float(b[k])) <= 1e-8 * abs(float(a[k]))
        assert (
            a["langevin_mean_0"] == b["langevin_mean_0"]
            or abs(float(a["langevin_mean_0"]) - float(b["langevin_mean_0"])) < 1e-12
        )
        assert abs(float(a["langevin_l1"]) - float(b["langevin_l1"])) < 1e-9


FP_BAD = {
    "alpha above 1": ({"noise": {"alpha": 1.5}}, "noise.alpha: must lie in [0, 1]"),
    "alpha below 0": ({"noise": {"alpha": -0.5}}, "noise.alpha: must lie in [0, 1]"),
    "alpha 0 without kappa": ({"noise": {"alpha": 0.0}}, "noise.kappa: is required"),
    "kappa not SPD": (
        {"noise": {"kappa": [[1.0, 0.0], [0.0, -1.0]], "alpha": 0.0}},
        "noise.kappa: must be symmetric positive definite",
    ),
    "negative gamma": ({"parameters": {"gamma": -1.0}}, "parameters.gamma: must be > 0"),
    "negative density": (
        {"initial": {"kind": "expression", "p": "x0", "center": None, "width": None}},
        "initial.p: must be finite and >= 0",
    ),
    "non-normalisable density": (
        {"initial": {"kind": "expression", "p": "0*x0", "center": None, "width": None}},
        "initial.p: has zero mass",
    ),
    "no loss": ({"potential": {"loss": None, "V": "x0"}}, "potential.V: fokker_planck needs"),
    "momentum": ({"initial": {"momentum": [1.0, 0.0]}}, "initial.kind: fokker_planck takes"),
}


@pytest.mark.skip_in_parallel
@pytest.mark.parametrize("label", sorted(FP_BAD))
def test_fp_bad_input(label: str, tmp_path, capsys) -> None:
    """One line naming the field, exit code 2, no result directory."""
    change, message = FP_BAD[label]
    base = merged(ANISO, {"langevin": None, "noise": {"alpha": 1.0, "kappa": None}})
    case = write_case(tmp_path, "bad", merged(base, change))
    out = tmp_path / "res"
    assert main(["run", str(case), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_fp_matches_langevin_with_varying_metric(tmp_dir, comm) -> None:
    """Position-dependent g (α = 1, so D ∝ g⁻¹ varies): the Itô drift correction makes the
    particles follow (2.7); χ² p > 1e-3 and L1 below its bound at every output.
    """
    d = merged(
        ANISO,
        {
            "noise": {"alpha": 1.0, "kappa": None},
            "metric": {"g": [["1 + 0.5*x0**2", 0.0], [0.0, "1 + 0.3*x1**2"]]},
            "parameters": {"gamma": 1.0, "beta": 1.0},
            "potential": {"loss": "0.5*x0**2 + 0.5*(x1 - 0.3)**2"},
            "initial": {"center": [1.2, -0.5]},
            "langevin": {"particles": 40000, "dt": 0.005},
            "discretisation": {"t_end": 0.4},
        },
    )
    s, rows = run(d, tmp_dir, comm)
    # 20 steps of 0.02 with every = 10: rows at t = 0, 0.2, 0.4, each compared
    assert [float(r["t"]) for r in rows] == pytest.approx([0.0, 0.2, 0.4])
    for r in rows[1:]:
        assert float(r["langevin_chi2_p"]) > 1e-3, r
        assert float(r["langevin_l1"]) < float(r["langevin_l1_tolerance"]), r


def test_langevin_alone_matches_ou_moments(tmp_dir, comm) -> None:
    """Equation = "langevin": particle means/variances equal the exact OU moments within
    4 standard errors (mean) and 3 % (variance); mass is kept by reflecting walls.
    """
    from nhj.exact import OrnsteinUhlenbeck

    kappa = [[2.0, 0.8], [0.8, 0.6]]
    d = merged(
        ANISO,
        {
            "equation": "langevin",
            "potential": {"loss": None, "curvature": [1.0, 2.0]},
            "langevin": {"particles": 50000},
            "mesh": {"cells": [16, 16]},
            "discretisation": {"degree": 1, "t_end": 0.5, "dt": 0.05},
            "output": {"every": 5},
        },
    )
    s, rows = run(d, tmp_dir, comm)
    assert s["status"] == "completed" and s["equation"] == "langevin"
    assert s["mass"] == 1.0 and s["particles"] == 50000
    ou = OrnsteinUhlenbeck((-1.0, 0.8), (0.4, 0.3), (1.0, 2.0), np.array(kappa), 0.5)
    for r in rows[1:]:
        m, C = ou.moments(float(r["t"]))
        for i in range(2):
            assert abs(float(r[f"mean_{i}"]) - m[i]) < 4 * float(r[f"mean_{i}_se"]), (r, m)
            assert abs(float(r[f"var_{i}"]) / C[i, i] - 1) < 0.03, (r, C)
