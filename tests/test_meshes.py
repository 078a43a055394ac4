"""Built-in and gmsh meshes: measure, distribution over ranks, validation messages."""

from __future__ import annotations

import nhj  # noqa: F401

from mpi4py import MPI

from pathlib import Path

import numpy as np
import pytest
import ufl
from dolfinx import fem

from nhj.meshes import MeshSpec, build_mesh
from nhj.schema import CaseError


def measure(msh) -> float:
    """∫ 1 dx over the distributed mesh."""
    one = fem.Constant(msh, 1.0)
    return msh.comm.allreduce(fem.assemble_scalar(fem.form(one * ufl.dx(domain=msh))), op=MPI.SUM)


@pytest.mark.mpi
@pytest.mark.parametrize(
    "table, volume",
    [
        ({"type": "interval", "lower": [-1.0], "upper": [2.0], "cells": [7]}, 3.0),
        ({"type": "rectangle", "lower": [0.0, -1.0], "upper": [2.0, 1.5], "cells": [3, 4],
          "cell": "quadrilateral"}, 5.0),
        ({"type": "box", "lower": [0.0, 0.0, 0.0], "upper": [1.0, 2.0, 0.5], "cells": [2, 2, 2]}, 1.0),
    ],
)
def test_builtin_measure(table: dict, volume: float) -> None:
    """The built-in domains have the measure of their box."""
    spec = MeshSpec.from_table(table, Path("."))
    msh = build_mesh(spec, MPI.COMM_WORLD)
    assert msh.geometry.dim == spec.dim == len(table["lower"])
    assert measure(msh) == pytest.approx(volume, rel=1e-12)


@pytest.mark.mpi
def test_disk_area_converges() -> None:
    """The polygonal disk's area deficit is O(h²) and shrinks with h (inscribed polygon)."""
    R = 2.0
    deficits = []
    for h in (0.4, 0.2):
        spec = MeshSpec.from_table({"type": "gmsh", "file": "disk", "size": h,
                                    "parameters": {"R": R}}, Path("."))
        deficits.append((np.pi * R**2 - measure(build_mesh(spec, MPI.COMM_WORLD))) / (np.pi * R**2))
    assert 0 < deficits[1] < deficits[0] < 2 * (0.4 / R) ** 2
    assert deficits[0] / deficits[1] > 3.0  # second order in h


@pytest.mark.mpi
def test_double_slit_is_the_polygon() -> None:
    """Rectangle minus the wall, plus the two slits: exact polygon area; non-convex."""
    spec = MeshSpec.from_table({"type": "gmsh", "file": "double_slit.geo", "size": 0.4},
                               Path("."))
    msh = build_mesh(spec, MPI.COMM_WORLD)
    L, W, T, D = 8.0, 6.0, 0.4, 0.8
    assert measure(msh) == pytest.approx(4 * L * W - T * (2 * W - 2 * D), rel=1e-10)
    # no vertex lies strictly inside the wall (between the slits): the domain is non-convex
    x = msh.geometry.x
    inside_wall = (np.abs(x[:, 0]) < T / 2 - 1e-9) & (np.abs(x[:, 1]) < 1.5 - D / 2 - 1e-9)
    assert not msh.comm.allreduce(bool(inside_wall.any()), op=MPI.LOR)


@pytest.mark.parametrize(
    "table, field",
    [
        ({"type": "rectangle", "lower": [0, 0], "upper": [1, 1], "cells": [2, 2], "nx": 3}, "mesh.nx"),
        ({"type": "sphere"}, "mesh.type"),
        ({"type": "rectangle", "lower": [0, 0], "upper": [1, 1], "cells": [2]}, "mesh.cells"),
        ({"type": "rectangle", "lower": [0, 0], "upper": [1, 1], "cells": [2, 0]}, "mesh.cells[1]"),
        ({"type": "rectangle", "lower": [0, 0], "upper": [1, 1], "cells": [2, 2],
          "cell": "hexahedron"}, "mesh.cell"),
        ({"type": "interval", "lower": [1.0], "upper": [1.0], "cells": [2]}, "mesh.upper"),
        ({"type": "interval", "lower": "0", "upper": [1.0], "cells": [2]}, "mesh.lower"),
        ({"type": "gmsh", "file": "missing.geo", "size": 0.1}, "mesh.file"),
        ({"type": "gmsh", "file": "disk.geo", "size": -0.1}, "mesh.size"),
        ({"type": "gmsh", "file": "disk.geo"}, "mesh.size"),
    ],
)
def test_bad_specs(table: dict, field: str) -> None:
    """Each bad [mesh] names its field in one line."""
    with pytest.raises(CaseError) as err:
        MeshSpec.from_table(table, Path("."))
    assert str(err.value).startswith(field + ":") and "\n" not in str(err.value)
