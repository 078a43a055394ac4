"""Ground state of the Hamiltonian of (3.11) and the ground state ↔ Gibbs check.

With V from the average loss by the effective potential (3.6) and ħ = γ/β (3.12),
m = 1/γ (3.13), the Hamiltonian factorises: writing φ = βL̄/γ,

    H = −(ħ²/2m) Δ_g + V = (ħ²/2m) (−Δ_g + |∇φ|²_g − Δ_g φ),

which annihilates e^{−φ} and is ≥ 0 on any domain with ψ = 0 on ∂Ω. So the
ground state is ψ₀ ∝ exp(−βL̄/γ) with E₀ = 0 and |ψ₀|² = exp(−2βL̄/γ)/Z, the
Gibbs density of (2.7) (theory.md, "Ground state ↔ Gibbs", item 3 of the
correspondence check).

Discretely, with the Hamiltonian form h of :class:`~nhj.equations.schrodinger.Schrodinger`,
find the smallest E and ψ ∈ P_k (ψ = 0 on the Dirichlet boundary) with

    h(ψ, v) = E ∫ ψ v √g dq   for all v ∈ P_k,

i.e. the generalised symmetric problem A x = E M x. Rows of Dirichlet dofs get
1 on the diagonal of A and 0 on that of M, so their spurious pairs sit at
E = ∞, where shift-and-invert never looks. The physics (h, V, L̄) comes from
the equation modules; this module only assembles and solves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mpi4py import MPI
from petsc4py import PETSc
from slepc4py import SLEPc

import basix
import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc

from nhj.builders.common import boundary_conditions, make_loss, make_metric, make_potential
from nhj.covariant import Metric
from nhj.diagnostics import global_scalar, quadrature
from nhj.equations.learning import gibbs_log_weight
from nhj.equations.schrodinger import Schrodinger
from nhj.meshes import build_mesh
from nhj.schema import CaseError
from nhj.sections import Case
from nhj.solvers import SolverError

PREFIX = "nhj_ground_state_"
"""Options prefix of the eigensolver, the same on every rank."""


def default_eigen_options() -> dict[str, Any]:
    """Krylov–Schur with shift-and-invert, the shifted system factorised by MUMPS (fresh copy)."""
    return {
        "eps_type": "krylovschur",
        "eps_nev": 1,
        "eps_tol": 1e-12,
        "eps_max_it": 500,
        "st_type": "sinvert",
        "st_ksp_type": "preonly",
        "st_pc_type": "lu",
        "st_pc_factor_mat_solver_type": "mumps",
    }


@dataclass
class GroundState:
    """The lowest eigenpair of H.

    Attributes:
        E0: The smallest eigenvalue.
        psi: Its eigenfunction, ∫ ψ₀² √g dq = 1 and ∫ ψ₀ √g dq > 0.
        nconv: Number of eigenpairs SLEPc reports converged.
        target: The shift σ < E₀ the spectrum was searched from.
    """

    E0: float
    psi: fem.Function
    nconv: int
    target: float


def potential_minimum(V: Any, msh: Any, degree: int) -> float:
    """The minimum of V over the quadrature points of degree 2k+4 of every cell (collective).

    x^T A x ≥ min V · x^T M x, since the kinetic part is ≥ 0: this bounds the
    discrete spectrum from below (up to where the quadrature of h samples V).
    """
    if isinstance(V, (int, float)):
        return float(V)
    points, _ = basix.make_quadrature(msh.basix_cell(), 2 * degree + 4)
    points = np.asarray(points)
    tdim = msh.topology.dim
    cells = np.arange(msh.topology.index_map(tdim).size_local, dtype=np.int32)
    values = fem.Expression(V, points, comm=msh.comm).eval(msh, cells)
    local = float(values.min()) if values.size else np.inf
    return float(msh.comm.allreduce(local, op=MPI.MIN))


def default_target(eq: Schrodinger, msh: Any, degree: int) -> float:
    """A shift σ strictly below the spectrum: min V less a tenth of |min V| + ħ²/2m.

    Below every eigenvalue, "nearest to σ" is "smallest", and A − σM is positive
    definite, so the factorisation never meets a (near-)singular pivot even when
    E₀ = 0 to round-off. The margin covers quadrature points of h that the
    sampling of V misses.
    """
    Vmin = potential_minimum(eq.V, msh, degree)
    return Vmin - 0.1 * (abs(Vmin) + eq.hbar**2 / (2.0 * eq.m))


def _apply_options(eps: SLEPc.EPS, options: Mapping[str, Any]) -> None:
    """Set options under the fixed prefix, read them, and remove them again."""
    opts: Any = PETSc.Options()  # petsc4py's stub has no item access
    opts.prefixPush(PREFIX)
    try:
        for k, v in options.items():
            opts[k] = v
        eps.setFromOptions()
    finally:
        for k in options:
            del opts[k]
        opts.prefixPop()


def ground_state(
    eq: Schrodinger,
    space: Any,
    bcs: list[Any],
    target: float | None = None,
    petsc_options: Mapping[str, Any] | None = None,
) -> GroundState:
    """The lowest eigenpair of H = −(ħ²/2m)Δ_g + V of (3.11) on a scalar P_k space (collective).

    Args:
        eq: The Schrödinger equation (metric, V, ħ, m); its form h gives A.
        space: A scalar Lagrange space.
        bcs: Homogeneous Dirichlet conditions on ``space`` (may be empty).
        target: Shift σ, which must lie below E₀; None takes :func:`default_target`.
        petsc_options: Overrides of :func:`default_eigen_options` (without the prefix).

    Raises:
        SolverError: SLEPc did not converge, or the eigenvalue found is not above σ.
    """
    msh = space.mesh
    u, v = ufl.TrialFunction(space), ufl.TestFunction(space)
    a = fem.form(eq.h(u, v))
    m = fem.form(eq.metric.volume(u * v))
    sigma = (
        default_target(eq, msh, space.element.basix_element.degree)
        if target is None
        else float(target)
    )
    options = default_eigen_options()
    options.update(petsc_options or {})
    psi = fem.Function(space, name="psi0")

    # Created and destroyed in one fixed order on every rank: MUMPS frees its
    # communicators collectively, and garbage-collection order differs per rank.
    created: list[Any] = []
    try:
        A = fem_petsc.assemble_matrix(a, bcs=bcs)  # Dirichlet rows: diagonal 1 ...
        created.append(A)
        A.assemble()
        M = fem_petsc.assemble_matrix(m, bcs=bcs, diag=0.0)  # ... and 0 here: E = ∞
        created.append(M)
        M.assemble()
        y = M.createVecLeft()
        created.append(y)
        eps = SLEPc.EPS().create(msh.comm)
        created.append(eps)
        eps.setOptionsPrefix(PREFIX)
        eps.setOperators(A, M)
        eps.setProblemType(SLEPc.EPS.ProblemType.GHEP)
        eps.setWhichEigenpairs(SLEPc.EPS.Which.TARGET_REAL)
        eps.setTarget(sigma)
        _apply_options(eps, options)
        try:
            eps.solve()
        except PETSc.Error as e:
            raise SolverError(f"ground-state eigensolve failed: {e}") from None
        nconv = eps.getConverged()
        if eps.getConvergedReason() < 0 or nconv < 1:
            raise SolverError(
                f"ground-state eigensolve did not converge (EPS reason "
                f"{eps.getConvergedReason()}, {nconv} pairs)"
            )
        # nearest to σ < E₀ is the smallest; take the minimum anyway, order is SLEPc's business
        values = [eps.getEigenvalue(i).real for i in range(nconv)]
        i0 = int(np.argmin(values))
        E0 = float(values[i0])
        if not E0 > sigma:
            raise SolverError(
                f"eigenvalue {E0:.6g} is not above the shift {sigma:.6g}: "
                "pass a target below the spectrum"
            )
        x = psi.x.petsc_vec
        eps.getEigenvector(i0, x)
        M.mult(x, y)  # y = M x: x·y = ∫ψ²√g, Σy = ∫ψ√g (less boundary rows, where ψ = 0)
        scale = (1.0 if y.sum() >= 0 else -1.0) / np.sqrt(x.dot(y))
        x.scale(scale)
        psi.x.scatter_forward()
    finally:
        for obj in reversed(created):  # the solver (and its MUMPS factor) first
            obj.destroy()
    return GroundState(E0, psi, nconv, sigma)


def gibbs_l1(
    p: Any, loss: Any, gamma: float, beta: float, metric: Metric, degree: int, comm: MPI.Comm
) -> float:
    """‖p − p∞‖₁ = ∫ |p − exp(−2βL̄/γ)/Z| √g dq, Z = ∫ exp(−2βL̄/γ) √g dq (collective).

    The Gibbs density of (2.7) at α = 1. ``p`` is a UFL expression or a Function
    (e.g. ψ₀² of a ground state). This is the ``gibbs_l1`` column of
    :class:`nhj.diagnostics.GibbsDistance` for any UFL density: that class needs
    p as a Function, and putting ψ₀² into one would add an interpolation error.
    """
    dx = quadrature(degree)
    w = ufl.exp(gibbs_log_weight(loss, gamma, beta))
    Z = global_scalar(fem.form(metric.volume(w, dx)), comm)
    return global_scalar(fem.form(metric.volume(abs(p - w / Z), dx)), comm)


def mesh_size(msh: Any) -> float:
    """The largest cell diameter h (collective)."""
    tdim = msh.topology.dim
    cells = np.arange(msh.topology.index_map(tdim).size_local, dtype=np.int32)
    local = float(msh.h(tdim, cells).max()) if cells.size else 0.0
    return float(msh.comm.allreduce(local, op=MPI.MAX))


def ground_state_check(case: Case, comm: MPI.Comm) -> dict[str, float | int]:
    """Ground state ↔ Gibbs for a case with ``potential.loss`` (collective).

    V comes from L̄ by (3.6), ħ and m from the case's γ, β (3.12)–(3.13); ψ = 0
    on ∂Ω unless the case asks for ``zero_flux``. Returns E₀ (≈ 0), ``gibbs_l1``
    = ‖ψ₀² − exp(−2βL̄/γ)/Z‖₁ (≈ 0), the number of dofs and the mesh size h.

    Raises:
        CaseError: The case has no loss (V given directly, or harmonic ω).
    """
    if not case.potential.has_loss:
        raise CaseError(
            "potential.loss",
            "the ground state ↔ Gibbs check needs the average "
            "loss: give potential.loss (an expression) or potential.curvature",
        )
    par, degree = case.parameters, case.discretisation.degree
    msh = build_mesh(case.mesh, comm)
    metric = make_metric(case.metric, msh)
    loss = make_loss(case, msh)
    eq = Schrodinger(metric, make_potential(case, msh, metric), par.hbar, par.m)
    space = fem.functionspace(msh, ("Lagrange", degree))
    bcs = boundary_conditions(case, space, "dirichlet", 0.0)
    gs = ground_state(eq, space, bcs)  # [solver] options are the time stepper's, not these
    im = space.dofmap.index_map
    return {
        "E0": gs.E0,
        "gibbs_l1": gibbs_l1(gs.psi**2, loss, par.gamma, par.beta, metric, degree, comm),
        "dofs": im.size_global,
        "h": mesh_size(msh),
    }
