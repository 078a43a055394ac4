"""Meshes of trainable space: built-in boxes and gmsh geometries.

``[mesh]`` in a case is either a built-in interval/rectangle/box, or a gmsh
``.geo`` file (next to the case or in ``meshes/``) meshed on demand at size
``h``: rank 0 runs gmsh in a subprocess bounded in time, memory and element
count (``mesh.max_seconds``, ``mesh.max_elements``), which writes a ``.msh``
into a private temporary directory; DOLFINx distributes that mesh over the
ranks. No ``.msh`` file is left behind.

A ``.geo`` file takes its numbers through ONELAB, e.g.
``DefineConstant[ R = {5, Name "Parameters/R"} ];``: ``mesh.size`` sets
``Parameters/h`` and each ``mesh.parameters`` entry sets ``Parameters/<name>``.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
from dolfinx import mesh

from nhj.geo_safety import check_geo
from nhj.safety import check_mesh_file
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
from nhj.support import TAIL

MESH_DIR = Path(__file__).resolve().parents[1] / "meshes"
"""Shipped ``.geo`` files, the second place a relative ``mesh.file`` is looked up."""

TYPES: dict[str, int | None] = {
    "interval": 1,
    "rectangle": 2,
    "box": 3,
    "gmsh": None,
    "support": 2,  # nhj.support: the sweep of the case's Gaussian state, meshed by gmsh
}
#: Largest |coordinate| of a built-in domain: its diameter and cell sizes stay finite in the
#: forms (1e308 made ν_h = ℓ²(h/ℓ)^{k+1} NaN, a C literal FFCx cannot compile).
MAX_COORDINATE = 1e12
#: mesh.tail of type "support": p/max p on its boundary, within these bounds.
TAIL_RANGE = (1e-14, 1e-2)
CELLS: dict[str, dict[str, mesh.CellType]] = {
    "interval": {"interval": mesh.CellType.interval},
    "rectangle": {
        "triangle": mesh.CellType.triangle,
        "quadrilateral": mesh.CellType.quadrilateral,
    },
    "box": {"tetrahedron": mesh.CellType.tetrahedron, "hexahedron": mesh.CellType.hexahedron},
}
DEFAULT_CELL = {"interval": "interval", "rectangle": "triangle", "box": "tetrahedron"}
SECTION = "mesh"
# ghost cells across shared facets, so interior-facet integrals see both sides in parallel
GHOST = mesh.GhostMode.shared_facet
ONELAB_PREFIX = "Parameters/"
MAX_ELEMENTS = 5_000_000
"""Default bound on the cells of a mesh (``mesh.max_elements`` raises it)."""
MAX_SECONDS = 300.0
"""Default bound on gmsh's meshing time in seconds (``mesh.max_seconds``)."""
MAX_DOFS = 20_000_000
"""Default bound on the degrees of freedom of a case (``mesh.max_dofs``, ``--max-dofs``)."""
SPLIT = {"interval": 1, "triangle": 2, "quadrilateral": 1, "tetrahedron": 6, "hexahedron": 1}
"""Cells of each built-in cell type per box of the ``cells`` grid."""

_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_PHYSICAL = re.compile(r"\bPhysical\s+(Point|Curve|Line|Surface|Volume)\b")
_PHYSICAL_DIM = {"Point": 0, "Curve": 1, "Line": 1, "Surface": 2, "Volume": 3}
_ONELAB_NAME = re.compile(r'\bName\s+"' + re.escape(ONELAB_PREFIX) + r'(\w+)"')


