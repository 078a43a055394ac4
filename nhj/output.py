"""The result directory and its scheduled output handlers.

Contract (read by later tools and checks)::

    DIR/case.toml         copy of the case file
    DIR/summary.json      status "running" during the run, then "completed"/"failed"
    DIR/diagnostics.csv   one row per output step
    DIR/fields.bp         VTX (ParaView/pyvista): p = |ψ|², S = ħ arg ψ
    DIR/final.vtu         the final fields gathered on rank 0 (for `nhj plot`)

Every handler has its own cadence; diagnostics are computed collectively on all
ranks and written by rank 0 only. No per-rank files are left behind.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
from dolfinx import fem, io, plot


class ResultDir:
    """A result directory managed from rank 0."""

    def __init__(self, path: Path, comm: MPI.Comm) -> None:
        self.path, self.comm = Path(path), comm

    @property
    def root(self) -> bool:
        """Whether this rank writes files."""
        return self.comm.rank == 0

    def create(self, case_text: str) -> None:
        """Make the directory, drop stale results, copy the case (collective)."""
        if self.root:
            self.path.mkdir(parents=True, exist_ok=True)
            for stale in ("summary.json", "diagnostics.csv", "final.vtu"):
                (self.path / stale).unlink(missing_ok=True)
            if (self.path / "fields.bp").exists():
                shutil.rmtree(self.path / "fields.bp")
            (self.path / "case.toml").write_text(case_text, encoding="utf-8")
        self.comm.barrier()

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Write ``name`` atomically from rank 0 (collective: returns once it exists)."""
        if self.root:
            tmp = self.path / f".{name}.tmp"
            tmp.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n", encoding="utf-8")
            tmp.replace(self.path / name)
        self.comm.barrier()


def _jsonable(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


class Handler:
    """Something done every ``every`` steps and at the final step."""

    def __init__(self, every: int) -> None:
        self.every = max(1, every)

    def due(self, step: int, last: bool) -> bool:
        """Whether to act after ``step`` steps."""
        return step % self.every == 0 or last

    def __call__(self, t: float, step: int) -> None:
        """Act (collective)."""

    def close(self) -> None:
        """Flush and close."""


class DiagnosticsCSV(Handler):
    """Rows of global scalars (computed on all ranks, written by rank 0)."""

    def __init__(
        self,
        result: ResultDir,
        columns: Sequence[str],
        compute: Callable[[float], dict[str, float]],
        every: int,
    ) -> None:
        super().__init__(every)
        self.result, self.columns, self.compute = result, list(columns), compute
        self.rows: list[dict[str, float]] = []
        self._file = None
        if result.root:
            self._file = open(result.path / "diagnostics.csv", "w", newline="")  # noqa: SIM115
            self._writer = csv.DictWriter(self._file, fieldnames=["step", "t", *self.columns])
            self._writer.writeheader()

    def __call__(self, t: float, step: int) -> None:
        """Compute a row and append it."""
        row = {"step": step, "t": t, **self.compute(t)}
        self.rows.append(row)
        if self._file is not None:
            self._writer.writerow(
                {
                    k: ("" if row.get(k) is None else row.get(k))
                    for k in ["step", "t", *self.columns]
                }
            )
            self._file.flush()

    def close(self) -> None:
        """Close the CSV file."""
        if self._file is not None:
            self._file.close()
            self._file = None


class VTXFields(Handler):
    """Scalar fields (same element) written to DIR/fields.bp with VTX."""

    def __init__(
        self,
        result: ResultDir,
        fields: Sequence[fem.Function],
        update: Callable[[], None],
        every: int,
    ) -> None:
        super().__init__(every)
        self.update = update
        self.fields = list(fields)
        self.writer = io.VTXWriter(
            result.comm, result.path / "fields.bp", self.fields, mesh_policy=io.VTXMeshPolicy.reuse
        )

    def __call__(self, t: float, step: int) -> None:
        """Refresh the derived fields and write them at time t."""
        self.update()
        self.writer.write(t)

    def close(self) -> None:
        """Close the BP file."""
        self.writer.close()


def vtk_values(f: fem.Function) -> np.ndarray:
    """Nodal values of a Lagrange field: (n,) for scalars, (n, 3) for vectors (zero-padded)."""
    bs = f.function_space.dofmap.index_map_bs
    if bs == 1:
        return f.x.array.real.copy()
    values = np.zeros((f.x.array.size // bs, 3))
    values[:, :bs] = f.x.array.real.reshape(-1, bs)
    return values


def write_gathered_vtu(path: Path, fields: Sequence[fem.Function]) -> None:
    """Gather Lagrange fields (scalar or vector, one degree) to rank 0 into one .vtu (collective).

    Each rank contributes its owned cells with their own copy of the dof
    coordinates, so shared vertices appear once per rank: harmless for plotting.
    """
    V = fields[0].function_space
    msh = V.mesh
    comm = msh.comm
    tdim = msh.topology.dim
    owned = np.arange(msh.topology.index_map(tdim).size_local, dtype=np.int32)
    topology, cell_types, x = plot.vtk_mesh(V, owned)
    data = [vtk_values(f) for f in fields]
    gathered = comm.gather((topology, cell_types, x, data), root=0)
    if comm.rank != 0:
        return
    import pyvista

    datas: list[list[Any]] = [[] for _ in fields]
    tops, types, xs, offset = [], [], [], 0
    for top, ct, xx, dd in gathered:  # type: ignore[union-attr]
        top = top.reshape(len(ct), -1).copy()
        top[:, 1:] += offset
        tops.append(top.ravel())
        types.append(ct)
        xs.append(xx)
        for k, d in enumerate(dd):
            datas[k].append(d[: len(xx)])
        offset += len(xx)
    grid = pyvista.UnstructuredGrid(np.concatenate(tops), np.concatenate(types), np.vstack(xs))
    for f, d in zip(fields, datas, strict=True):
        grid.point_data[f.name] = np.concatenate(d)
    grid.save(str(path))
