"""High-order propagators of linear, autonomous equations: Gauss–Legendre collocation.

For M(∂ₜu, v) + A(u; v) = 0 with constant M and A, i.e. u' = L u with
L = −M⁻¹A, the s-stage Gauss–Legendre collocation method is the diagonal
(s, s) Padé approximant R of exp: uⁿ⁺¹ = R(dt L) uⁿ, of order 2s. With the
partial fractions R(z) = (−1)ˢ + Σ_j a_j / (q_j − z) over the roots q_j of the
denominator,

    uⁿ⁺¹ = (−1)ˢ uⁿ + Σ_j a_j w_j,    (q_j M + dt A) w_j = M uⁿ,

so a step is one solve per root with a matrix factorised once. The roots come
in complex-conjugate pairs (s = 2: 3 ± i√3; s = 3: one real root and a pair);
a pair contributes 2 Re(a_j w_j), and its complex solve is done in this real
PETSc stack as the 2×2 real block system

    [ αM + dtA   −βM      ] [w_r]   [M uⁿ]
    [ βM         αM + dtA ] [w_i] = [ 0  ],   q = α + iβ,

on a doubled space. R is unitary on the imaginary axis, so for Schrödinger
(3.11), where M⁻¹A is skew-adjoint in the M inner product, ‖ψ‖² and ⟨ψ|H|ψ⟩
are kept to round-off, as with Crank–Nicolson (the s = 1 member).
"""

from __future__ import annotations

from collections.abc import Mapping
from math import factorial
from typing import Any

import numpy as np
import ufl
from dolfinx import fem

from nhj.equations.base import SemiDiscrete
from nhj.meshes import boundary_facets
from nhj.solvers import ConstantMatrixProblem
from nhj.stepper import StepperState
from nhj.timeschemes import Rational


def pade_partial_fractions(s: int) -> tuple[float, list[tuple[complex, complex]]]:
    """(c∞, [(q_j, a_j)]) of the (s, s) Padé approximant of exp, one root per conjugate pair.

    R(z) = c∞ + Σ a_j/(q_j − z) summed over all roots; a pair (Im q > 0) stands
    for itself and its conjugate.
    """
    p = [factorial(2 * s - k) * factorial(s) / (factorial(2 * s) * factorial(k) * factorial(s - k))
         for k in range(s + 1)]  # fmt: skip
    P = np.polynomial.Polynomial(p)
    Q = np.polynomial.Polynomial([c * (-1) ** k for k, c in enumerate(p)])
    roots = Q.roots()
    residues = -P(roots) / Q.deriv()(roots)
    pairs = [(complex(q), complex(a)) for q, a in zip(roots, residues, strict=True)]
    kept = [(q, a) for q, a in pairs if q.imag >= -1e-12]
    return float((-1) ** s), kept


def _halves(W: Any, bs: int, scalar: bool) -> tuple[Any, Any]:
    """(real, imaginary) parts of a doubled-space argument, shaped like the original unknown."""
    if scalar:
        return W[0], W[1]
    return ufl.as_vector([W[i] for i in range(bs)]), ufl.as_vector([W[bs + i] for i in range(bs)])


