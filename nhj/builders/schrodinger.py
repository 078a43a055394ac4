"""Builder and registry entry of the Schrödinger equation (3.11), ħ = γ/β, m = 1/γ."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import ufl
from dolfinx import fem

from nhj import backends
from nhj.builders.axes import axis_lines, check_separable
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
from nhj.equations.potentials import harmonic
from nhj.equations.schrodinger import Schrodinger
from nhj.exact import GaussianState
from nhj.problem import Equation, Problem
from nhj.schema import CaseError
from nhj.sections import Case
from nhj.separable import AxisFactor
from nhj.timeschemes import exact_in_time


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
    sd = eq.semidiscrete(space)
    if exact_in_time(case.discretisation.scheme):
        sd = replace(sd, factors=axis_factors(case, bool(bcs)))
    return Problem(
        case, msh, metric, space, u0, bcs, eq, sd,
        fields={"p": eq.density(u0), "S": eq.phase(u0)},
        conserved=("mass", "energy"),
        monitors=monitors,
    )  # fmt: skip


def exact(case: Case) -> bool:
    """The Gaussian/coherent state of :mod:`nhj.exact` solves (3.11) with harmonic or zero V."""
    return gaussian_exact(case)


def separable_rules(case: Case) -> None:
    """A scheme exact in time needs H to be a Kronecker sum of 1D operators (nhj/separable.py).

    The mesh and metric as :func:`nhj.builders.axes.check_separable` says; in 2D/3D V must be
    harmonic (separable in y = L x) or absent: V and a loss may couple the axes.
    """
    if not exact_in_time(case.discretisation.scheme):
        return
    check_separable(case)
    pot = case.potential
    if case.dim > 1 and (pot.V is not None or pot.has_loss):
        raise CaseError(
            "potential",
            f"scheme {case.discretisation.scheme!r} in {case.dim}D needs a separable V: "
            "potential.omega or no potential (V and loss may couple the axes)",
        )


def axis_factors(case: Case, dirichlet: bool) -> tuple[AxisFactor, ...]:
    """The (3.11) operator of ``case`` on each axis: its line, its metric, its part of V.

    In 1D the factor is the case itself (any V); in 2D/3D axis i carries ½ m ω_i² y_i²
    (:func:`separable_rules` has checked that the case separates).
    """
    par, omega = case.parameters, case.potential.omega
    factors = []
    for i, (line, metric, y) in enumerate(axis_lines(case)):
        if case.dim == 1:
            V = make_potential(case, line, metric)
        else:
            V = harmonic([par.m * omega[i] ** 2], [y]) if omega else 0.0
        eq = Schrodinger(metric, V, par.hbar, par.m)
        space = fem.functionspace(line, ("Lagrange", case.discretisation.degree))
        w, v = ufl.TrialFunction(space), ufl.TestFunction(space)
        factors.append(AxisFactor(space, eq.h(w, v), eq.mass(None, w, v), dirichlet, True))
    return tuple(factors)


ENTRY = Equation(
    name="schrodinger",
    summary="Schrödinger (3.11) with hbar = gamma/beta, m = 1/gamma",
    build=build,
    stepper="linear",
    default_scheme="crank_nicolson",
    rules=separable_rules,
    exact=exact,
    exact_schemes=("exponential",),
)
