"""scripts/bootstrap.sh finds a Python >= 3.12 or says clearly that there is none."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skip_in_parallel


def find(project_root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run only the interpreter search of the bootstrap script."""
    return subprocess.run(
        ["/bin/bash", "-c", f"source '{project_root}/scripts/bootstrap.sh'"],
        env={**env, "NHJ_BOOTSTRAP_FIND_ONLY": "1"}, capture_output=True, text=True, timeout=60,
    )


def test_finds_a_python_312(project_root: Path) -> None:
    """On this machine the search returns an interpreter that is >= 3.12."""
    env = {k: v for k, v in os.environ.items() if k != "NHJ_PYTHON"}
    r = find(project_root, env)
    assert r.returncode == 0, r.stderr
    py = r.stdout.strip().splitlines()[-1]
    v = subprocess.run([py, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                       capture_output=True, text=True)
    assert v.stdout.strip() == "True"


def test_says_clearly_when_there_is_none(project_root: Path, tmp_path: Path) -> None:
    """Only a 3.11 on PATH, no pyenv, no uv: exit 1 and one line naming what was tried."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text("#!/bin/sh\nexit 1\n")  # like an old interpreter: the version check fails
    fake.chmod(0o755)
    for tool in ("ls", "sort", "dirname"):
        real = subprocess.run(["/bin/bash", "-c", f"command -v {tool}"], capture_output=True,
                              text=True).stdout.strip()
        (bin_dir / tool).symlink_to(real)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "pyenv")}
    r = find(project_root, env)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Python >= 3.12 found" in lines[0]
    assert "PATH" in lines[0] and "pyenv" in lines[0] and "uv" in lines[0]
