"""Thin wrappers over DOLFINx/PETSc solvers.

Options come from :func:`default_petsc_options` (a fresh copy each call), or
from :func:`preset_options` for a ``[solver] preset``, merged with the case's
``[solver] petsc_options``; every PETSc object gets a fixed, rank-independent
options prefix. A failed solve raises :class:`SolverError`.

Presets: ``direct`` (MUMPS LU, factorised once) and ``iterative`` (FGMRES with
nhj's block preconditioner, :class:`nhj.iterative.BlockPC`: PRESB for the real
forms of the complex-shifted systems of (3.11), AMG otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc

from nhj.iterative import BlockPC

PRESETS = ("direct", "iterative")


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


def preset_options(preset: str) -> dict[str, Any]:
    """The PETSc options of a ``[solver] preset`` (a fresh copy).

    ``iterative``: FGMRES (the preconditioner may hold inner Krylov solves if a
    user asks for them) preconditioned by :class:`nhj.iterative.BlockPC`
    (``pc_type = "python"`` is nhj's block PC: the solver wrappers attach it).
    rtol 1e-10 puts the algebraic error (≤ κ·rtol relative) well below the
    time-discretisation error of any scheme at usable dt; the previous solution
    is the initial guess (for a time step, the state of the last step).
    """
    if preset == "direct":
        return default_petsc_options()
    if preset == "iterative":
        return {
            "ksp_type": "fgmres",
            "ksp_rtol": 1e-10,
            "ksp_atol": 1e-30,
            "ksp_max_it": 300,
            "ksp_gmres_restart": 60,
            "ksp_initial_guess_nonzero": True,
            "pc_type": "python",
            "ksp_error_if_not_converged": True,
        }
    raise ValueError(f"unknown solver preset {preset!r}; allowed: {', '.join(PRESETS)}")


def merged_options(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults updated with the case's options (a preset's options are overrides too)."""
    opts = default_petsc_options()
    opts.update(overrides or {})
    if opts.get("pc_type") not in ("lu", "cholesky"):
        opts.pop("pc_factor_mat_solver_type", None)  # no factorisation to configure
    return opts


def attach_block_pc(ksp: Any, space: Any) -> None:
    """Give a ``pc_type = python`` PC without a context nhj's :class:`BlockPC` for ``space``."""
    pc = ksp.getPC()
    if pc.getType() == "python" and pc.getPythonContext() is None:
        pc.setPythonContext(BlockPC(space.element.basix_element.degree))


def _homogeneous(bcs: list[Any]) -> bool:
    """Whether every Dirichlet value is 0 (then lifting adds nothing to the right-hand side)."""
    for bc in bcs:
        g = bc.g
        values = g.x.array if hasattr(g, "x") else getattr(g, "value", g)
        if np.any(np.asarray(values) != 0):
            return False
    return True


class ConstantMatrixProblem(fem_petsc.LinearProblem):
    """A linear problem whose matrix never changes: assembled and factorised once.

    Each :meth:`solve` reuses the factorisation (or AMG hierarchy) held by the KSP
    (PETSc skips the setup of an unchanged operator) and forms only the right-hand
    side. The right-hand side of a time step is linear in the previous states, so
    b = Σ_c (∂L/∂c) c over the Functions c in L: matrices assembled once, then a
    product per step, 10-40× cheaper than assembling L (0.40 s against 0.01 s per
    step on a 3D P1 box at 2.7×10⁵ dofs, where it was half the step). The identity is
    checked against the assembled L at the first solve; if it does not hold (L not
    jointly linear in its Functions), L holds a Constant the matrix does not (it may
    change later) or the Dirichlet values are not zero (lifting), L is assembled every
    step as before.
    """

    def __init__(
        self,
        F: Any,
        u: fem.Function,
        bcs: list[Any],
        prefix: str,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        options = merged_options(petsc_options)
        L = ufl.rhs(F)
        super().__init__(
            ufl.lhs(F),
            L,
            u=u,
            bcs=bcs,
            petsc_options_prefix=prefix,
            petsc_options=options,
        )
        # LinearProblem's clean-up under a pushed prefix leaves the keys in the global
        # database (measured with DOLFINx 0.11), where the next solver of the same prefix
        # would inherit them (an iterative run's options in a direct one): remove them.
        db: Any = PETSc.Options()
        for k in options:
            db.delValue(f"{prefix}{k}")
        self.A.zeroEntries()
        fem_petsc.assemble_matrix(self.A, self.a, bcs=self.bcs)
        self.A.assemble()
        attach_block_pc(self.solver, u.function_space)
        self.iterations = 0  # Krylov iterations of the last solve (1 for a direct one)
        self.iterative = self.solver.getType() != "preonly"
        # b = Σ B_c c (see the class docstring); None: assemble L every step
        self._rhs: list[tuple[Any, fem.Function]] | None = None
        self._rhs_checked = False
        funcs = [c for c in L.coefficients() if isinstance(c, fem.Function)]
        # B_c freezes every Constant of L; those of the (constant) matrix are fixed by
        # contract, but one only in L (a time-dependent source or dt of an explicit term)
        # may change after the first-solve check: then assemble L every step.
        frozen = set(map(id, ufl.lhs(F).constants()))
        fixed = all(id(k) in frozen for k in L.constants())
        if funcs and fixed and _homogeneous(self.bcs):
            self._rhs = []
            for c in funcs:  # in form order: the same on every rank
                B = fem_petsc.assemble_matrix(
                    fem.form(ufl.derivative(L, c, ufl.TrialFunction(c.function_space)))
                )
                B.assemble()
                self._rhs.append((B, c))

    def _assemble_rhs(self) -> None:
        with self.b.localForm() as b_local:
            b_local.set(0.0)
        fem_petsc.assemble_vector(self.b, self.L)
        fem_petsc.apply_lifting(self.b, [self.a], bcs=[self.bcs])
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(self.b, self.bcs)

    def _product_rhs(self, b: Any) -> None:
        b.set(0.0)
        for B, c in self._rhs or ():
            B.multAdd(c.x.petsc_vec, b, b)
        fem_petsc.set_bc(b, self.bcs)

    def _rhs_step(self) -> None:
        """The right-hand side of this solve: by products once they are verified."""
        if self._rhs is None:
            self._assemble_rhs()
            return
        if self._rhs_checked:
            self._product_rhs(self.b)
            return
        self._assemble_rhs()
        scale = self.b.norm()
        if scale == 0.0:  # a zero L agrees with any homogeneous form: check at a later solve
            return
        b2 = self.b.duplicate()
        self._product_rhs(b2)
        b2.axpy(-1.0, self.b)
        # the two differ by the summation order of the same quadrature: round-off
        ok = b2.norm() <= 1e-11 * scale
        b2.destroy()
        self._rhs_checked = True
        if ok:  # every solve uses the products, so a run resumed here repeats it bit for bit
            self._product_rhs(self.b)
        if not ok:  # not b = Σ B_c c: assemble L every step
            for B, _ in self._rhs:
                B.destroy()
            self._rhs = None

    def __del__(self) -> None:
        # with the base class's objects, so that every rank destroys the same ones in turn
        for B, _ in getattr(self, "_rhs", None) or ():
            B.destroy()
        super().__del__()

    @property
    def rhs_mode(self) -> str:
        """How the right-hand side is formed.

        "products" (b = Σ B_c c, verified), "unverified" (products pending the
        first-solve check) or "assembly".
        """
        if self._rhs is None:
            return "assembly"
        return "products" if self._rhs_checked else "unverified"

    def solve(self) -> fem.Function:
        """Form the right-hand side, solve with the stored factorisation."""
        self._rhs_step()
        try:
            self.solver.solve(self.b, self.x)
        except PETSc.Error as e:
            raise SolverError(f"linear solve failed: {e}") from None
        reason = self.solver.getConvergedReason()
        if reason < 0:
            raise SolverError(f"linear solve diverged (KSP reason {reason})")
        self.iterations = max(1, self.solver.getIterationNumber())
        self.x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        fem_petsc.assign(self.x, self.u)
        return self.u


class NewtonFailure(SolverError):
    """Newton did not converge (the caller may retry with a smaller time step).

    Attributes:
        where: Coordinates of the dof with the largest last update (where it broke).
    """

    def __init__(self, message: str, where: Any = None) -> None:
        super().__init__(message)
        self.where = where


#: Growth of a Newton update over the smallest one of the same solve that is taken for
#: divergence. Converging solves of the (√p, S) form on the double slit's far tail grow
#: their update up to 6× transiently (the chord steps and a refreshed Jacobian disagree);
#: diverging ones by 60× to 1e30 within a few iterations (measured 2026-12-08, issue 10).
DIVERGENCE = 100.0


class NewtonSolver:
    """Newton's method for F(u; v) = 0 with a lagged, reused LU factorisation.

    The Jacobian is assembled and factorised only when needed: at the first
    iteration, when the caller says the residual changed (a new dt), or when
    the iteration contracts slower than ``max_rate`` with the stored one. In
    between, each iteration costs one residual assembly and one pair of
    triangular solves (a chord iteration), which is what keeps a Madelung step
    within a small multiple of a Schrödinger step.

    Divergence ends the solve early: an update more than ``DIVERGENCE`` times the
    smallest one of this solve means the iterate has left the basin of the root, and
    the remaining iterations (each with a new factorisation, since it does not
    contract) would be paid for nothing; the caller retries with a smaller step.

    Attributes:
        iterations: Newton iterations of the last :meth:`solve`.
        factorisations: Jacobian factorisations since construction.
    """

    def __init__(
        self,
        F: Any,
        u: fem.Function,
        bcs: list[Any],
        prefix: str,
        petsc_options: Mapping[str, Any] | None = None,
        rtol: float = 1e-10,
        atol: float = 1e-12,
        max_iterations: int = 12,
        max_rate: float = 0.2,
        norm: Callable[[np.ndarray, np.ndarray], tuple[float, float]] | None = None,
    ) -> None:
        self.u, self.bcs, self.norm = u, bcs, norm
        self.rtol, self.atol, self.max_iterations, self.max_rate = (
            rtol,
            atol,
            max_iterations,
            max_rate,
        )
        self.F = fem.form(F)
        self.J = fem.form(ufl.derivative(F, u, ufl.TrialFunction(u.function_space)))
        self.A = fem_petsc.create_matrix(self.J)
        self.b = fem_petsc.create_vector(u.function_space)
        self.dx = self.A.createVecRight()
        self.ksp = PETSc.KSP().create(u.function_space.mesh.comm)
        self.ksp.setOptionsPrefix(prefix)
        opts: Any = PETSc.Options()  # petsc4py's stub has no item access
        # A failed factorisation must come back as a reason, not a PETSc exception that
        # leaves the right-hand side locked: the step is then retried with a smaller dt.
        options = {**merged_options(petsc_options), "ksp_error_if_not_converged": False}
        for k, v in options.items():
            opts[f"{prefix}{k}"] = v
        self.ksp.setFromOptions()
        # As LinearProblem does: the options live in the KSP now, not in the global
        # database, where they would outlive this solver and leak into the next one.
        for k in options:
            del opts[f"{prefix}{k}"]
        self.ksp.setOperators(self.A)
        attach_block_pc(self.ksp, u.function_space)
        self.iterations, self.factorisations = 0, 0
        self.linear_iterations = 0  # Krylov iterations since construction (1 per direct solve)
        self.stale = True
        self.jacobian_at: np.ndarray | None = None

    def close(self) -> None:
        """Destroy the PETSc objects (collective, same order on every rank)."""
        for obj in (self.ksp, self.dx, self.b, self.A):
            obj.destroy()

    def _residual(self) -> None:
        with self.b.localForm() as b_local:
            b_local.set(0.0)
        fem_petsc.assemble_vector(self.b, self.F)
        # No lifting: the conditions are homogeneous and every iterate satisfies them, so
        # the Newton update vanishes on the constrained dofs.
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(self.b, self.bcs, self.u.x.petsc_vec, -1.0)

    def _factorise(self) -> None:
        self.A.zeroEntries()
        fem_petsc.assemble_matrix(self.A, self.J, bcs=self.bcs)
        self.A.assemble()
        if not np.isfinite(self.A.norm(PETSc.NormType.FROBENIUS)):
            # never factorised: MUMPS fails inside KSPSolve on it, which a retry cannot survive
            raise NewtonFailure("Jacobian is not finite")
        self.factorisations += 1
        self.stale = False
        self.jacobian_at = self.u.x.array.copy()  # so a restart can refactorise the same J

    def refactorise_at(self, u: np.ndarray) -> None:
        """Factorise J at the state ``u`` (the caller sets the other coefficients), keep u."""
        current = self.u.x.array.copy()
        self.u.x.array[:] = u
        self._factorise()
        self.factorisations -= 1  # a restored factorisation, not a new one of the run
        self.u.x.array[:] = current

    def _sizes(self) -> tuple[float, float]:
        """(size of the last update, size of u): ∞-norms, or the caller's ``norm`` (collective)."""
        if self.norm is None:
            return (
                self.dx.norm(PETSc.NormType.NORM_INFINITY),
                self.u.x.petsc_vec.norm(PETSc.NormType.NORM_INFINITY),
            )
        n = self.dx.getLocalSize()
        u = self.u.x.array[:n]
        step, scale = self.norm(u, u + self.dx.array_r[:n])
        comm = self.u.function_space.mesh.comm
        return comm.allreduce(step, op=MPI.MAX), comm.allreduce(scale, op=MPI.MAX)

    def _where(self) -> Any:
        """Coordinates of the owned dof with the largest update (collective)."""
        space = self.u.function_space
        bs = space.dofmap.index_map_bs
        n = space.dofmap.index_map.size_local * bs
        local = np.abs(self.dx.array_r[:n]) if n else np.zeros(1)
        i = int(np.argmax(local)) if n else 0
        x = space.tabulate_dof_coordinates()[i // bs, : space.mesh.geometry.dim] if n else None
        best = space.mesh.comm.allgather((float(local[i]) if n else -1.0, x))
        return max(best, key=lambda p: p[0])[1]

    def solve(self) -> int:
        """Solve F(u) = 0 starting from the current u; returns the iterations.

        Raises:
            NewtonFailure: No convergence within ``max_iterations`` or a
                non-finite update; u is then left at the last iterate.
        """
        x = self.u.x.petsc_vec
        previous = smallest = np.inf
        self.iterations = 0
        for it in range(1, self.max_iterations + 1):
            self.iterations = it
            self._residual()
            # an overflowing coupling (g = 1e308) gives an inf residual; MUMPS would fail on it
            # with a PETSc error instead of a Newton failure the step control can act on
            if not np.isfinite(self.b.norm(PETSc.NormType.NORM_INFINITY)):
                self.stale = True
                raise NewtonFailure("residual is not finite")
            if self.stale:
                self._factorise()
            try:
                self.ksp.solve(self.b, self.dx)
            except PETSc.Error as e:
                # e.g. MUMPS on a singular factor. PETSc leaves b locked for reading after an
                # error inside KSPSolve, so a retry would fail on the next assembly: the run
                # ends here, cleanly.
                raise SolverError(f"linear solve failed (PETSc {e})") from None
            reason: Any = self.ksp.getConvergedReason()  # an int at run time, an enum in the stub
            self.linear_iterations += max(1, self.ksp.getIterationNumber())
            if reason < 0:
                self.stale = True
                raise NewtonFailure(f"linear solve failed (KSP reason {reason})")
            x.axpy(-1.0, self.dx)
            self.u.x.scatter_forward()
            step, scale = self._sizes()
            if not np.isfinite(step):
                self.stale = True
                raise NewtonFailure("Newton update is not finite")
            if step <= self.atol + self.rtol * scale:
                return it
            if step > DIVERGENCE * smallest:
                self.stale = True
                raise NewtonFailure(
                    f"Newton diverged (update {step:.3g} at iteration {it}, "
                    f"{step / smallest:.3g} times its smallest)",
                    self._where(),
                )
            smallest = min(smallest, step)
            if step > self.max_rate * previous:
                self.stale = True  # contracting too slowly: refresh the Jacobian
            previous = step
        self.stale = True
        raise NewtonFailure(
            f"Newton did not converge in {self.max_iterations} iterations (last update {step:.3g})",
            self._where(),
        )
