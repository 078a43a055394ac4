"""Faults: kill -9 and resume, signals, result-directory rules, ranks without cells (issue 11).

Runs that must be interrupted are subprocesses (the venv's ``nhj`` script, under
``mpirun`` where marked); a run is interrupted once summary.json names a
checkpoint past half of its steps, so the signal lands mid-run whatever the load.
Resumes and reference runs are in-process. Tests that launch ``mpirun`` themselves
are marked ``mpi`` and ``skip_in_parallel`` (they run from the serial pass); the
in-process ``mpi`` tests run on any number of ranks. Every subprocess runs under
a timeout, so a hang fails the test instead of blocking the suite.

Exit codes (docs/faults.md): 143 after SIGTERM and 130 after SIGINT, both for a
serial run and for ``mpirun -n 2 nhj run`` (MPICH's hydra forwards the signal to
every rank and returns the ranks' exit code).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from case_helpers import write_case

from nhj.cli import main

TIMEOUT = 120  # seconds for any one subprocess: a hang fails the test

SCHRODINGER = {
    "equation": "schrodinger",
    "parameters": {"gamma": 1.0, "beta": 1.0},
    "mesh": {"type": "interval", "lower": [-20.0], "upper": [20.0], "cells": [100]},
    "discretisation": {"degree": 2, "scheme": "crank_nicolson", "dt": 0.01, "t_end": 4.0},
    "initial": {"kind": "gaussian", "center": [-5.0], "width": [1.0], "momentum": [2.0]},
    "output": {"every": 20, "checkpoint_every": 50},
}
CASES: dict[str, dict[str, Any]] = {
    "schrodinger": SCHRODINGER,
    "madelung": {
        **SCHRODINGER,
        "equation": "madelung",
        "mesh": {"type": "interval", "lower": [-20.0], "upper": [20.0], "cells": [80]},
        "discretisation": {"degree": 2, "scheme": "implicit_midpoint", "dt": 0.01, "t_end": 3.0},
    },
    # the log form's open walls let the packet out: the mass balance (projection target and
    # outflow so far) is part of the checkpoint, and the outflow column continues with it;
    # gauss2's predictor (the last sub-step's stage values) is part of it too
    "madelung_log": {
        **SCHRODINGER,
        "equation": "madelung",
        "mesh": {"type": "interval", "lower": [-8.0], "upper": [8.0], "cells": [40]},
        "discretisation": {"degree": 2, "scheme": "gauss2", "dt": 0.01, "t_end": 3.0},
        "initial": {"kind": "gaussian", "center": [-2.0], "width": [1.0], "momentum": [2.0]},
        "vacuum": {"amplitude": "log"},
    },
    "fokker_planck": {
        "equation": "fokker_planck",
        "parameters": {"gamma": 1.0, "beta": 2.0},
        "mesh": {"type": "interval", "lower": [-4.0], "upper": [4.0], "cells": [60]},
        "discretisation": {"degree": 2, "scheme": "bdf2", "dt": 0.01, "t_end": 3.0},
        "potential": {"curvature": [1.5]},
        "initial": {"kind": "gaussian", "center": [1.0], "width": [0.3]},
        "langevin": {"particles": 2000, "seed": 7, "dt": 0.005},
        "output": {"every": 20, "checkpoint_every": 50},
    },
}
STEPS = {"schrodinger": 400, "madelung": 300, "madelung_log": 300, "fokker_planck": 300}

_references: dict[str, Path] = {}


def nhj(venv_bin: Path) -> list[str]:
    exe = venv_bin / "nhj"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nhj.cli"]


def launch(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def summary(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "summary.json").read_text()))


def wait_for_checkpoint(out: Path, step: int, proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Poll DIR/summary.json until it names a checkpoint at ``step`` or later."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            s = summary(out)
            if s.get("checkpoint", {}).get("step", -1) >= step:
                return s
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before step {step}: {err}")
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"no checkpoint at step {step} within {TIMEOUT} s")


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the run did not end within the timeout (a hang)")
    return proc.returncode, err


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "diagnostics.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_same_rows(a: Path, b: Path, rtol: float = 1e-12, exact: str = "") -> None:
    """Diagnostics rows equal to rtol relative; columns starting with ``exact`` bit-identical."""
    ra, rb = rows(a), rows(b)
    assert len(ra) == len(rb) and ra[0].keys() == rb[0].keys()
    for x, y in zip(ra, rb, strict=True):
        for k in x:
            if exact and k.startswith(exact):
                assert x[k] == y[k], (k, x["step"])
            elif x[k] != y[k]:
                u, v = float(x[k]), float(y[k])
                assert abs(u - v) <= rtol * max(abs(u), abs(v)), (k, x["step"], u, v)


def reference(eq: str, base: Path) -> tuple[Path, Path]:
    """(case file, result of an uninterrupted serial run), computed once per session."""
    case = write_case(base, eq, CASES[eq])
    if eq not in _references:
        out = base / f"reference-{eq}"
        assert main(["-q", "run", str(case), "--out", str(out)]) == 0
        _references[eq] = out
    return case, _references[eq]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert len(lines[0]) <= 200, lines[0]
    return lines[0]


@pytest.mark.skip_in_parallel
@pytest.mark.parametrize("eq", sorted(CASES))
def test_kill9_then_resume(
    eq: str, base: Path, tmp_path: Path, venv_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """kill -9 halfway leaves "running" at the last checkpoint; --resume gives the same rows.

    --resume with a --max-dofs the case exceeds is refused (exit 2) and leaves it as it was.
    While the run holds its --out, a second run into it is refused (exit 2, one line).
    The Langevin particles continue bit-identically (langevin_* columns equal as text).
    """
    case, ref = reference(eq, base)
    out = tmp_path / "run"
    proc = launch([*nhj(venv_bin), "-q", "run", str(case), "--out", str(out)])
    wait_for_checkpoint(out, 50, proc)
    capsys.readouterr()
    assert main(["-q", "run", str(case), "--out", str(out)]) == 2
    assert "in use by another run" in one_line(capsys.readouterr().err)
    s = wait_for_checkpoint(out, STEPS[eq] // 2, proc)
    os.kill(proc.pid, signal.SIGKILL)
    assert finish(proc)[0] == -signal.SIGKILL
    after = summary(out)
    assert after["status"] == "running"
    meta = json.loads((out / "checkpoint" / "meta.json").read_text())
    # The checkpoint on disk is the record a resume reads; summary.json is written right
    # after it is in place, so a kill between the two leaves the summary one checkpoint
    # (checkpoint_every = 50 steps) behind, never ahead (seen once in a fresh-clone run).
    lag = meta["step"] - after["checkpoint"]["step"]
    assert lag in (0, 50) and after["checkpoint"]["step"] >= s["checkpoint"]["step"], lag
    if lag == 0:
        assert after["checkpoint"]["t"] == meta["t"]
    capsys.readouterr()
    # a resume is bounded like a new run: refused before anything is written
    assert main(["-q", "run", "--resume", str(out), "--max-dofs", "10"]) == 2
    assert "mesh.max_dofs: " in one_line(capsys.readouterr().err)
    assert summary(out) == after
    assert main(["-q", "run", "--resume", str(out)]) == 0
    assert summary(out)["status"] == "completed"
    assert_same_rows(ref, out, exact="langevin" if eq == "fokker_planck" else "")


@pytest.mark.mpi
@pytest.mark.skip_in_parallel
def test_resume_on_two_ranks_after_one(base: Path, tmp_path: Path, venv_bin: Path) -> None:
    """A serial run killed halfway continues under mpirun -n 2 to the same rows."""
    case, ref = reference("schrodinger", base)
    out = tmp_path / "run"
    proc = launch([*nhj(venv_bin), "-q", "run", str(case), "--out", str(out)])
    wait_for_checkpoint(out, 200, proc)
    os.kill(proc.pid, signal.SIGKILL)
    finish(proc)
    r = subprocess.run(
        [str(venv_bin / "mpirun"), "-n", "2", *nhj(venv_bin), "-q", "run", "--resume", str(out)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert r.returncode == 0, r.stderr
    assert summary(out)["resumed_from"]["ranks"] == 1 and summary(out)["ranks"] == 2
    assert_same_rows(ref, out)


def _interrupt(cmd: list[str], out: Path, sig: int, step: int) -> tuple[int, str]:
    proc = launch(cmd)
    wait_for_checkpoint(out, step, proc)
    os.kill(proc.pid, sig)
    return finish(proc)


@pytest.mark.skip_in_parallel
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_serial(sig: int, base: Path, tmp_path: Path, venv_bin: Path) -> None:
    """SIGTERM/SIGINT: status interrupted with the resume command, a checkpoint, 128+N."""
    case, _ = reference("schrodinger", base)
    out = tmp_path / "run"
    code, err = _interrupt(
        [*nhj(venv_bin), "-q", "run", str(case), "--out", str(out)], out, sig, 50
    )
    assert code == 128 + sig, err
    assert "Traceback" not in err and "Caught signal" not in err
    s = summary(out)
    assert s["status"] == "interrupted" and f"nhj run --resume {out}" in s["message"]
    assert (out / "checkpoint" / "meta.json").is_file() and not (out / ".lock").exists()


@pytest.mark.mpi
@pytest.mark.skip_in_parallel
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_to_mpirun(sig: int, base: Path, tmp_path: Path, venv_bin: Path) -> None:
    """A signal to `mpirun -n 2 nhj run` (hydra forwards it): interrupted, exit 128+N.

    The SIGTERM checkpoint, written on 2 ranks, then resumes on 1 rank to the rows of an
    uninterrupted serial run.
    """
    case, ref = reference("schrodinger", base)
    out = tmp_path / "run"
    cmd = [str(venv_bin / "mpirun"), "-n", "2", *nhj(venv_bin), "-q", "run", str(case)]
    code, err = _interrupt([*cmd, "--out", str(out)], out, sig, 100)
    assert code == 128 + sig, err
    assert "Traceback" not in err and "Abort" not in err
    s = summary(out)
    assert s["status"] == "interrupted" and s["ranks"] == 2
    assert (out / "checkpoint" / "meta.json").is_file()
    if sig == signal.SIGTERM:
        assert main(["-q", "run", "--resume", str(out)]) == 0
        assert summary(out)["resumed_from"]["ranks"] == 2
        assert_same_rows(ref, out)


@pytest.mark.skip_in_parallel
def test_overwrite_keeps_the_old_result_until_the_new_one_completes(
    base: Path, tmp_path: Path, venv_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A completed DIR: refused without --overwrite; an overwriting run killed halfway
    leaves the old result "completed" and unchanged; a completed overwrite replaces it."""
    case, ref = reference("schrodinger", base)
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    old = (out / "summary.json").read_text()
    capsys.readouterr()
    assert main(["-q", "run", str(case), "--out", str(out)]) == 2
    assert "--overwrite" in one_line(capsys.readouterr().err)
    staged = out.with_name(f".{out.name}.new")
    proc = launch([*nhj(venv_bin), "-q", "run", str(case), "--out", str(out), "--overwrite"])
    wait_for_checkpoint(staged, 200, proc)
    os.kill(proc.pid, signal.SIGKILL)
    finish(proc)
    assert (out / "summary.json").read_text() == old and summary(out)["status"] == "completed"
    assert main(["-q", "run", str(case), "--out", str(out), "--overwrite"]) == 0
    assert summary(out)["status"] == "completed" and (out / "summary.json").read_text() != old
    assert not staged.exists() and not (out / ".lock").exists()
    assert_same_rows(ref, out)


