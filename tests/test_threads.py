"""One BLAS thread per process unless the environment sets another number (nhj/__init__.py).

Under mpirun every rank is a process, and OpenBLAS's default of a thread per core made the
exact propagator 5.7× slower on 2 ranks of a 2-core machine. The count is asked of the
OpenBLAS that numpy loaded, in a fresh interpreter (it is fixed when the library loads).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import nhj, ctypes, glob, os, numpy
here = os.path.dirname(numpy.__file__)
libs = glob.glob(os.path.join(here, os.pardir, "numpy.libs", "*openblas*"))
count = None
for lib in libs:
    for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                 "openblas_get_num_threads"):
        f = getattr(ctypes.CDLL(lib), name, None)
        if f is not None:
            count = f()
print(os.environ["OPENBLAS_NUM_THREADS"], count)
"""


def blas_threads(**env: str) -> tuple[str, int | None]:
    base = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    return out[0], None if out[1] == "None" else int(out[1])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: one thread either way")
def test_one_blas_thread_by_default_and_the_environment_wins() -> None:
    variable, count = blas_threads()
    assert variable == "1"
    if count is not None:  # numpy's own OpenBLAS (the PyPI wheel): its count, not only the variable
        assert count == 1
    variable, count = blas_threads(OPENBLAS_NUM_THREADS="2")
    assert variable == "2"
    if count is not None:
        assert count == 2
