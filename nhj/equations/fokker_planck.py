"""Covariant Fokker–Planck equation (2.7) of noisy gradient descent.

Strong form, with the covariant divergence of nhj.covariant:

    ∂ₜp = ∇_μ( γ p g^{μν}∂_ν L̄ + D^{μν}∂_ν p ),   D = (γ²/2) g⁻¹κg⁻¹.

Weak form (integrating with √g; the flux vanishes on ∂Ω for zero-flux
boundaries, so v = 1 shows that ∫ p √g is conserved):

    ∫ ∂ₜp v √g dq + ∫ (γ p g⁻¹∇L̄ + D∇p)·∇v √g dq = 0.

The operator is linear and time independent: a time step is one solve with a
matrix factorised once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ufl

from nhj.covariant import Metric
from nhj.equations.base import SemiDiscrete
from nhj.equations.learning import drift


@dataclass(frozen=True)
class FokkerPlanck:
    """Parameters of (2.7): metric g, loss L̄ (UFL), diffusion D (UFL tensor), γ."""

    metric: Metric
    loss: Any
    D: Any
    gamma: float

    def flux(self, p: Any) -> Any:
        """−J^μ = γ p g^{μν}∂_ν L̄ + D^{μν}∂_ν p (the probability flux, sign flipped)."""
        return -p * drift(self.metric, self.loss, self.gamma) + ufl.dot(self.D, ufl.grad(p))

    def mass(self, u: Any, w: Any, v: Any) -> Any:
        """∫ w v √g dq."""
        return self.metric.volume(w * v)

    def operator(self, p: Any, v: Any) -> Any:
        """∫ (γ p g⁻¹∇L̄ + D∇p)·∇v √g dq."""
        return self.metric.volume(ufl.dot(self.flux(p), ufl.grad(v)))

    def total(self, p: Any) -> Any:
        """∫ p √g dq."""
        return self.metric.volume(p)

    def mean_loss(self, p: Any) -> Any:
        """⟨L̄⟩ = ∫ p L̄ √g dq."""
        return self.metric.volume(p * self.loss)

    def semidiscrete(self, space: Any) -> SemiDiscrete:
        """The labelled pieces for the time schemes."""
        return SemiDiscrete(
            space=space,
            mass=self.mass,
            operator=self.operator,
            linear=True,
            functionals={"mass": self.total, "mean_loss": self.mean_loss},
        )


def invariant_density(N: Any, sqrt_g: Any) -> Any:
    """p = N/√g: the density of (2.7) (with respect to √g dq) of a coordinate density N.

    A normally distributed q has the coordinate density N; (2.7) evolves the
    invariant density p, whose measure is p √g dq = N dq.
    """
    return N / sqrt_g