@pytest.mark.mpi
def test_unwritable_or_file_out_is_one_line(
    tmp_dir: Path, comm: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out under a file, or naming a file: exit 2 with one line on every rank count.

    Rank 0 decides and broadcasts, so no rank waits for another (run under mpirun -n 2).
    """
    case = write_case(tmp_dir, "tiny", {**SCHRODINGER, "output": {}}) if comm.rank == 0 else None
    case = comm.bcast(case, root=0)
    blocker = tmp_dir / "afile"
    if comm.rank == 0:
        blocker.write_text("x")
    comm.barrier()
    for out in (blocker / "sub", blocker):
        capsys.readouterr()
        assert main(["-q", "run", str(case), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        if comm.rank == 0:
            assert "--out" in one_line(err)
        else:
            assert err == ""


NO_CELLS = {
    "madelung": {
        **CASES["madelung"],
        "mesh": {"type": "interval", "lower": [-20.0], "upper": [20.0], "cells": [2]},
        "discretisation": {"degree": 2, "dt": 0.01, "t_end": 0.05},
        "output": {"every": 1, "checkpoint_every": 2},
    },
    "fokker_planck": {
        **CASES["fokker_planck"],
        "mesh": {"type": "interval", "lower": [-4.0], "upper": [4.0], "cells": [2]},
        "discretisation": {"degree": 2, "dt": 0.01, "t_end": 0.05},
        "output": {"every": 1, "checkpoint_every": 2},
    },
}


@pytest.mark.mpi
@pytest.mark.skip_in_parallel
@pytest.mark.parametrize("eq", sorted(NO_CELLS))
def test_rank_without_cells(eq: str, tmp_path: Path, venv_bin: Path) -> None:
    """`mpirun -n 3` on a 2-cell mesh: the run (fields, checkpoints, final.vtu) completes."""
    case = write_case(tmp_path, eq, NO_CELLS[eq])
    out = tmp_path / "out"
    mpirun = [str(venv_bin / "mpirun"), "-n", "3", *nhj(venv_bin), "-q"]
    r = subprocess.run(
        [*mpirun, "run", str(case), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    s = summary(out)
    assert s["status"] == "completed" and s["ranks"] == 3 and (out / "final.vtu").is_file()


SQUARE = """DefineConstant[ h = {0.25, Name "Parameters/h"} ];
Point(1) = {0, 0, 0, h}; Point(2) = {1, 0, 0, h}; Point(3) = {1, 1, 0, h}; Point(4) = {0, 1, 0, h};
Line(1) = {1, 2}; Line(2) = {2, 3}; Line(3) = {3, 4}; Line(4) = {4, 1};
Curve Loop(1) = {1, 2, 3, 4}; Plane Surface(1) = {1};
Physical Surface("domain", 1) = {1};
"""
ENDLESS = {  # each passes the .geo allow-list; the bounds stop them
    "tiny size": ("", {"size": 1e-5}, "mesh.max_elements: "),
    "size field": (
        'Mesh.MeshSizeMin = 1e-9; Field[1] = MathEval; Field[1].F = "1e-4";\n'
        "Background Field = 1;\n",
        {"max_seconds": 2.0},
        "mesh.max_seconds: ",
    ),
    "Layers 1e15": (None, {}, "mesh.file: "),
}
LAYERS = """DefineConstant[ h = {0.25, Name "Parameters/h"} ];
Point(1) = {0, 0, 0, h}; Point(2) = {1, 0, 0, h}; Line(1) = {1, 2};
out[] = Extrude {0, 1, 0} { Line{1}; Layers{1e15}; };
Physical Surface("domain", 1) = {out[1]};
"""


@pytest.mark.mpi
@pytest.mark.parametrize("name", sorted(ENDLESS))
def test_gmsh_is_bounded(
    name: str, tmp_dir: Path, comm: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .geo that would mesh for ever or without bound is refused with one line, in time.

    The bounding-box estimate refuses a tiny size before meshing; gmsh runs in a child
    process killed past mesh.max_seconds; an empty mesh is refused (on every rank count).
    """
    extra, mesh, expect = ENDLESS[name]
    if comm.rank == 0:
        text = LAYERS if extra is None else SQUARE + extra
        (tmp_dir / "g.geo").write_text(text)
        write_case(
            tmp_dir,
            "g",
            {
                "equation": "schrodinger",
                "parameters": {"gamma": 1.0, "beta": 1.0},
                "mesh": {"type": "gmsh", "file": "g.geo", "size": 0.25, **mesh},
                "discretisation": {"degree": 1, "dt": 0.01, "t_end": 0.02},
                "initial": {"kind": "gaussian", "center": [0.5, 0.5], "width": [0.2, 0.2]},
            },
        )
    comm.barrier()
    capsys.readouterr()
    t0 = time.monotonic()
    assert main(["check", str(tmp_dir / "g.toml")]) == 2
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    if comm.rank == 0:
        assert expect in one_line(err)
    assert elapsed < 30


TINY = {
    "equation": "schrodinger",
    "parameters": {"gamma": 1.0, "beta": 1.0},
    "mesh": {"type": "interval", "lower": [-5.0], "upper": [5.0], "cells": [20]},
    "discretisation": {"degree": 1, "dt": 0.01, "t_end": 0.02},
    "initial": {"kind": "gaussian", "center": [0.0], "width": [1.0]},
}
FP = {**TINY, "equation": "fokker_planck"}
BAD: dict[str, tuple[Any, str]] = {
    "beta 1e308": ({**TINY, "parameters": {"gamma": 1.0, "beta": 1e308}}, "parameters.beta: "),
    "gamma 1e308": ({**TINY, "parameters": {"gamma": 1e308, "beta": 1.0}}, "parameters.gamma: "),
    "cells 1e30": ({**TINY, "mesh": {**TINY["mesh"], "cells": 1e30}}, "mesh.cells: "),
    "centre outside": (
        {**TINY, "initial": {"kind": "gaussian", "center": [50.0], "width": [1.0]}},
        "initial.center: ",
    ),
    "V sqrt(x0)": ({**TINY, "potential": {"V": "sqrt(x0)"}}, "potential.V: "),
    "loss x0/0": ({**FP, "potential": {"loss": "x0/0"}}, "potential.loss: "),
    # found by the fuzzer (2026-12-08): Z = ∫e^{-2βL̄/γ} was 0 and the Gibbs monitor divided by it
    "curvature 1e308": ({**FP, "potential": {"curvature": [1e308]}}, "potential.curvature: "),
    "loss too steep": ({**FP, "potential": {"loss": "1e300*x0**2"}}, "potential: "),
    "S log(x0)": (
        {**TINY, "initial": {"kind": "expression", "p": "exp(-x0**2)", "S": "log(x0)"}},
        "initial.S: ",
    ),
    "binary": (bytes(range(256)), "case: "),
    "utf-16": ('equation = "schrodinger"\n'.encode("utf-16"), "case: "),
    "nested 10000": (b"a = " + b"[" * 10_000 + b"]" * 10_000 + b"\n", "case: "),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_line(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Overflowing numbers, expressions undefined on the mesh, unreadable files: exit 2."""
    d, field = BAD[name]
    case = tmp_path / "bad.toml"
    if isinstance(d, bytes):
        case.write_bytes(d)
    else:
        case = write_case(tmp_path, "bad", d)
    capsys.readouterr()
    assert main(["check", str(case)]) == 2
    assert f" {field}" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("loss", ["2.0", "gamma*beta", "x0**2 + 400", "x0**2 - 400"])
def test_degenerate_losses_run(loss: str, tmp_path: Path) -> None:
    """A constant loss, one of parameters only, a ±400 offset (Gibbs normalised by its max)."""
    case = write_case(tmp_path, "fp", {**FP, "potential": {"loss": loss}})
    assert main(["-q", "run", str(case), "--out", str(tmp_path / "out")]) == 0
    s = summary(tmp_path / "out")
    assert s["status"] == "completed" and s["gibbs_l1"] is not None


def test_overflowing_coupling_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GP with g = 1e308 (found by the fuzzer): status failed and exit 1, no traceback.

    The residual and the Jacobian overflow; before, MUMPS failed inside KSPSolve with a PETSc
    error that escaped as a traceback (and left b locked, so no retry could follow).
    """
    gp = {**TINY, "equation": "gross_pitaevskii", "coupling": {"g": 1e308}}
    case = write_case(tmp_path, "gp", gp)
    capsys.readouterr()
    assert main(["-q", "run", str(case), "--out", str(tmp_path / "out")]) == 1
    assert "Traceback" not in capsys.readouterr().err
    s = summary(tmp_path / "out")
    assert s["status"] == "failed" and "not finite" in s["message"]


def test_huge_case_refused_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """20000×20000 P4: refused by mesh.max_elements, and by the dof estimate past it, < 2 s."""
    huge = {
        **TINY,
        "mesh": {"type": "rectangle", "lower": [0.0, 0.0], "upper": [1.0, 1.0]}
        | {"cells": [20000, 20000]},
        "discretisation": {"degree": 4, "dt": 0.01, "t_end": 0.02},
        "initial": {"kind": "gaussian", "center": [0.5, 0.5], "width": [0.1, 0.1]},
    }
    raised = {**huge, "mesh": {**huge["mesh"], "max_elements": 10**9}}
    for name, d, field in (("a", huge, "mesh.cells: "), ("b", raised, "mesh.max_dofs: ")):
        case = write_case(tmp_path, name, d)
        capsys.readouterr()
        t0 = time.monotonic()
        assert main(["check", str(case)]) == 2
        assert time.monotonic() - t0 < 2.0
        assert field in one_line(capsys.readouterr().err)
    small = write_case(tmp_path, "small", TINY)
    assert main(["check", "--max-dofs", "10", str(small)]) == 2
    assert "mesh.max_dofs: " in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("broken", ["csv", "vtu"])
def test_plot_corrupt_result(
    broken: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`nhj plot` on a corrupt diagnostics.csv or final.vtu: exit 2, one line."""
    out = tmp_path / "out"
    assert main(["-q", "run", str(write_case(tmp_path, "t", TINY)), "--out", str(out)]) == 0
    if broken == "csv":
        (out / "diagnostics.csv").write_text("step,t,mass\n0,zero,\x00\n")
    else:
        (out / "final.vtu").write_bytes(b"<VTKFile garbage \x00\x01")
    capsys.readouterr()
    assert main(["plot", str(out)]) == 2
    assert "result: " in one_line(capsys.readouterr().err)
