"""The labelled pieces every equation module returns.

An equation is declared, not solved: it is the semi-discrete residual

    M(∂ₜu, v) + A(u; v) = 0      for all test functions v,

where ``mass`` is bilinear in (∂ₜu, v) — it may depend on the state, M(u; ∂ₜu, v),
as in the Hamilton–Jacobi equation multiplied by √p — and ``operator`` may be
nonlinear in u. The time
schemes in :mod:`nhj.timeschemes` turn these pieces into a fully discrete
residual; solvers and the run loop never see the equation's physics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Form = Any  # a UFL form; UFL has no static types


@dataclass(frozen=True)
class SemiDiscrete:
    """Labelled pieces of M(∂ₜu, v) + A(u; v) = 0.

    Attributes:
        space: The function space of the unknown u.
        mass: (u, w, v) -> M(u; w, v), bilinear in (w, v); it may depend on the
            state u (the HJ rows of the (√p, S) form), a linear equation ignores u.
        operator: (u, v) -> A(u; v).
        linear: Whether M and A are linear in u (then a time step is one linear solve).
        functionals: Named scalar functionals of the state (mass, energy, ...),
            each u -> UFL form, for the diagnostics.
        factors: The 1D factors of an operator that is a Kronecker sum over the axes
            (:class:`nhj.separable.AxisFactor`), for a scheme exact in time; empty otherwise.
    """

    space: Any
    mass: Callable[[Any, Any, Any], Form]
    operator: Callable[[Any, Any], Form]
    linear: bool
    functionals: dict[str, Callable[[Any], Form]] = field(default_factory=dict)
    factors: tuple[Any, ...] = ()

    def M(self, u: Any, w: Any, v: Any) -> Form:
        """M(u; w, v): the mass form at the state u."""
        return self.mass(u, w, v)
