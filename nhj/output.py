"""Writers of a result directory, each a scheduled observer of the run.

Every handler has its own cadence; diagnostics are computed collectively on all
ranks and written by rank 0 only. No per-rank files are left behind. The
directory itself (lock, contract, replacement) is :mod:`nhj.results`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from dolfinx import fem, io, plot

from nhj.results import ResultDir


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
        rows: Sequence[dict[str, Any]] = (),
    ) -> None:
        super().__init__(every)
        self.result, self.columns, self.compute = result, list(columns), compute
        self.rows: list[dict[str, Any]] = []
        self._file = None
        if result.root:
            self._file = open(result.path / "diagnostics.csv", "w", newline="")  # noqa: SIM115
            self._writer = csv.DictWriter(self._file, fieldnames=["step", "t", *self.columns])
            self._writer.writeheader()
        for row in rows:  # the rows before a checkpoint, when a run is resumed
            self._append(dict(row))

    def __call__(self, t: float, step: int) -> None:
        """Compute a row and append it."""
        self._append({"step": step, "t": t, **self.compute(t)})

    def _append(self, row: dict[str, Any]) -> None:
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
        name: str = "fields.bp",
    ) -> None:
        super().__init__(every)
        self.update = update
        self.fields = list(fields)
        self.writer = io.VTXWriter(
            result.comm, result.path / name, self.fields, mesh_policy=io.VTXMeshPolicy.reuse
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
    A rank that owns no cells contributes nothing.
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
        if len(ct) == 0:  # a rank without cells
            continue
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
