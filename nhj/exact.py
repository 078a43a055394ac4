"""Exact solutions of the Schrödinger equation (3.11), written once for UFL and numpy.

Gaussian states in a (possibly zero) anisotropic harmonic potential
V = ½ m Σ_i ω_i² y_i² are exact solutions in any dimension: the state is a
product of one-dimensional factors

    ψ_i(y, t) = N_i z_i^{-1/2} exp( (i/ħ)[ a_i u² + p_i u ] + (i/2ħ)(p_i y_i − p_i⁰ c_i) ),
    u = y − y_i(t),

with the classical centre y_i(t), momentum p_i(t), the complex width a_i = (m/2) ż_i/z_i
from z̈_i = −ω_i² z_i, z_i(0) = 1, a_i(0) = iħ/(4σ_i²). ω_i = 0 gives the free
spreading packet; σ_i² = ħ/(2mω_i) the coherent state; any other σ_i a squeezed
state. The time-only coefficients are evaluated in numpy (so the phase of
z^{-1/2} is unwrapped correctly over many periods) and enter the spatial
expression as numbers — or as ``fem.Constant`` values in UFL, so the error form
compiles once.

A constant metric g = Lᵀ L is handled by the coordinates y = L x in which it is
flat: ψ_g(x, t) = ψ_flat(L x, t) solves (3.11) with Δ_g, and ∫|ψ_g|²√g dx = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nhj.equations.potentials import harmonic


@dataclass(frozen=True)
class GaussianState:
    """A product Gaussian state, exact for V = ½ m Σ ω_i² y_i² (ω_i may be 0).

    Attributes:
        center: c_i, the initial centre in flat coordinates y.
        width: σ_i, the initial standard deviation of |ψ|² along y_i.
        momentum: p_i⁰, the initial momentum (ħ times the wavenumber).
        omega: ω_i of the harmonic potential (0 for a free packet).
        hbar: ħ = γ/β (3.12).
        m: m = 1/γ (3.13).
        L: Matrix with Lᵀ L = g for a constant metric (identity when flat).
    """

    center: tuple[float, ...]
    width: tuple[float, ...]
    momentum: tuple[float, ...]
    omega: tuple[float, ...]
    hbar: float
    m: float
    L: Any = None

    @property
    def dim(self) -> int:
        """Number of trainable variables K."""
        return len(self.center)

    def coefficients(self, t: float) -> np.ndarray:
        """Time-only coefficients (6, K): y_c, p_c/ħ, Re a/ħ, Im a/ħ, log|N z^-½|, phase0.

        Every ħ of the spatial expression is in these numbers, so a UFL expression built
        once from a ``fem.Constant`` C serves states of any ħ (the ħ-fit's trial states).
        """
        hb, m = self.hbar, self.m
        out = np.zeros((6, self.dim))
        for i, (c, s, p0, w) in enumerate(
            zip(self.center, self.width, self.momentum, self.omega, strict=True)
        ):
            lam = hb / (2.0 * m * s * s)  # Im ż(0) = 2 Im a(0)/m
            if w > 0:
                th = w * t
                yc = c * np.cos(th) + p0 / (m * w) * np.sin(th)
                pc = p0 * np.cos(th) - m * w * c * np.sin(th)
                z = complex(np.cos(th), lam / w * np.sin(th))
                zdot = complex(-w * np.sin(th), lam * np.cos(th))
                arg = np.arctan2(z.imag, z.real)
                arg += 2 * np.pi * np.round((th - arg) / (2 * np.pi))  # continuous branch
            else:
                yc, pc = c + p0 * t / m, p0
                z, zdot = complex(1.0, lam * t), complex(0.0, lam)
                arg = np.arctan(lam * t)
            a = 0.5 * m * zdot / z
            lognorm = -0.25 * np.log(2 * np.pi * s * s) - 0.5 * np.log(abs(z))
            phase0 = -0.5 * arg + (pc * yc - p0 * c) / (2 * hb)
            out[:, i] = (yc, pc / hb, a.real / hb, a.imag / hb, lognorm, phase0)
        return out

    def flat_coordinates(self, x: Any, M: Any) -> list[Any]:
        """Y = L x as a list of components (UFL or numpy, per backend ``M``)."""
        if self.L is None:
            return [x[i] for i in range(self.dim)]
        return [sum(float(self.L[i][j]) * x[j] for j in range(self.dim)) for i in range(self.dim)]

    def amplitude_phase(self, x: Any, C: Any, M: Any) -> tuple[Any, Any]:
        """(|ψ|, arg ψ) at points x for coefficients C = ``coefficients(t)``.

        ``C`` may be the numpy array itself or a UFL ``fem.Constant`` holding it;
        the phase is the unwrapped arg ψ = S/ħ, smooth in x.
        """
        y = self.flat_coordinates(x, M)
        logamp, phase = 0.0, 0.0
        for i in range(self.dim):
            u = y[i] - C[0, i]
            logamp = logamp + C[4, i] - C[3, i] * u * u
            phase = phase + C[5, i] + C[2, i] * u * u + C[1, i] * u
        return M.exp(logamp), phase

    def psi(self, x: Any, C: Any, M: Any) -> tuple[Any, Any]:
        """(Re ψ, Im ψ) at points x for coefficients C."""
        A, phi = self.amplitude_phase(x, C, M)
        return A * M.cos(phi), A * M.sin(phi)

    def components(self, x: Any, C: Any, M: Any) -> tuple[Any, ...]:
        """The unknown (Re ψ, Im ψ)."""
        return self.psi(x, C, M)

    def with_parameters(self, hbar: float, m: float) -> GaussianState:
        """The exact state of (3.11) with another ħ and m in the SAME potential, from ψ₀'s p₀, S₀.

        The density width σ and the momentum p⁰ = ∇S₀ do not depend on ħ, so the state
        starts from the same p₀ and S₀; V = ½ m Σ ω_i² y_i² stays fixed, so ω_i scale
        as √(m_self/m).
        """
        omega = tuple(w * float(np.sqrt(self.m / m)) for w in self.omega)
        return GaussianState(self.center, self.width, self.momentum, omega, hbar, m, self.L)

    def potential(self, x: Any, M: Any) -> Any:
        """V = ½ m Σ ω_i² y_i², the potential in which this state is exact."""
        y = self.flat_coordinates(x, M)
        return harmonic([self.m * w * w for w in self.omega], y)

    def energy(self) -> float:
        """⟨H⟩ = Σ_i [p_i²/2m + ½mω_i²c_i² + ħ²/(8mσ_i²) + ½ mω_i² σ_i²] (conserved)."""
        hb, m = self.hbar, self.m
        return float(
            sum(
                p * p / (2 * m) + 0.5 * m * w * w * (c * c + s * s) + hb * hb / (8 * m * s * s)
                for c, s, p, w in zip(
                    self.center, self.width, self.momentum, self.omega, strict=True
                )
            )
        )


@dataclass(frozen=True)
class OrnsteinUhlenbeck:
    """Exact Gaussian transient of (2.7) for L̄ = ½ Σ a_i x_i², flat g, constant κ.

    The mean and covariance obey ṁ = −γ A m and Ċ = −γ(AC + CA) + 2D with
    A = diag(a), D = (γ²/2)κ, solved entrywise:
    C_ij(t) = C∞_ij + (C_ij(0) − C∞_ij) e^{−γ(a_i+a_j)t}, C∞_ij = 2D_ij/(γ(a_i+a_j)).
    For κ = δ/β (α = 1) C∞ = γ/(2βa): the Gibbs density exp(−2βL̄/γ).

    Attributes:
        center: Initial mean m(0).
        width: Initial standard deviations (C(0) diagonal).
        curvature: a_i > 0.
        kappa: The constant noise tensor κ (K×K).
        gamma: Learning rate γ.
    """

    center: tuple[float, ...]
    width: tuple[float, ...]
    curvature: tuple[float, ...]
    kappa: Any
    gamma: float

    @property
    def dim(self) -> int:
        """Number of trainable variables K."""
        return len(self.center)

    def moments(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean m(t) and covariance C(t)."""
        a, g = np.asarray(self.curvature), self.gamma
        m = np.asarray(self.center) * np.exp(-g * a * t)
        S = a[:, None] + a[None, :]
        Cinf = g * np.asarray(self.kappa, dtype=float) / S
        C0 = np.diag(np.asarray(self.width) ** 2)
        return m, Cinf + (C0 - Cinf) * np.exp(-g * S * t)

    def coefficients(self, t: float) -> np.ndarray:
        """(K+1, K+1) array: [[C⁻¹, m], [0…, log normaliser]] at time t."""
        m, C = self.moments(t)
        K = self.dim
        out = np.zeros((K + 1, K + 1))
        out[:K, :K] = np.linalg.inv(C)
        out[:K, K] = m
        out[K, K] = -0.5 * np.log((2 * np.pi) ** K * np.linalg.det(C))
        return out

    def density(self, x: Any, C: Any, M: Any) -> Any:
        """p(x, t) for coefficients C = ``coefficients(t)`` (numpy array or fem.Constant)."""
        K = self.dim
        d = [x[i] - C[i, K] for i in range(K)]
        q = sum(C[i, j] * d[i] * d[j] for i in range(K) for j in range(K))
        return M.exp(C[K, K] - 0.5 * q)

    def components(self, x: Any, C: Any, M: Any) -> tuple[Any, ...]:
        """The unknown (p) as a 1-tuple."""
        return (self.density(x, C, M),)