@dataclass(frozen=True)
class MeshSpec:
    """A validated ``[mesh]`` table.

    Attributes:
        type: ``"interval"``, ``"rectangle"``, ``"box"``, ``"gmsh"`` or ``"support"`` (the
            union of the case's Gaussian level sets p/max p = ``tail`` over the run,
            :mod:`nhj.support`, meshed by gmsh at ``size``).
        lower: Lower corner of a built-in domain, one entry per dimension.
        upper: Upper corner of a built-in domain, one entry per dimension.
        cells: Cells per direction of a built-in domain, each >= 1.
        cell: Cell type name of a built-in domain; None means simplices.
        file: Absolute path of the ``.geo`` file (gmsh).
        size: Characteristic mesh size h, passed as ``Parameters/h`` (gmsh).
        parameters: Overrides of the ``.geo``'s other DefineConstant numbers (gmsh).
        gmsh_dim: Dimension of the gmsh domain, that of its highest Physical group.
        max_elements: Bound on the number of cells (refused past it, before meshing
            where it can be estimated).
        max_seconds: Bound on gmsh's meshing time (gmsh).
        max_dofs: Bound on the degrees of freedom (:func:`dofs_estimate`), checked
            before the mesh is built where it can be, else right after.
        tail: p/max p on the boundary of a "support" domain.
        text: The .geo text of a "support" domain (set when the case is built, from its
            state; never from the case file).
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
    max_elements: int = MAX_ELEMENTS
    max_seconds: float = MAX_SECONDS
    max_dofs: int = MAX_DOFS
    tail: float = TAIL
    text: str | None = None

    @property
    def is_gmsh(self) -> bool:
        """Meshed by gmsh: a case's .geo, or a support domain's generated one."""
        return self.type in ("gmsh", "support")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], base_dir: Path) -> MeshSpec:
        """Validate a ``[mesh]`` table.

        Args:
            table: The parsed TOML table.
            base_dir: Directory of the case file; a relative ``file`` is looked up
                there first, then in ``meshes/``.

        Returns:
            The validated specification.

        Raises:
            CaseError: On the first invalid field, naming it as ``mesh.<field>``.
        """
        kind = as_str(require(table, "type", SECTION), join(SECTION, "type"), TYPES)
        limit = as_int(table.get("max_elements", MAX_ELEMENTS), join(SECTION, "max_elements"), lo=1)
        dofs = as_int(table.get("max_dofs", MAX_DOFS), join(SECTION, "max_dofs"), lo=1)
        if kind == "gmsh":
            return replace(cls._gmsh_from_table(table, base_dir, limit), max_dofs=dofs)
        if kind == "support":
            allowed = ("type", "size", "tail", "max_elements", "max_seconds", "max_dofs")
            check_keys(table, allowed, SECTION)
            lo, hi = TAIL_RANGE
            size = require(table, "size", SECTION)
            seconds = table.get("max_seconds", MAX_SECONDS)
            return cls(
                "support",
                size=as_float(size, join(SECTION, "size"), positive=True),
                tail=as_float(table.get("tail", TAIL), join(SECTION, "tail"), lo=lo, hi=hi),
                max_seconds=as_float(seconds, join(SECTION, "max_seconds"), positive=True),
                max_elements=limit,
                max_dofs=dofs,
            )
        keys = ("type", "lower", "upper", "cells", "cell", "max_elements", "max_dofs")
        check_keys(table, keys, SECTION)
        dim = TYPES[kind]
        assert dim is not None
        box = {"lo": -MAX_COORDINATE, "hi": MAX_COORDINATE}
        lower = as_floats(require(table, "lower", SECTION), join(SECTION, "lower"), dim, **box)
        upper = as_floats(require(table, "upper", SECTION), join(SECTION, "upper"), dim, **box)
        if any(a >= b for a, b in zip(lower, upper, strict=True)):
            raise CaseError(
                join(SECTION, "upper"),
                f"must exceed mesh.lower in every entry; got lower={list(lower)}, "
                f"upper={list(upper)}",
            )
        cells = require(table, "cells", SECTION)
        if not isinstance(cells, list) or len(cells) != dim:
            raise CaseError(
                join(SECTION, "cells"),
                f"must be a list of {dim} integer(s) >= 1 (one per dimension), got {cells!r}",
            )
        counts = tuple(
            as_int(n, f"{join(SECTION, 'cells')}[{i}]", lo=1) for i, n in enumerate(cells)
        )
        cell = table.get("cell")
        if cell is not None:
            cell = as_str(cell, join(SECTION, "cell"), CELLS[kind])
        n = math.prod(counts) * SPLIT[cell or DEFAULT_CELL[kind]]
        if n > limit:
            raise CaseError(
                join(SECTION, "cells"),
                f"{n:.3g} cells > mesh.max_elements = {limit}; use fewer cells or raise "
                "mesh.max_elements",
            )
        return cls(kind, lower, upper, counts, cell, max_elements=limit, max_dofs=dofs)

    @classmethod
    def _gmsh_from_table(cls, table: Mapping[str, Any], base_dir: Path, limit: int) -> MeshSpec:
        keys = ("type", "file", "size", "parameters", "max_elements", "max_seconds", "max_dofs")
        check_keys(table, keys, SECTION)
        seconds = as_float(
            table.get("max_seconds", MAX_SECONDS), join(SECTION, "max_seconds"), positive=True
        )
        path = resolve_geo(as_str(require(table, "file", SECTION), join(SECTION, "file")), base_dir)
        text = path.read_text(encoding="utf-8", errors="replace")
        check_geo(text, path)  # before gmsh ever sees it: a .geo is a scripting language
        declared = geo_parameters(text)
        if "h" not in declared:
            raise CaseError(
                join(SECTION, "file"),
                f"{path.name} does not declare the mesh size; add "
                f'DefineConstant[ h = {{0.1, Name "{ONELAB_PREFIX}h"}} ];',
            )
        size = as_float(require(table, "size", SECTION), join(SECTION, "size"), positive=True)
        extra = as_table(table.get("parameters", {}), join(SECTION, "parameters"))
        parameters: dict[str, float] = {}
        for name, value in extra.items():
            key = join(SECTION, f"parameters.{name}")
            if name == "h":
                raise CaseError(key, "set the mesh size with mesh.size instead")
            if name not in declared:
                names = ", ".join(sorted(declared - {"h"})) or "none"
                raise CaseError(key, f"not a parameter of {path.name}; it has: {names}")
            parameters[name] = as_float(value, key)
        return cls(
            "gmsh",
            file=path,
            size=size,
            parameters=parameters,
            gmsh_dim=geo_dimension(text, path),
            max_elements=limit,
            max_seconds=seconds,
        )

    @property
    def dim(self) -> int:
        """Dimension of the domain (and of its geometry), i.e. K."""
        dim = self.gmsh_dim if self.type == "gmsh" else TYPES[self.type]  # support: 2
        assert dim is not None
        return dim


def dofs_estimate(spec: MeshSpec, degree: int, components: int, cells: int | None = None) -> int:
    """Degrees of freedom of degree-k Lagrange elements with ``components`` per node.

    Exact for a built-in grid, (k n + 1)^K nodes; for a mesh of ``cells`` simplices
    cells × k^K / K! (a triangle mesh has about half as many vertices as cells, a
    tetrahedral one a sixth). 0 for a gmsh mesh not yet built.
    """
    if not spec.is_gmsh:
        return components * math.prod(degree * n + 1 for n in spec.cells)
    if cells is None:
        return 0
    return components * max(1, cells * degree**spec.dim // math.factorial(spec.dim))


def lu_bytes(dofs: int, dim: int, degree: int, components: int) -> float:
    """Rough memory of a direct LU factorisation (nested dissection fill, 8-byte entries).

    Factor entries per unknown: ~(dofs per cell row) in 1D, × log2 N in 2D, × N^(1/3)
    in 3D (the separators of nested dissection).
    """
    row = components * (degree + 1) ** dim
    fill = {1: 1.0, 2: max(1.0, math.log2(max(dofs, 2))), 3: max(1.0, dofs ** (1 / 3))}[dim]
    return 8.0 * dofs * row * fill


COMPONENTS = {"fokker_planck": 1, "langevin": 1}
"""Unknowns per node of an equation's space (2 otherwise: (ψ_r, ψ_i) or (R, S))."""


