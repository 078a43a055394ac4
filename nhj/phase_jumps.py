"""Is the fluid's phase S resolved by the mesh? The jumps of ∇S between cells.

The wave–fluid hybrid (nhj/hybrid.py) leaves the (√p, S) form before it fails where S
stops being resolved: streams meeting (the precursor of interference, theory.md
"nodes of ψ") or a node forming turn ∇S over within a few cells. The test measures
what the space cannot represent, not the size of the Hessian: S_h is continuous
and ∇S_h a discontinuous P_{k−1} field, whose jumps across cells are the classical
a-posteriori indicator of the error of S_h (O(h^k |∇^{k+1} S|) for a smooth S). A
Gaussian state's S is quadratic, represented exactly on P_k (k ≥ 2), and its jumps
are round-off however large its curvature; a chirped packet on a coarse mesh then
stays fluid, where a test on the second difference h²|∇∇S|/ħ sent it to the wave
form — where the same coarse mesh resolves ψ = √p e^{iS/ħ} far worse.

The number: at each dof x_i of a cell c, the deviation d_ci = ∇S|_c(x_i) − ⟨∇S⟩(x_i)
from the mean over the cells around x_i (summed over ranks, so it does not depend
on the partition), turned into a phase across the cell's dof spacings:
max over the dof pairs (i, j) of c of |d_ci·(x_j − x_i)|/ħ, over the cells whose
pair has both ends in the support.
"""

from __future__ import annotations

from typing import Any

from mpi4py import MPI

import numpy as np
from dolfinx import fem, la


class GradientJumps:
    """The largest phase error the inter-cell jumps of ∇S imply, over support dof pairs.

    ``space`` is the fluid's blocked P_k×2 space, ``phase_gradient`` the UFL ∇S of its
    unknown, ``hbar`` ħ of (3.10). Collective.
    """

    def __init__(self, space: Any, phase_gradient: Any, hbar: float) -> None:
        msh = space.mesh
        self.comm, self.hbar = msh.comm, hbar
        self.dim = dim = msh.geometry.dim
        k = space.element.basix_element.degree
        # ∇S ∈ P_{k−1} on each cell: DG P_k holds it exactly, at the P_k dof layout of a cell
        dg = fem.functionspace(msh, ("Discontinuous Lagrange", k, (dim,)))
        self.grad = fem.Function(dg)
        self.expr = fem.Expression(phase_gradient, dg.element.interpolation_points)
        cells = msh.topology.index_map(msh.topology.dim).size_local  # owned: each cell once
        self.D = np.asarray(space.dofmap.list)[:cells]
        self.Ddg = np.asarray(dg.dofmap.list)[:cells]
        self.n = space.dofmap.index_map.size_local
        self.a, self.b = np.triu_indices(self.D.shape[1], 1)
        X = space.tabulate_dof_coordinates()[:, :dim]
        self.x = np.round(X, 4)
        XC = X[self.D]
        self.edge = XC[:, self.b] - XC[:, self.a]  # (cells, pairs, dim)
        self.acc = la.vector(space.dofmap.index_map, bs=dim + 1)

    def deviations(self) -> np.ndarray:
        """d_ci = ∇S|_c(x_i) − ⟨∇S⟩(x_i), shape (cells, dofs per cell, dim) (collective)."""
        self.grad.interpolate(self.expr)
        G = self.grad.x.array.reshape(-1, self.dim)[self.Ddg]
        arr = self.acc.array.reshape(-1, self.dim + 1)
        arr[:] = 0.0
        D = self.D.ravel()
        np.add.at(arr[:, : self.dim], D, G.reshape(-1, self.dim))
        np.add.at(arr[:, self.dim], D, 1.0)
        self.acc.scatter_reverse(la.InsertMode.add)
        self.acc.scatter_forward()
        mean = arr[:, : self.dim] / np.maximum(arr[:, self.dim :], 1.0)
        return np.asarray(G - mean[self.D])

    def __call__(self, z: np.ndarray, tau: float) -> tuple[float, Any]:
        """(max phase error / ħ over support pairs, a dof of that pair) (collective).

        ``z``: ψ at the dofs (local, with ghosts); a pair is in the support when both
        |z| ≥ τ max|z| (S is undetermined where √p vanishes, e.g. on a Dirichlet wall).
        """
        dev = self.deviations()
        A = np.abs(z)
        top = self.comm.allreduce(float(A[: self.n].max(initial=0.0)), op=MPI.MAX)
        Aa, Ab = A[self.D[:, self.a]], A[self.D[:, self.b]]
        inside = np.minimum(Aa, Ab) >= tau * top
        va = np.abs(np.einsum("cpd,cpd->cp", dev[:, self.a], self.edge))
        vb = np.abs(np.einsum("cpd,cpd->cp", dev[:, self.b], self.edge))
        v = np.where(inside, np.maximum(va, vb), -1.0) / self.hbar
        local: tuple[float, Any] = (0.0, None)
        if v.size and v.max() >= 0.0:
            c, p = np.unravel_index(int(np.argmax(v)), v.shape)
            local = (float(v[c, p]), self.x[self.D[c, self.a[p]]].tolist())
        return max(self.comm.allgather(local), key=lambda w: w[0])
