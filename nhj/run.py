"""Run one case: build it, drive the simulation, write the result directory.

case → registry entry → builder (:class:`nhj.problem.Problem`) → stepper
(:func:`nhj.simulation.make_stepper`) → :class:`nhj.simulation.Simulation` with
the observers of a run (diagnostics rows, fields, progress, checkpoints) →
summary.json and final.vtu. The loop itself is in :mod:`nhj.simulation`; the
directory rules in :mod:`nhj.results`; checkpoints in :mod:`nhj.checkpoint`
(resume on any number of ranks, docs/faults.md).
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
from nhj.case import case_from_text
from nhj.checkpoint import Checkpoint, CheckpointError, case_hash
from nhj.diagnostics import Functionals
from nhj.interrupt import Interrupt
from nhj.output import DiagnosticsCSV, VTXFields, write_gathered_vtu
from nhj.problem import Problem
from nhj.registry import build, entry
from nhj.results import ResultDir, read_status
from nhj.schema import CaseError
from nhj.sections import Case
from nhj.simulation import Progress, Simulation, Stepper, Stop, default_every, make_stepper
from nhj.solvers import SolverError

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

    Also tracks the largest relative drift of the conserved functionals since t = 0 (of
    a functional plus its balance columns, e.g. the mass plus what left through open walls).
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
        self.balances = problem.balances

    def __call__(self, t: float) -> dict[str, Any]:
        """The row at time t (collective)."""
        vals: dict[str, Any] = self.functionals()
        for monitor in self.monitors:
            vals.update(monitor(t))
        vals.update(self.stepper.diagnostics())
        bad = [k for k, v in vals.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise SolverError(f"{', '.join(bad)} became non-finite")
        for k in self.drift:
            v = vals[k] + sum(vals[c] for c in self.balances.get(k, ()))
            self.first.setdefault(k, v)
            scale = abs(self.first[k]) if self.first[k] != 0 else 1.0
            self.drift[k] = max(self.drift[k], abs(v - self.first[k]) / scale)
        return vals


class Checkpointer:
    """Observer writing a checkpoint every ``every`` steps and/or ``minutes`` of wall time."""

    def __init__(
        self, write: Any, every: int | None, minutes: float | None, comm: MPI.Comm
    ) -> None:
        self.write, self.every, self.minutes, self.comm = write, every, minutes, comm
        self.last = time.perf_counter()

    def due(self, step: int, last: bool) -> bool:
        """On the step cadence, or when the clock cadence has passed (rank 0 decides)."""
        if last or step == 0:
            return False  # the run's end writes its own (on interrupt) or none
        if self.every is not None and step % self.every == 0:
            return True
        if self.minutes is None:
            return False
        return bool(self.comm.bcast(time.perf_counter() - self.last > 60 * self.minutes, root=0))

    def __call__(self, t: float, step: int) -> None:
        """Write the checkpoint now (collective)."""
        self.write()
        self.last = time.perf_counter()

    def close(self) -> None:
        """Nothing to flush."""


def ensembles(problem: Problem) -> dict[str, Any]:
    """Particle ensembles held by monitors (e.g. the Langevin reference of (2.7)), by name."""
    return {
        f"monitor{i}": m.ensemble for i, m in enumerate(problem.monitors) if hasattr(m, "ensemble")
    }


def run_case(
    case: Case,
    out: Path,
    comm: MPI.Comm = MPI.COMM_WORLD,
    max_wall_s: float | None = None,
    overwrite: bool = False,
    interrupt: Interrupt | None = None,
) -> dict[str, Any]:
    """Run ``case`` and write its result directory ``out``; returns the summary.

    Raises:
        CaseError: Invalid input (the case, or an ``out`` that is a file, not
            writable, in use, or holds a result not to be replaced unasked),
            detected before any result file is written.
    """
    return _execute(case, out, comm, max_wall_s, interrupt, overwrite=overwrite)


def resume_case(
    out: Path,
    comm: MPI.Comm = MPI.COMM_WORLD,
    max_wall_s: float | None = None,
    interrupt: Interrupt | None = None,
    max_dofs: int | None = None,
) -> dict[str, Any]:
    """Continue the run in ``out`` from its checkpoint, on any number of ranks.

    ``max_dofs`` bounds the case as for a new run (``--max-dofs``).

    Raises:
        CaseError: ``out`` has no checkpoint, or its case or checkpoint does not
            match (field "--resume").
    """
    out = Path(out)
    meta = Checkpoint(out, comm).read_meta_or_none()
    if meta is None:
        raise CaseError("--resume", f"{out} has no checkpoint to resume from")
    text = (out / "case.toml").read_text(encoding="utf-8") if comm.rank == 0 else None
    text = comm.bcast(text, root=0)
    if case_hash(text) != meta["case_sha"]:
        raise CaseError("--resume", f"{out}/case.toml is not the case the checkpoint was made of")
    case = case_from_text(text, Path(meta["case_dir"]), meta["case_name"], max_dofs)
    return _execute(case, out, comm, max_wall_s, interrupt, meta=meta)


def _execute(
    case: Case,
    out: Path,
    comm: MPI.Comm,
    max_wall_s: float | None,
    interrupt: Interrupt | None,
    overwrite: bool = False,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    problem = build(case, comm)  # all input errors surface before any file is written
    result = ResultDir(out, comm)
    result.open(case.text, overwrite=overwrite, resume=meta is not None)
    try:
        return _simulate(case, problem, result, comm, t0, max_wall_s, interrupt, meta)
    except BaseException:
        result.close(completed=False)
        raise


def _simulate(
    case: Case,
    problem: Problem,
    result: ResultDir,
    comm: MPI.Comm,
    t0: float,
    max_wall_s: float | None,
    interrupt: Interrupt | None,
    meta: dict[str, Any] | None,
) -> dict[str, Any]:
    disc, par = case.discretisation, case.parameters
    steps, dt = disc.steps, disc.dt_used
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
    stepper = make_stepper(problem, entry(case.equation).stepper)
    diagnostics = Diagnostics(problem, stepper)
    checkpoint = Checkpoint(result.path, comm)
    monitors_particles = ensembles(problem)
    rows: list[dict[str, Any]] = []
    fields_name = "fields.bp"
    if meta is not None:
        _restore(meta, problem, stepper, diagnostics, checkpoint, monitors_particles)
        fields_name = f"fields-from-step-{meta['step']}.bp"
        summary["resumed_from"] = {"step": meta["step"], "t": meta["t"], "ranks": meta["ranks"]}
    result.write_json("summary.json", summary)

    every = case.output.every or default_every(steps)
    if meta is not None:  # the cadence rows; a row at the interrupted step is not one
        rows = [r for r in meta["rows"] if r["step"] % every == 0]
    csv_rows = DiagnosticsCSV(result, diagnostics.columns, diagnostics, every, rows)

    def save() -> None:
        state = stepper.get_state()
        space = None if state.particles is not None else problem.u0.function_space
        checkpoint.write(
            state,
            space,
            monitors_particles,
            {
                "case_sha": case_hash(case.text),
                "case_dir": str(case.path.resolve().parent) if case.path else ".",
                "case_name": case.name,
                "rows": csv_rows.rows,
                "first": diagnostics.first,
                "drift": diagnostics.drift,
            },
        )
        summary["checkpoint"] = {"step": state.steps, "t": state.t, "path": str(checkpoint.path)}
        result.write_json("summary.json", summary)  # kill -9 after this: "running", resumable

    observers: list[Any] = [csv_rows]
    fields = Fields(problem)
    if case.output.fields:
        fe = case.output.fields_every or every
        observers.append(VTXFields(result, fields.functions, fields.update, fe, fields_name))
    observers.append(Progress(every, steps, lambda: csv_rows.rows[-1]))
    out_spec = case.output
    if out_spec.checkpoint_every or out_spec.checkpoint_minutes:
        observers.append(
            Checkpointer(save, out_spec.checkpoint_every, out_spec.checkpoint_minutes, comm)
        )
    log.info(
        "%s: %s, %d dofs on %d rank(s), %d steps of dt=%g (%s)",
        case.name, case.equation, problem.dofs, comm.size, steps, dt, disc.scheme,
    )  # fmt: skip
    sim = Simulation(
        stepper, observers, comm, dt=dt, started=t0, interrupt=interrupt, observed=meta is not None
    )
    with sim:
        outcome = sim.run(Stop(steps=steps, wall_s=max_wall_s))
        stats = dict(stepper.stats)
        message = outcome.message
        if outcome.status == "interrupted":
            save()
            message += (
                f"; checkpoint at step {outcome.steps}: resume with nhj run --resume {result.final}"
            )
    fields.update()
    write_gathered_vtu(result.path / "final.vtu", fields.functions)
    last_row = csv_rows.rows[-1] if csv_rows.rows else {}  # none if t = 0 already failed
    summary.update({k: v for k, v in last_row.items() if k not in ("step", "t")})
    summary.update({f"{k}_drift": v for k, v in diagnostics.drift.items()})
    summary.update(stats)
    summary.update(
        status=outcome.status,
        message=message,
        steps=outcome.steps,
        t_final=outcome.t,
        wall_s=comm.bcast(time.perf_counter() - t0, root=0),
    )
    result.write_json("summary.json", summary)
    summary["result"] = str(result.close(completed=outcome.status == "completed"))
    if outcome.status != "completed":
        log.error("%s: %s", case.name, message)
    return summary


def _restore(
    meta: dict[str, Any],
    problem: Problem,
    stepper: Stepper,
    diagnostics: Diagnostics,
    checkpoint: Checkpoint,
    monitors_particles: dict[str, Any],
) -> None:
    """Put the checkpoint's state into a freshly built run (collective)."""
    space = problem.u0.function_space
    tol = 1e-6 * max(_diameter(problem.msh), 1.0)
    blocks = None
    if problem.particles is not None:
        blocks = list(problem.particles.ensemble.blocks)
    error, state = "", None
    try:
        state = checkpoint.read_state(meta, space, tol, blocks)
        checkpoint.restore_ensembles(meta, monitors_particles)
    except (CheckpointError, KeyError, OSError, ValueError) as e:
        error = f"cannot resume from {checkpoint.path}: {e}"
    error = max(problem.msh.comm.allgather(error), key=len)  # a failure on one rank stops all
    if error or state is None:
        raise CaseError("--resume", error)
    stepper.set_state(state)
    diagnostics.first = dict(meta["first"])
    diagnostics.drift = dict(meta["drift"])


def _diameter(msh: Any) -> float:
    x = msh.geometry.x
    span = float((x.max(axis=0) - x.min(axis=0)).max()) if len(x) else 0.0
    return float(msh.comm.allreduce(span, op=MPI.MAX))


__all__ = ["Fields", "read_status", "resume_case", "run_case", "versions"]
