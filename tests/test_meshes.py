"""Meshes: measures of built-in and gmsh domains over ranks, gmsh handling, validation."""

from __future__ import annotations

import nhj  # noqa: F401  (orders MPI before dolfinx for the PyPI wheel)

# isort: split
import math
from pathlib import Path

from mpi4py import MPI

import gmsh
import numpy as np
import pytest
import ufl
from dolfinx import fem, geometry, mesh

from nhj.meshes import MESH_DIR, MeshSpec, boundary_facets, build_mesh
from nhj.schema import CaseError

HERE = Path(__file__).resolve().parent
COMM = MPI.COMM_WORLD

# double_slit.geo defaults: half-length, half-width, wall thickness, slit width, slit centre
L, W, T, D, Y = 8.0, 6.0, 0.4, 0.8, 1.5


def integral(msh: mesh.Mesh, measure: ufl.Measure) -> float:
    """∫ 1 over the distributed mesh with ``measure`` (dx or ds), summed over ranks."""
    form = fem.form(fem.Constant(msh, 1.0) * measure(domain=msh))
    return msh.comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM)


def gmsh_mesh(file: str, size: float, base_dir: Path = HERE, **parameters: float) -> mesh.Mesh:
    """Build a gmsh mesh from a [mesh] table on all ranks."""
    table = {"type": "gmsh", "file": file, "size": size, "parameters": parameters}
    return build_mesh(MeshSpec.from_table(table, base_dir), COMM)


def contains(msh: mesh.Mesh, points: np.ndarray) -> np.ndarray:
    """Whether each point lies in some cell of the mesh, on any rank."""
    x = np.zeros((len(points), 3))
    x[:, : points.shape[1]] = points
    tree = geometry.bb_tree(msh, msh.topology.dim)
    cells = geometry.compute_colliding_cells(msh, geometry.compute_collisions_points(tree, x), x)
    found = np.array([len(cells.links(i)) for i in range(len(x))])
    return msh.comm.allreduce(found, op=MPI.SUM) > 0


def write_shared(path: Path, text: str) -> Path:
    """Write a file on rank 0 that every rank then reads."""
    if COMM.rank == 0:
        path.write_text(text)
    COMM.barrier()
    return path


INTERVAL = {"type": "interval", "lower": [-1.0], "upper": [2.0], "cells": [7]}
RECTANGLE = {"type": "rectangle", "lower": [0.0, -1.0], "upper": [2.0, 1.5], "cells": [3, 4]}
BOX = {"type": "box", "lower": [0.0, 0.0, 0.0], "upper": [1.0, 2.0, 0.5], "cells": [2, 3, 1]}


@pytest.mark.mpi
@pytest.mark.parametrize(
    "table, volume, boundary, facets",
    [
        (INTERVAL, 3.0, 2.0, 2),
        (RECTANGLE, 5.0, 9.0, 2 * (3 + 4)),
        ({**RECTANGLE, "cell": "quadrilateral"}, 5.0, 9.0, 2 * (3 + 4)),
        (BOX, 1.0, 7.0, 2 * 2 * (2 * 3 + 2 * 1 + 3 * 1)),  # two triangles per square face
        ({**BOX, "cell": "hexahedron"}, 1.0, 7.0, 2 * (2 * 3 + 2 * 1 + 3 * 1)),
    ],
)
def test_builtin_measure(table: dict, volume: float, boundary: float, facets: int) -> None:
    """Built-in domains have their box's measure, boundary measure and boundary facet count."""
    spec = MeshSpec.from_table(table, HERE)
    msh = build_mesh(spec, COMM)
    assert msh.topology.dim == msh.geometry.dim == spec.dim == len(table["lower"])
    assert integral(msh, ufl.dx) == pytest.approx(volume, rel=1e-12)
    assert integral(msh, ufl.ds) == pytest.approx(boundary, rel=1e-12)
    # boundary_facets gives owned facets only, so the sum over ranks counts each once
    assert COMM.allreduce(len(boundary_facets(msh)), op=MPI.SUM) == facets


