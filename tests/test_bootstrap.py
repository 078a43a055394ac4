"""scripts/bootstrap.sh finds a Python >= 3.12, or says in one line that there is none.

Only the interpreter search runs here (``NHJ_BOOTSTRAP_FIND_ONLY=1``): nothing is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skip_in_parallel

BASH = "/bin/bash"
NONE_FOUND = "nhj: no Python >= 3.12 found (looked on PATH, in pyenv versions, via uv)"

# An interpreter that behaves like Python 3.11: reports 3.11 and fails the >= 3.12 check.
FAKE_311 = """#!/bin/sh
case "$*" in
  *-V*|*--version*) echo "Python 3.11.7" ;;
  *version_info*) exit 1 ;;
  *) echo "fake python 3.11" ;;
esac
"""
# What a pyenv shim does when its version is not selected: refuse, on stderr, exit 127.
FAKE_SHIM = """#!/bin/sh
echo "pyenv: python3.12: command not found" >&2
exit 127
"""


def find(project_root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run only the interpreter search of the bootstrap script, from another directory."""
    return subprocess.run(
        [BASH, "-c", f"source '{project_root}/scripts/bootstrap.sh'"],
        env={**env, "NHJ_BOOTSTRAP_FIND_ONLY": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )


def version_of(python: str) -> tuple[int, int]:
    """(major, minor) reported by running the interpreter."""
    r = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    major, minor = r.stdout.split()
    return int(major), int(minor)


def script(path: Path, text: str) -> Path:
    """Write an executable shell script."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def bare(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds only a 3.11 python3 and a refusing python3.12 shim.

    HOME and PYENV_ROOT are empty directories and there is no pyenv and no uv.
    """
    bin_dir = tmp_path / "bin"
    script(bin_dir / "python3", FAKE_311)
    script(bin_dir / "python3.12", FAKE_SHIM)
    (tmp_path / "home").mkdir()
    (tmp_path / "pyenv").mkdir()
    return {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path / "home"),
        "PYENV_ROOT": str(tmp_path / "pyenv"),
    }


def test_finds_a_python_312_here(project_root: Path) -> None:
    """On this machine (its real PATH, pyenv, uv) the search picks a runnable Python >= 3.12."""
    env = {k: v for k, v in os.environ.items() if k not in ("NHJ_PYTHON", "NHJ_NO_DOLFINX_WHEEL")}
    r = find(project_root, env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout
    assert Path(lines[0]).is_absolute()
    assert version_of(lines[0]) >= (3, 12)


def test_fails_in_one_line_when_there_is_none(project_root: Path, bare: dict[str, str]) -> None:
    """Only a 3.11 and a refusing shim on PATH, empty pyenv, no uv: exit 1 and one clear line."""
    r = find(project_root, bare)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # the shim's own complaint must not leak through
    assert lines[0].startswith(NONE_FOUND)
    assert "pyenv install 3.12" in lines[0]


def test_finds_pyenv_versions_without_pyenv_on_path(
    project_root: Path, bare: dict[str, str], tmp_path: Path
) -> None:
    """A >= 3.12 under $PYENV_ROOT/versions is found although pyenv itself is not on PATH."""
    real = os.path.realpath(sys.executable)  # this interpreter is >= 3.12 (requires-python)
    python = tmp_path / "pyenv" / "versions" / "3.12.99" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(real)
    script(tmp_path / "pyenv" / "versions" / "3.11.7" / "bin" / "python", FAKE_311)
    r = find(project_root, bare)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(python)
    assert version_of(r.stdout.strip()) >= (3, 12)


def test_finds_home_pyenv_when_pyenv_root_points_elsewhere(
    project_root: Path, bare: dict[str, str], tmp_path: Path
) -> None:
    """~/.pyenv/versions is searched too, not only $PYENV_ROOT."""
    python = tmp_path / "home" / ".pyenv" / "versions" / "3.13.1" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(os.path.realpath(sys.executable))
    r = find(project_root, bare)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(python)


def test_nhj_python_override(project_root: Path, bare: dict[str, str], tmp_path: Path) -> None:
    """NHJ_PYTHON is used as given; an old one is refused with its own one-line message."""
    real = os.path.realpath(sys.executable)
    r = find(project_root, {**bare, "NHJ_PYTHON": real})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == real

    old = str(Path(bare["PATH"]) / "python3")
    r = find(project_root, {**bare, "NHJ_PYTHON": old})
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines == [f"nhj: NHJ_PYTHON={old} is not a Python >= 3.12"]
