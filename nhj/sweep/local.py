"""The local backend: a pool of ``--jobs`` point processes on this machine.

Each point is a subprocess (:func:`nhj.sweep.commands.point_command`) writing its
output to ``DIR/logs/<p>.log``; the driver polls them, writes sweep.json after every
change and logs a progress line with an ETA. SIGTERM/SIGINT to the driver are passed
on to the running points (which stop at a step boundary and checkpoint), then the
driver records them and exits with 128 + the signal. Points die with the driver on
Linux (PR_SET_PDEATHSIG), so a ``kill -9`` of the sweep leaves no orphan holding a
point directory; rerunning the sweep starts those points again.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from nhj.sweep.commands import point_command
from nhj.sweep.options import RunSpec
from nhj.sweep.state import SweepDir, counts, progress

log = logging.getLogger(__name__)

POLL_S = 0.2
STOP_WAIT_S = 120.0  # how long a signalled point may take to checkpoint and exit


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Running:
    """A point process."""

    name: str
    proc: subprocess.Popen[bytes]
    started: float
    log: IO[bytes]


class LocalPool:
    """Run points at most ``jobs`` at a time, keeping ``record`` (sweep.json) up to date."""

    def __init__(self, sd: SweepDir, record: dict[str, Any], run: RunSpec, jobs: int) -> None:
        self.sd, self.record, self.runspec, self.jobs = sd, record, run, jobs
        self.kind = record["kind"]
        self.active: set[str] = set()
        self.signum = 0

    def update(self, name: str | None = None) -> dict[str, Any]:
        """Refresh point ``name`` (None: none) from its files, mark the active ones, write."""
        self.sd.refresh(self.record, [] if name is None else [name])
        for p in self.record["points"]:
            if p["name"] in self.active:
                p["status"], p["live"] = "running", True
        self.record["counts"] = counts(self.record["points"])
        self.sd.write(self.record)
        return self.record

    def _handler(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def _start(self, name: str) -> Running:
        self.sd.clear(name)
        cmd = point_command(self.sd, self.kind, self.runspec, name)
        out = open(self.sd.log(name), "ab")  # noqa: SIM115 - closed when the point ends
        out.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        log.info("sweep: start %s (pid %d)", name, proc.pid)
        self.active.add(name)
        return Running(name, proc, time.perf_counter(), out)

    def _finish(self, r: Running, returncode: int) -> float:
        wall = time.perf_counter() - r.started
        self.active.discard(r.name)
        r.log.close()
        self.sd.write_exit(r.name, returncode, wall)
        return wall

    def run(self, names: Sequence[str], total: int) -> int:
        """Run the points; returns 0, or 128 + the signal that stopped the sweep."""
        queue, walls = list(names), []
        running: list[Running] = []
        previous = {s: signal.signal(s, self._handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            while (queue or running) and not self.signum:
                ended = [r for r in running if r.proc.poll() is not None]
                for r in ended:
                    running.remove(r)
                    walls.append(self._finish(r, int(r.proc.returncode)))
                    st = next(p for p in self.update(r.name)["points"] if p["name"] == r.name)
                    log.info("sweep: %s %s (%.1f s)", r.name, st["status"], walls[-1])
                while queue and len(running) < self.jobs and not self.signum:
                    running.append(self._start(queue.pop(0)))
                    self.update(running[-1].name)
                if ended:
                    left = len(queue) + len(running)
                    eta = sum(walls) / len(walls) * left / self.jobs if left else None
                    log.info("%s", progress(counts(self.update(None)["points"]), total, eta))
                time.sleep(POLL_S)
            if self.signum:
                self._stop(running)
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
        return 128 + self.signum if self.signum else 0

    def _stop(self, running: list[Running]) -> None:
        """Pass the signal on; wait for the points to checkpoint and exit; record them."""
        log.warning("sweep: signal %d: stopping %d running point(s)", self.signum, len(running))
        for r in running:
            r.proc.send_signal(signal.SIGTERM)
        deadline = time.perf_counter() + STOP_WAIT_S
        for r in running:
            try:
                r.proc.wait(timeout=max(deadline - time.perf_counter(), 0.1))
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()
            self._finish(r, int(r.proc.returncode))
            self.update(r.name)
