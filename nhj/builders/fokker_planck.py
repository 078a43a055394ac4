"""Builders and registry entries of Fokker–Planck (2.7) and of its particles, Langevin (2.5)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import ufl
from dolfinx import fem

from nhj import backends
from nhj.builders.axes import axis_lines, check_separable, diagonal
from nhj.builders.common import (
    boundary_conditions,
    initial_values,
    interpolate_checked,
    make_loss,
    make_noise,
    normalise,
    shifted_log_weight,
)
from nhj.covariant import Metric
from nhj.diagnostics import ExactError, GibbsDistance, MinValue
from nhj.equations.fokker_planck import FokkerPlanck, invariant_density
from nhj.equations.learning import diffusion, gibbs_log_weight, noise_tensor, temperature
from nhj.equations.potentials import harmonic
from nhj.exact import OrnsteinUhlenbeck
from nhj.problem import Equation, Particles, Problem
from nhj.reference import HistogramDensity, LangevinComparison, ParticleMoments
from nhj.schema import CaseError
from nhj.sections import Case
from nhj.separable import AxisFactor
from nhj.tensors import is_constant, sqrt_det_at
from nhj.timeschemes import exact_in_time


def ornstein_uhlenbeck(case: Case) -> OrnsteinUhlenbeck | None:
    """The exact Gaussian transient of a quadratic loss on the flat metric, if it applies."""
    if not exact(case):
        return None
    init, par = case.initial, case.parameters
    K = (
        np.eye(case.dim) / par.beta
        if case.noise.kappa is None
        else np.array(case.noise.kappa, dtype=float)
    )
    assert case.potential.curvature is not None  # exact() requires it
    return OrnsteinUhlenbeck(init.center, init.width, case.potential.curvature, K, par.gamma)


def build(case: Case, msh: Any, metric: Metric) -> Problem:
    """p in P_k, zero flux on ∂Ω by default (then ∫p√g is conserved)."""
    par, degree, init = case.parameters, case.discretisation.degree, case.initial
    loss = make_loss(case, msh)
    kappa = make_noise(case, msh, metric)
    eq = FokkerPlanck(metric, loss, diffusion(metric, kappa, par.gamma), par.gamma)
    space = fem.functionspace(msh, ("Lagrange", degree))
    u0 = fem.Function(space, name="p")
    if init.kind == "gaussian":
        normal = OrnsteinUhlenbeck(
            init.center, init.width, (1.0,) * case.dim, np.eye(case.dim), par.gamma
        )
        try:
            C = normal.coefficients(0.0)
        except np.linalg.LinAlgError:  # e.g. gamma = 1e308: the covariance over/underflows
            raise CaseError(
                "parameters.gamma",
                f"the initial Gaussian's covariance is singular in floating point with "
                f"gamma = {par.gamma:g}; use a gamma of moderate size (e.g. 1e-6 to 1e6)",
            ) from None
        u0.interpolate(
            lambda x: invariant_density(
                normal.density(x, C, backends.NUMPY), sqrt_det_at(case.metric.entries, x)
            )
        )
    else:
        interpolate_checked(u0, lambda x: initial_values(case, x))
        normalise(u0, eq.total, 1.0)
    bcs = boundary_conditions(case, space, "zero_flux", 0.0)
    for bc in bcs:
        bc.set(u0.x.array)
    monitors: list[Any] = [MinValue(u0, "min_p")]
    state = ornstein_uhlenbeck(case)
    if state is not None:
        monitors.append(ExactError(u0, state, metric, degree))
    if case.noise.alpha == 1 and case.noise.kappa is None and not bcs:
        logw = shifted_log_weight(gibbs_log_weight(loss, par.gamma, par.beta), space)
        T = temperature(par.gamma, par.beta)
        try:
            monitors.append(GibbsDistance(u0, logw, loss, T, metric, degree))
        except ValueError as e:  # a loss too steep for the mesh: no stationary density on it
            raise CaseError("potential", f"{e}; the loss is too steep for this mesh") from None
    if case.langevin is not None:
        monitors.append(LangevinComparison(case, u0, metric))
    sd = eq.semidiscrete(space)
    if exact_in_time(case.discretisation.scheme):
        sd = replace(sd, factors=axis_factors(case, bool(bcs)))
    return Problem(
        case, msh, metric, space, u0, bcs, eq, sd,
        fields={"p": u0},
        conserved=("mass",) if not bcs else (),
        monitors=monitors,
        info={"alpha": case.noise.alpha},
    )  # fmt: skip


def exact(case: Case) -> bool:
    """Ornstein–Uhlenbeck: a Gaussian start, quadratic loss, flat g, constant κ."""
    return (
        case.initial.kind == "gaussian"
        and case.potential.curvature is not None
        and case.metric.entries is None
        and case.output.exact
        and is_constant(case.noise.kappa)
    )


def build_langevin(case: Case, msh: Any, metric: Metric) -> Problem:
    """Particles of (2.5) alone: moments with standard errors and a histogram density."""
    space = fem.functionspace(msh, ("DG", 0))
    density = fem.Function(space, name="p")
    probe = fem.Function(fem.functionspace(msh, ("Lagrange", 1)))  # bins need a p to compare
    comparison = LangevinComparison(case, probe, metric)
    mid = np.mean(msh.geometry.x[msh.geometry.dofmaps[0]], axis=1)
    sqrt_g = np.broadcast_to(sqrt_det_at(case.metric.entries, mid.T), (len(mid),)).astype(float)
    update = HistogramDensity(comparison, density, sqrt_g)
    update()
    ensemble = comparison.ensemble
    spec = case.langevin
    assert spec is not None  # the registry entry requires the [langevin] section
    disc = case.discretisation
    return Problem(
        case, msh, metric, space, density, [], ensemble.model, None,
        fields={"p": density},
        conserved=("mass",),
        monitors=[ParticleMoments(ensemble, case.dim)],
        info={"alpha": case.noise.alpha, "particles": spec.particles, "seed": spec.seed},
        particles=Particles(ensemble, spec.dt or disc.dt_used / 4, update),
    )  # fmt: skip


def density_rules(case: Case) -> None:
    """Both equations move a density under the loss L̄: they need L̄ and a density start."""
    pot = case.potential
    if not pot.has_loss:
        bad = "V" if pot.V is not None else "omega" if pot.omega is not None else "loss"
        raise CaseError(
            f"potential.{bad}",
            f"{case.equation} needs the average loss: give "
            "potential.loss (an expression) or potential.curvature",
        )
    if case.initial.kind == "coherent" or any(case.initial.momentum):
        raise CaseError(
            "initial.kind",
            f"{case.equation} takes a density: kind = "
            "'gaussian' (center, width) or 'expression' (p)",
        )
    if case.langevin is not None and case.mesh.is_gmsh:
        raise CaseError("langevin", "particles need a box domain (interval, rectangle or box mesh)")


def separable_rules(case: Case) -> None:
    """A scheme exact in time needs (2.7)'s operator to be a Kronecker sum of 1D operators.

    The mesh and metric as :func:`nhj.builders.axes.check_separable` says; in 2D/3D the loss
    must be quadratic with diagonal curvature (``potential.curvature``) and a given κ
    constant and diagonal (the power law of a diagonal g is).
    """
    if not exact_in_time(case.discretisation.scheme):
        return
    check_separable(case)
    if case.dim == 1:
        return
    name = case.discretisation.scheme
    if case.potential.curvature is None:
        raise CaseError(
            "potential.loss",
            f"scheme {name!r} in {case.dim}D needs a separable loss: potential.curvature "
            "(an expression may couple the axes)",
        )
    if not diagonal(case.noise.kappa, case.dim):
        raise CaseError(
            "noise.kappa", f"scheme {name!r} in {case.dim}D needs a constant diagonal kappa"
        )


def fokker_planck_rules(case: Case) -> None:
    """A loss and a density start (:func:`density_rules`); a separable case for exponential."""
    density_rules(case)
    separable_rules(case)


def axis_factors(case: Case, dirichlet: bool) -> tuple[AxisFactor, ...]:
    """The (2.7) operator of ``case`` on each axis: its line, its metric, loss, κ and D.

    In 1D the factor is the case itself; in 2D/3D axis i carries ½ a_i y_i² and κ_ii (given)
    or the power law of g_ii (:func:`separable_rules` has checked that the case separates).
    """
    par, noise = case.parameters, case.noise
    factors = []
    for i, (line, metric, y) in enumerate(axis_lines(case)):
        if case.dim == 1:
            loss, kappa = make_loss(case, line), make_noise(case, line, metric)
        else:
            assert case.potential.curvature is not None  # separable_rules requires it
            loss = harmonic([case.potential.curvature[i]], [y])
            k = None if noise.kappa is None else fem.Constant(line, np.array([[noise.kappa[i][i]]]))
            kappa = noise_tensor(metric, noise.alpha, par.beta, k)
        eq = FokkerPlanck(metric, loss, diffusion(metric, kappa, par.gamma), par.gamma)
        space = fem.functionspace(line, ("Lagrange", case.discretisation.degree))
        w, v = ufl.TrialFunction(space), ufl.TestFunction(space)
        factors.append(AxisFactor(space, eq.operator(w, v), eq.mass(None, w, v), dirichlet, False))
    return tuple(factors)


FOKKER_PLANCK = Equation(
    name="fokker_planck",
    summary="covariant Fokker-Planck (2.7) of noisy gradient descent",
    build=build,
    stepper="linear",
    default_scheme="crank_nicolson",
    sections=("noise", "langevin"),
    rules=fokker_planck_rules,
    exact=exact,
    exact_schemes=("exponential",),
)

LANGEVIN = Equation(
    name="langevin",
    summary="Langevin particles (2.5), the reference for (2.7)",
    build=build_langevin,
    stepper="particles",
    default_scheme="crank_nicolson",
    sections=("noise", "langevin"),
    required=("langevin",),
    rules=density_rules,
)
