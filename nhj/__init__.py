"""nhj: finite elements for the PDEs of geometric learning dynamics.

The equations are those of ``docs/theory.md`` (Vanchurin, *Geometric Learning
Dynamics*, arXiv:2504.14728): Schrödinger (3.11), Madelung (3.7)-(3.9), neural
Hamilton-Jacobi (5.2)-(5.3) and covariant Fokker-Planck (2.7).
"""

from __future__ import annotations

import os

# One BLAS thread per process unless the environment says otherwise: nhj's parallelism is
# MPI, and OpenBLAS's default of a thread per core oversubscribes the cores under mpirun.
# The exact propagator's dense products (nhj/separable.py) took 4.3 s instead of 0.76 s
# for cases/coherent_2d_exact_time.toml on 2 ranks of a 2-core machine, with no loss
# serially. Read when numpy loads OpenBLAS, so it must come first.
for _threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

try:  # The PyPI DOLFINx wheel must order MPI before dolfinx/petsc4py/slepc4py.
    import dolfinx_solver  # noqa: F401
except ImportError:  # conda or Docker DOLFINx: nothing to order
    pass

__version__ = "0.1.0"
