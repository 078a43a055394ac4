"""Thin wrappers over DOLFINx/PETSc solvers.

Options come from :func:`default_petsc_options` (a fresh copy each call) merged
with the case's ``[solver] petsc_options``; every PETSc object gets a fixed,
rank-independent options prefix. A failed solve raises :class:`SolverError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petsc4py import PETSc

import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc


class SolverError(RuntimeError):
    """A linear or nonlinear solve did not converge."""


def default_petsc_options() -> dict[str, Any]:
    """Direct LU by MUMPS: robust for the indefinite systems of (3.11)."""
    return {
        "ksp_type": "preonly",
        "pc_type": "lu",
        "pc_factor_mat_solver_type": "mumps",
        "ksp_error_if_not_converged": True,
    }


def merged_options(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults updated with the case's options."""
    opts = default_petsc_options()
    opts.update(overrides or {})
    return opts


class ConstantMatrixProblem(fem_petsc.LinearProblem):
    """A linear problem whose matrix never changes: assembled and factorised once.

    Each :meth:`solve` assembles only the right-hand side and reuses the
    factorisation held by the KSP (PETSc skips the setup of an unchanged
    operator).
    """

    def __init__(self, F: Any, u: fem.Function, bcs: list[Any], prefix: str,
                 petsc_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(
            ufl.lhs(F), ufl.rhs(F), u=u, bcs=bcs, petsc_options_prefix=prefix,
            petsc_options=merged_options(petsc_options),
        )
        self.A.zeroEntries()
        fem_petsc.assemble_matrix(self.A, self.a, bcs=self.bcs)
        self.A.assemble()

    def solve(self) -> fem.Function:
        """Assemble the right-hand side, solve with the stored factorisation."""
        with self.b.localForm() as b_local:
            b_local.set(0.0)
        fem_petsc.assemble_vector(self.b, self.L)
        fem_petsc.apply_lifting(self.b, [self.a], bcs=[self.bcs])
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(self.b, self.bcs)
        try:
            self.solver.solve(self.b, self.x)
        except PETSc.Error as e:
            raise SolverError(f"linear solve failed: {e}") from None
        reason = self.solver.getConvergedReason()
        if reason < 0:
            raise SolverError(f"linear solve diverged (KSP reason {reason})")
        self.x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        fem_petsc.assign(self.x, self.u)
        return self.u
