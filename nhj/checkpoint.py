"""Checkpoints: a run's state on disk, readable on any number of ranks.

A checkpoint is the directory ``DIR/checkpoint/`` with

* ``meta.json`` — step, t, the rank count that wrote it, a hash of the case
  text, the stepper's scalars (step sizes, statistics), the diagnostics rows
  so far and the conserved functionals' reference values and drifts, and the
  scalars of stateful monitors;
* ``state.npz`` — finite-element arrays keyed by a rank-independent global
  order: the coordinates of every owned dof next to its values (blocked
  spaces keep their components together), and particle blocks keyed by block
  number with their random streams in meta.json.

Reading it on M ranks maps each local dof (owned and ghost) to the stored
coordinate within a tolerance of the mesh size (a k-d tree), so N-to-M
restarts need no partition information; particle blocks go to the ranks that
own them for M (round-robin), so the particles continue bit-identically.

Writing is atomic: into ``checkpoint.tmp/``, then the previous checkpoint is
moved aside, the new one renamed into place and the old one removed. A reader
never sees a half-written checkpoint. Nothing is pickled (``allow_pickle``
stays off).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
from scipy.spatial import cKDTree

from nhj.stepper import StepperState

VERSION = 1
NAME = "checkpoint"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, from another case, or does not match the mesh."""


def case_hash(text: str) -> str:
    """SHA-256 of the case text: a checkpoint resumes only the case that wrote it."""
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------
# finite-element arrays


def _owned(space: Any) -> tuple[np.ndarray, int, int]:
    """(coordinates of the owned dofs, their number, block size)."""
    n = space.dofmap.index_map.size_local
    bs = space.dofmap.index_map_bs
    return space.tabulate_dof_coordinates()[:n], n, bs


def gather_dofs(space: Any, array: np.ndarray, comm: MPI.Comm) -> tuple[Any, Any]:
    """(coordinates, values of shape (n, bs)) of every owned dof, on rank 0 (collective)."""
    x, n, bs = _owned(space)
    parts = comm.gather((x, array[: n * bs].reshape(n, bs)), root=0)
    if comm.rank != 0:
        return None, None
    assert parts is not None
    return np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])


def scatter_dofs(space: Any, x: np.ndarray, values: np.ndarray, tol: float) -> np.ndarray:
    """The local array (owned and ghost dofs) whose dofs sit at the stored coordinates."""
    bs = space.dofmap.index_map_bs
    local = space.tabulate_dof_coordinates()
    if len(local) == 0:
        return np.zeros(0)
    d, i = cKDTree(x).query(local)
    if np.any(d > tol):
        k = int(np.argmax(d))
        raise CheckpointError(
            f"the checkpoint's dofs do not match this mesh (no stored dof within {tol:.2g} "
            f"of x = {np.round(local[k], 6).tolist()}): was the case or the mesh changed?"
        )
    return np.ascontiguousarray(values[i].reshape(-1))[: len(local) * bs]


# ---------------------------------------------------------------------------------------
# the checkpoint directory


