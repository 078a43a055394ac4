"""Gauss–Legendre collocation for the Newton-stepped equations: order 2s in one solve.

The linear equations apply an s-stage Gauss–Legendre scheme as a rational map
(nhj/propagators.py). A nonlinear semi-discrete equation M(u; ∂ₜu, v) + A(u; v) = 0
(Madelung (3.7)–(3.9), neural HJ (5.1)–(5.4), Gross–Pitaevskii) has no such map; its
step solves for the stage values U_i ≈ u(tⁿ + c_i h), i = 1..s, together:

    M(U_i; K_i, v_i) + A(U_i; v_i) = 0,   K_i = (1/h) Σ_j (𝒜⁻¹)_ij (U_j − uⁿ),

and uⁿ⁺¹ = uⁿ + h Σ_i b_i K_i = uⁿ + Σ_j d_j (U_j − uⁿ) with d = b 𝒜⁻¹ (𝒜, b, c the
Butcher tableau). s = 1 is the implicit midpoint rule; s stages have order 2s, are
A-stable and symplectic, and keep every quadratic invariant the midpoint rule keeps
(∫R²√g of the (√p, S) form, for the same reason at each stage: Gauss quadrature of
degree 2s − 1 integrates d/dt of the collocation polynomial's square exactly).

The stages live on one blocked space of s·b components (b those of u) on the same mesh
and degree, so node i of the stage space is node i of u's space (asserted) and a stage
is a slice of the nodal array. Newton (nhj.solvers.NewtonSolver) solves the coupled
system with its lagged Jacobian: one factorisation of an s× larger matrix, reused over
steps of one size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ufl
from dolfinx import fem

from nhj.equations.base import SemiDiscrete


def gauss_legendre(s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(𝒜, b, c) of the s-stage Gauss–Legendre method (collocation at the Gauss points).

    c are the roots of the shifted Legendre polynomial; 𝒜_ij = ∫₀^{c_i} ℓ_j, b_j = ∫₀¹ ℓ_j
    for the Lagrange basis ℓ_j on c (exact polynomial integrals).
    """
    x, _ = np.polynomial.legendre.leggauss(s)
    c = 0.5 * (x + 1.0)
    A, b = np.zeros((s, s)), np.zeros(s)
    for j in range(s):
        others = np.delete(c, j)
        P = np.polynomial.Polynomial
        ell = (P.fromroots(others) if len(others) else P([1.0])) / np.prod(c[j] - others)
        integral = ell.integ()
        b[j] = integral(1.0) - integral(0.0)
        A[:, j] = integral(c) - integral(0.0)
    return A, b, c


def extrapolation(c: np.ndarray, ratio: float) -> np.ndarray:
    """Weights (s + 1, s + 1) extrapolating a degree-s polynomial one sub-step on.

    From its values at τ = 0, c_1 … c_s to those at τ = 1 + ratio·c_1 … 1 + ratio·c_s and
    1 + ratio (the Lagrange basis of the nodes).
    """
    nodes = np.concatenate([[0.0], c])
    tau = 1.0 + ratio * np.concatenate([c, [1.0]])
    basis = np.ones((len(tau), len(nodes)))
    for j, xj in enumerate(nodes):
        for k, xk in enumerate(nodes):
            if k != j:
                basis[:, j] *= (tau - xk) / (xj - xk)
    return basis


