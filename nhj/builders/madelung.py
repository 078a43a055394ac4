"""Builders and registry entries of Madelung (3.7)–(3.9) and neural HJ (3.7) + (5.2).

``madelung`` is the α = 1 case of ``neural_hj`` (F = (ħ²/4m) g⁻¹), one
equation module with two entries. Both need the adaptive Newton stepper; the
node guard and the ψ-weighted error norm come from
:mod:`nhj.equations.madelung_nodes`. ``vacuum.amplitude`` picks the unknown:
R = √p (:mod:`nhj.equations.madelung`, R = 0 on Dirichlet walls, phase diffusion
in the vacuum) or ρ = log √p (:mod:`nhj.equations.madelung_log`, open walls,
mass projection); see :func:`choose_amplitude` for the default.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np
from dolfinx import fem

from nhj import backends
from nhj.builders.common import (
    boundary_conditions,
    gaussian_exact,
    gaussian_state,
    initial_mass,
    initial_phase,
    initial_values,
    interpolate_checked,
    make_noise,
    make_potential,
    mesh_scales,
    owned_max,
)
from nhj.builders.waveform import advised, node_advice, wave_form
from nhj.covariant import Metric
from nhj.diagnostics import ExactError
from nhj.equations.learning import fisher_tensor
from nhj.equations.madelung import Madelung, Vacuum
from nhj.equations.madelung_log import MadelungLog
from nhj.equations.madelung_nodes import (
    MassProjection,
    NodeGuard,
    Outflow,
    log_hint,
    log_wavefunction_error,
    wavefunction_error,
)
from nhj.exact import GaussianState
from nhj.hybrid import PhaseSteps
from nhj.invariants import MassRescale
from nhj.problem import Equation, Problem, StepHooks
from nhj.schema import CaseError
from nhj.sections import Case

# The numpy backend with exp = identity: GaussianState.amplitude_phase then returns
# log |ψ| itself, exact where |ψ| would underflow (the log form's far tail).
_LOG_NUMPY = SimpleNamespace(**{**vars(backends.NUMPY), "exp": lambda z: z})


def hydrodynamic_state(
    case: Case, u0: fem.Function, state: GaussianState | None, log: bool = False
) -> bool:
    """Interpolate u₀ = (√p₀ or log √p₀, S₀) into u0; whether it still needs normalising."""
    par = case.parameters
    if state is not None:
        C = state.coefficients(0.0)
        M = _LOG_NUMPY if log else backends.NUMPY

        def exact_values(x: np.ndarray) -> np.ndarray:
            A, phase = state.amplitude_phase(x, C, M)  # unwrapped: S smooth
            return np.vstack((np.broadcast_to(A, x.shape[1:]), par.hbar * phase))

        u0.interpolate(exact_values)
        return False

    def values(x: np.ndarray) -> np.ndarray:
        p = initial_values(case, x)
        if log and not np.all(p > 0):
            raise CaseError(
                "vacuum.amplitude",
                "'log' needs initial.p > 0 at every point of the mesh; use 'sqrt'",
            )
        with np.errstate(divide="ignore"):
            R = 0.5 * np.log(p) if log else np.sqrt(p)
        return np.vstack((R, initial_phase(case, x, R.shape)))

    interpolate_checked(u0, values)
    return True


def choose_amplitude(case: Case) -> str:
    """vacuum.amplitude, "sqrt" by default (docs/theory.md, vacuum: measured on issue 10's flows).

    The log form needs p₀ > 0 (checked at the mesh points when it is built) and
    cannot impose p = 0 on a wall, so asking for it with boundary.condition =
    "dirichlet" is refused. It is not the default: round-off grows like max √p/√p
    in its variables, so it completes Gaussian flows only while min p/max p over the
    mesh stays above ~e^{-130} (measured; module docstring of
    :mod:`nhj.equations.madelung_log`), and a domain large enough for ψ = 0 walls
    not to matter is deeper than that.
    """
    walls = case.boundary.condition == "dirichlet"
    amplitude = case.vacuum.amplitude
    if amplitude is None:
        return "sqrt"
    if amplitude == "log" and walls:
        raise CaseError(
            "vacuum.amplitude",
            "'log' has open walls (rho = log sqrt(p) cannot be 0 on them); use "
            "'sqrt' for boundary.condition = 'dirichlet', or condition = 'zero_flux'",
        )
    return amplitude


def build(case: Case, msh: Any, metric: Metric) -> Problem:
    """(√p, S) in P_k×2 with √p = 0 on ∂Ω unless zero_flux; F from κ by (5.3)."""
    par, degree, noise = case.parameters, case.discretisation.degree, case.noise
    kappa = None if noise.kappa is None else make_noise(case, msh, metric)
    try:
        F = fisher_tensor(metric, noise.alpha, par.beta, par.gamma, kappa)
    except ValueError as e:
        raise CaseError("noise.alpha", str(e)) from None
    space = fem.functionspace(msh, ("Lagrange", degree, (2,)))
    V = make_potential(case, msh, metric)
    state = gaussian_state(case)
    if choose_amplitude(case) == "log":
        return build_log(case, msh, metric, space, MadelungLog(metric, V, F, par.gamma, par.hbar))
    eq = Madelung(metric, V, F, par.gamma, par.hbar)
    u0 = fem.Function(space, name="R_S")
    if hydrodynamic_state(case, u0, state):
        # ∫R²√g = 1: scale R only (S is a phase)
        u0.x.array.reshape(-1, 2)[:, 0] /= np.sqrt(initial_mass(u0, eq.total))
    h, ell = mesh_scales(msh)
    vacuum = Vacuum.scaled(case.vacuum.nu, owned_max(u0, 0, 2), h, ell, degree)
    eq = replace(eq, vacuum=vacuum)
    bcs = boundary_conditions(case, space.sub(0), "dirichlet", 0.0)
    for bc in bcs:  # √p = 0 on ∂Ω from t = 0, like ψ for (3.11)
        bc.set(u0.x.array)
    guard = NodeGuard(u0, case.nonlinear.node_threshold, advice=node_advice(case))
    locate = PhaseSteps(u0, eq.wavefunction(u0), case.nonlinear.node_threshold)  # failures' x
    monitors: list[Any] = []
    if exact(case):
        monitors.append(
            ExactError(eq.wavefunction(u0), state, metric, degree, msh=msh, density=eq.density(u0))
        )
    return Problem(
        case, msh, metric, space, u0, bcs, eq, eq.semidiscrete(space),
        fields={"p": eq.density(u0), "S": u0[1], "velocity": eq.velocity(u0)},
        conserved=("mass", "energy"),
        monitors=monitors,
        info={
            "alpha": noise.alpha if noise.kappa is None else None,
            "vacuum_nu": vacuum.nu,
            "amplitude": "sqrt",
        },
        hooks=StepHooks(
            guard=guard,
            hint=advised(guard.explain, node_advice(case), locate),
            error_norm=partial(wavefunction_error, hbar=par.hbar),
            wave=wave_form(case, eq, space, metric),  # nonlinear.nodes = "hybrid"
            conserve=MassRescale(u0, eq.total(u0), components=[0]),  # R: Newton's remainder
        ),
    )  # fmt: skip


def build_log(case: Case, msh: Any, metric: Metric, space: Any, eq: MadelungLog) -> Problem:
    """(ρ, S) = (log √p, S) in P_k×2, open walls, mass projected after each sub-step."""
    par, degree, noise = case.parameters, case.discretisation.degree, case.noise
    u0 = fem.Function(space, name="rho_S")
    state = gaussian_state(case)
    if hydrodynamic_state(case, u0, state, log=True):
        # ∫e^{2ρ}√g = 1: shift ρ only (S is a phase)
        u0.x.array.reshape(-1, 2)[:, 0] -= 0.5 * np.log(initial_mass(u0, eq.total))
    monitors: list[Any] = []
    if exact(case):
        monitors.append(
            ExactError(eq.wavefunction(u0), state, metric, degree, msh=msh, density=eq.density(u0))
        )
    mid = fem.Function(space)  # the midpoint of a sub-step, for the outflux
    projection = MassProjection(u0, eq.total(u0), eq.outflow(mid), mid)
    monitors.append(Outflow(projection))
    return Problem(
        case, msh, metric, space, u0, [], eq, eq.semidiscrete(space),
        fields={"p": eq.density(u0), "S": u0[1], "velocity": eq.velocity(u0)},
        conserved=("mass", "energy"),
        monitors=monitors,
        balances={"mass": ("outflow",)},  # open walls: ∫p√g + what left is conserved
        info={
            "alpha": noise.alpha if noise.kappa is None else None,
            "vacuum_nu": 0.0,
            "amplitude": "log",
        },
        hooks=StepHooks(
            guard=projection,
            hint=advised(log_hint, node_advice(case, at="here")),
            error_norm=partial(log_wavefunction_error, hbar=par.hbar),
            wave=wave_form(case, eq, space, metric),  # nonlinear.nodes = "hybrid"
        ),
    )  # fmt: skip


def exact(case: Case) -> bool:
    """The Gaussian state is exact for the quantum regime: α = 1, κ from the power law."""
    quantum = case.noise.alpha == 1 and case.noise.kappa is None  # Q_N = Q of (3.9)
    return quantum and gaussian_exact(case)


def madelung_rules(case: Case) -> None:
    """Madelung is α = 1 with κ = g/β; anything else is neural_hj."""
    if case.noise.alpha != 1 or case.noise.kappa is not None:
        bad = "noise.alpha" if case.noise.alpha != 1 else "noise.kappa"
        raise CaseError(
            bad,
            "madelung is alpha = 1 (kappa = g/beta); use equation = "
            "'neural_hj' for other regimes or a given kappa",
        )


SECTIONS = ("noise", "vacuum", "nonlinear")

MADELUNG = Equation(
    name="madelung",
    summary="Madelung (3.7)-(3.9): continuity and quantum Hamilton-Jacobi in (sqrt p, S)",
    build=build,
    stepper="adaptive",
    default_scheme="implicit_midpoint",
    sections=SECTIONS,
    rules=madelung_rules,
    exact=exact,
)

NEURAL_HJ = Equation(
    name="neural_hj",
    summary="neural Hamilton-Jacobi (3.7) + (5.2) with the Fisher tensor (5.3) of any alpha",
    build=build,
    stepper="adaptive",
    default_scheme="implicit_midpoint",
    sections=SECTIONS,
    exact=exact,
)
