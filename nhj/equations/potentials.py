"""Potentials V(q) of the quantum regime.

The effective potential (3.6) is the Wick rotation of the Fokker–Planck
operator (2.7) with α = 1:

    V = (γ/2) |∇L̄|²_g − (γ²/2β) Δ_g L̄,

so that the Schrödinger ground state is ψ₀ ∝ exp(−βL̄/γ) with E₀ = 0 and
|ψ₀|² is the Gibbs density exp(−2βL̄/γ)/Z of (2.7).
"""

from __future__ import annotations

from typing import Any

from nhj.covariant import Metric


def effective_potential(metric: Metric, loss: Any, gamma: float, beta: float) -> Any:
    """V of (3.6) from the average loss L̄ (a UFL expression in the coordinates)."""
    return 0.5 * gamma * metric.grad_norm2(loss) - gamma**2 / (2.0 * beta) * metric.laplacian(loss)
