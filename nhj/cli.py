"""The ``nhj`` command line: run cases, validate them, plot results, verify the theory.

Exit codes: 0 success, 1 a run that ended with status "failed" (or a failed
verification check), 2 invalid input (one line on stderr naming the field and
what is allowed), 128 + N a run interrupted by signal N (143 SIGTERM, 130
SIGINT) after writing a checkpoint (docs/faults.md).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nhj.schema import CaseError

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2

EPILOG = """\
Case files are TOML; their schema is documented in docs/cases.md, and every
file in cases/ is a commented example. Under MPI run the same command with
`mpirun -n N nhj run CASE`.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nhj",
        description="Finite-element solver for the PDEs of geometric learning dynamics "
        "(Schrödinger with hbar = gamma/beta, m = 1/gamma).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"nhj {_version()}")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument(
        "--log-all-ranks",
        action="store_true",
        help="log from every MPI rank (default: rank 0 only)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser(
        "run",
        help="run a case file and write its result directory",
        description="Run CASE and write DIR/summary.json, diagnostics.csv, "
        "fields.bp (VTX), final.vtu and a copy of the case.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("case", type=Path, nargs="?", help="case file (TOML); omit with --resume")
    r.add_argument(
        "--out", type=Path, default=None, help="result directory (default: results/<case name>)"
    )
    r.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="DIR",
        help="continue the run in DIR from its checkpoint (any number of ranks)",
    )
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a completed result in --out (kept until the new run completes)",
    )
    r.add_argument(
        "--max-dofs",
        type=int,
        default=None,
        help="refuse a case with more degrees of freedom (default: mesh.max_dofs, 2e7)",
    )
    r.add_argument(
        "--max-wall-s",
        type=float,
        default=None,
        help="stop with status 'failed' after this many seconds of wall time",
    )

    c = sub.add_parser(
        "check",
        help="validate a case file (and build its mesh) without running",
        description="Load and validate CASE, build its mesh and check "
        "mesh-dependent input (SPD metric, initial density). Writes nothing.",
    )
    c.add_argument("case", type=Path, help="case file (TOML)")
    c.add_argument(
        "--max-dofs",
        type=int,
        default=None,
        help="refuse a case with more degrees of freedom (default: mesh.max_dofs, 2e7)",
    )

    pl = sub.add_parser(
        "plot",
        help="plot a result directory (PNG files, off-screen)",
        description="Write DIR/diagnostics.png (mass, energy, error vs t) and "
        "DIR/fields.png (final p and S) from a result directory.",
    )
    pl.add_argument("result", type=Path, help="result directory written by `nhj run`")

    v = sub.add_parser(
        "verify",
        help="measure the hbar = gamma/beta correspondence; write a report",
        description="Run the checks of the correspondence (docs/verify.md): Madelung vs "
        "Schrodinger vs exact for several (gamma, beta) with a refinement study, the hbar "
        "that fits the Madelung data, ground state <-> Gibbs <-> Fokker-Planck, and the "
        "regimes alpha = 1, 1/2, 0. Writes DIR/report.json, DIR/report.md and figures; "
        "prints the table. Exit code 0 only if every check passed.",
        epilog="Verification cases are case files with a [verify] table (cases/verify/).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = v.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="laptop size, a few minutes on 2 cores (default)",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="cluster size: finer meshes, more pairs, longer times",
    )
    v.set_defaults(mode="quick")
    v.add_argument(
        "--out",
        type=Path,
        default=Path("results") / "verify",
        help="report directory (default: results/verify)",
    )
    v.add_argument(
        "--cases",
        nargs="+",
        metavar="CASE",
        default=None,
        help="verification cases: names in cases/verify/ or .toml files "
        "(default: every case in cases/verify/)",
    )
    sw = sub.add_parser("sweep", add_help=False, prefix_chars="+", help="run a grid of cases "
                        "(local pool or SLURM); status, report; see nhj sweep --help")  # fmt: skip
    sw.add_argument("argv", nargs=argparse.REMAINDER)  # parsed by nhj.sweep.cli
    return p


def _version() -> str:
    from nhj import __version__

    return __version__


def configure_logging(quiet: bool, all_ranks: bool) -> None:
    """Log from rank 0 (or every rank) with the rank in the format."""
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.rank
    level = logging.WARNING if quiet else logging.INFO
    if rank != 0 and not all_ranks:
        level = logging.ERROR + 10  # silent; errors are reported by rank 0
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"[nhj %(asctime)s r{rank}] %(message)s", "%H:%M:%S"))
    root = logging.getLogger("nhj")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


