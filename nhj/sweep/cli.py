"""``nhj sweep``: run a grid of cases on a local pool or a SLURM cluster; status; report.

    nhj sweep SWEEP.toml --out DIR [--backend local|slurm] [--jobs N] [--ranks K]
                         [--limit N] [--retry-failed] [--oversubscribe] [--wait]
    nhj sweep status DIR
    nhj sweep report DIR

Exit codes as for ``nhj run``: 0 every point (of ``--limit``) completed (slurm without
``--wait``: submitted), 1 some point did not, 2 invalid input — one line naming the
field (for a bad point: the point and its field), before anything runs; 128 + N when
the sweep was stopped by signal N.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from nhj.schema import CaseError
from nhj.sweep import slurm as slurm_backend
from nhj.sweep.law import describe, fit_rows, law_of, plot_law
from nhj.sweep.local import LocalPool
from nhj.sweep.options import plain_word, sbatch_option, slurm_time
from nhj.sweep.spec import SweepSpec, load_sweep, points, validate
from nhj.sweep.state import SweepDir, new_record, table

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nhj sweep",
        description="Expand SWEEP.toml (a base case or verification case and a [grid] over "
        "dotted case keys) into points, validate every point, and run them: each point is "
        "an ordinary result directory DIR/points/<name>; DIR/sweep.json and sweep.csv hold "
        "the grid with each point's status and figures. Rerunning the same command skips "
        "completed points and reruns interrupted ones.",
        epilog="Also: `nhj sweep status DIR` (table of the points), `nhj sweep report DIR` "
        "(the law hbar = C gamma^a beta^b of a verification sweep, DIR/law.png). "
        "The sweep file format is in the README (Sweeps and clusters) and cases/sweeps/.",
    )
    p.add_argument("sweep", type=Path, help="sweep file (TOML)")
    p.add_argument(
        "--out", type=Path, default=None, help="sweep directory (default: results/sweeps/<name>)"
    )
    p.add_argument(
        "--backend", choices=("local", "slurm"), default="local", help="where points run"
    )
    p.add_argument(
        "--jobs", type=int, default=None, help="points at once (local pool; SLURM array throttle)"
    )
    p.add_argument("--ranks", type=int, default=None, help="MPI ranks per point (mpirun -n K)")
    p.add_argument("--limit", type=int, default=None, help="only the first N points of the grid")
    p.add_argument(
        "--retry-failed", action="store_true", help="rerun points whose status is failed"
    )
    p.add_argument("--oversubscribe", action="store_true", help="allow jobs x ranks > the cores")
    p.add_argument("--dry-run", action="store_true", help="validate and write the point files only")
    s = p.add_argument_group("slurm backend")
    s.add_argument("--wait", action="store_true", help="poll until the job array has finished")
    s.add_argument("--poll", type=float, default=5.0, help="seconds between polls with --wait")
    for k in ("partition", "account", "qos", "time"):
        s.add_argument(f"--{k}", default=None, help=f"sbatch --{k} (overrides [slurm].{k})")
    s.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                   help="an extra sbatch option, e.g. --sbatch=--mem=2G (repeatable)")  # fmt: skip
    return p


def _dir_parser(what: str, text: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"nhj sweep {what}", description=text)
    p.add_argument("dir", type=Path, help="sweep directory (holds sweep.json)")
    return p


def _error(where: str, e: CaseError) -> int:
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:  # under mpirun (refused) the line comes once, not per rank
        print(f"nhj: error: {where}{e}", file=sys.stderr)
    return EXIT_INPUT


def main(argv: Sequence[str]) -> int:
    """``nhj sweep ...`` (the arguments after ``sweep``)."""
    from mpi4py import MPI

    if MPI.COMM_WORLD.size > 1:
        return _error(
            "", CaseError("nhj sweep", "runs on one process; --ranks K gives each point K ranks")
        )
    argv = list(argv)
    if argv[:1] == ["status"]:
        args = _dir_parser(
            "status", "Print the points of a sweep: status, wall time, figures."
        ).parse_args(argv[1:])
        return _guard(lambda: _status(args.dir), "")
    if argv[:1] == ["report"]:
        text = "Fit hbar_fit = C gamma^a beta^b over a verification sweep; store the law in "
        args = _dir_parser("report", text + "sweep.json, draw DIR/law.png.").parse_args(argv[1:])
        return _guard(lambda: _report(args.dir), "")
    args = _run_parser().parse_args(argv)
    return _guard(lambda: _sweep(args), f"{args.sweep}: ")


def _guard(fn: Any, where: str) -> int:
    try:
        return int(fn())
    except CaseError as e:
        return _error(where, e)


class _DriverLock:
    """DIR/.sweep.lock: one driver per sweep directory (a dead driver's lock is taken over)."""

    def __init__(self, path: Path) -> None:
        self.path = path / ".sweep.lock"

    def __enter__(self) -> _DriverLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._holder() is not None:
                    raise CaseError("--out", f"{self.path.parent} is in use by another nhj sweep "
                                    f"({self._holder()})") from None  # fmt: skip
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname()}, f)
            return self
        raise CaseError("--out", f"cannot lock {self.path}")

    def _holder(self) -> str | None:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
            pid, host = int(info["pid"]), str(info["host"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if host == socket.gethostname():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return None
            except PermissionError:
                pass
        return f"pid {pid} on {host}"

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def _overrides(spec: SweepSpec, args: argparse.Namespace) -> SweepSpec:
    for k in ("jobs", "ranks", "limit"):
        v = getattr(args, k)
        if v is not None and v < 1:
            raise CaseError(f"--{k}", f"must be >= 1, got {v}")
    run = replace(spec.run, **{k: getattr(args, k) for k in ("jobs", "ranks") if getattr(args, k)})
    sl = spec.slurm
    word = {k: getattr(args, k) for k in ("partition", "account", "qos")}
    sl = replace(
        sl,
        partition=plain_word(word["partition"], "--partition")
        if word["partition"]
        else sl.partition,
        account=plain_word(word["account"], "--account") if word["account"] else sl.account,
        qos=plain_word(word["qos"], "--qos") if word["qos"] else sl.qos,
        time=slurm_time(args.time, "--time") if args.time else sl.time,
        sbatch=sl.sbatch + tuple(sbatch_option(o, "--sbatch") for o in args.sbatch),
        throttle=args.jobs if args.jobs is not None else sl.throttle,
    )
    return replace(spec, run=run, slurm=sl)


def _refresh(sd: SweepDir, record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str] | None]:
    """Statuses from the point directories, then squeue's live array tasks (if any job)."""
    sd.refresh(record)
    live = slurm_backend.live_tasks(record["slurm_jobs"]) if record["slurm_jobs"] else None
    slurm_backend.apply_live(record, live)
    return record, live


def _select(record: dict[str, Any], limit: int | None, retry_failed: bool) -> list[str]:
    chosen = record["points"][:limit] if limit else record["points"]
    names, skipped = [], {"completed": 0, "failed": 0, "live": 0}
    for p in chosen:
        if p["status"] == "completed":
            skipped["completed"] += 1
        elif p["status"] == "failed" and not retry_failed:
            skipped["failed"] += 1
        elif p.get("live"):
            skipped["live"] += 1
        else:
            names.append(p["name"])
    log.info(
        "sweep: %d of %d points to run (%d completed, %d failed%s, %d queued or running elsewhere)",
        len(names), len(chosen), skipped["completed"], skipped["failed"],
        "" if retry_failed else ": --retry-failed reruns them", skipped["live"],
    )  # fmt: skip
    return names


def _sweep(args: argparse.Namespace) -> int:
    spec = _overrides(load_sweep(args.sweep), args)
    pts = points(spec)
    for p in pts:  # every point is valid before anything runs
        validate(spec, p)
    run = spec.run
    cores = os.cpu_count() or 1
    if args.backend == "local" and run.jobs * run.ranks > cores and not args.oversubscribe:
        raise CaseError(
            "--jobs",
            f"{run.jobs} jobs x {run.ranks} ranks = {run.jobs * run.ranks} processes on "
            f"{cores} cores; give fewer --jobs/--ranks or --oversubscribe",
        )
    sd = SweepDir(args.out if args.out is not None else Path("results") / "sweeps" / spec.name)
    sd.prepare(spec, pts)
    with _DriverLock(sd.path):
        old = json.loads(sd.json.read_text(encoding="utf-8")) if sd.json.is_file() else None
        record, _ = _refresh(sd, new_record(spec, pts, old))
        record["backend"] = args.backend
        names = _select(record, args.limit, args.retry_failed)
        sd.write(record)
        if args.dry_run:
            if args.backend == "slurm" and names:
                path = sd.path / "slurm" / "dry-run.sh"
                path.parent.mkdir(exist_ok=True)
                path.write_text(
                    slurm_backend.script(sd, spec.kind, run, spec.slurm, names, f"nhj-{spec.name}")
                )
                print(f"job script: {path}")
            print(f"{len(pts)} points valid; {len(names)} would run: {sd.path}")
            return EXIT_OK
        chosen = {p["name"] for p in record["points"][: args.limit or None]}
        if args.backend == "slurm" and not args.wait:
            _slurm(sd, spec, record, names, args)
            return EXIT_OK
        if args.backend == "local":
            code = _local(sd, spec, record, names)
        else:
            code = _slurm(sd, spec, record, names, args)
    print(table(record))
    print(f"sweep: {sd.path}")
    if code:
        return code
    done = all(p["status"] == "completed" for p in record["points"] if p["name"] in chosen)
    return EXIT_OK if done else EXIT_FAILED


def _local(sd: SweepDir, spec: SweepSpec, record: dict[str, Any], names: list[str]) -> int:
    pool = LocalPool(sd, record, spec.run, spec.run.jobs)
    code = pool.run(names, len(record["points"]))
    sd.refresh(record)
    sd.write(record)
    return code


def _slurm(
    sd: SweepDir,
    spec: SweepSpec,
    record: dict[str, Any],
    names: list[str],
    args: argparse.Namespace,
) -> int:
    """Submit ``names`` as a job array; with --wait, poll until it has finished."""
    if names:
        job = slurm_backend.submit(sd, spec.kind, spec.run, spec.slurm, names, f"nhj-{spec.name}")
        record["slurm_jobs"].append(job)
        _refresh(sd, record)
        sd.write(record)
    if not args.wait:
        ids = ", ".join(str(j["id"]) for j in record["slurm_jobs"][-1:]) if names else "nothing"
        print(f"sweep: submitted {ids}; follow it with `nhj sweep status {sd.path}`")
        return 0

    def collect() -> tuple[dict[str, Any], dict[str, str] | None]:
        rec, live = _refresh(sd, record)
        sd.write(rec)
        return rec, live

    slurm_backend.wait(collect, names, args.poll)
    return 0


def _status(path: Path) -> int:
    sd = SweepDir(path)
    record, _ = _refresh(sd, sd.read())
    sd.write(record)
    print(table(record))
    return EXIT_OK


def _report(path: Path) -> int:
    sd = SweepDir(path)
    record, _ = _refresh(sd, sd.read())
    law, rows = law_of(sd.path, record)
    record["law"] = law.as_dict()
    mass = law_of(sd.path, record, "m") if fit_rows(sd.path, record, "m") else None
    if mass is not None:
        record["mass_law"] = mass[0].as_dict()
    sd.write(record)
    figure = plot_law(sd.path / "law.png", law, rows, mass)
    done = record["counts"].get("completed", 0)
    print(f"{len(rows)} hbar fits from {len(record['points'])} points ({done} completed)")
    print(describe(law))
    if mass is not None:
        print(describe(mass[0]))
    print(f"figure: {figure}")
    return EXIT_OK