@pytest.mark.mpi
def test_disk_area_converges() -> None:
    """The disk's area deficit is positive, below 2 (h/R)², and O(h²).

    gmsh puts the boundary nodes on the circle, so the mesh is the inscribed polygon. A
    chord of length c cuts off a segment of area c³/(12R); about 2πR/c chords give a
    deficit of π c²/6, i.e. (c/R)²/6 relative to πR². 2 (h/R)² is a bound as long as
    the boundary edges are shorter than √12 h ≈ 3.5 h, and halving h quarters the deficit.
    """
    R = 2.0
    deficits = []
    for h in (0.4, 0.2, 0.1):
        msh = gmsh_mesh("disk", h, R=R)
        assert msh.topology.dim == msh.geometry.dim == 2
        deficit = 1 - integral(msh, ufl.dx) / (math.pi * R**2)
        assert 0 < deficit < 2 * (h / R) ** 2
        assert 0 < 1 - integral(msh, ufl.ds) / (2 * math.pi * R) < 2 * (h / R) ** 2
        deficits.append(deficit)
    rates = np.log2(np.array(deficits[:-1]) / deficits[1:])
    assert np.all(rates > 1.6), rates


@pytest.mark.mpi
def test_disk_default_radius() -> None:
    """Without mesh.parameters the .geo default R = 5 applies, whatever an earlier mesh set."""
    gmsh_mesh("disk.geo", 1.0, R=2.0)
    area = integral(gmsh_mesh("disk.geo", 0.5), ufl.dx)
    assert 0 < 1 - area / (25 * math.pi) < 2 * (0.5 / 5) ** 2


@pytest.mark.mpi
@pytest.mark.parametrize("parameters", [{}, {"T": 1.0, "D": 1.2, "Y": 2.0, "W": 5.0}])
def test_double_slit_is_the_polygon(parameters: dict[str, float]) -> None:
    """Rectangle minus the wall plus the slits, exactly (polygonal); non-convex."""
    msh = gmsh_mesh("double_slit", 0.4, **parameters)
    w, t, d, y = (parameters.get(k, v) for k, v in {"W": W, "T": T, "D": D, "Y": Y}.items())
    below = w - y - d / 2  # height of the wall piece below the lower slit (and above the upper)
    between = 2 * y - d  # height of the wall piece between the slits
    assert integral(msh, ufl.dx) == pytest.approx(4 * L * w - t * (2 * w - 2 * d), rel=1e-10)
    # outer rectangle, less the wall's ends at y = ±W, plus the wall's sides and slit faces
    perimeter = 4 * L + 4 * w - 2 * t + 2 * (2 * below + t) + 2 * between + 2 * t
    assert integral(msh, ufl.ds) == pytest.approx(perimeter, rel=1e-10)
    # (±1, 0) are in the domain but their midpoint (0, 0) is in the wall: non-convex
    inside = [[-1.0, 0.0], [1.0, 0.0], [0.0, y], [0.0, -y]]  # either side, and in the slits
    wall = [[0.0, 0.0], [0.0, (y + w) / 2], [0.0, -(y + w) / 2]]
    assert contains(msh, np.array(inside + wall)).tolist() == [True] * 4 + [False] * 3


@pytest.mark.mpi
def test_ghosted_in_parallel() -> None:
    """Built-in and gmsh meshes alike ghost the cells across process boundaries."""
    for msh in (build_mesh(MeshSpec.from_table(RECTANGLE, HERE), COMM), gmsh_mesh("disk", 0.5)):
        ghosts = msh.topology.index_map(msh.topology.dim).num_ghosts
        assert (ghosts > 0) == (COMM.size > 1)


@pytest.mark.mpi
def test_gmsh_quiet_and_in_memory(capfd: pytest.CaptureFixture[str]) -> None:
    """Meshing prints nothing and writes no .msh file."""

    def msh_files() -> set[Path]:
        return {*MESH_DIR.glob("*.msh"), *HERE.glob("*.msh"), *Path.cwd().glob("*.msh")}

    before = msh_files()
    gmsh_mesh("disk", 0.5)
    out, err = capfd.readouterr()
    assert out == err == ""
    assert msh_files() == before


