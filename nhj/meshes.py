"""Meshes of trainable space: built-in boxes and gmsh geometries.

``[mesh]`` in a case is either a built-in interval/rectangle/box, or a gmsh
``.geo`` file (in ``meshes/`` or next to the case) meshed on demand at size
``h``: rank 0 runs gmsh in memory and DOLFINx distributes the mesh over the
ranks. No ``.msh`` file is ever written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
from dolfinx import mesh

from nhj.schema import (
    CaseError,
    as_float,
    as_floats,
    as_int,
    as_str,
    as_table,
    check_keys,
    join,
    require,
)

MESH_DIR = Path(__file__).resolve().parents[1] / "meshes"
TYPES = {"interval": 1, "rectangle": 2, "box": 3, "gmsh": None}
CELLS = {
    "interval": {"interval": mesh.CellType.interval},
    "rectangle": {"triangle": mesh.CellType.triangle,
                  "quadrilateral": mesh.CellType.quadrilateral},
    "box": {"tetrahedron": mesh.CellType.tetrahedron, "hexahedron": mesh.CellType.hexahedron},
}
S = "mesh"


@dataclass(frozen=True)
class MeshSpec:
    """A validated ``[mesh]`` table.

    Attributes:
        type: interval, rectangle, box or gmsh.
        lower: Lower corner (built-ins).
        upper: Upper corner (built-ins).
        cells: Cells per direction (built-ins).
        cell: Cell type name (built-ins; default simplices).
        file: The .geo file (gmsh), absolute.
        size: Characteristic mesh size h (gmsh).
        parameters: Values for the .geo's DefineConstant numbers (gmsh).
        gmsh_dim: Dimension of the gmsh geometry (read from the .geo file).
    """

    type: str
    lower: tuple[float, ...] = ()
    upper: tuple[float, ...] = ()
    cells: tuple[int, ...] = ()
    cell: str | None = None
    file: Path | None = None
    size: float | None = None
    parameters: Mapping[str, float] = field(default_factory=dict)
    gmsh_dim: int = 2

    @classmethod
    def from_table(cls, t: Mapping[str, Any], base_dir: Path) -> MeshSpec:
        """Validate [mesh]; relative gmsh files resolve against base_dir, then meshes/."""
        kind = as_str(require(t, "type", S), join(S, "type"), TYPES)
        if kind == "gmsh":
            check_keys(t, ("type", "file", "size", "parameters"), S)
            path = resolve_geo(as_str(require(t, "file", S), join(S, "file")), base_dir)
            params = as_table(t.get("parameters", {}), join(S, "parameters"))
            return cls(
                kind,
                file=path,
                size=as_float(require(t, "size", S), join(S, "size"), positive=True),
                parameters={k: as_float(v, join(S, f"parameters.{k}")) for k, v in params.items()},
                gmsh_dim=geo_dimension(path),
            )
        check_keys(t, ("type", "lower", "upper", "cells", "cell"), S)
        dim = TYPES[kind]
        lower = as_floats(require(t, "lower", S), join(S, "lower"), dim)
        upper = as_floats(require(t, "upper", S), join(S, "upper"), dim)
        if any(a >= b for a, b in zip(lower, upper, strict=True)):
            raise CaseError(join(S, "upper"), f"must exceed mesh.lower in every entry; "
                            f"got lower={list(lower)}, upper={list(upper)}")
        cells = require(t, "cells", S)
        if not isinstance(cells, list) or len(cells) != dim:
            raise CaseError(join(S, "cells"), f"must be a list of {dim} integers >= 1")
        cells = tuple(as_int(c, f"{join(S, 'cells')}[{i}]", lo=1) for i, c in enumerate(cells))
        cell = t.get("cell")
        if cell is not None:
            as_str(cell, join(S, "cell"), CELLS[kind])
        return cls(kind, lower, upper, cells, cell)

    @property
    def dim(self) -> int:
        """Dimension K of trainable space."""
        return self.gmsh_dim if self.type == "gmsh" else TYPES[self.type]  # type: ignore[return-value]


def resolve_geo(name: str, base_dir: Path) -> Path:
    """The .geo file for ``name``: next to the case, then in meshes/, bare names allowed."""
    candidates = []
    for root in (base_dir, MESH_DIR):
        for n in (name, f"{name}.geo"):
            candidates.append((root / n).resolve())
    for c in candidates:
        if c.is_file() and c.suffix == ".geo":
            return c
    shipped = ", ".join(sorted(p.name for p in MESH_DIR.glob("*.geo")))
    raise CaseError(join(S, "file"), f"file not found: {name!r} (looked next to the case and in "
                    f"meshes/); give a .geo file, e.g. one of: {shipped}")


def geo_dimension(path: Path) -> int:
    """The highest dimension with a Physical group in a .geo file (2 or 3)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return 3 if "Physical Volume" in text else 2


def build_mesh(spec: MeshSpec, comm: MPI.Comm) -> mesh.Mesh:
    """Create the (distributed) mesh of ``spec``."""
    if spec.type == "gmsh":
        return _gmsh_mesh(spec, comm)
    ghost = mesh.GhostMode.shared_facet
    if spec.type == "interval":
        return mesh.create_interval(comm, spec.cells[0], [spec.lower[0], spec.upper[0]],
                                    ghost_mode=ghost)
    default = "triangle" if spec.type == "rectangle" else "tetrahedron"
    ct = CELLS[spec.type][spec.cell or default]
    create = mesh.create_rectangle if spec.type == "rectangle" else mesh.create_box
    return create(comm, [np.array(spec.lower), np.array(spec.upper)], list(spec.cells),
                  cell_type=ct, ghost_mode=ghost)


def _gmsh_mesh(spec: MeshSpec, comm: MPI.Comm) -> mesh.Mesh:
    import gmsh
    from dolfinx.io import gmsh as gmshio

    error = None
    if comm.rank == 0:
        if not gmsh.isInitialized():
            gmsh.initialize(interruptible=False)
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.clear()
        try:
            numbers = {"h": float(spec.size), **spec.parameters}  # type: ignore[arg-type]
            for k, v in numbers.items():
                gmsh.onelab.setNumber(f"Parameters/{k}", [v])
            gmsh.open(str(spec.file))
            gmsh.model.mesh.generate(spec.gmsh_dim)
        except Exception as e:  # gmsh raises plain Exception with its own message
            error = f"gmsh failed on {spec.file}: {e}".replace("\n", " ")
    error = comm.bcast(error, root=0)
    if error is not None:
        if comm.rank == 0:
            gmsh.finalize()
        raise CaseError(join(S, "file"), error)
    data = gmshio.model_to_mesh(gmsh.model if comm.rank == 0 else None, comm, 0,
                                gdim=spec.gmsh_dim)
    if comm.rank == 0:
        gmsh.finalize()
    return data.mesh


def boundary_facets(msh: mesh.Mesh) -> np.ndarray:
    """Local indices of the exterior facets (creates the needed connectivity)."""
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    return mesh.exterior_facet_indices(msh.topology)
