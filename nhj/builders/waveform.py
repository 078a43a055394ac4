"""The wave form (3.10)–(3.11) of a madelung / neural_hj case, for the hybrid stepper.

Where the (√p, S) flow is Schrödinger's — α = 1 with κ = g/β from the power law
(F = (ħ²/4m) g⁻¹, so Q_N is the quantum potential (3.9)) and ħ = γ/β (3.12),
m = 1/γ (3.13) not overridden — a node of ψ need not end the run:
``nonlinear.nodes = "hybrid"`` (the default) gives the stepper the Schrödinger
form on the same space (:mod:`nhj.hybrid`). Elsewhere a node stops the run,
and the message says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nhj.builders.common import boundary_conditions
from nhj.covariant import Metric
from nhj.equations.madelung_nodes import ADVICE, NO_WAVE_FORM
from nhj.equations.schrodinger import Schrodinger
from nhj.hybrid import WaveForm
from nhj.sections import Case

#: Below this fraction of max R a log amplitude ρ = log R is clipped (p ~ 1e-120 max p).
LOG_FLOOR = 1e-60


def has_wave_form(case: Case) -> bool:
    """Whether the case's flow is Schrödinger's (3.11): α = 1, κ = g/β, ħ = γ/β."""
    n, par = case.noise, case.parameters
    return n.alpha == 1 and n.kappa is None and par.hbar_override is None


def node_advice(case: Case, at: str = "at the node") -> str:
    """What a failure message advises: the hybrid or Schrödinger, or that no wave form exists.

    ``at`` says where a run without a wave form stops: "at the node" for the node guard of
    the √p form; the log form (e^ρ has no node) fails for other reasons and stops "here".
    """
    if has_wave_form(case):
        return ADVICE
    if case.parameters.hbar_override is not None:
        return (
            "no wave form exists with parameters.hbar overriding gamma/beta (the flow is "
            f"Schrodinger's with hbar = gamma/beta only), so the run stops {at}"
        )
    return f"{NO_WAVE_FORM} {at}"


def sqrt_state(values: np.ndarray, R_max: float) -> np.ndarray:
    """Nodal (R, S) → (√p, S) = (R, S)."""
    return values


def log_state(values: np.ndarray, R_max: float) -> np.ndarray:
    """Nodal (R, S) → (ρ, S) = (log max(R, LOG_FLOOR·R_max), S)."""
    out = np.array(values, dtype=float, copy=True)
    out[:, 0] = np.log(np.maximum(out[:, 0], LOG_FLOOR * R_max))
    return out


def wave_form(case: Case, eq: Any, space: Any, metric: Metric) -> WaveForm | None:
    """Schrödinger (3.11) on the fluid's space for ``nodes = "hybrid"``, else None.

    ψ = 0 on ∂Ω where the fluid has √p = 0 there; the log form's open walls get
    none (natural conditions on ψ).
    """
    if case.nonlinear.nodes != "hybrid" or not has_wave_form(case):
        return None
    par = case.parameters
    wave = Schrodinger(metric, eq.V, par.gamma / par.beta, par.m)
    log = getattr(eq, "amplitude", "sqrt") == "log"
    bcs = [] if log else boundary_conditions(case, space, "dirichlet", np.zeros(2))
    return WaveForm(
        semidiscrete=wave.semidiscrete(space),
        bcs=bcs,
        hbar=wave.hbar,
        wavefunction=eq.wavefunction,
        phase_gradient=lambda u: eq.density_and_phase_gradient(u)[1],
        fluid_mass=eq.total,
        fluid_state=log_state if log else sqrt_state,
        threshold=case.nonlinear.node_threshold,
    )


def advised(
    explain: Callable[[Any, float], str], advice: str, locate: Callable[[], Any] | None = None
) -> Callable[[Any, float], str]:
    """A failure hint that says where and ends with ``advice`` (e.g. that no wave form exists).

    A failure without a place (the error estimate) is placed by ``locate`` (collective).
    """

    def hint(where: Any, t: float) -> str:
        if where is None and locate is not None:
            where = locate()
        text = explain(where, t)
        return text if advice in text else f"{text}; {advice}"

    return hint
