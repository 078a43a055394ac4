"""nhj: finite elements for the PDEs of geometric learning dynamics.

The equations are those of ``docs/theory.md`` (Vanchurin, *Geometric Learning
Dynamics*, arXiv:2504.14728): Schrödinger (3.11), Madelung (3.7)-(3.9), neural
Hamilton-Jacobi (5.2)-(5.3) and covariant Fokker-Planck (2.7).
"""

from __future__ import annotations

try:  # The PyPI DOLFINx wheel must order MPI before dolfinx/petsc4py/slepc4py.
    import dolfinx_solver  # noqa: F401
except ImportError:  # conda or Docker DOLFINx: nothing to order
    pass

__version__ = "0.1.0"
