"""The case side of ``scheme = "exponential"``: which cases separate, and each axis's line.

The exact propagator (nhj/separable.py) needs the operator to be a Kronecker sum of the
same equation's 1D operators. The space is then a tensor product: an interval, or a
rectangle or box of quadrilaterals or hexahedra (Q_k nodes are products of 1D nodes).
In 2D/3D the coefficients must not couple the axes: a constant diagonal metric here, and
the equation's own terms in its builder (a harmonic V, a quadratic loss, a diagonal κ).
"""

from __future__ import annotations

from typing import Any

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import mesh

from nhj.builders.common import make_metric
from nhj.covariant import Metric
from nhj.schema import CaseError
from nhj.sections import Case

TENSOR_CELLS = ("quadrilateral", "hexahedron")
#: Nodes per axis the exact propagator accepts: it keeps dense n×n factors (three complex
#: ones, 16 n² bytes each: 0.4 GB at 3000) and solves a dense eigenproblem, O(n³) (seconds
#: at 3000, hours at 4·10⁴, where a fine 1D mesh would otherwise take the machine down).
MAX_AXIS_NODES = 3000


def diagonal(entries: Any, dim: int) -> bool:
    """Whether a case tensor is constant and diagonal (None, the identity, counts)."""
    if entries is None:
        return True
    numbers = all(isinstance(e, float) for row in entries for e in row)
    return numbers and all(entries[i][j] == 0 for i in range(dim) for j in range(dim) if i != j)


def check_separable(case: Case) -> None:
    """The mesh and metric side of a separable case (CaseError naming the field otherwise)."""
    name, msh = case.discretisation.scheme, case.mesh
    if msh.type != "interval" and not (
        msh.type in ("rectangle", "box") and msh.cell in TENSOR_CELLS
    ):
        raise CaseError(
            "mesh",
            f"scheme {name!r} needs a tensor-product mesh: type 'interval', or 'rectangle'/'box' "
            f"with cell = 'quadrilateral'/'hexahedron' (got type {msh.type!r}, cell {msh.cell!r})",
        )
    nodes = [case.discretisation.degree * n + 1 for n in msh.cells]
    if max(nodes) > MAX_AXIS_NODES:
        raise CaseError(
            "mesh.cells",
            f"scheme {name!r} keeps a dense matrix per axis: at most {MAX_AXIS_NODES} nodes per "
            f"axis (degree x cells + 1), got {max(nodes)}; use fewer cells or gauss3",
        )
    if case.dim > 1 and not diagonal(case.metric.entries, case.dim):
        raise CaseError(
            "metric.g",
            f"scheme {name!r} in {case.dim}D needs a constant diagonal metric (or none)",
        )


def axis_lines(case: Case) -> list[tuple[Any, Metric, Any]]:
    """(1D mesh, its metric, y_i = √g_ii x_i) of each axis, on COMM_SELF.

    Every rank holds the factors whole (they are small). In 1D the line is the case's own
    interval with the case's metric, which may vary; in 2D/3D axis i carries g_ii.
    """
    spec, degree = case.mesh, case.discretisation.degree
    lines = []
    for i in range(case.dim):
        line = mesh.create_interval(MPI.COMM_SELF, spec.cells[i], [spec.lower[i], spec.upper[i]])
        x = ufl.SpatialCoordinate(line)[0]
        if case.dim == 1:
            lines.append((line, make_metric(case.metric, line, 2 * degree + 4), x))
            continue
        g = 1.0 if case.metric.entries is None else float(case.metric.entries[i][i])
        lines.append((line, Metric.from_matrix(line, np.array([[g]])), np.sqrt(g) * x))
    return lines
