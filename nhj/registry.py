"""The equations nhj solves: one entry each, in one place.

An entry (:class:`nhj.problem.Equation`) declares the case sections the
equation reads, its default scheme and the schemes it allows (from the scheme
registry, by the kind of stepper it needs), its cross-section rules, when an
exact solution applies, and its builder. Adding an equation is its equation
module in :mod:`nhj.equations`, its builder module in :mod:`nhj.builders`, and
one line here (docs/architecture.md walks through the Gross–Pitaevskii example).
"""

from __future__ import annotations

from mpi4py import MPI

from nhj.builders import fokker_planck, gross_pitaevskii, madelung, schrodinger
from nhj.builders.common import mesh_and_metric
from nhj.problem import Equation, Problem
from nhj.sections import Case

EQUATIONS: dict[str, Equation] = {
    e.name: e
    for e in (
        schrodinger.ENTRY,
        madelung.MADELUNG,
        madelung.NEURAL_HJ,
        fokker_planck.FOKKER_PLANCK,
        fokker_planck.LANGEVIN,
        gross_pitaevskii.ENTRY,
    )
}


def entry(name: str) -> Equation:
    """The registry entry of ``name`` (a validated case's equation)."""
    return EQUATIONS[name]


def equations_reading(section: str) -> tuple[str, ...]:
    """The equations whose entries read the optional ``section`` (for error messages)."""
    return tuple(n for n, e in EQUATIONS.items() if section in e.sections or section in e.own)


def build(case: Case, comm: MPI.Comm) -> Problem:
    """All discrete pieces of ``case`` on ``comm`` (collective); raises CaseError on bad input."""
    return entry(case.equation).build(case, *mesh_and_metric(case, comm))