class Checkpoint:
    """Write and read ``DIR/checkpoint`` for one run (collective methods)."""

    def __init__(self, result: Path, comm: MPI.Comm) -> None:
        self.path = Path(result) / NAME
        self.comm = comm

    def exists(self) -> bool:
        """Whether a complete checkpoint is there (rank 0 looks; every rank learns)."""
        ok = (self.path / "meta.json").is_file() if self.comm.rank == 0 else None
        return bool(self.comm.bcast(ok, root=0))

    def write(
        self,
        state: StepperState,
        space: Any,
        ensembles: dict[str, Any],
        meta: dict[str, Any],
    ) -> None:
        """Store the stepper's state, the named particle ensembles and ``meta`` atomically.

        ``space`` is the function space of the stepper's dof arrays (None for a
        particle stepper); ``ensembles`` are further particle ensembles (e.g. the
        Langevin reference of a Fokker–Planck run), by name.
        """
        comm = self.comm
        arrays: dict[str, np.ndarray] = {}
        if space is not None:
            for name, a in state.arrays.items():
                x, values = gather_dofs(space, a, comm)
                if comm.rank == 0:
                    arrays[f"dofs/{name}/x"], arrays[f"dofs/{name}/v"] = x, values
        owned = {key: (e.t, e.state()) for key, e in ensembles.items()}
        if state.particles is not None:
            owned["stepper"] = state.particles
        streams: dict[str, Any] = {}
        for key in sorted(owned):  # the same order on every rank: gather is collective
            parts = comm.gather(owned[key], root=0)
            if comm.rank == 0:
                assert parts is not None
                streams[key] = {"t": parts[0][0], "rngs": {}}
                for _, blocks in parts:
                    for b, (x, alive, rng) in blocks.items():
                        arrays[f"particles/{key}/{b}/x"] = x
                        arrays[f"particles/{key}/{b}/alive"] = alive
                        streams[key]["rngs"][str(b)] = rng
        error = None
        if comm.rank == 0:
            full = {
                **meta,
                "version": VERSION,
                "ranks": comm.size,
                "step": state.steps,
                "t": state.t,
                "stepper": state.extra,
                "dof_arrays": sorted(state.arrays) if space is not None else [],
                "ensembles": streams,
            }
            try:
                self._write_files(arrays, full)
            except OSError as e:
                error = f"cannot write the checkpoint in {self.path.parent}: {e.strerror or e}"
        error = comm.bcast(error, root=0)
        if error:
            raise CheckpointError(error)

    def _write_files(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        tmp = self.path.with_name(NAME + ".tmp")
        old = self.path.with_name(NAME + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.savez(tmp / "state.npz", **arrays)  # type: ignore[arg-type]  # names, not a flag
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        shutil.rmtree(old, ignore_errors=True)
        if self.path.exists():
            self.path.rename(old)  # the previous checkpoint stays until the new one is in place
        tmp.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)

    def read_meta_or_none(self) -> dict[str, Any] | None:
        """meta.json if a checkpoint exists, else None (collective)."""
        return self.read_meta() if self.exists() else None

    def read_meta(self) -> dict[str, Any]:
        """meta.json (every rank gets rank 0's copy)."""
        meta, error = None, None
        if self.comm.rank == 0:
            try:
                meta = json.loads((self.path / "meta.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                error = f"no readable checkpoint in {self.path.parent}: {e}"
        meta, error = self.comm.bcast((meta, error), root=0)
        if error:
            raise CheckpointError(error)
        if meta.get("version") != VERSION:
            raise CheckpointError(f"checkpoint version {meta.get('version')} is not {VERSION}")
        return dict(meta)

    def read_state(
        self, meta: dict[str, Any], space: Any, tol: float, blocks: list[int] | None = None
    ) -> StepperState:
        """The stepper state for this rank.

        Dof arrays are mapped by coordinates; a particle stepper gets the
        ``blocks`` this rank owns.
        """
        arrays: dict[str, np.ndarray] = {}
        particles = None
        with np.load(self.path / "state.npz", allow_pickle=False) as data:
            for name in meta["dof_arrays"]:
                x, v = data[f"dofs/{name}/x"], data[f"dofs/{name}/v"]
                arrays[name] = scatter_dofs(space, x, v, tol)
            if blocks is not None:
                particles = self._blocks(data, meta, "stepper", blocks)
        return StepperState(meta["t"], meta["step"], arrays, dict(meta["stepper"]), particles)

    def restore_ensembles(self, meta: dict[str, Any], ensembles: dict[str, Any]) -> None:
        """Put each named ensemble's stored blocks back (the blocks this rank owns)."""
        with np.load(self.path / "state.npz", allow_pickle=False) as data:
            for key, e in ensembles.items():
                t, blocks = self._blocks(data, meta, key, e.blocks)
                e.restore(blocks, t)

    @staticmethod
    def _blocks(data: Any, meta: dict[str, Any], key: str, blocks: list[int]) -> tuple[float, Any]:
        stored = meta["ensembles"][key]
        out = {
            b: (
                data[f"particles/{key}/{b}/x"],
                data[f"particles/{key}/{b}/alive"],
                stored["rngs"][str(b)],
            )
            for b in blocks
        }
        return stored["t"], out