def check_dofs(spec: MeshSpec, degree: int, equation: str, cells: int | None = None) -> None:
    """Refuse a case whose dofs exceed ``spec.max_dofs``, with the memory LU would need.

    Raises:
        CaseError("mesh.max_dofs", ...): past the bound.
    """
    components = COMPONENTS.get(equation, 2)
    n = dofs_estimate(spec, degree, components, cells)
    if n <= spec.max_dofs:
        return
    gib = lu_bytes(n, spec.dim, degree, components) / 2**30
    raise CaseError(
        join(SECTION, "max_dofs"),
        f"about {n:.3g} degrees of freedom (a direct solve would need ~{gib:.3g} GiB) > "
        f"{spec.max_dofs}; coarsen the mesh or the degree, or raise mesh.max_dofs (--max-dofs)",
    )


def resolve_geo(name: str, base_dir: Path) -> Path:
    """Find the ``.geo`` file that ``mesh.file`` names.

    Args:
        name: An absolute or relative path, or a bare name such as ``"disk"``.
        base_dir: Directory of the case file, searched before ``meshes/``.

    Returns:
        The absolute path of an existing ``.geo`` file.

    Raises:
        CaseError: If no such file exists, or the file found is not a ``.geo``.
    """
    given = Path(name).expanduser()
    if not given.name:  # "", "." or "dir/": no file name to look up
        raise CaseError(join(SECTION, "file"), f"must name a .geo file, got {name!r}")
    names = [given] if given.suffix else [given.with_suffix(".geo"), given]
    for root in (base_dir, MESH_DIR):
        for n in names:
            path = (root / n).resolve()
            if path.is_file():
                if not given.is_absolute():
                    check_mesh_file(path, base_dir, MESH_DIR)
                if path.suffix != ".geo":
                    raise CaseError(
                        join(SECTION, "file"),
                        f"{path} is not a .geo file; nhj meshes gmsh geometries on demand "
                        "(no .msh input)",
                    )
                return path
    shipped = ", ".join(sorted(p.stem for p in MESH_DIR.glob("*.geo")))
    raise CaseError(
        join(SECTION, "file"),
        f"file not found: {(base_dir / names[0]).resolve()}; give a .geo file (relative to "
        f"the case file or meshes/), e.g. one of meshes/: {shipped}",
    )


