"""What a registry entry declares and what its builder returns.

An :class:`Equation` is one registry entry (see :mod:`nhj.registry`): the case
sections the equation reads, its default and allowed time schemes, its
cross-section rules, whether an exact solution applies, its builder, and which
stepper advances it. The builder turns a validated case into a
:class:`Problem`: the discrete pieces of one run (mesh, space, initial state,
boundary conditions, the equation's labelled UFL pieces, output fields and
monitors), with no time loop and no I/O. :mod:`nhj.simulation` picks the
stepper from the entry and runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from nhj.covariant import Metric
from nhj.equations.base import SemiDiscrete
from nhj.sections import Case
from nhj.timeschemes import SCHEMES, exact_in_time

StepperKind = Literal["linear", "adaptive", "particles"]


@dataclass(frozen=True)
class StepHooks:
    """What an adaptive (Newton) run needs from its equation besides the residual.

    Attributes:
        guard: Called with t after every accepted sub-step; a message stops the run.
        hint: (where, t) -> text appended to a failure's message (e.g. "a node of ψ").
        error_norm: (u, u_pred) -> (error, scale) on owned entries, for the step controller.
        wave: The equation's wave form (a :class:`nhj.hybrid.WaveForm`): an inadmissible
            step is then retaken in it (the hybrid stepper) instead of ending the run.
        conserve: Called after every accepted sub-step, before the guard: puts the state
            back on its conserved mass (:class:`nhj.invariants.MassRescale`) and returns
            the relative correction it made.
    """

    guard: Callable[[float], str | None] | None = None
    hint: Callable[[Any, float], str] | None = None
    error_norm: Callable[[np.ndarray, np.ndarray], tuple[float, float]] | None = None
    wave: Any = None
    conserve: Callable[[], float] | None = None


@dataclass(frozen=True)
class Particles:
    """The particle ensemble of a Langevin run and how it updates its density on the mesh."""

    ensemble: Any
    dt: float
    update: Callable[[], None]


@dataclass
class Problem:
    """The discrete pieces of a run (no time loop, no I/O).

    Attributes:
        case: The validated case.
        msh: The distributed mesh.
        metric: Covariant operators of g.
        space: Function space of the unknown.
        u0: The initial state (advanced in place by the run).
        bcs: Dirichlet conditions on the unknown.
        equation: The equation object (builds the UFL forms).
        semidiscrete: Its labelled pieces (None for particles).
        fields: Output fields, name → UFL expression of ``u0``.
        conserved: Functionals whose relative drift the summary reports.
        balances: For a conserved functional, the monitor columns added to it before its
            drift is taken: what left through open walls (``{"mass": ("outflow",)}``).
        monitors: Further diagnostics per output step (each has ``columns``
            and returns a dict of them when called with t).
        info: Static facts for the summary.
        hooks: Node guard, failure hints and error norm of an adaptive run.
        particles: The ensemble of a particle run.
    """

    case: Case
    msh: Any
    metric: Metric
    space: Any
    u0: Any
    bcs: list[Any]
    equation: Any
    semidiscrete: SemiDiscrete | None
    fields: dict[str, Any]
    conserved: tuple[str, ...]
    monitors: list[Any] = field(default_factory=list)
    balances: dict[str, tuple[str, ...]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    hooks: StepHooks = field(default_factory=StepHooks)
    particles: Particles | None = None

    @property
    def dofs(self) -> int:
        """Global number of degrees of freedom of the unknown."""
        im = self.space.dofmap.index_map
        return int(im.size_global * self.space.dofmap.index_map_bs)


def schemes_for(kind: StepperKind) -> tuple[str, ...]:
    """The registered schemes a stepper kind can take (one-step schemes for Newton stepping).

    A scheme exact in time needs the equation's own structure (nhj/separable.py), so it is
    not among them: an entry names it in ``exact_schemes``.
    """
    general = tuple(n for n in SCHEMES if not exact_in_time(n))
    if kind == "adaptive":  # one-step schemes: a residual, or Gauss collocation (collocation.py)
        return tuple(n for n in general if SCHEMES[n].steps == 1)
    return general


def _no_rules(case: Case) -> None:
    return None


def _never(case: Case) -> bool:
    return False


@dataclass(frozen=True)
class Equation:
    """One registry entry: everything nhj knows about an equation, in one place.

    Attributes:
        name: The case's ``equation``.
        summary: One line for docs and ``nhj --help``.
        build: (case, mesh, metric) -> :class:`Problem`.
        stepper: ``linear`` (matrix factorised once), ``adaptive`` (Newton with
            accepted/rejected sub-steps) or ``particles``.
        default_scheme: The scheme when the case names none.
        sections: Shared optional sections the equation reads (from
            :data:`nhj.sections.OPTIONAL_SECTIONS`); any other is refused.
        own: Sections only this equation declares: name -> validator of its table.
        rules: Cross-section checks on the validated case (raise CaseError).
        exact: Whether the case's exact solution applies to this equation.
        required: Optional sections built with defaults even when absent.
        exact_schemes: Schemes exact in time that the builder supports (it builds what
            they need, e.g. the 1D factors of a separable operator).
    """

    name: str
    summary: str
    build: Callable[[Case, Any, Metric], Problem]
    stepper: StepperKind
    default_scheme: str
    sections: tuple[str, ...] = ()
    own: Mapping[str, Callable[[Mapping[str, Any]], Any]] = field(default_factory=dict)
    rules: Callable[[Case], None] = _no_rules
    exact: Callable[[Case], bool] = _never
    required: tuple[str, ...] = ()
    exact_schemes: tuple[str, ...] = ()

    @property
    def schemes(self) -> tuple[str, ...]:
        """The schemes a case may name for this equation (from the scheme registry)."""
        return schemes_for(self.stepper) + self.exact_schemes
