"""The command that runs one point: the same on the local pool and inside a SLURM array task.

A case point runs ``nhj run DIR/cases/<p>.toml --out DIR/points/<p>``, a verification
point ``nhj verify --quick --cases DIR/cases/<p>.toml --out DIR/points/<p>``; on K > 1
ranks under ``mpirun -n K`` (the environment's ``mpirun``: with the venv active, the
venv's) or ``srun -n K``. ``nhj`` is the executable beside the running interpreter.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from nhj.sweep.options import RunSpec
from nhj.sweep.state import SweepDir


def nhj_executable() -> list[str]:
    """The ``nhj`` console script of this environment (or ``python -m nhj.cli``)."""
    exe = Path(sys.executable).parent / "nhj"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "nhj.cli"]


def mpirun() -> str:
    """``mpirun`` from PATH, else the one beside the interpreter (the venv's)."""
    return shutil.which("mpirun") or str(Path(sys.executable).parent / "mpirun")


def resume_hook(pdir: Path, run: RunSpec, checkpoint: bool | None = None) -> list[str] | None:
    """RESUME HOOK (checkpoint/restart, issue 11): an interrupted point goes on from its checkpoint.

    When the point's directory holds ``checkpoint/`` (or ``checkpoint`` says so, for a job
    script that decides when it runs), the point runs ``nhj run --resume DIR/points/<p>``
    (docs/faults.md) instead of starting again. None: start from t = 0.
    """
    has = (pdir / "checkpoint").is_dir() if checkpoint is None else checkpoint
    if not has:
        return None
    args = ["run", "--resume", str(pdir)]
    if run.max_wall_s is not None:
        args += ["--max-wall-s", repr(run.max_wall_s)]
    return args


def point_args(
    sd: SweepDir, kind: str, run: RunSpec, name: str, checkpoint: bool | None = None
) -> list[str]:
    """The ``nhj`` arguments of point ``name`` (``checkpoint``: None looks at its directory)."""
    case, pdir = sd.case_file(name), sd.point_dir(name)
    if kind == "verify":
        return ["verify", f"--{run.mode}", "--cases", str(case), "--out", str(pdir)]
    resumed = resume_hook(pdir, run, checkpoint)
    if resumed is not None:
        return resumed
    args = ["run", str(case), "--out", str(pdir)]
    if run.max_wall_s is not None:
        args += ["--max-wall-s", repr(run.max_wall_s)]
    return args


def launch_prefix(ranks: int, launcher: str = "mpirun") -> list[str]:
    """``mpirun -n K`` / ``srun -n K``, nothing on one rank."""
    if ranks <= 1:
        return []
    return ["srun", "-n", str(ranks)] if launcher == "srun" else [mpirun(), "-n", str(ranks)]


def point_command(
    sd: SweepDir,
    kind: str,
    run: RunSpec,
    name: str,
    launcher: str = "mpirun",
    checkpoint: bool | None = None,
) -> list[str]:
    """The whole command line of point ``name``."""
    args = point_args(sd, kind, run, name, checkpoint)
    return [*launch_prefix(run.ranks, launcher), *nhj_executable(), *args]
