"""Run one case: build, step, write the result directory.

The loop stops on simulated time (t_end), and optionally on wall time; the
wall-clock decision is broadcast from rank 0 so every rank takes the same
branch. Diagnostics and fields are scheduled handlers.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from mpi4py import MPI

from dolfinx import fem

import nhj
from nhj.case import Case
from nhj.diagnostics import Functionals
from nhj.output import DiagnosticsCSV, ResultDir, VTXFields, write_gathered_vtu
from nhj.problem import Problem, build
from nhj.solvers import SolverError
from nhj.stepper import StepFailure, TimeStepper

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
        self.functions, self._exprs = [], []
        for name, e in problem.fields.items():
            space = fem.functionspace(problem.msh, ("Lagrange", degree, e.ufl_shape))
            self.functions.append(fem.Function(space, name=name))
            self._exprs.append(fem.Expression(e, space.element.interpolation_points))

    def update(self) -> None:
        """Interpolate from the current state."""
        for f, e in zip(self.functions, self._exprs, strict=True):
            f.interpolate(e)


def default_every(steps: int) -> int:
    """About 20 output rows per run."""
    return max(1, math.ceil(steps / 20))


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
    u = problem.u0
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

    sd = problem.semidiscrete
    functionals = Functionals(u, sd.functionals if sd is not None else {})
    first: dict[str, float] = {}
    drift = {k: 0.0 for k in problem.conserved}

    def diagnostics(t: float) -> dict[str, Any]:
        vals: dict[str, Any] = functionals()
        for monitor in problem.monitors:
            vals.update(monitor(t))
        for k in drift:
            first.setdefault(k, vals[k])
            scale = abs(first[k]) if first[k] != 0 else 1.0
            drift[k] = max(drift[k], abs(vals[k] - first[k]) / scale)
        return vals

    columns = [*functionals.forms, *(c for m in problem.monitors for c in m.columns)]
    every = case.output.every or default_every(steps)
    handlers: list[Any] = [DiagnosticsCSV(result, columns, diagnostics, every)]
    fields = Fields(problem)
    if case.output.fields:
        handlers.append(
            VTXFields(result, fields.functions, fields.update, case.output.fields_every or every)
        )
    stepper = problem.stepper or TimeStepper(
        sd, disc.scheme, u, dt, problem.bcs, case.solver.petsc_options
    )
    log.info(
        "%s: %s, %d dofs on %d rank(s), %d steps of dt=%g (%s)",
        case.name,
        case.equation,
        problem.dofs,
        comm.size,
        steps,
        dt,
        disc.scheme,
    )
    for h in handlers:
        h(0.0, 0)
    status, message = "completed", ""
    t_loop = time.perf_counter()
    try:
        for step in range(1, steps + 1):
            stepper.advance()
            last = step == steps
            for h in handlers:
                if h.due(step, last):
                    h(stepper.t, step)
            if step % every == 0 or last:
                _progress(step, steps, stepper.t, t_loop, handlers[0].rows[-1])
            if max_wall_s is not None and not last:
                out_of_time = comm.bcast(time.perf_counter() - t0 > max_wall_s, root=0)
                if out_of_time:
                    status, message = "failed", f"wall-time limit {max_wall_s:g} s reached"
                    handlers[0](stepper.t, step)
                    break
    except StepFailure as e:  # says where and when itself
        status, message = "failed", str(e)
    except SolverError as e:
        status, message = "failed", f"{e} at t = {stepper.t:g}"
    finally:
        for h in handlers:
            h.close()
        if hasattr(stepper, "close"):
            stepper.close()
    fields.update()
    write_gathered_vtu(result.path / "final.vtu", fields.functions)
    last_row = handlers[0].rows[-1]
    summary.update({k: v for k, v in last_row.items() if k not in ("step", "t")})
    summary.update({f"{k}_drift": v for k, v in drift.items()})
    summary.update(getattr(stepper, "stats", {}))
    summary.update(
        status=status,
        message=message,
        steps=stepper.steps,
        t_final=stepper.t,
        wall_s=comm.bcast(time.perf_counter() - t0, root=0),
    )
    result.write_json("summary.json", summary)
    if status == "failed":
        log.error("%s: %s", case.name, message)
    return summary


def _progress(step: int, steps: int, t: float, t_loop: float, row: dict[str, Any]) -> None:
    elapsed = time.perf_counter() - t_loop
    eta = elapsed / step * (steps - step)
    values = "  ".join(
        f"{k}={v:.6g}" for k, v in row.items() if k not in ("step", "t") and v is not None
    )
    log.info("step %d/%d  t=%.4g  %s  [%.1fs, eta %.1fs]", step, steps, t, values, elapsed, eta)


__all__ = ["Fields", "run_case"]
