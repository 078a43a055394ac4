"""Gross–Pitaevskii (nonlinear Schrödinger) equation: (3.11) with a cubic self-interaction.

Strong form, with ħ = γ/β (3.12), m = 1/γ (3.13) and a coupling g:

    iħ ∂ₜψ = −(ħ²/2m) Δ_g ψ + V ψ + g |ψ|² ψ.

In the real pair u = (ψ_r, ψ_i) the weak semi-discrete form is that of
:class:`~nhj.equations.schrodinger.Schrodinger` plus the coupling term

    ħ ∫ ∂ₜu·v √g + [h(ψ_r, v_i) − h(ψ_i, v_r)] + g ∫ |ψ|² (ψ_r v_i − ψ_i v_r) √g = 0.

Tested with v = u the coupling vanishes pointwise, so the implicit midpoint
rule keeps ‖ψ‖² to round-off; the energy ⟨ψ|H|ψ⟩ + (g/2)∫|ψ|⁴√g is
conserved by the flow (by the scheme up to O(dt²)). g < 0 (focusing) has the
bright soliton ψ = a sech(a√|g| x √m/ħ) e^{i…} in 1D (tests/test_gross_pitaevskii.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ufl

from nhj.equations.base import SemiDiscrete
from nhj.equations.schrodinger import Schrodinger


@dataclass(frozen=True)
class GrossPitaevskii:
    """(3.11) plus g|ψ|²ψ: the linear part is a :class:`Schrodinger`, g the coupling."""

    linear: Schrodinger
    g: float

    def operator(self, u: Any, v: Any) -> Any:
        """h(ψ_r, v_i) − h(ψ_i, v_r) + g ∫ |ψ|² (ψ_r v_i − ψ_i v_r) √g."""
        if self.g == 0:  # UFL folds 0·f to a Zero, which cannot be integrated
            return self.linear.operator(u, v)
        coupling = self.g * ufl.inner(u, u) * (u[0] * v[1] - u[1] * v[0])
        return self.linear.operator(u, v) + self.linear.metric.volume(coupling)

    def energy(self, u: Any) -> Any:
        """⟨ψ|H|ψ⟩ + (g/2) ∫ |ψ|⁴ √g dq."""
        if self.g == 0:
            return self.linear.energy(u)
        quartic = 0.5 * self.g * ufl.inner(u, u) ** 2
        return self.linear.energy(u) + self.linear.metric.volume(quartic)

    def semidiscrete(self, space: Any) -> SemiDiscrete:
        """The labelled pieces for the time schemes (nonlinear: Newton stepping)."""
        return SemiDiscrete(
            space=space,
            mass=self.linear.mass,
            operator=self.operator,
            linear=False,
            functionals={"mass": self.linear.norm2, "energy": self.energy},
        )