@pytest.mark.mpi
def test_gmsh_session_of_the_caller_stays_open() -> None:
    """An already initialized gmsh is reused, not initialized twice or finalized."""
    if COMM.rank == 0:
        gmsh.initialize(readConfigFiles=False)
        gmsh.option.setNumber("General.Terminal", 0)
    try:
        msh = gmsh_mesh("disk", 0.5, R=1.0)
        assert 0 < 1 - integral(msh, ufl.dx) / math.pi < 2 * 0.5**2
        if COMM.rank == 0:
            assert gmsh.isInitialized()
            assert gmsh.onelab.getNames("Parameters/.*") == []
    finally:
        if COMM.rank == 0:
            gmsh.finalize()


SQUARE_GEO = """DefineConstant[ h = {0.5, Name "Parameters/h"} ];
SetFactory("OpenCASCADE");
Rectangle(1) = {0, 0, 0, 1, 1};
Physical Surface("domain", 1) = {1};  // not a Physical Volume
Mesh.MeshSizeMax = h;
"""

BOX_GEO = """DefineConstant[ h = {0.5, Name "Parameters/h"} ];
DefineConstant[ a = {1, Name "Parameters/a"} ];
SetFactory("OpenCASCADE");
Box(1) = {0, 0, 0, a, 2, 3};
Physical Volume("domain", 1) = {1};
Mesh.MeshSizeMax = h;
"""


@pytest.mark.mpi
def test_geo_next_to_the_case_first(tmp_dir: Path) -> None:
    """A relative file resolves against the case's directory before meshes/."""
    square = write_shared(tmp_dir / "disk.geo", SQUARE_GEO)
    spec = MeshSpec.from_table({"type": "gmsh", "file": "disk", "size": 0.5}, tmp_dir)
    assert spec.file == square.resolve() and spec.dim == 2
    assert integral(build_mesh(spec, COMM), ufl.dx) == pytest.approx(1.0, rel=1e-12)
    spec = MeshSpec.from_table({"type": "gmsh", "file": "double_slit", "size": 1.0}, tmp_dir)
    assert spec.file == MESH_DIR / "double_slit.geo"
    spec = MeshSpec.from_table({"type": "gmsh", "file": str(square), "size": 1.0}, HERE)
    assert spec.file == square.resolve()


@pytest.mark.mpi
def test_gmsh_3d(tmp_dir: Path) -> None:
    """A .geo with a Physical Volume gives a 3D mesh with its parameters applied."""
    write_shared(tmp_dir / "box.geo", BOX_GEO)
    spec = MeshSpec.from_table(
        {"type": "gmsh", "file": "box.geo", "size": 0.6, "parameters": {"a": 0.5}}, tmp_dir
    )
    msh = build_mesh(spec, COMM)
    assert spec.dim == msh.topology.dim == msh.geometry.dim == 3
    assert integral(msh, ufl.dx) == pytest.approx(3.0, rel=1e-10)
    assert COMM.allreduce(len(boundary_facets(msh)), op=MPI.SUM) > 0


@pytest.mark.mpi
def test_broken_geo_fails_on_every_rank(tmp_dir: Path) -> None:
    """A .geo gmsh cannot read is a CaseError on all ranks, not a hang."""
    write_shared(tmp_dir / "bad.geo", SQUARE_GEO.replace("0, 0, 0, 1, 1", "0, 0, 0, 1, Q"))
    spec = MeshSpec.from_table({"type": "gmsh", "file": "bad", "size": 0.5}, tmp_dir)
    with pytest.raises(CaseError, match=r"^mesh\.file: gmsh failed on .*Unknown variable 'Q'"):
        build_mesh(spec, COMM)
    # and the next mesh is unaffected
    assert integral(gmsh_mesh("disk", 1.0, R=1.0), ufl.dx) > 2.0


GMSH = {"type": "gmsh", "file": "disk.geo", "size": 0.5}


