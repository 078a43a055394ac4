"""Covariant operators on trainable space (theory.md, "Covariant operators").

Every equation of nhj is written with the operators of this module and nothing
else, so that the metric g_{μν}(q) enters in exactly one place:

* volume form          √g dq,            √g = sqrt(det g)
* inverse metric       g^{μν}
* gradient norm        |∇f|²_g = g^{μν} ∂_μ f ∂_ν f
* divergence           ∇·w = (1/√g) ∂_μ(√g w^μ)
* Laplace–Beltrami     Δ_g f = ∇·(g⁻¹∇f)
* weak Laplacian       ∫ √g g^{μν} ∂_μ f ∂_ν v dq   (= −∫ v Δ_g f √g dq for v = 0 on ∂Ω)

A flat metric (``g = None``) short-circuits every factor, so the flat case
compiles to exactly the Euclidean forms and costs nothing extra. A constant
metric has its inverse and determinant computed once in numpy and placed in
``fem.Constant``s; a spatially varying metric is a UFL tensor expression and
its inverse/determinant are symbolic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ufl
from dolfinx import fem


@dataclass(frozen=True)
class Metric:
    """A Riemannian metric on the mesh coordinates q = x.

    Attributes:
        gdim: Dimension K of trainable space.
        g: UFL tensor g_{μν} (K×K), or None for the flat metric δ.
        constant: True when g does not depend on q (lets forms stay cheap).
    """

    gdim: int
    g: Any = None
    constant: bool = True
    _ginv: Any = field(default=None, repr=False)
    _sqrt_g: Any = field(default=None, repr=False)
    quadrature_degree: int | None = None

    @classmethod
    def flat(cls, gdim: int) -> Metric:
        """The Euclidean metric δ_{μν}."""
        return cls(gdim)

    @classmethod
    def from_matrix(cls, msh: Any, G: np.ndarray) -> Metric:
        """A constant SPD metric given as a numpy matrix."""
        G = np.asarray(G, dtype=float)
        if np.allclose(G, np.eye(G.shape[0]), rtol=0, atol=0):
            return cls.flat(G.shape[0])
        g = fem.Constant(msh, G)
        ginv = fem.Constant(msh, np.linalg.inv(G))
        sqrt_g = fem.Constant(msh, float(np.sqrt(np.linalg.det(G))))
        return cls(G.shape[0], g, True, ginv, sqrt_g)

    @classmethod
    def from_ufl(cls, g: Any, quadrature_degree: int | None = None) -> Metric:
        """A spatially varying metric given as a UFL tensor expression.

        Its inverse and √g are rational and irrational functions, for which UFL's
        degree estimate (and so the number of quadrature points) explodes;
        ``quadrature_degree`` caps it for every form built with :meth:`volume`.
        """
        return cls(g.ufl_shape[0], g, False, ufl.inv(g), ufl.sqrt(ufl.det(g)), quadrature_degree)

    @property
    def is_flat(self) -> bool:
        """Whether this is δ (all operators reduce to Euclidean ones)."""
        return self.g is None

    def tensor(self) -> Any:
        """g_{μν} as a UFL tensor (Identity when flat)."""
        return ufl.Identity(self.gdim) if self.g is None else self.g

    def inverse(self) -> Any:
        """g^{μν} as a UFL tensor (Identity when flat)."""
        return ufl.Identity(self.gdim) if self.g is None else self._ginv

    def sqrt_det(self) -> Any:
        """√g = sqrt(det g) (the number 1 when flat)."""
        return 1.0 if self.g is None else self._sqrt_g

    def volume(self, integrand: Any, dx: Any = ufl.dx) -> Any:
        """∫ integrand √g dq as a UFL form."""
        if self.g is None:
            return integrand * dx
        if dx is ufl.dx and self.quadrature_degree is not None:
            dx = ufl.dx(metadata={"quadrature_degree": self.quadrature_degree})
        return integrand * self._sqrt_g * dx

    def raise_index(self, w: Any) -> Any:
        """g^{μν} w_ν for a covector (e.g. a gradient)."""
        return w if self.g is None else ufl.dot(self._ginv, w)

    def inner(self, a: Any, b: Any) -> Any:
        """g^{μν} a_μ b_ν for two covectors."""
        return ufl.dot(a, self.raise_index(b))

    def grad_norm2(self, f: Any) -> Any:
        """|∇f|²_g = g^{μν} ∂_μ f ∂_ν f."""
        return self.inner(ufl.grad(f), ufl.grad(f))

    def grad_inner(self, f: Any, v: Any) -> Any:
        """g^{μν} ∂_μ f ∂_ν v (the integrand of the weak Laplacian without √g)."""
        return self.inner(ufl.grad(f), ufl.grad(v))

    def gradient(self, f: Any) -> Any:
        """The vector ∇f with components g^{μν}∂_ν f."""
        return self.raise_index(ufl.grad(f))

    def divergence(self, w: Any) -> Any:
        """∇·w = (1/√g) ∂_μ(√g w^μ) for a vector field w^μ."""
        if self.g is None or self.constant:
            return ufl.div(w)
        return ufl.div(self._sqrt_g * w) / self._sqrt_g

    def laplacian(self, f: Any) -> Any:
        """Δ_g f = ∇·(g⁻¹∇f) as a strong (pointwise) UFL expression."""
        return self.divergence(self.gradient(f))

    def weak_laplacian(self, f: Any, v: Any, dx: Any = ufl.dx) -> Any:
        """∫ √g g^{μν} ∂_μ f ∂_ν v dq, i.e. −∫ v Δ_g f √g dq up to boundary terms."""
        return self.volume(self.grad_inner(f, v), dx)

    def weak_diffusion(self, K: Any, f: Any, v: Any, dx: Any = ufl.dx) -> Any:
        """∫ √g K^{μν} ∂_μ f ∂_ν v dq for a contravariant tensor K (noise, Fisher)."""
        return self.volume(ufl.dot(ufl.grad(v), ufl.dot(K, ufl.grad(f))), dx)
