"""Builder and registry entry of the Schrödinger equation (3.11), ħ = γ/β, m = 1/γ."""

from __future__ import annotations

from typing import Any

import numpy as np
from dolfinx import fem

from nhj import backends
from nhj.builders.common import (
    boundary_conditions,
    gaussian_exact,
    gaussian_state,
    initial_phase,
    initial_values,
    interpolate_checked,
    make_potential,
    normalise,
)
from nhj.covariant import Metric
from nhj.diagnostics import ExactError
from nhj.equations.schrodinger import Schrodinger
from nhj.exact import GaussianState
from nhj.problem import Equation, Problem
from nhj.sections import Case


def wave_initial_state(case: Case, u0: fem.Function, state: GaussianState | None) -> bool:
    """Interpolate ψ₀ = √p₀ e^{iS₀/ħ} (3.10) into u0; whether it still needs normalising."""
    hbar = case.parameters.hbar
    if state is not None:
        C = state.coefficients(0.0)
        u0.interpolate(lambda x: np.vstack(state.psi(x, C, backends.NUMPY)))
        return False

    def values(x: np.ndarray) -> np.ndarray:
        R = np.sqrt(initial_values(case, x))
        S = initial_phase(case, x, R.shape)
        return np.vstack((R * np.cos(S / hbar), R * np.sin(S / hbar)))

    interpolate_checked(u0, values)
    return True


def build(case: Case, msh: Any, metric: Metric) -> Problem:
    """ψ = (Re ψ, Im ψ) in P_k×2, ψ = 0 on ∂Ω unless the case says zero_flux."""
    par, degree = case.parameters, case.discretisation.degree
    state = gaussian_state(case)
    eq = Schrodinger(metric, make_potential(case, msh, metric), par.hbar, par.m)
    space = fem.functionspace(msh, ("Lagrange", degree, (2,)))
    u0 = fem.Function(space, name="psi")
    if wave_initial_state(case, u0, state):
        normalise(u0, eq.norm2, 2.0)
    bcs = boundary_conditions(case, space, "dirichlet", np.zeros(2))
    for bc in bcs:  # start from a state with ψ = 0 on ∂Ω, so mass is conserved from t = 0
        bc.set(u0.x.array)
    monitors = [ExactError(u0, state, metric, degree)] if exact(case) else []
    return Problem(
        case, msh, metric, space, u0, bcs, eq, eq.semidiscrete(space),
        fields={"p": eq.density(u0), "S": eq.phase(u0)},
        conserved=("mass", "energy"),
        monitors=monitors,
    )  # fmt: skip


def exact(case: Case) -> bool:
    """The Gaussian/coherent state of :mod:`nhj.exact` solves (3.11) with harmonic or zero V."""
    return gaussian_exact(case)


ENTRY = Equation(
    name="schrodinger",
    summary="Schrödinger (3.11) with hbar = gamma/beta, m = 1/gamma",
    build=build,
    stepper="linear",
    default_scheme="crank_nicolson",
    exact=exact,
)
