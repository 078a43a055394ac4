"""nhj sweep: grids of cases on the local pool, resume, validation, and the law fit.

The local runs use cases/free_packet_1d.toml made tiny through the sweep's [set] table
(P1, 60 cells, 10 steps, no field output): a point is a few seconds of start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pytest

from nhj.cli import main
from nhj.sweep.law import fit_law
from nhj.sweep.options import RunSpec, SlurmSpec
from nhj.sweep.slurm import script
from nhj.sweep.spec import load_sweep, points
from nhj.sweep.state import SweepDir
from nhj.sweep.tomlw import dumps

ROOT = Path(__file__).resolve().parents[1]
TINY = """\
[set]
"mesh.cells" = [60]
"discretisation.degree" = 1
"discretisation.dt" = 0.05
"discretisation.t_end" = 0.5
"output.fields" = false
"""

pytestmark = pytest.mark.skip_in_parallel  # the sweep driver is serial; points are processes


def sweep_file(tmp: Path, grid: str, base: str = "free_packet_1d.toml") -> Path:
    path = tmp / "s.toml"
    path.write_text(f'base = "{ROOT / "cases" / base}"\n{TINY}\n[grid]\n{grid}\n')
    return path


GRID = 'product = { "parameters.gamma" = [0.5, 1.0], "parameters.beta" = [1.0, 2.0] }'
NAMES = ["gamma=0.5_beta=1", "gamma=0.5_beta=2", "gamma=1_beta=1", "gamma=1_beta=2"]


def record(out: Path) -> dict:
    return json.loads((out / "sweep.json").read_text())


def statuses(out: Path) -> dict[str, str]:
    return {p["name"]: p["status"] for p in record(out)["points"]}


def stamps(out: Path) -> dict[str, tuple[int, int]]:
    """mtime of each point's summary.json and size of its log: both change when a point runs."""
    return {
        n: (
            (out / "points" / n / "summary.json").stat().st_mtime_ns,
            (out / "logs" / f"{n}.log").stat().st_size,
        )
        for n in NAMES
    }


def set_status(out: Path, name: str, status: str) -> None:
    path = out / "points" / name / "summary.json"
    s = json.loads(path.read_text())
    s["status"] = status
    path.write_text(json.dumps(s))


def test_local_sweep_limit_rerun_interrupted_failed(tmp_path):
    f, out = sweep_file(tmp_path, GRID), tmp_path / "out"
    assert main(["sweep", str(f), "--out", str(out), "--jobs", "2", "--limit", "1"]) == 0
    assert list(statuses(out).values()) == ["completed", "pending", "pending", "pending"]

    assert main(["sweep", str(f), "--out", str(out), "--jobs", "2"]) == 0
    rec = record(out)
    assert [p["name"] for p in rec["points"]] == NAMES
    assert set(statuses(out).values()) == {"completed"} and rec["counts"]["completed"] == 4
    assert rec["points"][1]["values"] == {"parameters.gamma": 0.5, "parameters.beta": 2.0}
    summary = json.loads((out / "points" / NAMES[1] / "summary.json").read_text())
    assert (summary["gamma"], summary["beta"], summary["steps"]) == (0.5, 2.0, 10)
    rows = (out / "sweep.csv").read_text().splitlines()
    assert rows[0].startswith("name,status,parameters.gamma,parameters.beta,wall_s")
    assert len(rows) == 5 and all(",completed," in r for r in rows[1:])

    before = stamps(out)  # rerun: nothing runs again
    assert main(["sweep", str(f), "--out", str(out), "--jobs", "2"]) == 0
    assert stamps(out) == before

    # a point killed mid-run (its summary says "running") reruns; a failed one only on request
    set_status(out, NAMES[0], "running")
    set_status(out, NAMES[3], "failed")
    before = stamps(out)
    assert main(["sweep", str(f), "--out", str(out), "--jobs", "2"]) == 1  # one still failed
    after = stamps(out)
    assert after[NAMES[0]] != before[NAMES[0]] and after[NAMES[3]] == before[NAMES[3]]
    assert after[NAMES[1]] == before[NAMES[1]] and after[NAMES[2]] == before[NAMES[2]]
    assert statuses(out)[NAMES[0]] == "completed" and statuses(out)[NAMES[3]] == "failed"

    assert main(["sweep", str(f), "--out", str(out), "--retry-failed"]) == 0
    assert stamps(out)[NAMES[3]] != after[NAMES[3]]
    assert set(statuses(out).values()) == {"completed"}

    assert main(["sweep", "status", str(out)]) == 0


