"""The whole verification: every check of every verification case, then the report.

MPI: every rank computes every check (all scalars are assembled and reduced on
every rank, so all ranks take the same branches); rank 0 writes the report
(:mod:`nhj.verify.report`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mpi4py import MPI

from nhj.schema import CaseError
from nhj.solvers import SolverError
from nhj.verify.correspondence import check_correspondence, check_refinement
from nhj.verify.ground import (
    check_fokker_planck,
    check_ground_energy,
    check_ground_gibbs,
    ground_levels,
)
from nhj.verify.hbar_fit import check_hbar_fit
from nhj.verify.observables import MadelungRun, madelung_run
from nhj.verify.records import Check, Report, failed
from nhj.verify.regimes import check_regimes
from nhj.verify.report import remove_stale, write_report
from nhj.verify.spec import CHECKS, MODES, VerifyCase, find_cases, load_verify_case, with_pair

log = logging.getLogger(__name__)


def run_verification(
    mode: str = "quick",
    out: Path | None = Path("results/verify"),
    comm: MPI.Comm = MPI.COMM_WORLD,
    cases: Sequence[str] | None = None,
) -> Report:
    """Run every check of every verification case; write the report to ``out`` (collective).

    Raises:
        CaseError: A verification case is invalid (before anything runs).
    """
    if mode not in MODES:
        raise CaseError("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    t0 = time.perf_counter()
    vcs = [load_verify_case(p, mode) for p in find_cases(cases)]
    if out is not None and comm.rank == 0:
        Path(out).mkdir(parents=True, exist_ok=True)
        remove_stale(Path(out))  # an interrupted run leaves no stale report.json
    comm.barrier()
    report = Report(mode, ranks=comm.size)
    for vc in vcs:
        run_case_checks(vc, comm, report, out)
    report.checks.sort(
        key=lambda c: next(i for i, o in enumerate(CHECKS) if c.name.startswith(o))
    )  # stable: case order kept
    report.wall_s = comm.bcast(time.perf_counter() - t0, root=0)
    if out is not None:
        write_report(report, Path(out), comm)
    return report


def _run_pair(
    vc: VerifyCase, gamma: float, beta: float, comm: MPI.Comm, add: Callable[[Check], None]
) -> MadelungRun | None:
    """The Madelung run shared by correspondence and the fits at (γ, β), or None if it failed.

    A failed run fails both checks (``add`` receives their records).
    """
    spec = vc.spec
    try:
        return madelung_run(with_pair(vc.case, gamma, beta), comm, spec.times)
    except SolverError as e:
        pair = {"case": vc.name, "gamma": gamma, "beta": beta, "hbar_expected": gamma / beta}
        for c, tol in (
            ("correspondence", spec.mismatch_tolerance),
            ("hbar_fit", spec.hbar_tolerance),
            ("mass_fit", spec.hbar_tolerance),
        ):
            if c in spec.checks:
                name = f"{c}[{vc.name}] gamma={gamma:g} beta={beta:g}"
                add(failed(name, tol, "the Madelung run completes", e, **pair))
        return None


def run_case_checks(vc: VerifyCase, comm: MPI.Comm, report: Report, out: Path | None) -> None:
    """The checks ``vc`` asks for, appended to ``report`` (collective)."""
    spec = vc.spec

    def add(check: Check) -> None:
        report.checks.append(check)
        log.info(
            "%s %s: value %.3g, tolerance %.3g (%.1f s)",
            "PASS" if check.passed else "FAIL",
            check.name,
            check.value,
            check.tolerance,
            check.details.get("wall_s", 0.0),
        )

    for gamma, beta in spec.pairs:
        key = f"{vc.name} gamma={gamma:g} beta={beta:g}"
        run = None
        if {"correspondence", "hbar_fit", "mass_fit"} & set(spec.checks):
            run = _run_pair(vc, gamma, beta, comm, add)  # one Madelung run for both checks
            if run is None:
                continue
        if "correspondence" in spec.checks:
            panels = None
            if out is not None and vc.case.dim == 2 and report.panels is None:
                panels = report.panels = Path(out) / "fields_2d.vtu"
            check, cmp = check_correspondence(vc, gamma, beta, comm, panels=panels, run=run)
            add(check)
            if cmp is not None:
                report.comparisons.append((key, cmp))
        if "hbar_fit" in spec.checks:
            check, fit = check_hbar_fit(vc, gamma, beta, comm, run=run)
            add(check)
            if fit is not None:
                report.fits.append((key, fit))
        if "mass_fit" in spec.checks:
            check, _ = check_hbar_fit(vc, gamma, beta, comm, run=run, which="m")
            add(check)
    if "refinement" in spec.checks:
        add(check_refinement(vc, comm))
    if "ground_state" in spec.checks:
        t0 = time.perf_counter()
        try:
            levels = ground_levels(vc, comm)
        except SolverError as e:
            add(failed(f"ground_state[{vc.name}]", math.nan, "eigensolve", e))
        else:
            wall = time.perf_counter() - t0
            for check in (check_ground_energy(vc, levels), check_ground_gibbs(vc, levels)):
                check.details["wall_s"] = wall
                add(check)
    if "fokker_planck" in spec.checks:
        check, prof = check_fokker_planck(vc, comm)
        add(check)
        if prof is not None:
            report.profiles.append((vc.name, prof))
    if "regimes" in spec.checks:
        add(check_regimes(vc, comm))
