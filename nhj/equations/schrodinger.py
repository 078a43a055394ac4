"""Schrödinger equation (3.11) with ħ = γ/β (3.12) and m = 1/γ (3.13).

Strong form, with the Laplace–Beltrami operator of the metric g:

    iħ ∂ₜψ = Hψ,   Hψ = −(ħ²/2m) Δ_g ψ + V ψ.

With ψ = ψ_r + iψ_i as a real pair u = (ψ_r, ψ_i) the system is
ħ∂ₜψ_r = Hψ_i, ħ∂ₜψ_i = −Hψ_r, and with the Hamiltonian form

    h(f, v) = ∫ [ (ħ²/2m) g^{μν}∂_μ f ∂_ν v + V f v ] √g dq

the weak semi-discrete form is

    ħ ∫ ∂ₜu·v √g dq + [ h(ψ_r, v_i) − h(ψ_i, v_r) ] = 0,

a skew coupling of the symmetric h: any scheme conserving quadratic invariants
(Crank–Nicolson) keeps ‖ψ‖² = ∫|ψ|²√g and ⟨ψ|H|ψ⟩ to round-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ufl

from nhj.covariant import Metric
from nhj.equations.base import SemiDiscrete


@dataclass(frozen=True)
class Schrodinger:
    """Parameters of (3.11): metric g, potential V (UFL), ħ and m."""

    metric: Metric
    V: Any
    hbar: float
    m: float

    def h(self, f: Any, v: Any) -> Any:
        """The Hamiltonian form h(f, v) = ⟨v|H|f⟩ for real scalar f, v."""
        g = self.metric
        kinetic = (self.hbar**2 / (2.0 * self.m)) * g.weak_laplacian(f, v)
        if isinstance(self.V, (int, float)) and self.V == 0:  # UFL cannot integrate a literal 0
            return kinetic
        return kinetic + g.volume(self.V * f * v)

    def mass(self, u: Any, w: Any, v: Any) -> Any:
        """ħ ∫ w·v √g dq."""
        return self.hbar * self.metric.volume(ufl.inner(w, v))

    def operator(self, u: Any, v: Any) -> Any:
        """h(ψ_r, v_i) − h(ψ_i, v_r)."""
        return self.h(u[0], v[1]) - self.h(u[1], v[0])

    def norm2(self, u: Any) -> Any:
        """‖ψ‖² = ∫ |ψ|² √g dq, the mass ∫ p √g of p = |ψ|² (3.10)."""
        return self.metric.volume(ufl.inner(u, u))

    def energy(self, u: Any) -> Any:
        """⟨ψ|H|ψ⟩ = h(ψ_r, ψ_r) + h(ψ_i, ψ_i)."""
        return self.h(u[0], u[0]) + self.h(u[1], u[1])

    def density(self, u: Any) -> Any:
        """P = |ψ|² (3.10)."""
        return u[0] ** 2 + u[1] ** 2

    def phase(self, u: Any) -> Any:
        """S = ħ arg ψ (3.10), wrapped to (−πħ, πħ]."""
        return self.hbar * ufl.atan2(u[1], u[0])

    def density_and_phase_gradient(self, u: Any, floor: Any = 0.0) -> tuple[Any, Any]:
        """(|ψ|², ħ∇arg ψ) of (3.10), with ħ∇arg ψ = ħ(ψ_r∇ψ_i − ψ_i∇ψ_r)/|ψ|² (no branch cut).

        Where |ψ|² underflows the quotient is 0/0; it is taken as 0 where
        |ψ|² ≤ ``floor`` (a UFL constant or number ≥ 0), so that a weight
        vanishing there cannot multiply a NaN.
        """
        p = self.density(u)
        flux = u[0] * ufl.grad(u[1]) - u[1] * ufl.grad(u[0])
        chi = ufl.conditional(ufl.gt(p, floor), 1.0, 0.0)
        safe = ufl.conditional(ufl.gt(p, floor), p, 1.0)  # never 0: no 0/0 anywhere
        return p, self.hbar * chi * flux / safe

    def semidiscrete(self, space: Any) -> SemiDiscrete:
        """The labelled pieces for the time schemes."""
        return SemiDiscrete(
            space=space,
            mass=self.mass,
            operator=self.operator,
            linear=True,
            functionals={"mass": self.norm2, "energy": self.energy},
        )


def wrapped(S: Any, hbar: Any) -> Any:
    """S wrapped to (−πħ, πħ] like ħ arg ψ, to show a (√p, S) phase beside a wave's."""
    return hbar * ufl.atan2(ufl.sin(S / hbar), ufl.cos(S / hbar))


def wavefunction(R: Any, S: Any, hbar: Any) -> Any:
    """ψ = √p e^{iS/ħ} (3.10) from R = √p and S, as the real pair (Re ψ, Im ψ)."""
    return ufl.as_vector((R * ufl.cos(S / hbar), R * ufl.sin(S / hbar)))