class RationalStepper:
    """u ← R(dt L) u for a linear, autonomous equation, R the Gauss–Legendre (Padé) map.

    Same protocol as :class:`nhj.stepper.TimeStepper`: one matrix per root of
    the denominator, factorised once.
    """

    columns: tuple[str, ...] = ()

    def __init__(
        self,
        eq: SemiDiscrete,
        scheme: Rational,
        u: fem.Function,
        dt: float,
        bcs: list[Any],
        petsc_options: Mapping[str, Any] | None = None,
        prefix: str = "nhj_",
    ) -> None:
        if not eq.linear:
            raise ValueError("Gauss-Legendre propagators need a linear equation")
        self.u, self.t, self.steps = u, 0.0, 0
        self.scheme = scheme
        space = eq.space
        msh = space.mesh
        self.dt = fem.Constant(msh, float(dt))
        bs = space.dofmap.index_map_bs
        scalar = space.ufl_element().reference_value_shape == ()
        degree = space.element.basix_element.degree
        self.bs = bs
        X = fem.functionspace(msh, ("Lagrange", degree, (2 * bs,)))
        self._un = fem.Function(space)
        self._parts: list[tuple[complex, fem.Function, ConstantMatrixProblem]] = []
        self.c_inf, roots = pade_partial_fractions(scheme.stages)
        xbcs = []
        if bcs:
            dofs = fem.locate_dofs_topological(X, msh.topology.dim - 1, boundary_facets(msh))
            xbcs = [fem.dirichletbc(np.zeros(2 * bs), dofs, X)]
        W, Z = ufl.TrialFunction(X), ufl.TestFunction(X)
        wr, wi = _halves(W, bs, scalar)
        zr, zi = _halves(Z, bs, scalar)
        un = self._un
        # A list in a fixed order: PETSc objects are created (and destroyed) in the same order
        # on every rank.
        for k, (q, a) in enumerate(roots):
            alpha, beta = fem.Constant(msh, q.real), fem.Constant(msh, q.imag)
            F = (
                eq.M(un, alpha * wr - beta * wi, zr)
                + self.dt * eq.operator(wr, zr)
                + eq.M(un, beta * wr + alpha * wi, zi)
                + self.dt * eq.operator(wi, zi)
                - eq.M(un, un, zr)
            )
            w = fem.Function(X)
            problem = ConstantMatrixProblem(
                F, w, xbcs, f"{prefix}{scheme.name}_{k}_", petsc_options
            )
            self._parts.append((a if abs(q.imag) > 1e-12 else a.real, w, problem))
        self._weights = [2.0 if abs(q.imag) > 1e-12 else 1.0 for q, _ in roots]
        # Krylov iterations (the iterative preset), summed over a step's solves
        self.last_iterations, self.linear_iterations = 0, 0
        if any(p.iterative for _, _, p in self._parts):
            self.columns = ("linear_iterations",)

    @property
    def stats(self) -> dict[str, Any]:
        """Solves per step (one per root kept); Krylov iterations of an iterative solver."""
        out: dict[str, Any] = {"solves_per_step": len(self._parts)}
        if self.columns:
            out["linear_iterations"] = self.linear_iterations
            out["linear_iterations_per_step"] = self.linear_iterations / max(self.steps, 1)
        return out

    def diagnostics(self) -> dict[str, Any]:
        """Krylov iterations of the last step (all its solves; iterative solver only)."""
        return {"linear_iterations": self.last_iterations} if self.columns else {}

    def close(self) -> None:
        """Destroy the solvers in list order (collective)."""
        self._parts.clear()

    def advance(self) -> None:
        """One step: uⁿ⁺¹ = c∞ uⁿ + Σ weight · Re(a_j w_j)."""
        self._un.x.array[:] = self.u.x.array
        new = self.c_inf * self.u.x.array
        bs = self.bs
        self.last_iterations = 0
        for weight, (a, w, problem) in zip(self._weights, self._parts, strict=True):
            problem.solve()
            self.last_iterations += problem.iterations
            both = w.x.array.reshape(-1, 2 * bs)
            wr, wi = both[:, :bs].reshape(-1), both[:, bs:].reshape(-1)
            a = complex(a)
            new = new + weight * (a.real * wr - a.imag * wi)
        self.u.x.array[:] = new
        self.linear_iterations += self.last_iterations
        self.steps += 1
        self.t = self.steps * float(self.dt.value)

    def get_state(self) -> StepperState:
        """u alone: a one-step method."""
        return StepperState(self.t, self.steps, {"u": self.u.x.array.copy()}, {})

    def set_state(self, state: StepperState) -> None:
        """Continue from ``state``."""
        self.u.x.array[:] = state.arrays["u"]
        self.t, self.steps = state.t, state.steps
