"""Result directories that never lie: a lock, no silent overwrite, atomic replacement.

Contract (read by later tools and checks)::

    DIR/case.toml         copy of the case file
    DIR/summary.json      status "running" (with the last checkpoint, if any), then
                          "completed", "failed" or "interrupted"; always valid JSON
    DIR/diagnostics.csv   one row per output step
    DIR/fields.bp         VTX (ParaView/pyvista); after a resume the steps from the
                          resume on are in fields-from-step-<k>.bp
    DIR/final.vtu         the final fields gathered on rank 0 (for `nhj plot`)
    DIR/checkpoint/       the last checkpoint (nhj.checkpoint), if any
    DIR/.lock             held while a run writes into DIR

Rules, decided on rank 0 and broadcast so that every rank takes the same branch:

* a run writes into DIR only under its lock; a second run into a locked DIR
  is refused (a lock whose process is gone, e.g. after kill -9, is taken over);
* a DIR holding a completed result, or a checkpoint of an unfinished run, is
  not replaced unless asked (``--overwrite``; ``--resume`` continues it);
* with ``--overwrite`` the new run is written beside DIR and replaces it only
  once it has completed, so the old result is never lost to a failed rerun and
  no stale file of it survives.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from nhj.schema import CaseError

LOCK = ".lock"


def jsonable(x: Any) -> Any:
    """JSON for numpy scalars and paths; non-finite floats become null (valid JSON)."""
    if isinstance(x, (np.floating, np.integer)):
        return finite_or_none(x.item())
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def finite_or_none(x: Any) -> Any:
    """x, or None where it is a non-finite float."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _clean(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _clean(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_clean(v) for v in data]
    return finite_or_none(data)


def dumps(data: Any) -> str:
    """Strict JSON (no NaN/Infinity tokens) of a summary or report."""
    return json.dumps(_clean(data), indent=2, default=jsonable, allow_nan=False) + "\n"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``path`` through a temporary file and a rename: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dumps(data), encoding="utf-8")
    tmp.replace(path)


def read_status(path: Path) -> str | None:
    """The status in DIR/summary.json, or None if there is no readable one."""
    try:
        return str(json.loads((path / "summary.json").read_text(encoding="utf-8"))["status"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_holder(path: Path) -> str | None:
    """Who holds DIR/.lock, if it is held by a live process (a dead holder's lock is stale)."""
    try:
        info = json.loads((path / LOCK).read_text(encoding="utf-8"))
        pid, host = int(info["pid"]), str(info["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host == socket.gethostname() and not _alive(pid):
        return None
    return f"pid {pid} on {host}"


class ResultDir:
    """A result directory managed from rank 0 (every method is collective)."""

    def __init__(self, path: Path, comm: MPI.Comm) -> None:
        self.final, self.comm = Path(path), comm
        self.path = self.final  # where this run writes (a staging directory with --overwrite)
        self.locked = False

    @property
    def root(self) -> bool:
        """Whether this rank writes files."""
        return self.comm.rank == 0

    def _decide(self, fn: Any) -> None:
        """Run ``fn`` on rank 0; a CaseError there is raised on every rank."""
        error = None
        if self.root:
            try:
                fn()
            except CaseError as e:
                error = (e.field, e.reason)
            except OSError as e:
                error = ("--out", f"cannot write {self.final}: {e.strerror or e}")
        error = self.comm.bcast(error, root=0)
        if error is not None:
            raise CaseError(*error)

    def open(self, case_text: str, overwrite: bool = False, resume: bool = False) -> None:
        """Take DIR for this run: check it, lock it, copy the case (unless resuming).

        Raises:
            CaseError("--out", ...): DIR is a file, not writable, locked by a
                live run, or holds a result that would be replaced unasked.
        """

        def take() -> None:
            final = self.final
            if final.exists() and not final.is_dir():
                raise CaseError("--out", f"{final} is a file; give a directory")
            holder = _lock_holder(final) if final.is_dir() else None
            if holder is not None:
                raise CaseError("--out", f"{final} is in use by another run ({holder})")
            status = read_status(final) if final.is_dir() else None
            has_checkpoint = (final / "checkpoint" / "meta.json").is_file()
            if resume:
                if not has_checkpoint:
                    raise CaseError("--resume", f"{final} has no checkpoint to resume from")
            elif overwrite and final.is_dir() and any(final.iterdir()):
                self.path = final.with_name(f".{final.name}.new")
                shutil.rmtree(self.path, ignore_errors=True)
            elif status == "completed":
                raise CaseError(
                    "--out",
                    f"{final} holds a completed result; replace it with --overwrite "
                    "(kept until the new run completes) or give another --out",
                )
            elif has_checkpoint:
                raise CaseError(
                    "--out",
                    f"{final} holds an unfinished run with a checkpoint; continue it with "
                    f"`nhj run --resume {final}` or give --overwrite",
                )
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
            self._lock(final if final.is_dir() else self.path)
            if self.path != final:
                self._lock(self.path)
            if not resume:
                for stale in ("summary.json", "diagnostics.csv", "final.vtu"):
                    (self.path / stale).unlink(missing_ok=True)
                for bp in self.path.glob("fields*.bp"):
                    shutil.rmtree(bp, ignore_errors=True)
                shutil.rmtree(self.path / "checkpoint", ignore_errors=True)
                (self.path / "case.toml").write_text(case_text, encoding="utf-8")

        self._decide(take)
        self.locked = True

    def _lock(self, where: Path) -> None:
        where.mkdir(parents=True, exist_ok=True)
        lock = where / LOCK
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _lock_holder(where) is not None:  # raced by another run
                raise CaseError("--out", f"{where} is in use by another run") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(info)

    def close(self, completed: bool) -> Path:
        """Release the lock; a staged (``--overwrite``) run replaces DIR if it completed.

        Returns the directory that holds this run's result.
        """
        result = self.path
        if self.root and self.locked:
            (self.path / LOCK).unlink(missing_ok=True)
            if self.path != self.final:
                if completed:
                    old = self.final.with_name(f".{self.final.name}.old")
                    shutil.rmtree(old, ignore_errors=True)
                    self.final.rename(old)
                    self.path.rename(self.final)
                    shutil.rmtree(old, ignore_errors=True)
                    result = self.final
                (self.final / LOCK).unlink(missing_ok=True)
        self.locked = False
        return Path(self.comm.bcast(str(result), root=0))

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Write ``name`` atomically from rank 0 (collective: returns once it exists)."""
        if self.root:
            write_json_atomic(self.path / name, data)
        self.comm.barrier()
