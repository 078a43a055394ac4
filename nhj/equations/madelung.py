"""Madelung and neural Hamilton–Jacobi dynamics, (3.7)–(3.9) and (5.1)–(5.4).

The unknowns are the amplitude R = √p and the phase S on a blocked P_k×2
space. With the Fisher tensor F = (γ³/4) g⁻¹κg⁻¹κg⁻¹ of (5.3) the strong
equations are

    continuity (3.7), as an amplitude equation:
        ∂ₜR + γ g⁻¹∇R·∇S + (γ/2) R Δ_g S = 0
    neural HJ (5.2) multiplied by R, with R Q_N = −2∇·(F∇R):
        R (∂ₜS + (γ/2)|∇S|²_g + V) − 2∇·(F∇R) = 0.

α = 1 (κ = g/β) gives F = (ħ²/4m) g⁻¹, Q_N the quantum potential (3.9) and the
Madelung pair: ``madelung`` is this equation with α = 1, not a second code.

Weak form (test functions w for R, v for S; √g dq throughout):

    ∫ ∂ₜR w + (γ/2) ∫ [ w g⁻¹∇R·∇S − R g⁻¹∇S·∇w ]                      = 0
    ∫ |R| ∂ₜS v + ∫ R((γ/2)|∇S|²_g + V) v + ∫ 2 F∇R·∇v + ν_h ∫ ∇S·∇v = 0

* The amplitude equation is written skew-symmetrically (half of the advection
  integrated by parts). Tested with w = R it gives d/dt ∫R² = 0 exactly, and
  with the implicit midpoint rule, w = R_mid, the discrete ∫R²√g is conserved
  to round-off whatever the mesh — while its mass matrix stays ∫ w ∂ₜR,
  non-degenerate where R vanishes.
* The HJ equation is multiplied by R so that the Fisher term needs no division
  by R: ∫ R Q_N v = ∫ 2F∇R·∇v after integration by parts. Its ∂ₜS term takes
  |R|: equal where R ≥ 0, and where the discrete R undershoots in the tails a
  negative weight would run the phase diffusion backwards in time.
* Vacuum. Where R → 0 the HJ rows vanish and S is undetermined: without
  help S blows up in the far tails within a fraction of a time unit, and the
  LU factorisation fails when R underflows. A phase diffusion ν_h ∫∇S·∇v
  (see :class:`Vacuum`) makes S the smooth (harmonic) extension of the phase
  of the support there. In the support it is a perturbation of size
  ν_h ΔS/R of the HJ equation; ν_h ∝ (h/ℓ)^{k+1} vanishes at the order of
  the scheme, and at the default ν₀ its effect on the error is below the
  discretisation error (tests/test_madelung.py).

The log-amplitude form (ρ = log √p, S) of the same equations is
:class:`nhj.equations.madelung_log.MadelungLog` (``vacuum.amplitude = "log"``).
Both classes have ``amplitude`` ("sqrt" | "log") and ``amplitude_of(u)`` (R as
UFL). One set of conversions serves either form, e.g. for a switch to the wave
form ψ = R e^{iS/ħ} (3.10) and back: :func:`amplitude_phase` (unknowns → (R, S),
UFL), :func:`to_amplitude_phase` and :func:`from_amplitude_phase` (nodal arrays).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import ufl

from nhj.covariant import Metric
from nhj.equations.base import SemiDiscrete
from nhj.equations.schrodinger import wavefunction


@dataclass(frozen=True)
class Vacuum:
    """Phase diffusion ν_h ∫∇S·∇v √g dq that keeps S defined where p vanishes.

    Attributes:
        nu: ν_h (absolute; units of R × length² / time). The run sets it to
            ν₀ max R₀ ℓ² (h/ℓ)^{k+1}, so it vanishes under refinement at the
            order of the discretisation.
    """

    nu: float = 0.0

    @classmethod
    def scaled(cls, nu0: float, R_max: float, h: float, ell: float, degree: int) -> Vacuum:
        """ν_h = ν₀ max R₀ ℓ² (h/ℓ)^{k+1}: relative to the amplitude and domain size ℓ.

        It vanishes under refinement (cell size h) at the order k + 1 of
        degree-k elements, so the phase diffusion is a consistent perturbation.
        """
        return cls(nu=nu0 * R_max * ell**2 * (h / ell) ** (degree + 1))


@dataclass(frozen=True)
class Madelung:
    """(3.7) + (5.2) in (√p, S): metric g, potential V (UFL), Fisher tensor F, γ, ħ.

    The Madelung pair (3.7)–(3.9) is F = (ħ²/4m) g⁻¹; any other F (from a
    noise tensor κ by (5.3)) is the neural Hamilton–Jacobi equation. ħ only
    enters through ψ = R e^{iS/ħ} (3.10) in the outputs; the dynamics sees ħ
    and m through F.
    """

    metric: Metric
    V: Any
    F: Any
    gamma: float
    hbar: float
    vacuum: Vacuum = Vacuum()

    amplitude = "sqrt"

    def amplitude_of(self, u: Any) -> Any:
        """R = √p: the first unknown itself."""
        return u[0]

    def mass(self, u: Any, w: Any, v: Any) -> Any:
        """M(u; ∂ₜu, v) = ∫ ∂ₜR v_R + |R| ∂ₜS v_S."""
        return self.metric.volume(w[0] * v[0] + abs(u[0]) * w[1] * v[1])

    def transport(self, R: Any, S: Any, w: Any) -> Any:
        """(γ/2) ∫ [w g⁻¹∇R·∇S − R g⁻¹∇S·∇w]: ∇·(R²γ g⁻¹∇S)/(2R) in skew form."""
        g = self.metric
        return 0.5 * self.gamma * g.volume(w * g.grad_inner(R, S) - R * g.grad_inner(S, w))

    def hamilton_jacobi(self, R: Any, S: Any, v: Any) -> Any:
        """∫ R((γ/2)|∇S|²_g + V) v + ∫ 2F∇R·∇v: R times (5.2) without ∂ₜS."""
        g = self.metric
        classical = 0.5 * self.gamma * g.grad_norm2(S)
        if not (isinstance(self.V, (int, float)) and self.V == 0):
            classical = classical + self.V
        form = g.volume(R * classical * v) + 2.0 * g.weak_diffusion(self.F, R, v)
        if self.vacuum.nu:
            form += self.vacuum.nu * g.weak_laplacian(S, v)
        return form

    def operator(self, u: Any, v: Any) -> Any:
        """A(u; v): transport of R and the HJ terms of S."""
        return self.transport(u[0], u[1], v[0]) + self.hamilton_jacobi(u[0], u[1], v[1])

    def density(self, u: Any) -> Any:
        """P = R²."""
        return u[0] ** 2

    def total(self, u: Any) -> Any:
        """∫ p √g dq."""
        return self.metric.volume(self.density(u))

    def energy(self, u: Any) -> Any:
        """E = ∫ [p((γ/2)|∇S|²_g + V) + 2F∇√p·∇√p] √g dq.

        Conserved by the flow (shared theory.md); not a quadratic invariant, so
        the midpoint rule keeps it to O(dt²), not to round-off.
        """
        g = self.metric
        kinetic = 0.5 * self.gamma * g.grad_norm2(u[1])
        if not (isinstance(self.V, (int, float)) and self.V == 0):
            kinetic = kinetic + self.V
        return g.volume(u[0] ** 2 * kinetic) + 2.0 * g.weak_diffusion(self.F, u[0], u[0])

    def velocity(self, u: Any) -> Any:
        """The probability velocity γ g^{μν}∂_ν S of (3.7)."""
        return self.gamma * self.metric.gradient(u[1])

    def wavefunction(self, u: Any) -> Any:
        """ψ = √p e^{iS/ħ} (3.10) as the real pair (Re ψ, Im ψ)."""
        return wavefunction(u[0], u[1], self.hbar)

    def density_and_phase_gradient(self, u: Any) -> tuple[Any, Any]:
        """(p, ∇S) = (R², ∇S), to compare with the wave form's (|ψ|², ħ∇arg ψ)."""
        return u[0] ** 2, ufl.grad(u[1])

    def semidiscrete(self, space: Any) -> SemiDiscrete:
        """The labelled pieces for the time schemes (state-dependent mass)."""
        return SemiDiscrete(
            space=space,
            mass=self.mass,
            operator=self.operator,
            linear=False,
            functionals={"mass": self.total, "energy": self.energy},
        )


