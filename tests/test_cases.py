"""Every shipped case runs at small resolution, and every case has a test."""

from __future__ import annotations

import json

import pytest
from case_helpers import CASES, ENERGY_DRIFT, SMALL, small_case

from nhj.cli import main


def test_no_case_without_a_test() -> None:
    """A new file in cases/ must get an entry in case_helpers.SMALL."""
    shipped = sorted(p.stem for p in CASES.glob("*.toml"))
    assert shipped, "no cases found"
    assert sorted(SMALL) == shipped


@pytest.mark.mpi
@pytest.mark.parametrize("name", sorted(SMALL))
def test_case_runs(name: str, tmp_dir, comm) -> None:
    """The case completes, conserves mass and energy, and fulfils the summary contract."""
    path = small_case(tmp_dir, name) if comm.rank == 0 else None
    path = comm.bcast(path, root=0)
    out = tmp_dir / "out"
    assert main(["-q", "run", str(path), "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "completed"
    assert s["ranks"] == comm.size
    assert s["mass_drift"] < 1e-10
    if "energy_drift" in s:
        assert s["energy_drift"] < ENERGY_DRIFT.get(name, 1e-8)
    assert abs(s["t_final"] - 0.2 if name != "free_packet_1d" else s["t_final"] - 0.5) < 1e-12
    if s["error_l2"] is not None:
        assert s["error_l2"] < 0.1
    if "langevin_l1" in s:
        assert s["langevin_l1"] < s["langevin_l1_tolerance"]
    for f in ("case.toml", "diagnostics.csv", "final.vtu"):
        assert (out / f).is_file()
    assert (out / "fields.bp").is_dir()
