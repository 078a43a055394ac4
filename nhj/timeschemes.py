"""Time schemes: turn the labelled pieces of an equation into a discrete residual.

For M(∂ₜu, v) + A(u; v) = 0 (see :class:`nhj.equations.SemiDiscrete`) and the
history uⁿ, uⁿ⁻¹, …, a scheme returns the residual F(u; v) whose root is uⁿ⁺¹.
Schemes are small classes in a name-keyed registry; case files name them.
``dt`` is a ``fem.Constant`` so that changing it needs no recompilation.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from nhj.equations.base import Form, SemiDiscrete

SCHEMES: dict[str, type[TimeScheme]] = {}


def register(cls: type[TimeScheme]) -> type[TimeScheme]:
    """Class decorator adding a scheme to :data:`SCHEMES` under ``cls.name``."""
    SCHEMES[cls.name] = cls
    return cls


def get_scheme(name: str) -> TimeScheme:
    """Instantiate the scheme registered as ``name``."""
    return SCHEMES[name]()


class TimeScheme(ABC):
    """A one- or multi-step scheme.

    Attributes:
        name: Registry key used in case files.
        order: Formal order of accuracy in dt (inf: exact in time).
        steps: Number of past states the residual needs.
        startup: Name of the scheme that fills the history for the first steps.
    """

    name: ClassVar[str]
    order: ClassVar[float]
    steps: ClassVar[int] = 1
    startup: ClassVar[str | None] = None

    @abstractmethod
    def residual(self, eq: SemiDiscrete, u: Any, history: Sequence[Any], v: Any, dt: Any) -> Form:
        """F(u; v) for the new state u given history [uⁿ, uⁿ⁻¹, …]."""


class Theta(TimeScheme):
    """θ-method: M(u − uⁿ, v)/dt + θ A(u; v) + (1 − θ) A(uⁿ; v) = 0."""

    theta: ClassVar[float]

    def residual(self, eq: SemiDiscrete, u: Any, history: Sequence[Any], v: Any, dt: Any) -> Form:
        """θ-weighted residual."""
        un = history[0]
        F = eq.M(self.theta * u + (1.0 - self.theta) * un, (u - un) / dt, v)
        F += self.theta * eq.operator(u, v)
        if self.theta != 1.0:
            F += (1.0 - self.theta) * eq.operator(un, v)
        return F


@register
class CrankNicolson(Theta):
    """Crank–Nicolson, θ = ½: second order, conserves quadratic invariants of linear flows."""

    name = "crank_nicolson"
    order = 2
    theta = 0.5


@register
class ImplicitEuler(Theta):
    """Backward Euler, θ = 1: first order, L-stable."""

    name = "implicit_euler"
    order = 1
    theta = 1.0


@register
class ImplicitMidpoint(TimeScheme):
    """Implicit midpoint: M(u − uⁿ, v)/dt + A((u + uⁿ)/2; v) = 0.

    Symplectic and second order; it conserves every quadratic invariant, also of
    nonlinear flows (for linear A it equals Crank–Nicolson).
    """

    name = "implicit_midpoint"
    order = 2

    def residual(self, eq: SemiDiscrete, u: Any, history: Sequence[Any], v: Any, dt: Any) -> Form:
        """Midpoint residual."""
        un = history[0]
        mid = 0.5 * (u + un)
        return eq.M(mid, (u - un) / dt, v) + eq.operator(mid, v)


@register
class BDF2(TimeScheme):
    """BDF2: M(3u − 4uⁿ + uⁿ⁻¹, v)/(2dt) + A(u; v) = 0, started by Crank–Nicolson."""

    name = "bdf2"
    order = 2
    steps = 2
    startup = "crank_nicolson"

    def residual(self, eq: SemiDiscrete, u: Any, history: Sequence[Any], v: Any, dt: Any) -> Form:
        """BDF2 residual."""
        un, unm1 = history[0], history[1]
        return eq.M(u, (3.0 * u - 4.0 * un + unm1) / (2.0 * dt), v) + eq.operator(u, v)


class Rational(TimeScheme):
    """An s-stage Gauss–Legendre scheme, applied without a one-state residual.

    For linear, autonomous equations it is the rational map uⁿ⁺¹ = R(dt L) uⁿ, which
    :class:`nhj.propagators.RationalStepper` applies by partial fractions (one
    factorised solve per root of R's denominator); for the Newton-stepped equations
    :class:`nhj.collocation.Collocation` solves its s stages together.

    Attributes:
        stages: s of the s-stage Gauss–Legendre method, R the (s, s) Padé approximant.
    """

    stages: ClassVar[int]

    def residual(self, eq: SemiDiscrete, u: Any, history: Sequence[Any], v: Any, dt: Any) -> Form:
        """Not a residual scheme."""
        raise TypeError(f"{self.name} is applied by the rational stepper, not as a residual")


@register
class Gauss2(Rational):
    """Gauss–Legendre, 2 stages: order 4, A-stable, unitary for skew-adjoint L (3.11)."""

    name = "gauss2"
    order = 4
    stages = 2


@register
class Gauss3(Rational):
    """Gauss–Legendre, 3 stages: order 6, A-stable, unitary for skew-adjoint L (3.11)."""

    name = "gauss3"
    order = 6
    stages = 3


@register
class Exponential(TimeScheme):
    """Exact in time: uⁿ⁺¹ = exp(dt L) uⁿ for a linear, autonomous equation.

    Applied by :class:`nhj.separable.SeparableExponential` where the operator is a
    Kronecker sum of 1D operators (Schrödinger (3.11) or Fokker–Planck (2.7) with
    coefficients that do not couple the axes, on a tensor-product mesh): the only error
    left is the space's. Equations opt in
    (``Equation.exact_schemes``); it is no residual scheme.
    """

    name = "exponential"
    order = math.inf

    def residual(self, eq: SemiDiscrete, u: Any, history: Sequence[Any], v: Any, dt: Any) -> Form:
        """Not a residual scheme."""
        raise TypeError("exponential is applied by the separable propagator, not as a residual")


def exact_in_time(name: str) -> bool:
    """Whether the scheme ``name`` has no time error (equations opt in to such schemes)."""
    return math.isinf(SCHEMES[name].order)