AMPLITUDE_FLOOR = 1e-30  # R/max R below which the log form's ρ is clipped (from ψ, say)


def amplitude_phase(eq: Any, u: Any) -> tuple[Any, Any]:
    """(R, S) as UFL from the unknowns u of either amplitude form (``eq.amplitude``)."""
    return eq.amplitude_of(u), u[1]


def to_amplitude_phase(values: np.ndarray, amplitude: str) -> np.ndarray:
    """Nodal unknowns (R or ρ, S) of a blocked P_k×2 array → nodal (R, S), same layout.

    For ``amplitude = "log"``, R = e^ρ (3.10); for ``"sqrt"`` the array is copied.
    """
    out = np.array(values, dtype=float, copy=True).reshape(-1, 2)
    if amplitude == "log":
        out[:, 0] = np.exp(out[:, 0])
    return out.reshape(np.shape(values))


def from_amplitude_phase(values: np.ndarray, amplitude: str, R_max: float) -> np.ndarray:
    """Nodal (R, S) → the unknowns of ``amplitude``; the inverse of :func:`to_amplitude_phase`.

    ρ = log R needs R > 0: below ``AMPLITUDE_FLOOR`` × R_max (R_max the global max,
    passed in so that every rank clips alike) R is clipped, which leaves a flat ρ,
    i.e. p ≈ 1e-60 max p, where the state came from a node or an underflowed tail.
    """
    out = np.array(values, dtype=float, copy=True).reshape(-1, 2)
    if amplitude == "log":
        out[:, 0] = np.log(np.maximum(out[:, 0], AMPLITUDE_FLOOR * R_max))
    return out.reshape(np.shape(values))
