"""``nhj verify --quick`` through the CLI: every check of every shipped case passes.

scripts/test runs it serially (~60–80 s): it is the suite's only assertion that the shipped
verification cases pass, among them the 2D ħ-fit within 0.5 % at three (γ, β) pairs
(issue 10). Its run on two ranks (100–200 s) is beyond the 2-core budget and left to
scripts/test-slow (`extended_parallel`); the same code path on small variants, on 1 and 2
ranks, is tests/test_verify.py::test_verify_command_end_to_end.
"""

from __future__ import annotations

import pytest
from verify_helpers import passed_report

from nhj.cli import main


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.extended_parallel
def test_quick_verification_passes(tmp_dir, comm) -> None:
    """`nhj verify --quick` passes every check and writes the report, figures and table."""
    out = tmp_dir / "verify"
    assert main(["-q", "verify", "--quick", "--out", str(out)]) == 0
    if comm.rank != 0:
        return
    report, checks = passed_report(out, comm.size)
    # ≥ 4 (γ, β) pairs, two with the same γ/β and different γ, in 1D and 2D
    corr = [c["details"] for n, c in checks.items() if n.startswith("correspondence")]
    pairs = {(d["gamma"], d["beta"]) for d in corr}
    assert len(pairs) >= 4
    by_hbar: dict[float, set[float]] = {}
    for g, b in pairs:
        by_hbar.setdefault(g / b, set()).add(g)
    assert any(len(gammas) >= 2 for gammas in by_hbar.values())
    assert {d["dim"] for d in corr} == {1, 2}
    assert all(len(d["times"]) >= 2 for d in corr)
    # the ħ-fit recovers γ/β within 0.5 % for every pair, the mass fit 1/γ
    fits = report["hbar_fit"]
    assert len(fits) >= 4
    for row in fits:
        assert set(row) >= {"gamma", "beta", "hbar_expected", "hbar_fit", "rel_error"}
        assert row["hbar_expected"] == pytest.approx(row["gamma"] / row["beta"])
        assert row["rel_error"] <= 5e-3
    for row in report["mass_fit"]:
        assert row["m_expected"] == pytest.approx(1 / row["gamma"]) and row["rel_error"] <= 5e-3
    # in 2D (issue 10): three pairs, two sharing ħ with different m, every fit within 0.5 %
    fits_2d = [c["details"] for n, c in checks.items() if n.startswith("hbar_fit[squeezed")]
    assert len(fits_2d) >= 3 and all(d["rel_error"] <= 5e-3 for d in fits_2d)
    hbars = [d["gamma"] / d["beta"] for d in fits_2d]
    assert len(set(hbars)) < len(hbars) and len({d["gamma"] for d in fits_2d}) >= 2
    # ground state and Gibbs for a double well and a tilted one; flat and anisotropic regimes
    assert sum(n.startswith("ground_state_gibbs") for n in checks) >= 2
    flat = [c["details"]["flat"] for n, c in checks.items() if n.startswith("regimes")]
    assert sorted(flat) == [False, True]
