"""Builder and registry entry of the Gross–Pitaevskii equation (3.11) + g|ψ|²ψ.

The worked example of docs/architecture.md: the physics is
:mod:`nhj.equations.gross_pitaevskii`; this module reads the case (its own
``[coupling]`` section), reuses the Schrödinger initial state and boundary
conditions, and declares that the equation needs the adaptive Newton stepper.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from dolfinx import fem

from nhj.builders.common import (
    boundary_conditions,
    gaussian_state,
    make_potential,
    normalise,
)
from nhj.builders.schrodinger import wave_initial_state
from nhj.covariant import Metric
from nhj.equations.gross_pitaevskii import GrossPitaevskii
from nhj.equations.schrodinger import Schrodinger
from nhj.invariants import MassRescale
from nhj.problem import Equation, Problem, StepHooks
from nhj.schema import as_float, check_keys, require
from nhj.sections import Case


@dataclass(frozen=True)
class CouplingSpec:
    """[coupling] of gross_pitaevskii.

    Attributes:
        g: Coupling of g|ψ|²ψ (negative: focusing, bright solitons; positive: defocusing).
    """

    g: float

    @classmethod
    def from_table(cls, t: Mapping[str, Any]) -> CouplingSpec:
        """Validate [coupling]."""
        check_keys(t, ("g",), "coupling")
        return cls(g=as_float(require(t, "g", "coupling"), "coupling.g"))


def build(case: Case, msh: Any, metric: Metric) -> Problem:
    """ψ = (Re ψ, Im ψ) in P_k×2 as for Schrödinger, with the coupling of [coupling]."""
    par, degree = case.parameters, case.discretisation.degree
    linear = Schrodinger(metric, make_potential(case, msh, metric), par.hbar, par.m)
    eq = GrossPitaevskii(linear, case.section("coupling").g)
    space = fem.functionspace(msh, ("Lagrange", degree, (2,)))
    u0 = fem.Function(space, name="psi")
    if wave_initial_state(case, u0, gaussian_state(case)):
        normalise(u0, linear.norm2, 2.0)
    bcs = boundary_conditions(case, space, "dirichlet", np.zeros(2))
    for bc in bcs:
        bc.set(u0.x.array)
    return Problem(
        case, msh, metric, space, u0, bcs, eq, eq.semidiscrete(space),
        fields={"p": linear.density(u0), "S": linear.phase(u0)},
        conserved=("mass", "energy"),
        info={"coupling_g": eq.g},
        # the midpoint rule keeps ‖ψ‖² exactly for this coupling: ψ ← cψ removes Newton's
        # remainder, so ‖ψ‖² is round-off whatever newton_rtol is
        hooks=StepHooks(conserve=MassRescale(u0, linear.norm2(u0), components=[0, 1])),
    )  # fmt: skip


ENTRY = Equation(
    name="gross_pitaevskii",
    summary="Gross-Pitaevskii: Schrodinger (3.11) with a cubic coupling g|psi|^2 psi",
    build=build,
    stepper="adaptive",
    default_scheme="implicit_midpoint",
    sections=("nonlinear",),
    own={"coupling": CouplingSpec.from_table},
)
