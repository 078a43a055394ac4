"""What every passing `nhj verify` result directory holds (shared by the two CLI tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Every kind of check a verification can run; the two CLI tests ask for all of them.
KINDS = {
    "correspondence",
    "refinement",
    "hbar_fit",
    "mass_fit",
    "ground_state_energy",
    "ground_state_gibbs",
    "fokker_planck_gibbs",
    "regimes",
}
FILES = (
    "report.md",
    "hbar_fit.png",
    "mismatch_time.png",
    "mismatch_h.png",
    "fields_2d.png",
    "gibbs.png",
    "regimes.png",
)


def passed_report(out: Path, ranks: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(report.json, checks by name) of a quick run that passed every kind of check.

    Asserts the report's contract: passed, quick mode, the rank count, every check passed
    with a criterion, every kind present, the table and the figures written.
    """
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] and report["mode"] == "quick" and report["ranks"] == ranks
    checks = {c["name"]: c for c in report["checks"]}
    assert all(c["passed"] for c in checks.values()), [
        n for n, c in checks.items() if not c["passed"]
    ]
    for c in checks.values():
        assert set(c) == {"name", "passed", "value", "tolerance", "details"}
        assert c["details"]["criterion"]
    assert {n.split("[")[0] for n in checks} == KINDS
    for name in FILES:
        assert (out / name).is_file(), name
    assert "PASSED" in (out / "report.md").read_text()
    return report, checks
