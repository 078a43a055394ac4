"""SIGTERM and SIGINT end a run collectively at the next step boundary.

A handler only records the signal; :class:`nhj.simulation.Simulation` asks
:meth:`Interrupt.pending` after every step, a reduction over the ranks, so a
signal delivered to one rank (or forwarded by mpirun to all) stops every rank
at the same step. The run then writes a final checkpoint and the status
``interrupted``; the CLI exits with 128 + the signal number (143 for SIGTERM,
130 for SIGINT), the shell convention, distinct from 0/1/2.

PETSc installs C handlers of its own at start-up (they print a signal dump
and abort); installing ours afterwards replaces them for these two signals.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from mpi4py import MPI

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupt:
    """The signal received (0: none), checked collectively."""

    def __init__(self) -> None:
        self.signum = 0

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def pending(self, comm: MPI.Comm) -> int:
        """The signal any rank received (0 if none; collective)."""
        return int(comm.allreduce(self.signum, op=MPI.MAX))

    @property
    def exit_code(self) -> int:
        """128 + the signal number."""
        return 128 + self.signum

    @contextmanager
    def installed(self) -> Iterator[Interrupt]:
        """Catch SIGTERM/SIGINT while the block runs, then restore the previous handlers."""
        previous: dict[int, Any] = {}
        for s in SIGNALS:
            previous[int(s)] = signal.signal(s, self._handler)
        try:
            yield self
        finally:
            for num, h in previous.items():
                signal.signal(num, h)


def name(signum: int) -> str:
    """SIGTERM, SIGINT, ..."""
    return signal.Signals(signum).name