def geo_parameters(text: str) -> set[str]:
    """Names ``x`` of the ``Name "Parameters/x"`` numbers a ``.geo`` text declares."""
    return set(_ONELAB_NAME.findall(_COMMENTS.sub("", text)))


def geo_dimension(text: str, path: Path) -> int:
    """Dimension of the highest Physical group in a ``.geo`` text.

    model_to_mesh builds the mesh from the cells of that dimension, so it is
    both the topological and the geometric dimension of the result.

    Raises:
        CaseError: If the file has no Physical group of dimension >= 1.
    """
    dims = [_PHYSICAL_DIM[kind] for kind in _PHYSICAL.findall(_COMMENTS.sub("", text))]
    if not dims or max(dims) == 0:
        raise CaseError(
            join(SECTION, "file"),
            f"{path.name} has no Physical Curve/Surface/Volume; DOLFINx meshes only "
            "the cells of physical groups",
        )
    return max(dims)


def build_mesh(spec: MeshSpec, comm: MPI.Comm) -> mesh.Mesh:
    """Create the mesh of ``spec``, distributed over ``comm``.

    Args:
        spec: A validated mesh specification.
        comm: The communicator; gmsh runs on its rank 0 only.

    Returns:
        A mesh whose geometric dimension equals its topological dimension.

    Raises:
        CaseError: If gmsh cannot read or mesh the ``.geo`` file.
    """
    if spec.is_gmsh:
        return _gmsh_mesh(spec, comm)
    if spec.type == "interval":
        return mesh.create_interval(
            comm, spec.cells[0], [spec.lower[0], spec.upper[0]], ghost_mode=GHOST
        )
    cell_type = CELLS[spec.type][spec.cell or DEFAULT_CELL[spec.type]]
    create = mesh.create_rectangle if spec.type == "rectangle" else mesh.create_box
    corners: list[Any] = [np.array(spec.lower), np.array(spec.upper)]
    return create(comm, corners, list(spec.cells), cell_type=cell_type, ghost_mode=GHOST)


