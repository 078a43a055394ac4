"""Potentials V(q) of the quantum regime.

The effective potential (3.6) is the Wick rotation of the Fokker–Planck
operator (2.7) with α = 1:

    V = (γ/2) |∇L̄|²_g − (γ²/2β) Δ_g L̄,

so that the Schrödinger ground state is ψ₀ ∝ exp(−βL̄/γ) with E₀ = 0 and
|ψ₀|² is the Gibbs density exp(−2βL̄/γ)/Z of (2.7).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nhj.covariant import Metric


def effective_potential(metric: Metric, loss: Any, gamma: float, beta: float) -> Any:
    """V of (3.6) from the average loss L̄ (a UFL expression in the coordinates)."""
    return 0.5 * gamma * metric.grad_norm2(loss) - gamma**2 / (2.0 * beta) * metric.laplacian(loss)


def harmonic(curvatures: Sequence[float], y: Any) -> Any:
    """½ Σ a_i y_i²: a quadratic loss, or V = ½ m Σ ω_i² y_i² with a_i = m ω_i².

    ``y`` are the orthonormal coordinates y = L x of a constant metric (x if
    flat), as UFL expressions or numpy arrays: the same formula for both.
    """
    return sum((0.5 * a * y[i] ** 2 for i, a in enumerate(curvatures) if a), start=0.0)
