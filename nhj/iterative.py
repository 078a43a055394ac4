"""Block preconditioners for the real forms of complex-shifted systems (PRESB) and AMG.

The implicit steps of Schrödinger (3.11) solve, in the real pair (ψ_r, ψ_i),

    [ A   −B ] [x]   [f]
    [ B    A ] [y] = [g],      A = ħM (times a shift), B = θ dt H (M ± iθdtH in real form),

and a Gauss–Legendre stage (nhj/propagators.py) solves the same structure one
level up, with A = αM₂ + dtA₂ (itself such a system) and B = βM₂. The PRESB
preconditioner (preconditioned square block; Axelsson, Neytcheva, Ahmad,
Numer. Algorithms 66 (2014) 811) replaces A in the lower right by A + 2B:

    P = [ A   −B     ]      P⁻¹(f, g):  h = S⁻¹(f + g),  y = S⁻¹(A h − f),  x = h − y,
        [ B    A + 2B ],    S = A + B,

two solves with S = A + B (for Schrödinger the SPD matrix ħM + θdtH) and one
product with A. For A SPD and B symmetric positive semi-definite the
eigenvalues of P⁻¹K lie in [1/2, 1] whatever h and dt are, so a Krylov method
converges in a number of iterations bounded independently of both; the S
solves are one algebraic multigrid V-cycle each (PETSc GAMG: the wheel has no
hypre), whose contraction is h-independent for the Laplacian-plus-mass S.

Nothing here knows the physics: the blocks are read off the assembled matrix
(the unknown's components interleaved, first half / second half), the
structure is checked, and a matrix without it is preconditioned by AMG on the
whole (Fokker–Planck (2.7), a real scalar system, takes that path).
"""

from __future__ import annotations

from typing import Any

from petsc4py import PETSc

import numpy as np

# The structure is an algebraic identity of the assembled blocks (the same forms and
# quadrature fill K₀₀ and K₁₁), so only round-off separates them.
_STRUCTURE_RTOL = 1e-10


def gamg_threshold(degree: int) -> float:
    """GAMG's drop threshold for the aggregation graph of a degree-``degree`` Lagrange space.

    P2 and higher have positive off-diagonals: dropping weak couplings (0.05) keeps the
    V-cycle's contraction nearly h-independent (2D P2 Crank–Nicolson: outer iterations
    17/27/40 on 32²/64²/128² cells with the default, 17/22/25 with 0.05; 11/12/12 with exact
    S solves). P1 couplings are of one sign, and dropping slows the coarsening: 3D P1 Crank–
    Nicolson at 30³/50³/80³ cells, 0.125/0.80/9.5 s per step with 0.05 against
    0.126/0.67/3.3 s with 0 at the same 14.5–16.5 iterations (benchmarks/three_d.py).
    """
    return 0.05 if degree >= 2 else 0.0


