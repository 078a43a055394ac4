"""Noisy covariant gradient descent (2.2), (2.5)–(2.9): noise, diffusion and drift.

Learning is the Langevin equation dq^μ = −γ g^{μν}∂_ν L̄ dt + η^μ with noise
η = −γ g⁻¹∇δL of covariance rate Σ = γ² g⁻¹κg⁻¹ (2.8); the diffusion tensor
is D = Σ/2 = (γ²/2) g⁻¹κg⁻¹. The metric follows the noise by the power law
(2.9) g ∝ κ^α, normalised as κ = g^{1/α}/β for α > 0 (matrix power with indices
lowered by δ); α = 0 means g = δ with κ given. α = 1 gives D = (γ²/2β) g⁻¹,
Nelson's ħ/2m with ħ = γ/β, m = 1/γ.

These tensors are shared by the Fokker–Planck equation (2.7) and the neural
Hamilton–Jacobi potential (5.3); they are built here once.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import ufl

from nhj import backends
from nhj.covariant import Metric


def matrix_power(metric: Metric, power: float) -> Any:
    """g^power as a UFL tensor (δ-lowered indices).

    A constant metric takes any real power (eigen-decomposition in numpy); a
    varying one needs an integer power, built by repeated products of g or of
    its inverse (so that the forms stay small).
    """
    if metric.is_flat:
        return ufl.Identity(metric.gdim)
    if metric.constant:
        G = np.asarray(metric.g.value, dtype=float)
        w, Q = np.linalg.eigh(G)
        return ufl.as_matrix((Q * w**power) @ Q.T)
    frac = Fraction(power).limit_denominator(1000)
    if frac.denominator != 1:
        raise ValueError(
            f"a position-dependent metric needs 1/alpha to be a positive "
            f"integer (alpha = 1, 1/2, 1/3, ...); got 1/alpha = {power:g}",
        )
    n = frac.numerator
    if n == 0:
        return ufl.Identity(metric.gdim)
    base = metric.tensor() if n > 0 else metric.inverse()
    P = base
    for _ in range(abs(n) - 1):
        P = ufl.dot(P, base)
    return P


def noise_tensor(metric: Metric, alpha: float | None, beta: float, kappa: Any = None) -> Any:
    """κ_{μν}: given, or from the power law κ = g^{1/α}/β (2.9)."""
    if kappa is not None:
        return kappa
    if alpha is None or alpha <= 0:
        raise ValueError("kappa is required when alpha = 0 (g = δ and κ is given)")
    return power_law_kappa(matrix_power(metric, 1.0 / alpha), beta)


def power_law_kappa(g_power: Any, beta: float) -> Any:
    """κ = g^{1/α}/β of the power law (2.9), given g^{1/α} (UFL or numpy values)."""
    return g_power / beta


def diffusion_tensor(ginv: Any, kappa: Any, gamma: float, M: Any = backends.UFL) -> Any:
    """D = (γ²/2) g⁻¹κg⁻¹ (half the covariance rate Σ of (2.8)) in the backend ``M``."""
    return 0.5 * gamma**2 * M.dot(ginv, M.dot(kappa, ginv))


def diffusion(metric: Metric, kappa: Any, gamma: float) -> Any:
    """D^{μν} = (γ²/2) g^{μα} κ_{αβ} g^{βν} (half the covariance rate Σ of (2.8))."""
    return diffusion_tensor(metric.inverse(), kappa, gamma)


def fisher(metric: Metric, kappa: Any, gamma: float) -> Any:
    """F^{μν} = m D g D = (γ³/4) g⁻¹κg⁻¹κg⁻¹ of the neural potential (5.3), m = 1/γ (3.13)."""
    D = diffusion(metric, kappa, gamma)
    return ufl.dot(D, ufl.dot(metric.tensor(), D)) / gamma


def fisher_tensor(
    metric: Metric, alpha: float, beta: float, gamma: float, kappa: Any = None
) -> Any:
    """F of (5.3): the power-law closed form when κ follows (2.9), else m D g D of κ."""
    if kappa is None:
        return fisher_power_law(metric, alpha, beta, gamma)
    return fisher(metric, kappa, gamma)


def fisher_power_law(metric: Metric, alpha: float, beta: float, gamma: float) -> Any:
    """F of (5.3) for the power law κ = g^{1/α}/β (2.9): (γ³/4β²) g^{2/α−3}.

    Powers of one matrix commute, so g⁻¹κg⁻¹κg⁻¹ collapses to a single power:
    α = 1 gives (γ³/4β²) g⁻¹ = (ħ²/4m) g⁻¹ and −(2/√p)∇·(F∇√p) is the quantum
    potential (3.9); α = 1/2 gives (γ³/4β²) g, the neural potential (5.4).
    """
    return gamma**3 / (4.0 * beta**2) * matrix_power(metric, 2.0 / alpha - 3.0)


def drift(metric: Metric, loss: Any, gamma: float) -> Any:
    """The gradient-descent velocity −γ g^{μν}∂_ν L̄ of (2.2)."""
    return -gamma * metric.gradient(loss)


def gibbs_log_weight(loss: Any, gamma: float, beta: float) -> Any:
    """−2βL̄/γ: the log of the unnormalised stationary density of (2.7) for α = 1."""
    return -2.0 * beta * loss / gamma


def temperature(gamma: float, beta: float) -> float:
    """T = γ/2β: the Gibbs density of (2.7) for α = 1 is ∝ exp(−L̄/T) = exp(−2βL̄/γ)."""
    return gamma / (2.0 * beta)
