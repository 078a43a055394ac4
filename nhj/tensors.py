"""Case tensors (K×K tables of numbers or expressions in x) as UFL and numpy.

A leaf module: the metric g_{μν} and the noise tensor κ_{μν} of a case are
given as tables whose entries are numbers or parsed expressions in the
trainable variables x0, x1, x2. The same table is turned into a UFL matrix
for the forms and evaluated at points for checks and particle references, so
both are one function.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ufl

from nhj.expressions import to_numpy, to_ufl
from nhj.schema import CaseError

Entries = tuple[tuple[Any, ...], ...]


def coordinate_names(dim: int) -> tuple[str, ...]:
    """Names of the trainable variables in expressions: x0, x1, x2."""
    return tuple(f"x{i}" for i in range(dim))


def coordinates(msh: Any, dim: int) -> dict[str, Any]:
    """x0, x1, x2 as UFL coordinates of ``msh``."""
    x = ufl.SpatialCoordinate(msh)
    return {n: x[i] for i, n in enumerate(coordinate_names(dim))}


def tensor_at(entries: Entries, points: np.ndarray) -> np.ndarray:
    """A case tensor at points of shape (n, K): values of shape (n, K, K)."""
    dim = len(entries)
    env = {n: points[:, i] for i, n in enumerate(coordinate_names(dim))}
    T = np.empty((points.shape[0], dim, dim))
    for i, row in enumerate(entries):
        for j, e in enumerate(row):
            T[:, i, j] = e if isinstance(e, float) else to_numpy(e, env)
    return T


def tensor_ufl(entries: Entries, msh: Any) -> Any:
    """A case tensor as a UFL matrix on ``msh``."""
    env = coordinates(msh, len(entries))
    return ufl.as_matrix(
        [[e if isinstance(e, float) else to_ufl(e, env) for e in row] for row in entries]
    )


def is_constant(entries: Entries | None) -> bool:
    """Whether every entry is a number (None, the identity, counts as constant)."""
    return entries is None or all(isinstance(e, float) for row in entries for e in row)


def check_spd(entries: Entries, msh: Any, field_name: str) -> None:
    """Raise CaseError unless the tensor is SPD at every mesh point (collective)."""
    dim = msh.geometry.dim
    pts = msh.geometry.x[:, :dim]
    where = ""
    if len(pts):
        with np.errstate(all="ignore"):
            T = tensor_at(entries, pts)
        good = np.all(np.isfinite(T), axis=(1, 2))
        good[good] = np.linalg.eigvalsh(T[good])[:, 0] > 0
        if not good.all():
            where = f" (e.g. at x = {np.round(pts[np.argmin(good)], 4).tolist()})"
    where = max(msh.comm.allgather(where), key=len)
    if where:
        raise CaseError(
            field_name, "must be symmetric positive definite at every mesh point" + where
        )


def flat_frame(entries: Entries | None) -> np.ndarray | None:
    """L with Lᵀ L = g for a constant metric (the coordinates y = L x where g is flat).

    None for the flat metric and for a position-dependent one.
    """
    if entries is None or not is_constant(entries):
        return None
    return np.linalg.cholesky(np.array(entries, dtype=float)).T


def sqrt_det_at(entries: Entries | None, x: np.ndarray) -> np.ndarray | float:
    """√g at points x of shape (3, n), as DOLFINx interpolation passes them."""
    if entries is None:
        return 1.0
    G = tensor_at(entries, x[: len(entries)].T)
    return np.sqrt(np.linalg.det(G))
