"""Exact time propagation of a separable Schrödinger operator (fast diagonalisation).

The semi-discrete Schrödinger equation (3.11) in the real pair u = (ψ_r, ψ_i) is, in
complex form, M ψ̇ = −i H ψ with M the form ħ∫ψ v √g and H the Hamiltonian form
h(ψ, v) of :class:`nhj.equations.schrodinger.Schrodinger`. Its solution over a step is
ψ(t + dt) = exp(−i dt M⁻¹H) ψ(t): no time error at all, only the space's.

On a tensor-product space (an interval, or a rectangle or box of quadrilateral or
hexahedral cells, whose Q_k Lagrange nodes are the products of the 1D nodes), with a
constant diagonal metric and a potential that is a sum V = Σ_i V_i(x_i) (the harmonic
V = ½ m Σ ω_i² y_i² of (3.11), or any V in 1D), both forms assemble to Kronecker
products of the same equation's one-dimensional matrices on each axis:

    M = M_1 ⊗ … ⊗ M_d,    H = Σ_i M_1 ⊗ … ⊗ H_i ⊗ … ⊗ M_d.

With the generalised eigenvectors H_i Φ_i = M_i Φ_i Λ_i, Φ_iᵀ M_i Φ_i = I, the
propagator factorises exactly (the terms of the Kronecker sum commute):

    exp(−i dt M⁻¹H) = ⊗_i U_i,    U_i = Φ_i e^{−i Λ_i dt} Φ_iᵀ M_i,

so a step applies one small dense matrix along each axis of the array of nodal values
(Lynch, Rice & Thomas's fast diagonalisation). U_i is M_i-unitary, so ‖ψ‖² and ⟨ψ|H|ψ⟩
are kept to round-off, and the state after n steps is that of one step of n·dt.

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

from nhj.stepper import StepperState


@dataclass(frozen=True)
class AxisFactor:
    """One axis of a separable operator: the equation's forms on a 1D mesh of that axis.

    Attributes:
        space: Scalar Lagrange space of the same degree on the axis's interval (COMM_SELF).
        h: The Hamiltonian form h(w, v) on ``space`` (UFL, bilinear).
        mass: The mass form ħ∫w v √g on ``space`` (UFL, bilinear).
        dirichlet: Whether ψ = 0 at both ends (then only interior nodes evolve).
    """

    space: Any
    h: Any
    mass: Any
    dirichlet: bool


def _dense(form: Any) -> np.ndarray:
    """The assembled matrix of a bilinear form on a COMM_SELF mesh, dense."""
    return np.asarray(fem.assemble_matrix(fem.form(form)).to_dense())


def _nodes(space: Any) -> np.ndarray:
    """The coordinates of a 1D space's nodes, in dof order."""
    return np.asarray(space.tabulate_dof_coordinates()[:, 0])


class AxisPropagator:
    """U(dt) = Φ e^{−iΛ dt} Φᵀ M of one axis, on its evolving (interior) nodes, sorted by x."""

    def __init__(self, factor: AxisFactor) -> None:
        x = _nodes(factor.space)
        order = np.argsort(x, kind="stable")
        H = _dense(factor.h)[np.ix_(order, order)]
        M = _dense(factor.mass)[np.ix_(order, order)]
        self.x = x[order]
        keep = slice(1, -1) if factor.dirichlet else slice(None)
        self.inner = np.arange(self.x.size)[keep]
        H, M = H[keep, keep], M[keep, keep]
        # symmetric-definite pencil: real Λ, Φᵀ M Φ = I
        lam, phi = scipy.linalg.eigh(0.5 * (H + H.T), 0.5 * (M + M.T))
        self.lam, self.phi, self.phiTM = lam, phi, phi.T @ M

    def matrix(self, dt: float) -> np.ndarray:
        """U(dt) on the evolving nodes (complex, n×n)."""
        return (self.phi * np.exp(-1j * self.lam * dt)) @ self.phiTM


def grid_indices(coords: np.ndarray, axes: list[np.ndarray], width: float) -> np.ndarray:
    """For each point (rows of ``coords``), its index along each axis's sorted nodes.

    Raises ValueError when a point is not a product of the axes' nodes: the space is then
    not the tensor-product space the factors describe.
    """
    idx = np.empty((coords.shape[0], len(axes)), dtype=np.int64)
    tol = 1e-8 * width
    for i, x in enumerate(axes):
        c = coords[:, i]
        j = np.clip(np.searchsorted(x, c), 1, x.size - 1)
        j = np.where(np.abs(x[j - 1] - c) <= np.abs(x[j] - c), j - 1, j)
        if c.size and np.max(np.abs(x[j] - c)) > tol:
            raise ValueError("the space's nodes are not the products of the 1D factors' nodes")
        idx[:, i] = j
    return idx


class SeparableExponential:
    """u ← exp(dt L) u exactly, for the separable Schrödinger operator (see the module).

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
        if self.bs != 2:
            raise ValueError("the separable propagator takes the real pair (Re ψ, Im ψ)")
        self.axes = [AxisPropagator(f) for f in factors]
        dim = len(self.axes)
        coords = space.tabulate_dof_coordinates()[:, :dim]
        width = max(float(a.x[-1] - a.x[0]) for a in self.axes)
        shape = tuple(a.x.size for a in self.axes)
        self.shape = shape
        local = grid_indices(coords, [a.x for a in self.axes], width)
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
        a = self.u.x.array.reshape(-1, 2)[: self.n_owned]
        values = a[:, 0] + 1j * a[:, 1]
        X = np.zeros(int(np.prod(self.shape)), dtype=complex)
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
        both = self.u.x.array.reshape(-1, 2)
        both[:, 0], both[:, 1] = new.real, new.imag
        self.steps += 1
        self.t = self.steps * self.dt

    def get_state(self) -> StepperState:
        """u alone: a one-step method."""
        return StepperState(self.t, self.steps, {"u": self.u.x.array.copy()}, {})

    def set_state(self, state: StepperState) -> None:
        """Continue from ``state``."""
        self.u.x.array[:] = state.arrays["u"]
        self.t, self.steps = state.t, state.steps