@pytest.mark.parametrize(
    "grid, where",
    [
        ('product = { "parameters.gamma" = [1.0], "parameters.beta" = [1.0, -2.0] }',
         "point gamma=1_beta=-2: parameters.beta"),
        ('product = { "initial.width" = [[1.0], [-1.0]] }', "point width=-1: initial.width"),
        ('zip = { "parameters.gamma" = [1.0, 2.0], "parameters.beta" = [1.0] }', "grid.zip"),
        ('product = { "parameters.gamma" = [] }', "grid.product.parameters.gamma"),
        ('product = { "parameters.nope" = [1.0] }', "parameters.nope"),
    ],
)  # fmt: skip
def test_bad_grid_exits_2_naming_point_and_field(tmp_path, capsys, grid, where):
    out = tmp_path / "out"
    assert main(["sweep", str(sweep_file(tmp_path, grid)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and where in err, err
    assert not out.exists()  # nothing was written, nothing ran


def test_bad_verify_point_exits_2(tmp_path, capsys):
    f = tmp_path / "v.toml"
    f.write_text(
        'verify = "packet_1d"\n[set]\n"verify.checks" = ["hbar_fit"]\n[grid]\n'
        'product = { "parameters.gamma" = [1.0], "verify.hbar_tolerance" = [5e-3, -1.0] }\n'
    )
    assert main(["sweep", str(f), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "point gamma=1_hbar_tolerance=-1: verify.hbar_tolerance" in err, err


def test_oversubscription_refused(tmp_path, capsys):
    jobs = str((os.cpu_count() or 1) + 1)
    assert (
        main(
            ["sweep", str(sweep_file(tmp_path, GRID)), "--out", str(tmp_path / "o"), "--jobs", jobs]
        )
        == 2
    )
    assert "--jobs" in capsys.readouterr().err


def test_grid_axes_names_and_verify_points(tmp_path):
    f = tmp_path / "v.toml"
    f.write_text(
        'verify = "packet_1d"\n[set]\n"verify.checks" = ["hbar_fit"]\n[grid]\n'
        'product = { "parameters.beta" = [1.0, 2.0] }\n'
        '[[grid.zip]]\n"parameters.gamma" = [0.5, 1.0, 2.0]\n'
        '"discretisation.t_end" = [2.0, 1.0, 0.4]\n'
    )
    spec = load_sweep(f)
    pts = points(spec)
    assert spec.kind == "verify" and len(pts) == 6
    assert [p.name for p in pts[:3]] == ["beta=1_gamma=0.5", "beta=1_gamma=1", "beta=1_gamma=2"]
    d = tomllib.loads(pts[2].text)
    assert d["parameters"] == {"gamma": 2.0, "beta": 1.0} and d["discretisation"]["t_end"] == 0.4
    assert "pairs" not in d["verify"] and d["verify"]["checks"] == [
        "hbar_fit"
    ]  # the point's own pair


@pytest.mark.parametrize(
    "path", sorted((ROOT / "cases" / "sweeps").glob("*.toml")), ids=lambda p: p.stem
)
def test_shipped_sweeps_are_valid(tmp_path, path):
    """Every point of every shipped sweep validates (nothing runs: --dry-run)."""
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert len(list((tmp_path / "out" / "cases").glob("*.toml"))) == len(points(load_sweep(path)))


def test_toml_writer_round_trips():
    doc = {
        "equation": "madelung",
        "name": 'a "quoted" name',
        "parameters": {"gamma": 0.1, "beta": 2, "flag": True},
        "mesh": {"lower": [-1.5, 2.0], "cells": [3, 4], "parameters": {"r": 0.25}},
        "verify": {"pairs": [[1.0, 2.0], [0.5, 1e-7]], "checks": ["hbar_fit"]},
        "full": {"mesh": {"cells": [800]}, "verify": {"times": [0.6, 1.2]}},
        "petsc": {"options": [{"ksp_type": "preonly"}]},
        "dotted.key": {"x": "é"},
    }
    assert tomllib.loads(dumps(doc)) == doc
    for p in points(load_sweep(ROOT / "cases" / "sweeps" / "hbar_law.toml")):
        assert tomllib.loads(p.text) == p.doc


def test_slurm_script(tmp_path):
    sd = SweepDir(tmp_path)
    slurm = SlurmSpec(
        partition="debug", time="00:10:00", throttle=2, signal_s=30, modules=("mpi/x",),
        sbatch=("--mem=1G",),
    )  # fmt: skip
    text = script(sd, "case", RunSpec(ranks=2), slurm, NAMES, "nhj-test")
    expected = [
        "--array=0-3%2", "--ntasks=2", "--time=00:10:00", "--signal=B:TERM@30", "--requeue",
        f"--output={tmp_path.resolve()}/slurm/%A_%a.out", "--partition=debug", "--mem=1G",
    ]  # fmt: skip
    for line in expected:
        assert f"#SBATCH {line}\n" in text
    assert "module load mpi/x" in text and "-n 2" in text
    assert "3) NAME=gamma=1_beta=2" in text
    (tmp_path / "job.sh").write_text(text)
    assert subprocess.run(["bash", "-n", str(tmp_path / "job.sh")]).returncode == 0
    with pytest.raises(Exception, match="slurm.sbatch"):
        SlurmSpec.from_table({"sbatch": ["--mem=1G\nrm -rf /"]})
    with pytest.raises(Exception, match="slurm.modules"):
        SlurmSpec.from_table({"modules": ["x; rm -rf /"]})


def grid(n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    g, b = np.meshgrid(np.geomspace(0.5, 5.0, n), np.geomspace(0.5, 5.0, n))
    return g.ravel(), b.ravel()


def test_law_fit_exact():
    g, b = grid()
    law = fit_law(g, b, g / b)
    assert abs(law.a - 1) < 1e-12 and abs(law.b + 1) < 1e-12 and abs(law.C - 1) < 1e-12
    assert law.worst_rel_error < 1e-12 and max(law.a_se, law.b_se, law.C_se) < 1e-12
    law = fit_law(g, b, 2.0 * g**0.5 / b**2)
    assert max(abs(law.a - 0.5), abs(law.b + 2), abs(law.C - 2)) < 1e-12
    with pytest.raises(ValueError, match="independently"):
        fit_law(g, g, np.ones_like(g))  # gamma = beta: a and b cannot be told apart
    with pytest.raises(ValueError, match="4 points"):
        fit_law(g[:3], b[:3], (g / b)[:3])


def test_law_fit_standard_errors_cover_the_truth():
    g, b = grid()
    rng = np.random.default_rng(12)
    trials, covered = 400, {"a": 0, "b": 0, "C": 0}
    for _ in range(trials):
        law = fit_law(g, b, g / b * np.exp(rng.normal(0.0, 2e-3, g.size)))
        for k, truth in (("a", 1.0), ("b", -1.0), ("C", 1.0)):
            lo, hi = law.ci(k)
            covered[k] += lo <= truth <= hi
    for k, n in covered.items():  # 95 % intervals: 380 of 400 expected, binomial sd 4.4
        assert 0.92 * trials <= n <= 0.98 * trials, (k, n)


def test_weighted_law_standard_errors_cover_the_truth_and_reject_a_wrong_law():
    """Weighted by known per-point σ (as the GCI is), the 95 % intervals cover ~95 %.

    σ varies 30× over the grid like the fits' GCI (large at small β). When the σ are
    understated 5×, the Birge ratio (≈ 25) scales the covariance up and coverage holds;
    a wrong law (b = −0.99) lies far outside 2 standard errors.
    """
    g, b = grid()
    sigma = 1e-3 * (0.5 / b) ** 1.5  # relative σ, 1e-3 at β = 0.5 down to 3e-5 at β = 5
    rng = np.random.default_rng(7)
    trials = 400
    for understated in (1.0, 5.0):
        covered = {"a": 0, "b": 0, "C": 0}
        for _ in range(trials):
            h = g / b * np.exp(rng.normal(0.0, sigma))
            law = fit_law(g, b, h, sigma=h * sigma / understated)
            assert law.method == "wls-gci"
            for k, truth in (("a", 1.0), ("b", -1.0), ("C", 1.0)):
                lo, hi = law.ci(k)
                covered[k] += lo <= truth <= hi
        for k, n in covered.items():  # 380 of 400 expected, binomial sd 4.4; Birge-scaled
            assert 0.90 * trials <= n <= 0.985 * trials, (understated, k, n)
    h = g * b**-0.99 * np.exp(rng.normal(0.0, sigma))
    law = fit_law(g, b, h, sigma=h * sigma)
    assert law.off("b")[0] > 10, law
    with pytest.raises(ValueError, match="uncertainty"):
        fit_law(g, b, g / b, sigma=np.zeros_like(g))


def test_mass_law_expectations():
    """m = 1/γ (3.13): a = −1, b = 0, C = 1; b's distance from 0 is absolute."""
    g, b = grid()
    law = fit_law(g, b, 1.0 / g * (1 + 1e-6 * np.cos(np.arange(g.size))), quantity="m")
    assert law.expected() == {"a": -1.0, "b": 0.0, "C": 1.0}
    assert abs(law.a + 1) < 1e-5 and abs(law.b) < 1e-5 and law.worst_rel_error < 1.01e-6
    n_se, absolute = law.off("b")
    assert absolute == abs(law.b) and n_se < 5


def test_report_of_a_verify_sweep(tmp_path, capsys):
    """`nhj sweep report` on a sweep directory whose points hold report.json files."""
    g, b = grid(3)
    h = g / b * (1 + 1e-4 * np.sin(np.arange(g.size)))
    pts = []
    for i, (gi, bi, hi) in enumerate(zip(g, b, h, strict=True)):
        name = f"gamma={gi:g}_beta={bi:g}"
        (tmp_path / "points" / name).mkdir(parents=True)
        fit = {
            "case": name, "gamma": gi, "beta": bi, "hbar_expected": gi / bi, "hbar_fit": hi,
            "uncertainty": 2e-4 * hi,
        }  # fmt: skip
        mass = {"case": name, "gamma": gi, "beta": bi, "m_fit": 1 / gi, "uncertainty": 1e-4}
        (tmp_path / "points" / name / "report.json").write_text(
            json.dumps(
                {
                    "passed": True,
                    "wall_s": 1.0,
                    "checks_passed": 1,
                    "checks_total": 1,
                    "hbar_fit": [fit],
                    "mass_fit": [mass],
                }
            )
        )
        pts.append({"name": name, "index": i, "values": {}, "dir": f"points/{name}"})
    rec = {"kind": "verify", "keys": [], "points": pts, "slurm_jobs": []}
    (tmp_path / "sweep.json").write_text(json.dumps(rec))
    assert main(["sweep", "report", str(tmp_path)]) == 0
    law = record(tmp_path)["law"]
    assert (
        abs(law["a"] - 1) < 1e-3 and abs(law["b"] + 1) < 1e-3 and law["worst_rel_error"] < 1.01e-4
    )
    assert {"a", "b", "C", "a_se", "b_se", "C_se", "worst_rel_error"} <= set(law)
    assert law["method"] == "wls-gci"  # every point has an uncertainty
    m = record(tmp_path)["mass_law"]
    assert abs(m["a"] + 1) < 1e-9 and abs(m["b"]) < 1e-9 and m["quantity"] == "m"
    assert (tmp_path / "law.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "a = +1.0" in out and "m law" in out and "Birge" in out


def test_kill9_of_a_point_and_of_the_sweep_then_rerun_resumes(tmp_path, venv_bin):
    """kill -9 of a running point, then of the sweep driver: the rerun completes every point.

    Points of 600 steps checkpointing every 50 (free_packet_1d, 1000 P2 cells). The
    point killed with SIGKILL is left "running" at its last checkpoint; the driver, killed
    with SIGKILL while its second point runs, takes that point with it (PR_SET_PDEATHSIG:
    SIGTERM, so it checkpoints and ends "interrupted"). Rerunning the same command resumes
    both from their checkpoints (summary.json resumed_from) and runs the rest.
    """
    import signal
    import sys
    import time

    # 2400 steps of ~1.5 ms: the window between the checkpoint at step 100 and the end of a
    # point (~3 s) must hold the 0.2 s polling and the kills; at 600 steps (0.75 s) a warm
    # point sometimes completed first
    f = tmp_path / "s.toml"
    f.write_text(
        f'base = "{ROOT / "cases" / "free_packet_1d.toml"}"\n[set]\n"mesh.cells" = [1000]\n'
        '"discretisation.dt" = 0.005\n"discretisation.t_end" = 12.0\n"output.fields" = false\n'
        '"output.checkpoint_every" = 50\n[grid]\n'
        'product = { "parameters.gamma" = [0.5, 1.0] }\n'
    )
    out = tmp_path / "out"
    names = ["gamma=0.5", "gamma=1"]

    def summary(name: str) -> dict:
        try:
            return json.loads((out / "points" / name / "summary.json").read_text())
        except (OSError, ValueError):
            return {}

    def until(ok, what: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s"
            time.sleep(0.2)

    def point_pid(name: str) -> int:
        for line in log.read_text().splitlines():
            if f"start {name} (pid " in line:
                return int(line.rsplit("(pid ", 1)[1].rstrip(")"))
        raise AssertionError(f"{name} has not started")

    log = tmp_path / "driver.log"
    exe = (
        [str(venv_bin / "nhj")]
        if (venv_bin / "nhj").exists()
        else [sys.executable, "-m", "nhj.cli"]
    )
    cmd = [*exe, "sweep", str(f), "--out", str(out), "--jobs", "1"]
    with open(log, "w") as err:
        driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        checkpointed = lambda n: summary(n).get("checkpoint", {}).get("step", 0) >= 100  # noqa: E731
        until(lambda: checkpointed(names[0]), f"checkpoint of {names[0]}")
        os.kill(point_pid(names[0]), signal.SIGKILL)  # the point dies; the driver goes on
        until(lambda: checkpointed(names[1]), f"checkpoint of {names[1]}")
        driver.kill()  # kill -9 of the sweep while its second point runs
        driver.wait(timeout=30)
        until(lambda: summary(names[1]).get("status") != "running", f"{names[1]} stopping", 60)
    finally:
        if driver.poll() is None:
            driver.kill()
    killed, orphaned = summary(names[0]), summary(names[1])
    assert killed["status"] in ("running", "failed"), killed  # SIGKILL: no chance to say more
    assert orphaned["status"] == "interrupted", orphaned  # SIGTERM from PR_SET_PDEATHSIG
    stopped = {n: summary(n)["checkpoint"]["step"] for n in names}

    run = subprocess.run(cmd + ["--retry-failed"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    for n in names:
        s = summary(n)
        assert s["status"] == "completed" and s["steps"] == 2400, s
        # the checkpoint is written before summary.json records it: a SIGKILL between the
        # two leaves the record one checkpoint (50 steps) behind the file it resumes from
        got = s["resumed_from"]["step"]
        assert got in (stopped[n], stopped[n] + 50), (n, s["resumed_from"], stopped[n])