class Collocation:
    """The stage system of an s-stage Gauss method for ``eq`` from the state ``un``.

    Attributes:
        w: The stage values (U_1, …, U_s) on the stage space (the Newton unknown).
        F: The residual Σ_i M(U_i; K_i, v_i) + A(U_i; v_i) (UFL).
        bcs: u's homogeneous Dirichlet conditions, imposed on every stage.
    """

    def __init__(self, eq: SemiDiscrete, stages: int, un: fem.Function, h: Any, bcs: list[Any]):
        V = eq.space
        msh, bs = V.mesh, V.dofmap.index_map_bs
        self.s = s = stages
        self.bs = bs
        A, self.b, self.c = gauss_legendre(s)
        inverse = np.linalg.inv(A)
        self.d = self.b @ inverse
        element = V.element.basix_element
        W = fem.functionspace(msh, ("Lagrange", element.degree, (s * bs,)))
        if not np.array_equal(W.tabulate_dof_coordinates(), V.tabulate_dof_coordinates()):
            raise ValueError("the stage space does not share the unknown's node numbering")
        self.w = fem.Function(W, name="stages")
        tests = ufl.TestFunction(W)
        U = [ufl.as_vector([self.w[i * bs + k] for k in range(bs)]) for i in range(s)]
        v = [ufl.as_vector([tests[i * bs + k] for k in range(bs)]) for i in range(s)]
        F: Any = 0
        for i in range(s):
            K = sum(float(inverse[i, j]) * (U[j] - un) for j in range(s)) / h
            F = F + eq.M(U[i], K, v[i]) + eq.operator(U[i], v[i])
        self.F = F
        self.un = un
        self.bcs = [bc for c in bcs for bc in self._on_stages(c, W)]

    def _on_stages(self, bc: Any, W: Any) -> list[Any]:
        """The condition ``bc`` of u's space (zero on one component) on every stage."""
        value = np.asarray(getattr(bc.g, "value", bc.g))
        if np.any(value != 0):
            raise ValueError("collocation takes homogeneous Dirichlet conditions only")
        (component,) = bc.function_space.component()
        dofs, _ = bc.dof_indices()
        nodes = np.asarray(dofs) // self.bs
        width = self.s * self.bs
        return [
            fem.dirichletbc(
                np.float64(0.0),
                (nodes * width + i * self.bs + component).astype(np.int32),
                W.sub(i * self.bs + component),
            )
            for i in range(self.s)
        ]

    def _stages(self) -> np.ndarray:
        return self.w.x.array.reshape(-1, self.s, self.bs)

    def guess(self, target: np.ndarray) -> None:
        """Stage values on the line from uⁿ to ``target`` (a prediction of uⁿ⁺¹) at c_i."""
        un = self.un.x.array.reshape(-1, self.bs)
        step = target.reshape(-1, self.bs) - un
        self._stages()[:] = un[:, None, :] + self.c[None, :, None] * step[:, None, :]

    def stage_values(self) -> np.ndarray:
        """A copy of the last solve's stage values, (nodes, s, bs) local arrays."""
        return self._stages().copy()

    def predict(self, un: np.ndarray, stages: np.ndarray, ratio: float) -> np.ndarray:
        """The next sub-step's state and stages from the last accepted one's polynomial.

        A collocation solution is the degree-s polynomial through (0, uⁿ) and (c_i, U_i)
        (time in units of that sub-step); extrapolated to τ = 1 + ratio·c_j and 1 + ratio
        (ratio = h_next/h_last) it is O(h^{s+1}) from the next step's values: Newton's start,
        and the error estimate ‖u − u_pred‖ of the step controller (order s + 1 instead of
        the linear extrapolation's 2, which made gauss2/gauss3 sub-steps small for nothing).

        Returns:
            (nodes, s + 1, bs): the predicted stages, then uⁿ⁺¹.
        """
        values = np.concatenate([un.reshape(-1, 1, self.bs), stages], axis=1)
        return np.einsum("tj,njk->ntk", extrapolation(self.c, ratio), values)

    def set_stages(self, stages: np.ndarray) -> None:
        """Newton's start for the stages, (nodes, s, bs)."""
        self._stages()[:] = stages

    def quadrature(self) -> list[tuple[float, np.ndarray]]:
        """(b_i, U_i) of the last solve: the scheme's quadrature in time (local arrays)."""
        U = self._stages()
        return [(float(self.b[i]), U[:, i].ravel().copy()) for i in range(self.s)]

    def update(self, u: fem.Function) -> None:
        """uⁿ⁺¹ = uⁿ + Σ_j d_j (U_j − uⁿ) into u (local and ghost values)."""
        un = self.un.x.array.reshape(-1, self.bs)
        U = self._stages()
        u.x.array.reshape(-1, self.bs)[:] = un + np.einsum("j,njk->nk", self.d, U - un[:, None])
