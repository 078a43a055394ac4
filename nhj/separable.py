"""Exact time propagation of a separable linear operator (fast diagonalisation).

A linear, autonomous semi-discrete equation M u̇ = −A u (Fokker–Planck (2.7)), or
M ψ̇ = −i H ψ for the Schrödinger equation (3.11) in its real pair u = (ψ_r, ψ_i) (M the
form ħ∫ψ v √g, H the Hamiltonian form h(ψ, v) of
:class:`nhj.equations.schrodinger.Schrodinger`), is solved over a step by
u(t + dt) = exp(dt L) u(t), L = −M⁻¹A or −i M⁻¹H: no time error at all, only the space's.

On a tensor-product space (an interval, or a rectangle or box of quadrilateral or
hexahedral cells, whose Q_k Lagrange nodes are the products of the 1D nodes), with a
constant diagonal metric and coefficients that do not couple the axes (V = Σ_i V_i(x_i),
L̄ = Σ_i L̄_i(x_i), a diagonal κ; anything in 1D), both forms assemble to Kronecker
products of the same equation's one-dimensional matrices on each axis:

    M = M_1 ⊗ … ⊗ M_d,    A = Σ_i M_1 ⊗ … ⊗ A_i ⊗ … ⊗ M_d,

so M⁻¹A = Σ_i I ⊗ … ⊗ M_i⁻¹A_i ⊗ … ⊗ I, a sum of commuting terms, and

    exp(dt L) = ⊗_i U_i,    U_i = exp(dt L_i), L_i = −M_i⁻¹A_i (or −i M_i⁻¹H_i).

A step applies one small dense matrix along each axis of the array of nodal values
(Lynch, Rice & Thomas's fast diagonalisation). For a Hamiltonian, U_i = Φ_i e^{−iΛ_i dt}
Φ_iᵀ M_i from the generalised eigenvectors H_i Φ_i = M_i Φ_i Λ_i, Φ_iᵀ M_i Φ_i = I: M_i-
unitary, so ‖ψ‖² and ⟨ψ|H|ψ⟩ are kept to round-off. The Fokker–Planck operator is not
symmetric and U_i comes from scipy's expm; ∫p√g is kept because A's columns sum to zero
(v = 1 in (2.7)). The state after n steps is that of one step of n·dt.

The 1D factors are built by the equation's builder from the equation module (physics is
not written here); this module only does the linear algebra. Every rank holds the whole
array of nodal values (gathered once per step) and applies the same small products, so
the result is identical on every rank and needs no ghost update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mpi4py import MPI

import numpy as np
import scipy.linalg
from dolfinx import fem
from dolfinx.mesh import CellType

from nhj.stepper import StepperState

TENSOR_CELLS = (CellType.interval, CellType.quadrilateral, CellType.hexahedron)


@dataclass(frozen=True)
class AxisFactor:
    """One axis of a separable operator: the equation's forms on a 1D mesh of that axis.

    Attributes:
        space: Scalar Lagrange space of the same degree on the axis's interval (COMM_SELF).
        A: The operator's form on ``space`` (UFL, bilinear): the Hamiltonian h(w, v) of
            (3.11), or the Fokker–Planck operator of (2.7).
        M: The mass form on ``space`` (UFL, bilinear).
        dirichlet: Whether u = 0 at both ends (then only interior nodes evolve).
        hamiltonian: M ψ̇ = −i A ψ on the pair (Re ψ, Im ψ) (A symmetric: a unitary
            propagator from its eigenvectors); else M u̇ = −A u on a real scalar.
    """

    space: Any
    A: Any
    M: Any
    dirichlet: bool
    hamiltonian: bool


def _dense(form: Any) -> np.ndarray:
    """The assembled matrix of a bilinear form on a COMM_SELF mesh, dense."""
    return np.asarray(fem.assemble_matrix(fem.form(form)).to_dense())


def _nodes(space: Any) -> np.ndarray:
    """The coordinates of a 1D space's nodes, in dof order."""
    return np.asarray(space.tabulate_dof_coordinates()[:, 0])


class AxisPropagator:
    """exp(dt L) of one axis, on its evolving (interior) nodes sorted by x.

    L = −i M⁻¹A for a Hamiltonian (through the eigenvectors of the symmetric-definite
    pencil: U = Φ e^{−iΛ dt} Φᵀ M, unitary in M to round-off); L = −M⁻¹A otherwise (the
    Fokker–Planck operator is not symmetric: scipy's expm, scaling and squaring, which does
    not need the eigenvectors of a non-normal matrix).
    """

    def __init__(self, factor: AxisFactor) -> None:
        x = _nodes(factor.space)
        order = np.argsort(x, kind="stable")
        A = _dense(factor.A)[np.ix_(order, order)]
        M = _dense(factor.M)[np.ix_(order, order)]
        self.x = x[order]
        keep = slice(1, -1) if factor.dirichlet else slice(None)
        self.inner = np.arange(self.x.size)[keep]
        self.A, self.M = A[keep, keep], M[keep, keep]
        self.hamiltonian = factor.hamiltonian
        if self.hamiltonian:
            lam, phi = scipy.linalg.eigh(0.5 * (self.A + self.A.T), 0.5 * (self.M + self.M.T))
            self.lam, self.phi, self.phiTM = lam, phi, phi.T @ self.M

    def matrix(self, dt: float) -> np.ndarray:
        """exp(dt L) on the evolving nodes (n×n; complex for a Hamiltonian)."""
        if self.hamiltonian:
            return (self.phi * np.exp(-1j * self.lam * dt)) @ self.phiTM
        return np.asarray(scipy.linalg.expm(-dt * np.linalg.solve(self.M, self.A)))


