"""The ``[run]`` and ``[slurm]`` tables of a sweep file; checks of what reaches a job script.

Every string that is written into a SLURM batch script (partition, account, qos,
modules, time, extra sbatch options) is validated here: a sweep file is data, and
its values may not add shell commands to the script.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nhj.schema import CaseError, as_float, as_int, as_str, check_keys

_WORD = re.compile(r"^[A-Za-z0-9_.,+=@:/-]+$")  # partition, account, qos, module names
_TIME = re.compile(r"^(\d+-)?\d+(:\d{2}){0,2}$")


@dataclass(frozen=True)
class RunSpec:
    """``[run]``: how each point runs.

    Attributes:
        ranks: MPI ranks per point (``mpirun -n ranks``; 1 runs without mpirun).
        jobs: Points run at once (local pool size; the SLURM array throttle).
        max_wall_s: Wall-time limit of a case point (``nhj run --max-wall-s``).
        mode: ``quick`` or ``full`` for verification points.
    """

    ranks: int = 1
    jobs: int = 1
    max_wall_s: float | None = None
    mode: str = "quick"

    @classmethod
    def from_table(cls, t: Mapping[str, Any]) -> RunSpec:
        """Validate [run]."""
        check_keys(t, ("ranks", "jobs", "max_wall_s", "mode"), "run")
        return cls(
            ranks=as_int(t.get("ranks", 1), "run.ranks", lo=1),
            jobs=as_int(t.get("jobs", 1), "run.jobs", lo=1),
            max_wall_s=None
            if t.get("max_wall_s") is None
            else as_float(t["max_wall_s"], "run.max_wall_s", positive=True),
            mode=as_str(t.get("mode", "quick"), "run.mode", ("quick", "full")),
        )


@dataclass(frozen=True)
class SlurmSpec:
    """``[slurm]``: the job array of the slurm backend.

    Attributes:
        partition: ``--partition`` (None: the cluster's default).
        account: ``--account``.
        qos: ``--qos``.
        time: ``--time`` of each array task ("MM", "HH:MM:SS", "D-HH:MM:SS").
        modules: Environment modules loaded before the point runs (``module load``).
        sbatch: Extra sbatch options, one per line (e.g. ``"--mem=2G"``).
        throttle: Array tasks running at once (``--array=0-(n-1)%throttle``; None: no limit).
        signal_s: SIGTERM this many seconds before the time limit (``--signal``), so that a
            point stops at a step boundary and writes its checkpoint.
        launcher: ``mpirun`` (the environment's) or ``srun`` for points on several ranks.
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str = "01:00:00"
    modules: tuple[str, ...] = ()
    sbatch: tuple[str, ...] = ()
    throttle: int | None = None
    signal_s: int = 120
    launcher: str = "mpirun"

    KEYS = (
        "partition", "account", "qos", "time", "modules", "sbatch", "throttle", "signal_s",
        "launcher",
    )  # fmt: skip

    @classmethod
    def from_table(cls, t: Mapping[str, Any]) -> SlurmSpec:
        """Validate [slurm]; every string that reaches the job script is checked."""
        check_keys(t, cls.KEYS, "slurm")
        words = {
            k: plain_word(t[k], f"slurm.{k}") for k in ("partition", "account", "qos") if k in t
        }
        time = slurm_time(t.get("time", cls.time), "slurm.time")
        modules = tuple(
            plain_word(m, f"slurm.modules[{i}]") for i, m in enumerate(_list(t, "modules"))
        )
        sbatch = tuple(
            sbatch_option(s, f"slurm.sbatch[{i}]") for i, s in enumerate(_list(t, "sbatch"))
        )
        return cls(
            **words,
            time=time,
            modules=modules,
            sbatch=sbatch,
            throttle=None if "throttle" not in t else as_int(t["throttle"], "slurm.throttle", lo=1),
            signal_s=as_int(t.get("signal_s", cls.signal_s), "slurm.signal_s", lo=0),
            launcher=as_str(t.get("launcher", cls.launcher), "slurm.launcher", ("mpirun", "srun")),
        )


def _list(t: Mapping[str, Any], key: str) -> list[Any]:
    v = t.get(key, [])
    if not isinstance(v, list):
        raise CaseError(f"slurm.{key}", f"must be a list of strings, got {v!r}")
    return v


def slurm_time(v: Any, field: str) -> str:
    """A SLURM time limit: MM, HH:MM:SS or D-HH:MM:SS (and the forms between)."""
    s = as_str(v, field)
    if not _TIME.fullmatch(s):
        raise CaseError(field, f"must be MM, HH:MM:SS or D-HH:MM:SS, got {s!r}")
    return s


def plain_word(v: Any, field: str) -> str:
    """A partition, account, qos or module name (it is written into the job script)."""
    s = as_str(v, field)
    if not _WORD.fullmatch(s):
        raise CaseError(field, f"{s!r} is not a plain name (letters, digits, _ . , + = @ : / -)")
    return s


def sbatch_option(v: Any, field: str) -> str:
    """An extra sbatch option: one line starting with ``-``, no newline (it goes into #SBATCH)."""
    s = as_str(v, field).strip()
    if s.startswith("#SBATCH"):
        s = s[len("#SBATCH") :].strip()
    if not s.startswith("-") or any(c in s for c in "\n\r\0"):
        raise CaseError(field, f"must be one sbatch option such as '--mem=2G', got {s!r}")
    return s
