"""Madelung / neural HJ (3.7) + (5.2) with the log-amplitude unknown ρ = log √p.

The unknowns are ρ = log R = ½ log p and the phase S on a blocked P_k×2 space;
p = e^{2ρ} > 0 everywhere, so there is no vacuum where S is undetermined and no
division by a vanishing amplitude. With p = e^{2ρ}, ∇·(p w) = p(∇·w + 2∇ρ·w)
turns continuity (3.7) into

    ∂ₜρ + γ g⁻¹∇ρ·∇S + (γ/2) Δ_g S = 0,

and ∇R = R∇ρ turns the Fisher term of (5.2)–(5.3), R Q_N = −2∇·(F∇R), into

    Q_N = −2 [∇·(F∇ρ) + ∇ρ·F∇ρ],
    ∂ₜS + (γ/2)|∇S|²_g + V − 2∇·(F∇ρ) − 2∇ρ·F∇ρ = 0.

At α = 1 (F = (ħ²/4m) g⁻¹) Q_N = −(ħ²/2m)(Δ_gρ + |∇ρ|²_g), the quantum potential
(3.9). For a Gaussian state in a quadratic V on a constant metric, ρ and S are
quadratic polynomials at every t, so P2 holds them exactly.

Weak form (test functions w for ρ, v for S, n the outward normal, √g dq and
√g ds throughout; Δ_g f = (1/√g)∂_μ(√g g^{μν}∂_ν f) integrated by parts):

    ∫ ∂ₜρ w + γ ∫ w g⁻¹∇ρ·∇S − (γ/2) ∫ g⁻¹∇S·∇w + (γ/2) ∮ w g⁻¹∇S·n          = 0
    ∫ ∂ₜS v + ∫ ((γ/2)|∇S|²_g + V − 2∇ρ·F∇ρ) v + 2 ∫ F∇ρ·∇v − 2 ∮ v F∇ρ·n = 0

Boundary. There is no wall value to impose (ρ = log 0 does not exist); the
boundary integrals are kept, so no condition is imposed at all ("open" or
consistent-flux boundary): the weak form is the strong equations tested with
every w, v, and the Galerkin projection of a polynomial solution in the space is
exact up to the boundary. A Gaussian therefore leaves the domain as it would in
free space (a packet moving into the wall is followed to the time-discretisation
error, tests/test_madelung_log.py) instead of reflecting as ψ = 0 walls make it.
Dropping them instead would impose ∂ₙS = 0 and F∇ρ·n = 0, wrong for every
Gaussian (∇ρ = −x/2σ² at the wall).

Mass. ∫e^{2ρ}√g is conserved by the flow but is not a quadratic invariant of the
unknowns, so the implicit midpoint rule drifts by O(h²) per unit time. The
equations contain ρ only through ∇ρ, so ρ → ρ + c is an exact symmetry (it
multiplies p by e^{2c}): rescaling ρ by the constant c = −½ log(M/M₀) after each
accepted sub-step (:class:`nhj.equations.madelung_nodes.MassProjection`) puts the
state back on the mass shell without changing S or the shape of p, an O(h³)
change per step, i.e. within the scheme's local error.

Limit: the depth of the tail. In these variables a perturbation δψ of the state
is δφ = δρ + iδS/ħ = δψ/ψ: one that travels from the support into the tail grows
with it, by up to R_max/R (frozen coefficients: at the rate |∇ρ|·k for a
wavenumber k). Round-off in the support therefore reaches O(1) in (ρ, S) where
R/R_max ≲ 1e-14, and the run fails there whatever the boundary: exact Dirichlet
data for ρ and S on both walls fail at the same time as the open walls. Measured
(free packet, σ = 1 from x = −2 with wavenumber 2, P2, to t = 1, issue 10; mass
integral at quadrature degree 12): it completes on [−14, 14] (min p/max p = e^{−128})
with h = 0.2 and 0.1, and on [−20, 20] with h = 0.2 and 0.1 but fails at t = 0.96 with
h = 0.05; it fails at t = 0.76 / 0.72 on [−25, 25] and at 0.60 / 0.60 on [−30, 30] with
h = 0.2 / 0.1. The limit is mainly the depth (an earlier mass quadrature of degree 6
put it near e^{−70}), but near it a finer mesh fails first: on a 2D box whose corners
reach R/R_max = 2e-14 (the coherent flow of benchmarks/madelung_cost.py, to t = 2) 8²
cells end at 6e-4 and 16² lose accuracy at t = 1.96, while on the union of the packet's
level sets p/max p = 1e-6 (:mod:`nhj.support`, no corners, R/R_max ≥ 4.6e-9) the error is
the time scheme's on every mesh (the 1D intervals above, as deep, have no corners;
whether depth or the corner's geometry is what breaks the box is not separated). A
floor ρ ≥ ρ_min, a phase and amplitude diffusion below the floor, an interior penalty
on gradient jumps and switching the equations off below the floor were tried and did
not cure it (a floor is a background ε e^{iS} whose interference with the packet's tail
makes nodes). Use this form on a domain fitted to the support (for a Gaussian state
``mesh.type = "support"``, :mod:`nhj.support`), where the open walls let the packet out;
``vacuum.amplitude = "sqrt"`` is the default.

Conversions. :func:`nhj.equations.madelung.amplitude_phase` (UFL) and
:func:`nhj.equations.madelung.to_amplitude_phase` / ``from_amplitude_phase``
(nodal arrays) map the unknowns of either amplitude form to (R, S) and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ufl

from nhj.covariant import Metric
from nhj.equations.base import SemiDiscrete
from nhj.equations.schrodinger import wavefunction


@dataclass(frozen=True)
class MadelungLog:
    """(3.7) + (5.2) in (ρ, S), ρ = log √p: metric g, potential V (UFL), Fisher F, γ, ħ.

    The same physics as :class:`nhj.equations.madelung.Madelung` and the same
    interface (density, total, energy, wavefunction, ...), so outputs,
    diagnostics and exact-error monitors see R = e^ρ.
    """

    metric: Metric
    V: Any
    F: Any
    gamma: float
    hbar: float
    mass_quadrature: int = 12

    amplitude = "log"

    def mass(self, u: Any, w: Any, v: Any) -> Any:
        """M(u; ∂ₜu, v) = ∫ ∂ₜρ v_ρ + ∂ₜS v_S: a constant mass matrix."""
        return self.metric.volume(w[0] * v[0] + w[1] * v[1])

    def _normal(self, v: Any) -> Any:
        return ufl.FacetNormal(ufl.domain.extract_unique_domain(v))

    def transport(self, rho: Any, S: Any, w: Any) -> Any:
        """γ∫w g⁻¹∇ρ·∇S − (γ/2)∫g⁻¹∇S·∇w + (γ/2)∮w g⁻¹∇S·n: (3.7) divided by 2p."""
        g, c = self.metric, self.gamma
        n = self._normal(w)
        return (
            c * g.volume(w * g.grad_inner(rho, S))
            - 0.5 * c * g.volume(g.grad_inner(S, w))
            + 0.5 * c * g.volume(w * ufl.dot(g.gradient(S), n), ufl.ds)
        )

    def hamilton_jacobi(self, rho: Any, S: Any, v: Any) -> Any:
        """∫((γ/2)|∇S|²_g + V − 2∇ρ·F∇ρ)v + 2∫F∇ρ·∇v − 2∮v F∇ρ·n: (5.2) without ∂ₜS."""
        g = self.metric
        grad = ufl.grad(rho)
        pointwise = 0.5 * self.gamma * g.grad_norm2(S) - 2.0 * ufl.dot(grad, ufl.dot(self.F, grad))
        if not (isinstance(self.V, (int, float)) and self.V == 0):
            pointwise = pointwise + self.V
        flux = ufl.dot(ufl.dot(self.F, grad), self._normal(v))
        return (
            g.volume(pointwise * v)
            + 2.0 * g.weak_diffusion(self.F, rho, v)
            - 2.0 * g.volume(v * flux, ufl.ds)
        )

    def operator(self, u: Any, v: Any) -> Any:
        """A(u; v): transport of ρ and the HJ terms of S."""
        return self.transport(u[0], u[1], v[0]) + self.hamilton_jacobi(u[0], u[1], v[1])

    def outflow(self, u: Any) -> Any:
        """∮ p γ g⁻¹∇S·n √g ds: the rate at which (3.7) carries mass out through ∂Ω."""
        g = self.metric
        n = ufl.FacetNormal(ufl.domain.extract_unique_domain(u))
        return g.volume(self.density(u) * ufl.dot(self.velocity(u), n), ufl.ds)

    def amplitude_of(self, u: Any) -> Any:
        """R = √p = e^ρ."""
        return ufl.exp(u[0])

    def density(self, u: Any) -> Any:
        """P = e^{2ρ}."""
        return ufl.exp(2.0 * u[0])

    def total(self, u: Any) -> Any:
        """∫ p √g dq, with ``mass_quadrature`` points: e^{2ρ} is not a polynomial.

        The mass projection holds this integral fixed, so its quadrature error
        (which changes as the packet moves over the mesh) would enter ρ as a
        constant shift; UFL's estimate for exp (degree + 2) is far too low for that.
        """
        dx = ufl.dx(metadata={"quadrature_degree": self.mass_quadrature})
        return self.metric.volume(self.density(u), dx)

    def energy(self, u: Any) -> Any:
        """E = ∫ p[(γ/2)|∇S|²_g + V + 2∇ρ·F∇ρ] √g dq (2F∇√p·∇√p = 2p∇ρ·F∇ρ), theory.md."""
        g = self.metric
        grad = ufl.grad(u[0])
        e = 0.5 * self.gamma * g.grad_norm2(u[1]) + 2.0 * ufl.dot(grad, ufl.dot(self.F, grad))
        if not (isinstance(self.V, (int, float)) and self.V == 0):
            e = e + self.V
        return g.volume(self.density(u) * e)

    def velocity(self, u: Any) -> Any:
        """The probability velocity γ g^{μν}∂_ν S of (3.7)."""
        return self.gamma * self.metric.gradient(u[1])

    def wavefunction(self, u: Any) -> Any:
        """ψ = e^ρ e^{iS/ħ} (3.10) as the real pair (Re ψ, Im ψ)."""
        return wavefunction(self.amplitude_of(u), u[1], self.hbar)

    def density_and_phase_gradient(self, u: Any) -> tuple[Any, Any]:
        """(p, ∇S) = (e^{2ρ}, ∇S), to compare with the wave form's (|ψ|², ħ∇arg ψ)."""
        return self.density(u), ufl.grad(u[1])

    def semidiscrete(self, space: Any) -> SemiDiscrete:
        """The labelled pieces for the time schemes (constant mass, nonlinear operator)."""
        return SemiDiscrete(
            space=space,
            mass=self.mass,
            operator=self.operator,
            linear=False,
            functionals={"mass": self.total, "energy": self.energy},
        )
