"""The slurm backend: one job array per submission, array task i runs point i of the list.

``DIR/slurm/sweep-<k>.sh`` is an ordinary batch script (readable, re-submittable by
hand)::

    #SBATCH --array=0-(n-1)%throttle  --ntasks=K  --time=...  --requeue
    #SBATCH --signal=B:TERM@<s>       # to the batch shell, which passes it to the point
    #SBATCH --output=DIR/slurm/%A_%a.out

The task maps ``SLURM_ARRAY_TASK_ID`` to a point, loads the modules, and runs the
point's command (``srun -n K`` or ``mpirun -n K`` + ``nhj run ...``; an interrupted
case point with a checkpoint continues from it, see
:func:`nhj.sweep.commands.resume_hook`), then records its exit code. The job ids and
their points are kept in sweep.json; ``squeue`` tells which points are still queued
or running, the point directories tell the rest (no accounting database needed).
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nhj.schema import CaseError
from nhj.sweep.commands import point_command
from nhj.sweep.options import RunSpec, SlurmSpec
from nhj.sweep.state import FINAL, SweepDir, counts, progress

log = logging.getLogger(__name__)

ACTIVE = {"PENDING": "queued", "CONFIGURING": "queued", "REQUEUED": "queued", "RUNNING": "running",
          "COMPLETING": "running", "SUSPENDED": "running", "RESIZING": "running"}  # fmt: skip


def _q(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def script(
    sd: SweepDir, kind: str, run: RunSpec, slurm: SlurmSpec, names: Sequence[str], job: str
) -> str:
    """The job-array script running ``names`` (task i runs names[i])."""
    out = sd.path.resolve() / "slurm"
    throttle = f"%{slurm.throttle}" if slurm.throttle else ""
    opts = [
        f"--job-name={job}",
        f"--array=0-{len(names) - 1}{throttle}",
        f"--ntasks={run.ranks}",
        f"--time={slurm.time}",
        "--requeue",
        f"--output={out}/%A_%a.out",
    ]
    if slurm.signal_s:
        opts.append(f"--signal=B:TERM@{slurm.signal_s}")
    opts += [
        f"--{k}={getattr(slurm, k)}" for k in ("partition", "account", "qos") if getattr(slurm, k)
    ]
    opts += list(slurm.sbatch)
    lines = ["#!/bin/bash", *(f"#SBATCH {o}" for o in opts), ""]
    lines += [f"# nhj sweep {sd.path.resolve()}: {len(names)} point(s)", "set -u"]
    lines += [f"module load {shlex.quote(m)}" for m in slurm.modules]
    lines += [f"cd {shlex.quote(str(Path.cwd()))}", 'case "$SLURM_ARRAY_TASK_ID" in']
    for i, name in enumerate(names):
        pdir = sd.point_dir(name).resolve()
        fresh = point_command(sd, kind, run, name, slurm.launcher, checkpoint=False)
        resumed = point_command(sd, kind, run, name, slurm.launcher, checkpoint=True)
        lines.append(f"  {i}) NAME={shlex.quote(name)}")
        if resumed != fresh:
            lines.append(f"     if [ -d {shlex.quote(str(pdir / 'checkpoint'))} ]; then")
            lines.append(
                f"       CMD=({_q(resumed)})\n     else\n       CMD=({_q(fresh)})\n     fi ;;"
            )
        else:
            lines.append(f"     CMD=({_q(fresh)}) ;;")
    exit_dir = shlex.quote(str((sd.path / "logs").resolve()))
    lines += [
        '  *) echo "no point for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;',
        "esac",
        f'EXIT={exit_dir}/"$NAME".exit',
        'rm -f "$EXIT"',
        "export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}",
        'TASK="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
        'echo "=== $(date -Iseconds) $TASK $NAME: ${CMD[*]}"',
        "SECONDS=0",
        '"${CMD[@]}" &',
        "PID=$!",
        "trap 'kill -TERM $PID 2>/dev/null' TERM INT  # the point stops at a step and checkpoints",
        'wait "$PID"; RC=$?',
        'while kill -0 "$PID" 2>/dev/null; do wait "$PID"; RC=$?; done',
        'printf \'{"returncode": %d, "wall_s": %d, "slurm": "%s"}\\n\' "$RC" "$SECONDS" "$TASK" '
        '> "$EXIT.tmp" && mv "$EXIT.tmp" "$EXIT"',
        'exit "$RC"',
        "",
    ]
    return "\n".join(lines)


def submit(
    sd: SweepDir, kind: str, run: RunSpec, slurm: SlurmSpec, names: Sequence[str], job: str
) -> dict[str, Any]:
    """Write the script and sbatch it; returns the job record kept in sweep.json.

    Raises:
        CaseError("--backend", ...): sbatch is missing or refuses the job.
    """
    if shutil.which("sbatch") is None:
        raise CaseError("--backend", "slurm needs sbatch on PATH (scripts/install-slurm)")
    (sd.path / "slurm").mkdir(parents=True, exist_ok=True)
    k = len(list((sd.path / "slurm").glob("sweep-*.sh")))
    path = sd.path / "slurm" / f"sweep-{k}.sh"
    path.write_text(script(sd, kind, run, slurm, names, job), encoding="utf-8")
    path.chmod(0o755)
    for name in names:
        sd.clear(name)
    p = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        reason = (p.stderr or p.stdout).strip().splitlines() or ["no output"]
        raise CaseError("--backend", f"sbatch refused {path}: {reason[-1]}")
    job_id = p.stdout.strip().split(";")[0]
    log.info("sweep: submitted %d point(s) as SLURM job array %s (%s)", len(names), job_id, path)
    return {"id": job_id, "script": str(path), "points": list(names), "submitted": time.time()}


def live_tasks(jobs: Sequence[Mapping[str, Any]]) -> dict[str, str] | None:
    """Point name → "queued"/"running" for array tasks squeue still lists (None: no squeue)."""
    if shutil.which("squeue") is None:
        return None
    out: dict[str, str] = {}
    for job in jobs:
        p = subprocess.run(
            ["squeue", "-h", "-r", "-j", str(job["id"]), "-o", "%F %K %T"],
            capture_output=True, text=True,
        )  # fmt: skip
        if p.returncode != 0:  # a job squeue no longer knows
            continue
        for line in p.stdout.splitlines():
            parts = line.split()
            if len(parts) != 3 or parts[0] != str(job["id"]) or not parts[1].isdigit():
                continue
            i, state = int(parts[1]), ACTIVE.get(parts[2])
            if state is not None and i < len(job["points"]):
                out[job["points"][i]] = state
    return out


def apply_live(record: dict[str, Any], live: Mapping[str, str] | None) -> dict[str, Any]:
    """Points squeue lists are queued/running, whatever their directories say."""
    for p in record["points"]:
        if live and p["name"] in live and p["status"] not in FINAL:
            p["status"], p["live"] = live[p["name"]], True
    record["counts"] = counts(record["points"])
    return record


def wait(
    collect: Callable[[], tuple[dict[str, Any], dict[str, str] | None]],
    names: Sequence[str],
    poll_s: float = 5.0,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Poll until no array task of the sweep is queued or running; returns the last record.

    ``collect`` returns the refreshed record and squeue's live tasks (None without squeue:
    then until every point in ``names`` has ended, as its directory says).
    """
    t0, last = time.perf_counter(), ""
    while True:
        record, live = collect()
        c = record["counts"]
        line = progress(c, len(record["points"]), None) + f", {c.get('queued', 0)} queued"
        if line != last:
            log.info("%s", line)
            last = line
        if live is not None:
            done = not live
        else:
            ended = (*FINAL, "interrupted")
            done = all(p["status"] in ended for p in record["points"] if p["name"] in names)
        if done:
            return record
        if timeout_s is not None and time.perf_counter() - t0 > timeout_s:
            log.warning("sweep: --wait gave up after %.0f s", timeout_s)
            return record
        time.sleep(poll_s)