def grid_indices(
    coords: np.ndarray, axes: list[np.ndarray], width: float
) -> tuple[np.ndarray, bool]:
    """For each point (rows of ``coords``), its index along each axis's sorted nodes.

    The flag is False when a point is not a product of the axes' nodes: the space is then
    not the tensor-product space the factors describe.
    """
    idx = np.empty((coords.shape[0], len(axes)), dtype=np.int64)
    tol, ok = 1e-8 * width, True
    for i, x in enumerate(axes):
        c = coords[:, i]
        j = np.clip(np.searchsorted(x, c), 1, x.size - 1)
        j = np.where(np.abs(x[j - 1] - c) <= np.abs(x[j] - c), j - 1, j)
        ok = ok and not (c.size and np.max(np.abs(x[j] - c)) > tol)
        idx[:, i] = j
    return idx, ok


class SeparableExponential:
    """u ← exp(dt L) u exactly, for a separable operator (see the module).

    Same protocol as :class:`nhj.stepper.TimeStepper`.
    """

    columns: tuple[str, ...] = ()

    def __init__(self, u: fem.Function, factors: tuple[AxisFactor, ...], dt: float) -> None:
        self.u, self.t, self.steps = u, 0.0, 0
        self.dt = float(dt)
        space = u.function_space
        comm = space.mesh.comm
        self.comm = comm
        self.bs = space.dofmap.index_map_bs
        self.pair = factors[0].hamiltonian
        if self.bs != (2 if self.pair else 1):
            raise ValueError("a Hamiltonian takes the pair (Re ψ, Im ψ), else a real scalar")
        self.axes = [AxisPropagator(f) for f in factors]
        dim = len(self.axes)
        coords = space.tabulate_dof_coordinates()[:, :dim]
        width = max(float(a.x[-1] - a.x[0]) for a in self.axes)
        shape = tuple(a.x.size for a in self.axes)
        self.shape = shape
        # P2 on triangles has Q2's nodes on a split rectangle, but not its space
        if space.mesh.topology.cell_type not in TENSOR_CELLS:
            raise ValueError("a tensor-product space needs interval, quadrilateral or hexahedron")
        local, ok = grid_indices(coords, [a.x for a in self.axes], width)
        if not comm.allreduce(ok, op=MPI.LAND):  # every rank raises, none waits
            raise ValueError("the space's nodes are not the products of the 1D factors' nodes")
        self.flat_local = np.ravel_multi_index(tuple(local.T), shape)
        n_owned = space.dofmap.index_map.size_local
        self.n_owned = n_owned
        total = comm.allreduce(n_owned, op=MPI.SUM)
        if total != int(np.prod(shape)):
            raise ValueError(
                f"the space has {total} nodes, the product of its 1D factors {int(np.prod(shape))}"
            )
        # where every rank's owned values go in the whole array: fixed, so gathered once
        self.flat_owned = comm.allgather(self.flat_local[:n_owned])
        self.inner = np.ix_(*[a.inner for a in self.axes])
        self._U = [a.matrix(self.dt) for a in self.axes]

    @property
    def stats(self) -> dict[str, Any]:
        """The size of each axis's dense propagator."""
        return {"axis_nodes": list(self.shape)}

    def diagnostics(self) -> dict[str, Any]:
        """Nothing per step: the propagator is exact and has no iterations."""
        return {}

    def close(self) -> None:
        """No PETSc objects to destroy."""

    def _gather(self) -> np.ndarray:
        """The whole array of complex nodal values, on every rank (collective)."""
        a = self.u.x.array.reshape(-1, self.bs)[: self.n_owned]
        values = a[:, 0] + 1j * a[:, 1] if self.pair else a[:, 0]
        X = np.zeros(int(np.prod(self.shape)), dtype=values.dtype)
        for flat, vals in zip(self.flat_owned, self.comm.allgather(values), strict=True):
            X[flat] = vals
        return X.reshape(self.shape)

    def advance(self) -> None:
        """One step of dt: U_i applied along every axis of the interior nodal values."""
        X = self._gather()
        Y = X[self.inner]
        for axis, U in enumerate(self._U):
            Y = np.moveaxis(np.tensordot(U, Y, axes=(1, axis)), 0, axis)
        X[self.inner] = Y
        new = X.reshape(-1)[self.flat_local]
        if self.pair:
            both = self.u.x.array.reshape(-1, 2)
            both[:, 0], both[:, 1] = new.real, new.imag
        else:
            self.u.x.array[:] = new
        self.steps += 1
        self.t = self.steps * self.dt

    def get_state(self) -> StepperState:
        """u alone: a one-step method."""
        return StepperState(self.t, self.steps, {"u": self.u.x.array.copy()}, {})

    def set_state(self, state: StepperState) -> None:
        """Continue from ``state``."""
        self.u.x.array[:] = state.arrays["u"]
        self.t, self.steps = state.t, state.steps
