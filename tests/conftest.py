"""Shared fixtures and hooks.

The suite runs serially (``python -m pytest tests``) and, for the tests marked ``mpi``, under
``mpirun -n 2 python -m mpi4py -m pytest tests -m mpi`` (see scripts/test).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")

# isort: off
import nhj  # noqa: E402,F401  (first: imports dolfinx_solver before dolfinx/petsc4py/mpi4py)

from mpi4py import MPI  # noqa: E402

import pytest  # noqa: E402
# isort: on

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # shared helpers in tests/


@pytest.fixture(autouse=True, scope="module")
def _release_finished_runs() -> Iterator[None]:
    """After each module, let its meshes go (nhj/ufl_cache.py): the serial pass builds ~1000
    problems in one process, and without this it crashed near the end (MPI communicators)."""
    yield
    from nhj.ufl_cache import release_ufl_caches

    release_ufl_caches()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--extended",
        action="store_true",
        help="also run the tests marked `extended` (scripts/test-slow; scripts/test skips them)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "extended: long end-to-end check left out of scripts/test (2-core time budget) and run "
        "by scripts/test-slow (pytest --extended); a cheaper test in the suite covers its path",
    )
    config.addinivalue_line(
        "markers",
        "extended_parallel: runs serially in scripts/test, on several ranks only with "
        "--extended (scripts/test-slow): its MPI run is the part beyond the time budget",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip serial-only tests when running on several ranks; skip `extended` tests, and
    `extended_parallel` ones on several ranks, unless ``--extended`` is given
    (scripts/test-slow)."""
    if MPI.COMM_WORLD.size > 1:
        skip = pytest.mark.skip(reason="serial-only test (skip_in_parallel)")
        for item in items:
            if "skip_in_parallel" in item.keywords:
                item.add_marker(skip)
    if not config.getoption("--extended"):
        skip = pytest.mark.skip(reason="extended: run by scripts/test-slow (pytest --extended)")
        parallel = MPI.COMM_WORLD.size > 1
        for item in items:
            if "extended" in item.keywords or (parallel and "extended_parallel" in item.keywords):
                item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """On several ranks, a failure on one rank aborts the whole MPI job.

    Otherwise the other ranks would wait forever in the next collective (a hang, not a red
    test). The failure is printed first; the serial pass reports every failure in full.
    """
    report = yield
    comm = MPI.COMM_WORLD
    if comm.size > 1 and report.failed:
        sys.stderr.write(
            f"\n[rank {comm.rank}/{comm.size}] FAILED {item.nodeid} ({report.when}); "
            f"aborting the MPI job\n{report.longreprtext}\n"
        )
        sys.stderr.flush()
        sys.stdout.flush()
        comm.Abort(1)
    return report


@pytest.fixture
def comm() -> MPI.Comm:
    """The world communicator."""
    return MPI.COMM_WORLD


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    """A temporary directory made on rank 0 and shared by every rank."""
    comm = MPI.COMM_WORLD
    path = tempfile.mkdtemp(prefix="nhj-test-") if comm.rank == 0 else None
    path = comm.bcast(path, root=0)
    yield Path(path)
    comm.barrier()
    if comm.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def project_root() -> Path:
    """The repository root."""
    return ROOT


@pytest.fixture
def venv_bin() -> Path:
    """Directory of the running interpreter (where `mpirun` and `nhj` live in the venv)."""
    return Path(sys.executable).parent
