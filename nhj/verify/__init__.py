"""``nhj verify``: the correspondence check of theory.md turned into measured evidence.

The claim: learning dynamics with learning rate γ and Lagrange multiplier β
evolves like Schrödinger dynamics (3.11) with ħ = γ/β (3.12) and m = 1/γ (3.13).
Each check is a function returning a :class:`Check` record (name, passed,
value, tolerance, details); ``details["criterion"]`` states in words what
``passed`` means (docs/verify.md).

Modules, each importing only those above it:

* :mod:`~nhj.verify.records` — the records (a leaf) and the :class:`Perturbation`
  through which tests make a check fail;
* :mod:`~nhj.verify.spec` — verification cases: the ``[verify]`` table, loading,
  ``[full]`` merging, case variants;
* :mod:`~nhj.verify.observables` — hydrodynamic snapshots, the Schrödinger
  reference (:class:`~nhj.verify.observables.Wave`), the exact state and the
  mismatch on the support of p;
* one module per check: :mod:`~nhj.verify.correspondence` (with the refinement
  study), :mod:`~nhj.verify.hbar_fit`, :mod:`~nhj.verify.ground` (ground state ↔
  Gibbs ↔ Fokker–Planck), :mod:`~nhj.verify.regimes`;
* :mod:`~nhj.verify.report` and :mod:`~nhj.verify.figures` — report.json,
  report.md, figures (records and spec only);
* :mod:`~nhj.verify.orchestrate` — every check of every case, then the report.
"""

from nhj.verify.correspondence import check_correspondence, check_refinement, compare
from nhj.verify.ground import (
    check_fokker_planck,
    check_ground_energy,
    check_ground_gibbs,
    ground_levels,
)
from nhj.verify.hbar_fit import check_hbar_fit, fit_hbar
from nhj.verify.observables import madelung_run
from nhj.verify.orchestrate import run_case_checks, run_verification
from nhj.verify.records import Check, Perturbation, Report, failed
from nhj.verify.regimes import check_regimes, quantum_expected
from nhj.verify.report import summary_table, write_report
from nhj.verify.spec import (
    MODES,
    VERIFY_DIR,
    VerifyCase,
    VerifySpec,
    deep_merged,
    find_cases,
    load_verify_case,
    verify_case_from_dict,
    with_pair,
)

__all__ = [
    "MODES",
    "VERIFY_DIR",
    "Check",
    "Perturbation",
    "Report",
    "VerifyCase",
    "VerifySpec",
    "check_correspondence",
    "check_fokker_planck",
    "check_ground_energy",
    "check_ground_gibbs",
    "check_hbar_fit",
    "check_refinement",
    "check_regimes",
    "compare",
    "deep_merged",
    "failed",
    "find_cases",
    "fit_hbar",
    "ground_levels",
    "load_verify_case",
    "madelung_run",
    "quantum_expected",
    "run_case_checks",
    "run_verification",
    "summary_table",
    "verify_case_from_dict",
    "with_pair",
    "write_report",
]