@contextmanager
def _gmsh_session() -> Iterator[Any]:
    """A quiet, empty gmsh session; finalized afterwards if this call started it."""
    import gmsh

    # a caller's own gmsh session is reused (initialize() twice is an error) and left open
    started = not gmsh.isInitialized()
    if started:
        # no ~/.gmshrc, so meshes do not depend on the user; no SIGINT handler of gmsh's own
        gmsh.initialize(readConfigFiles=False, interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    try:
        # clear() also forgets .geo variables, which DefineConstant would otherwise keep
        gmsh.clear()
        _clear_parameters(gmsh)
        yield gmsh
    finally:
        if started:
            gmsh.finalize()
        else:
            gmsh.clear()
            _clear_parameters(gmsh)


def _clear_parameters(gmsh: Any) -> None:
    # ONELAB values outlive gmsh.clear(), and a stale one would override a .geo's default
    for name in gmsh.onelab.getNames(re.escape(ONELAB_PREFIX) + ".*"):
        gmsh.onelab.clear(name)


_WORKER = r"""
import json, resource, sys
geo, msh, job = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (job["memory"], job["memory"]))
import gmsh
gmsh.initialize(readConfigFiles=False, interruptible=False)
gmsh.option.setNumber("General.Terminal", 0)
for name, value in job["parameters"].items():
    gmsh.onelab.setNumber("Parameters/" + name, [value])
try:
    gmsh.merge(geo)
    dim, h, limit = job["dim"], job["size"], job["max_elements"]
    box = gmsh.model.getBoundingBox(-1, -1)
    extent = [max(box[3 + i] - box[i], 0.0) for i in range(3)]
    volume = 1.0
    for e in sorted(extent, reverse=True)[:dim]:
        volume *= max(e, h)
    estimate = {1: 1.0, 2: 2.3, 3: 6.0}[dim] * volume / h**dim
    if estimate > limit:
        print(json.dumps({"estimate": estimate}))
        sys.exit(3)
    gmsh.model.mesh.generate(dim)
    count = sum(len(tags) for tags in gmsh.model.mesh.getElements(dim)[1])
    if count > limit:
        print(json.dumps({"count": count}))
        sys.exit(3)
    if count == 0:
        print(json.dumps({"error": f"the mesh has no cells of dimension {dim}"}))
        sys.exit(1)
    gmsh.write(msh)
except MemoryError:
    print(json.dumps({"error": "out of memory"}))
    sys.exit(1)
except Exception as e:
    print(json.dumps({"error": " ".join(str(e).split())}))
    sys.exit(1)
"""


def _checked_copy(spec: MeshSpec, tmp: Path) -> Path:
    """A copy of the ``.geo`` as checked, in the empty directory ``tmp``.

    gmsh would also run a ``<name>.geo.opt`` beside the file, and the file may have
    changed since the case was loaded; the copy is the text that check_geo accepted.
    A support domain's text was generated by nhj and goes through the same check.
    """
    path = geo_name(spec)
    text = spec.text
    if text is None:
        text = path.read_text(encoding="utf-8", errors="replace")
    check_geo(text, path)
    copy = tmp / path.name
    copy.write_text(text, encoding="utf-8")
    return copy


def geo_name(spec: MeshSpec) -> Path:
    """The .geo file of a gmsh mesh, or the name a support domain's text goes by."""
    return spec.file if spec.file is not None else Path("support.geo")


def generate(spec: MeshSpec, tmp: Path) -> Path:
    """Mesh ``spec``'s ``.geo`` in a gmsh subprocess bounded in time, memory and size.

    The child estimates the element count from the bounding box and mesh.size before
    meshing, counts the elements after, and is killed past ``mesh.max_seconds``; its
    address space is limited too, so an endless or huge ``.geo`` ends with one line.
    Its environment has no MPI variables (it is not an MPI process).

    Returns:
        The ``.msh`` file written in ``tmp``.

    Raises:
        CaseError: Past a bound, or if gmsh fails on the file.
    """
    assert spec.size is not None
    if spec.type == "support" and spec.text is None:
        raise ValueError("a support domain's .geo is made from the case (nhj.builders.common)")
    geo, msh = _checked_copy(spec, tmp), tmp / "mesh.msh"
    name = geo_name(spec).name
    job = {
        "parameters": {"h": spec.size, **spec.parameters},
        "dim": spec.gmsh_dim,
        "size": spec.size,
        "max_elements": spec.max_elements,
        "memory": max(2 << 30, 2048 * spec.max_elements),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA", "MPI"))}
    field = join(SECTION, "file" if spec.type == "gmsh" else "size")
    try:
        r = subprocess.run(
            [sys.executable, "-I", "-c", _WORKER, str(geo), str(msh), json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=spec.max_seconds,
            env=env,
            cwd=tmp,
        )
    except subprocess.TimeoutExpired:
        raise CaseError(
            join(SECTION, "max_seconds"),
            f"gmsh did not finish {name} within {spec.max_seconds:g} s; "
            "increase mesh.size or mesh.max_seconds",
        ) from None
    lines = r.stdout.strip().splitlines()
    try:
        info = json.loads(lines[-1]) if lines else {}
    except ValueError:
        info = {}
    if "estimate" in info or "count" in info:
        n = info.get("count", info.get("estimate"))
        what = "has" if "count" in info else "would have about"
        raise CaseError(
            join(SECTION, "max_elements"),
            f"the mesh of {name} {what} {n:.3g} elements > {spec.max_elements}; "
            "increase mesh.size or raise mesh.max_elements",
        )
    if r.returncode != 0 or not msh.is_file():
        detail = info.get("error") or (r.stderr.strip().splitlines() or ["killed"])[-1]
        raise CaseError(field, f"gmsh failed on {spec.file or name}: {detail}")
    return msh


def _gmsh_mesh(spec: MeshSpec, comm: MPI.Comm) -> mesh.Mesh:
    from dolfinx.io import gmsh as gmshio

    with tempfile.TemporaryDirectory(prefix="nhj-gmsh-") as tmp:  # used on rank 0 only
        error, msh = None, Path(tmp) / "mesh.msh"
        if comm.rank == 0:
            try:
                msh = generate(spec, Path(tmp))
            except CaseError as e:
                error = (e.field, e.reason)
        # every rank must raise together, or the others would hang in model_to_mesh
        error = comm.bcast(error, root=0)
        if error is not None:
            raise CaseError(*error)
        session: Any = _gmsh_session() if comm.rank == 0 else nullcontext()
        with session as gmsh:
            model = None
            if comm.rank == 0:
                gmsh.merge(str(msh))
                model = gmsh.model
            # model_to_mesh would not ghost; match the built-in meshes
            partitioner = mesh.create_cell_partitioner(GHOST, 2)  # type: ignore[call-arg]
            return gmshio.model_to_mesh(
                model, comm, 0, gdim=spec.gmsh_dim, partitioner=partitioner
            ).mesh


def boundary_facets(msh: mesh.Mesh) -> np.ndarray:
    """Exterior facets of ``msh`` owned by this rank (local indices).

    Collective: call it on every rank. Creates the facet-to-cell connectivity it needs.
    """
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    return mesh.exterior_facet_indices(msh.topology)