def _component_is(K: Any, bs: int, components: range) -> Any:
    """Owned rows of the given components of a bs-interleaved matrix (sorted, global)."""
    r0, r1 = K.getOwnershipRange()
    nodes = np.arange((r1 - r0) // bs, dtype=PETSc.IntType) * bs + r0
    idx: Any = np.sort(np.concatenate([nodes + c for c in components]))
    return PETSc.IS().createGeneral(idx.astype(PETSc.IntType), comm=K.getComm())


class _AMG:
    """S⁻¹ ≈ one GAMG V-cycle (an inner KSP without Krylov iterations)."""

    def __init__(self, S: Any, bs: int, prefix: str, threshold: float) -> None:
        self.S = S
        self.ksp = PETSc.KSP().create(S.getComm())
        self.ksp.setOptionsPrefix(prefix)
        self.ksp.setOperators(S)
        self.ksp.setType("preonly")
        self.ksp.getPC().setType("gamg")
        db: Any = PETSc.Options()
        ours = {"pc_gamg_threshold": threshold}
        ours = {k: v for k, v in ours.items() if not db.hasName(f"{prefix}{k}")}
        for k, v in ours.items():
            db[f"{prefix}{k}"] = v
        self.ksp.setFromOptions()  # a user's global -{prefix}pc_gamg_* may refine it
        for k in ours:
            db.delValue(f"{prefix}{k}")
        self.ksp.setUp()

    def apply(self, x: Any, y: Any) -> None:
        self.ksp.solve(x, y)

    def destroy(self) -> None:
        self.ksp.destroy()


class _Presb:
    """P⁻¹ of one level; S⁻¹ by the next level (PRESB again, or AMG)."""

    def __init__(
        self,
        K: Any,
        bs: int,
        sigma: float,
        blocks: tuple[Any, Any, Any],
        prefix: str,
        threshold: float,
    ) -> None:
        self.bs, self.half, self.sigma = bs, bs // 2, sigma
        self.is0, self.is1, A = blocks
        self.A = A
        B = K.createSubMatrix(self.is1, self.is0)
        if sigma < 0:
            B.scale(-1.0)
        self.S = A.copy()
        self.S.axpy(1.0, B, structure=PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN)
        B.destroy()
        self.inner = level(self.S, self.half, prefix, threshold)
        self.f, self.h = self.S.createVecs()
        self.g, self.y = self.S.createVecs()
        self.r = self.S.createVecLeft()

    def apply(self, xv: Any, yv: Any) -> None:
        """yv = P⁻¹ xv (local arrays: the components of a node are contiguous)."""
        half = self.half
        rhs = xv.getArray(readonly=True).reshape(-1, self.bs)
        f, g = rhs[:, :half].reshape(-1), rhs[:, half:].reshape(-1)
        # y' = σy turns [[A, −σB], [σB, A]] into the canonical form with B ⪰ 0
        self.f.getArray()[:] = f + self.sigma * g
        self.inner.apply(self.f, self.h)  # h = S⁻¹(f + g')
        self.A.mult(self.h, self.r)
        self.r.getArray()[:] -= f
        self.inner.apply(self.r, self.y)  # y' = S⁻¹(A h − f)
        out = yv.getArray().reshape(-1, self.bs)
        y = self.y.getArray(readonly=True)
        out[:, :half] = (self.h.getArray(readonly=True) - y).reshape(-1, half)
        out[:, half:] = (self.sigma * y).reshape(-1, half)

    def destroy(self) -> None:
        self.inner.destroy()
        for obj in (self.r, self.y, self.g, self.h, self.f, self.S, self.A, self.is1, self.is0):
            obj.destroy()


def _presb_blocks(K: Any, bs: int) -> tuple[float, tuple[Any, Any, Any]] | None:
    """(σ, (IS₀, IS₁, A)) if K = [[A, −σB], [σB, A]] with B ⪰ 0 on the diagonal, else None.

    The identities K₁₁ = K₀₀ and K₀₁ = −K₁₀ are checked on a random vector (products,
    O(nnz)): a matrix difference with a different pattern costs a reallocation that took
    minutes at 10⁶ dofs. Collective: every rank extracts and compares the same blocks.
    """
    half = bs // 2
    is0, is1 = _component_is(K, bs, range(half)), _component_is(K, bs, range(half, bs))
    K00 = K.createSubMatrix(is0, is0)
    K11 = K.createSubMatrix(is1, is1)
    K10 = K.createSubMatrix(is1, is0)
    K01 = K.createSubMatrix(is0, is1)
    x, y0 = K00.createVecs()
    y1 = K00.createVecLeft()
    rng = np.random.default_rng(12345 + K.getComm().tompi4py().rank)
    x.getArray()[:] = rng.standard_normal(x.getLocalSize())
    K00.mult(x, y0)
    K11.mult(x, y1)
    y1.axpy(-1.0, y0)
    scale, defect = y0.norm(), y1.norm()
    K10.mult(x, y0)
    K01.multAdd(x, y0, y1)  # (K₀₁ + K₁₀) x
    scale, defect = max(scale, y0.norm()), max(defect, y1.norm())
    # B's sign from its trace: θdtH has a positive diagonal (the kinetic part dominates)
    trace = K10.getDiagonal().sum()
    for obj in (y1, y0, x, K01, K10, K11):
        obj.destroy()
    if not defect <= _STRUCTURE_RTOL * scale:
        for obj in (K00, is1, is0):
            obj.destroy()
        return None
    return (1.0 if trace >= 0 else -1.0), (is0, is1, K00)


def level(K: Any, bs: int, prefix: str, threshold: float) -> _Presb | _AMG:
    """The preconditioner of K: PRESB while its blocks have the structure, then AMG."""
    if bs % 2 == 0:
        found = _presb_blocks(K, bs)
        if found is not None:
            sigma, blocks = found
            return _Presb(K, bs, sigma, blocks, f"{prefix}s{bs // 2}_", threshold)
    return _AMG(K, bs, f"{prefix}amg_", threshold)


class BlockPC:
    """A PETSc python PC: PRESB on the real form of complex-shifted systems, else AMG.

    Attach with ``pc.setType("python"); pc.setPythonContext(BlockPC())``;
    :attr:`kind` says what :meth:`setUp` found ("presb" levels or "amg").
    """

    def __init__(self, degree: int = 2) -> None:
        self.threshold = gamg_threshold(degree)  # of the space the matrix is assembled on
        self.root: _Presb | _AMG | None = None
        self.kind = "none"

    def setUp(self, pc: Any) -> None:
        """Build the levels from the preconditioning matrix (collective)."""
        # PETSc calls this only when the operator changed (a Newton Jacobian; a constant
        # matrix once): rebuild the blocks from the new values
        self.destroy(pc)
        _, P = pc.getOperators()
        bs = P.getBlockSize()
        self.root = level(P, bs, f"{pc.getOptionsPrefix() or ''}presb_", self.threshold)
        depth, node = 0, self.root
        while isinstance(node, _Presb):
            depth, node = depth + 1, node.inner
        self.kind = f"presb{depth}" if depth else "amg"

    def apply(self, pc: Any, x: Any, y: Any) -> None:
        """y = P⁻¹ x."""
        if self.root is None:
            raise RuntimeError("BlockPC.apply before setUp")
        self.root.apply(x, y)

    def reset(self, pc: Any) -> None:
        """A new operator: rebuild at the next setUp (collective)."""
        self.destroy(pc)

    def destroy(self, pc: Any) -> None:
        """Destroy the levels (collective, same order on every rank)."""
        if self.root is not None:
            self.root.destroy()
        self.root = None