@pytest.mark.parametrize(
    "table, field",
    [
        ({**RECTANGLE, "nx": 3}, "mesh.nx"),
        ({"lower": [0.0]}, "mesh.type"),
        ({"type": "sphere"}, "mesh.type"),
        ({"type": 2}, "mesh.type"),
        ({**RECTANGLE, "lower": "0"}, "mesh.lower"),
        ({**RECTANGLE, "lower": [0, 0, 0]}, "mesh.lower"),
        ({**RECTANGLE, "upper": [1, "a"]}, "mesh.upper[1]"),
        ({**RECTANGLE, "upper": [2.0, -1.0]}, "mesh.upper"),
        ({"type": "interval", "lower": [1.0], "upper": [1.0], "cells": [2]}, "mesh.upper"),
        ({**RECTANGLE, "cells": [2]}, "mesh.cells"),
        ({**RECTANGLE, "cells": 4}, "mesh.cells"),
        ({**RECTANGLE, "cells": [2, 0]}, "mesh.cells[1]"),
        ({**RECTANGLE, "cells": [2, 1.5]}, "mesh.cells[1]"),
        ({**RECTANGLE, "cell": "hexahedron"}, "mesh.cell"),
        ({**BOX, "cell": "triangle"}, "mesh.cell"),
        ({**BOX, "cells": [1, 1]}, "mesh.cells"),
        ({k: v for k, v in RECTANGLE.items() if k != "cells"}, "mesh.cells"),
        ({**GMSH, "cells": [2, 2]}, "mesh.cells"),
        ({**GMSH, "file": "missing.geo"}, "mesh.file"),
        ({**GMSH, "file": "test_meshes.py"}, "mesh.file"),
        ({**GMSH, "file": 3}, "mesh.file"),
        ({"type": "gmsh", "size": 0.1}, "mesh.file"),
        ({**GMSH, "size": -0.1}, "mesh.size"),
        ({**GMSH, "size": 0}, "mesh.size"),
        ({**GMSH, "size": "fine"}, "mesh.size"),
        ({"type": "gmsh", "file": "disk.geo"}, "mesh.size"),
        ({**GMSH, "parameters": 5}, "mesh.parameters"),
        ({**GMSH, "parameters": {"Q": 1.0}}, "mesh.parameters.Q"),
        ({**GMSH, "parameters": {"h": 1.0}}, "mesh.parameters.h"),
        ({**GMSH, "parameters": {"R": "big"}}, "mesh.parameters.R"),
        ({**RECTANGLE, "upper": [1e308, 1.0]}, "mesh.upper[0]"),
        ({**RECTANGLE, "lower": [-1e13, 0.0]}, "mesh.lower[0]"),
        ({"type": "support"}, "mesh.size"),
        ({"type": "support", "size": 0.0}, "mesh.size"),
        ({"type": "support", "size": 1.0, "tail": 0.5}, "mesh.tail"),
        ({"type": "support", "size": 1.0, "tail": 0.0}, "mesh.tail"),
        ({"type": "support", "size": 1.0, "file": "disk.geo"}, "mesh.file"),
        ({"type": "support", "size": 1.0, "cells": [4, 4]}, "mesh.cells"),
    ],
)
def test_bad_specs(table: dict, field: str) -> None:
    """Each bad [mesh] raises a one-line CaseError naming its field."""
    with pytest.raises(CaseError) as err:
        MeshSpec.from_table(table, HERE)
    assert err.value.field == field
    assert str(err.value).startswith(field + ": ") and "\n" not in str(err.value)


def test_missing_file_message() -> None:
    """A missing .geo says where it looked and what to give instead."""
    with pytest.raises(CaseError) as err:
        MeshSpec.from_table({**GMSH, "file": "nowhere"}, HERE)
    message = str(err.value)
    assert f"file not found: {HERE / 'nowhere.geo'}; give a .geo file" in message
    assert "double_slit" in message


def test_geo_without_size_or_physical_group(tmp_dir: Path) -> None:
    """A .geo must declare Parameters/h and a Physical group of the domain."""
    write_shared(tmp_dir / "no_h.geo", SQUARE_GEO.replace("Parameters/h", "Parameters/hh"))
    write_shared(tmp_dir / "no_group.geo", SQUARE_GEO.replace("Physical Surface", "// "))
    for name, reason in (("no_h", "declare the mesh size"), ("no_group", "no Physical")):
        with pytest.raises(CaseError, match=rf"^mesh\.file: .*{reason}"):
            MeshSpec.from_table({**GMSH, "file": name}, tmp_dir)
