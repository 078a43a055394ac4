"""Run one case: build it, drive the simulation, write the result directory.

case → registry entry → builder (:class:`nhj.problem.Problem`) → stepper
(:func:`nhj.simulation.make_stepper`) → :class:`nhj.simulation.Simulation` with
the observers of a run (diagnostics rows, fields, progress) → summary.json and
final.vtu. The loop itself is in :mod:`nhj.simulation`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from mpi4py import MPI

from dolfinx import fem

import nhj
from nhj.diagnostics import Functionals
from nhj.output import DiagnosticsCSV, ResultDir, VTXFields, write_gathered_vtu
from nhj.problem import Problem
from nhj.registry import build, entry
from nhj.sections import Case
from nhj.simulation import Progress, Simulation, Stepper, Stop, default_every, make_stepper

log = logging.getLogger(__name__)


def versions() -> dict[str, str]:
    """Versions of nhj and the numerical stack, for provenance."""
    from petsc4py import PETSc

    import dolfinx

    return {
        "nhj": nhj.__version__,
        "dolfinx": dolfinx.__version__,
        "petsc": ".".join(map(str, PETSc.Sys.getVersion())),
    }


class Fields:
    """Output fields (the problem's UFL expressions, scalar or vector) interpolated into P_k."""

    def __init__(self, problem: Problem) -> None:
        degree = problem.case.discretisation.degree
        self.functions: list[fem.Function] = []
        self._exprs: list[fem.Expression] = []
        for name, e in problem.fields.items():
            space = fem.functionspace(problem.msh, ("Lagrange", degree, e.ufl_shape))
            self.functions.append(fem.Function(space, name=name))
            self._exprs.append(fem.Expression(e, space.element.interpolation_points))

    def update(self) -> None:
        """Interpolate from the current state."""
        for f, e in zip(self.functions, self._exprs, strict=True):
            f.interpolate(e)


class Diagnostics:
    """One row of global scalars: the equation's functionals, its monitors, the stepper's figures.

    Also tracks the largest relative drift of the conserved functionals since t = 0.
    """

    def __init__(self, problem: Problem, stepper: Stepper) -> None:
        sd = problem.semidiscrete
        self.functionals = Functionals(problem.u0, sd.functionals if sd is not None else {})
        self.monitors, self.stepper = problem.monitors, stepper
        self.columns = [
            *self.functionals.forms,
            *(c for m in problem.monitors for c in m.columns),
            *stepper.columns,
        ]
        self.first: dict[str, float] = {}
        self.drift = {k: 0.0 for k in problem.conserved}

    def __call__(self, t: float) -> dict[str, Any]:
        """The row at time t (collective)."""
        vals: dict[str, Any] = self.functionals()
        for monitor in self.monitors:
            vals.update(monitor(t))
        vals.update(self.stepper.diagnostics())
        for k in self.drift:
            self.first.setdefault(k, vals[k])
            scale = abs(self.first[k]) if self.first[k] != 0 else 1.0
            self.drift[k] = max(self.drift[k], abs(vals[k] - self.first[k]) / scale)
        return vals


def run_case(
    case: Case, out: Path, comm: MPI.Comm = MPI.COMM_WORLD, max_wall_s: float | None = None
) -> dict[str, Any]:
    """Run ``case`` and write its result directory ``out``; returns the summary.

    Raises:
        CaseError: Invalid input detected while building (before ``out`` exists).
    """
    t0 = time.perf_counter()
    problem = build(case, comm)  # all input errors surface before any file is written
    disc, par = case.discretisation, case.parameters
    steps, dt = disc.steps, disc.dt_used
    result = ResultDir(out, comm)
    result.create(case.text)
    summary: dict[str, Any] = {
        "case": case.name,
        "equation": case.equation,
        "status": "running",
        "message": "",
        "gamma": par.gamma,
        "beta": par.beta,
        "hbar": par.hbar,
        "hbar_override": par.hbar_override is not None,
        "m": par.m,
        "dim": case.dim,
        "degree": disc.degree,
        "scheme": disc.scheme,
        "dt": dt,
        "dofs": problem.dofs,
        "ranks": comm.size,
        "steps": 0,
        "t_final": 0.0,
        "wall_s": 0.0,
        "mass": None,
        "mass_drift": None,
        "error_l2": None,
        **problem.info,
        "versions": versions(),
    }
    result.write_json("summary.json", summary)

    stepper = make_stepper(problem, entry(case.equation).stepper)
    diagnostics = Diagnostics(problem, stepper)
    every = case.output.every or default_every(steps)
    rows = DiagnosticsCSV(result, diagnostics.columns, diagnostics, every)
    observers: list[Any] = [rows]
    fields = Fields(problem)
    if case.output.fields:
        observers.append(
            VTXFields(result, fields.functions, fields.update, case.output.fields_every or every)
        )
    observers.append(Progress(every, steps, lambda: rows.rows[-1]))
    log.info(
        "%s: %s, %d dofs on %d rank(s), %d steps of dt=%g (%s)",
        case.name, case.equation, problem.dofs, comm.size, steps, dt, disc.scheme,
    )  # fmt: skip
    with Simulation(stepper, observers, comm, dt=dt, started=t0) as sim:
        outcome = sim.run(Stop(steps=steps, wall_s=max_wall_s))
        stats = dict(stepper.stats)
    fields.update()
    write_gathered_vtu(result.path / "final.vtu", fields.functions)
    summary.update({k: v for k, v in rows.rows[-1].items() if k not in ("step", "t")})
    summary.update({f"{k}_drift": v for k, v in diagnostics.drift.items()})
    summary.update(stats)
    summary.update(
        status=outcome.status,
        message=outcome.message,
        steps=outcome.steps,
        t_final=outcome.t,
        wall_s=comm.bcast(time.perf_counter() - t0, root=0),
    )
    result.write_json("summary.json", summary)
    if outcome.status == "failed":
        log.error("%s: %s", case.name, outcome.message)
    return summary


__all__ = ["Fields", "run_case", "versions"]
