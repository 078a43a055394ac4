"""nhj sweep --backend slurm on a real (private, single-node) SLURM cluster.

A 2×2 sweep is submitted as one job array; one array task is cancelled with
``scancel`` while its point runs (the point stops at a step boundary and writes its
checkpoint); a second ``nhj sweep`` invocation submits that point again (it resumes
from the checkpoint) and ``--wait``s; all four points end completed. The cluster is
the ``slurm_cluster`` fixture of tests/slurm_cluster.py (skipped only without the
SLURM/MUNGE binaries: scripts/install-slurm installs them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from slurm_cluster import slurm_cluster  # noqa: F401  (the fixture)

from nhj.cli import main
from nhj.sweep.state import _alive_lock

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["gamma=0.5_beta=1", "gamma=0.5_beta=2", "gamma=1_beta=1", "gamma=1_beta=2"]

# not `mpi`: the MPI pass (-m mpi) leaves it out; the driver is serial
pytestmark = [pytest.mark.skip_in_parallel, pytest.mark.slow]


def summary(out: Path, name: str) -> dict:
    try:
        return json.loads((out / "points" / name / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def until(what: str, ok, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:.0f} s")
        time.sleep(0.2)


def test_sweep_on_slurm_cancel_requeue_collect(slurm_cluster, tmp_path):  # noqa: F811
    f = tmp_path / "s.toml"
    f.write_text(
        f'base = "{ROOT / "cases" / "free_packet_1d.toml"}"\n'
        '[set]\n"mesh.cells" = [2000]\n"discretisation.dt" = 0.005\n'
        '"discretisation.t_end" = 6.0\n"output.fields" = false\n'
        '[grid]\nproduct = { "parameters.gamma" = [0.5, 1.0], "parameters.beta" = [1.0, 2.0] }\n'
        '[slurm]\ntime = "00:10:00"\nsignal_s = 30\n'
    )
    out = tmp_path / "out"
    args = ["sweep", str(f), "--out", str(out), "--backend", "slurm", "--jobs", "2"]
    assert main(args) == 0  # submitted, not waited for
    job = json.loads((out / "sweep.json").read_text())["slurm_jobs"][0]
    assert job["points"] == NAMES
    script = Path(job["script"]).read_text()
    assert "#SBATCH --array=0-3%2" in script and "#SBATCH --requeue" in script

    victim = NAMES[0]  # array task 0
    until(f"{victim} running", lambda: summary(out, victim).get("status") == "running")
    r = slurm_cluster.run("scancel", f"{job['id']}_0")
    assert r.returncode == 0, r.stderr

    def gone() -> bool:
        q = slurm_cluster.run("squeue", "-h", "-r", "-j", job["id"], "-o", "%K")
        return "0" not in q.stdout.split()

    until("cancelled task gone from squeue", gone, 40)
    # squeue may drop the task while its process is still being killed; a rerun then sees
    # the point's lock held by a live process and (rightly) leaves it to that process
    until("cancelled point's process ended", lambda: not _alive_lock(out / "points" / victim), 60)
    stopped = summary(out, victim)
    assert stopped["status"] in ("interrupted", "running"), stopped  # stopped mid-run
    print(f"\n{victim} after scancel: {stopped['status']} ({stopped.get('message', '')})")

    # a second invocation submits the cancelled point again and waits for everything
    assert main([*args, "--wait", "--poll", "1"]) == 0
    record = json.loads((out / "sweep.json").read_text())
    assert [p["status"] for p in record["points"]] == ["completed"] * 4
    assert [j["points"] for j in record["slurm_jobs"]][1] == [victim]
    s = summary(out, victim)
    assert s["status"] == "completed" and s["steps"] == 1200
    if stopped["status"] == "interrupted":  # stopped by SIGTERM at a step, with a checkpoint:
        assert 0 <= s["resumed_from"]["step"] < 1200  # the rerun continued from it
    assert len(list((out / "slurm").glob("*.out"))) >= 5  # 4 tasks + the rerun

    assert main(["sweep", "status", str(out)]) == 0


def test_hbar_law_subgrid_on_slurm_and_its_report(slurm_cluster, tmp_path):  # noqa: F811
    """cases/sweeps/hbar_law.toml on the cluster, its grid cut to β ∈ {0.5, 5} × two γ rows.

    Same base, [set] (ħ- and mass fits with their GCI) and zipped γ rows as the shipped
    sweep — four points, the fewest the law's three coefficients and their errors need —
    submitted as one array and waited for; the report's a and b must be within 0.5 % and
    two standard errors of 1 and −1 (the criterion of the full grid, docs in README
    "Sweeps and clusters"), the mass law's a within 0.5 % of −1.
    """
    import tomllib

    from nhj.sweep.tomlw import dumps

    doc = tomllib.loads((ROOT / "cases" / "sweeps" / "hbar_law.toml").read_text())
    doc["verify"] = str(ROOT / "cases" / "verify" / f"{doc['verify']}.toml")
    doc["grid"]["product"] = {"parameters.beta": [0.5, 5.0]}
    (zipped,) = doc["grid"]["zip"]
    doc["grid"]["zip"] = [{k: [v[0], v[2]] for k, v in zipped.items()}]  # γ = 0.5, 1.6
    f = tmp_path / "law.toml"
    f.write_text(dumps(doc))
    out = tmp_path / "law"
    args = ["sweep", str(f), "--out", str(out), "--backend", "slurm", "--jobs", "2"]
    assert main([*args, "--wait", "--poll", "1"]) == 0
    record = json.loads((out / "sweep.json").read_text())
    assert [p["status"] for p in record["points"]] == ["completed"] * 4
    assert main(["sweep", "report", str(out)]) == 0
    law = json.loads((out / "sweep.json").read_text())["law"]
    for k, expected in (("a", 1.0), ("b", -1.0)):
        assert abs(law[k] - expected) <= min(5e-3, 2 * law[f"{k}_se"]), law
    mass = json.loads((out / "sweep.json").read_text())["mass_law"]
    assert abs(mass["a"] + 1) <= 5e-3, mass