LINE = 200  # characters of a one-line error message at most
_FIELD = re.compile(r"[\w.\[\]-]+:?")  # a field name such as solver.petsc_options.ksp_type:


def _short(word: str) -> str:
    """A long path or value with its middle elided (field names stay whole)."""
    if len(word) <= 40 or _FIELD.fullmatch(word):
        return word
    return f"{word[:8]}...{word[-24:]}"


def one_line(text: str, limit: int = LINE) -> str:
    """``text`` on one line of at most ``limit`` characters.

    Long words (paths, values) keep their ends; a line still too long loses its end,
    the least specific part (the field and the offending value come first).
    """
    words = [_short(w) for w in str(text).split()]
    line = " ".join(words)
    return line if len(line) <= limit else f"{line[: limit - 3]}..."


def _fail_input(e: CaseError, case: Path | None) -> int:
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        where = f"{case}: " if case is not None else ""
        print(one_line(f"nhj: error: {where}{e}"), file=sys.stderr)
    return EXIT_INPUT


def _abort_others(comm: Any) -> None:
    """Under MPI, an unexpected error on one rank aborts the job instead of a hang.

    The other ranks would wait in their next collective for ever; serially the
    exception propagates with its traceback (it is a bug to report).
    """
    if comm.size == 1:
        return
    import traceback

    traceback.print_exc()
    sys.stderr.flush()
    comm.Abort(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nhj`` console script."""
    args = _parser().parse_args(argv)
    configure_logging(args.quiet, args.log_all_ranks)
    if args.command == "plot":
        from mpi4py import MPI

        from nhj.plotting import plot_result

        if MPI.COMM_WORLD.rank != 0:  # plotting is serial; under mpirun rank 0 does it alone
            return EXIT_OK

        try:
            for path in plot_result(args.result):
                print(path)
        except CaseError as e:
            return _fail_input(e, None)
        return EXIT_OK

    if args.command == "verify":
        return _verify(args)
    if args.command == "sweep":
        from nhj.sweep.cli import main as sweep

        return sweep(args.argv)

    from mpi4py import MPI

    from nhj.case import load_case
    from nhj.interrupt import Interrupt
    from nhj.registry import build

    comm = MPI.COMM_WORLD
    interrupt = Interrupt()
    try:
        if args.command == "run" and args.resume is not None:
            if args.case is not None or args.out is not None or args.overwrite:
                raise CaseError("--resume", "takes the result directory alone (no CASE, --out)")
            from nhj.run import resume_case

            out = args.resume
            with interrupt.installed():
                summary = resume_case(out, comm, args.max_wall_s, interrupt, args.max_dofs)
        else:
            if args.case is None:
                raise CaseError("case", "give a case file (or --resume DIR)")
            case = load_case(args.case, args.max_dofs)
            if args.command == "check":
                problem = build(case, comm)
                if comm.rank == 0:
                    print(f"{args.case}: ok ({case.equation}, {problem.dofs} dofs)")
                return EXIT_OK
            from nhj.run import run_case

            out = args.out if args.out is not None else Path("results") / case.name
            with interrupt.installed():
                summary = run_case(case, out, comm, args.max_wall_s, args.overwrite, interrupt)
    except CaseError as e:
        return _fail_input(e, args.case)
    except Exception:
        _abort_others(comm)
        raise
    if summary["status"] == "interrupted":
        if comm.rank == 0:
            print(f"interrupted: {summary['message']}", file=sys.stderr)
        return interrupt.exit_code
    if comm.rank == 0:
        shown = [f"steps {summary['steps']}", f"t {summary['t_final']:g}"]
        for key in ("mass_drift", "energy_drift", "error_l2", "gibbs_l1", "min_p", "langevin_l1"):
            if summary.get(key) is not None:
                shown.append(f"{key} {summary[key]:.3e}")
        print(f"{summary['status']}: {out}  ({', '.join(shown)})")
    return EXIT_OK if summary["status"] == "completed" else EXIT_FAILED


def _verify(args: argparse.Namespace) -> int:
    """``nhj verify``: every rank computes, rank 0 writes the report and prints the table."""
    from mpi4py import MPI

    from nhj.verify import run_verification, summary_table

    comm = MPI.COMM_WORLD
    try:
        report = run_verification(args.mode, args.out, comm, args.cases)
    except CaseError as e:
        return _fail_input(e, None)
    except Exception:
        _abort_others(comm)
        raise
    if comm.rank == 0:
        print(summary_table(report))
        print(f"report: {args.out / 'report.md'}")
    return EXIT_OK if report.passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
