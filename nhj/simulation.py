"""The one time loop of nhj: a stepper, stop criteria and scheduled observers.

Every run advances time here and nowhere else: ``nhj run``, ``nhj verify``,
the benchmarks and the tests build a :class:`Simulation` from a stepper and
observers and call :meth:`Simulation.run` with a :class:`Stop`.

* The stepper (:class:`Stepper`) owns the state: ``advance`` takes one output
  step dt, ``get_state``/``set_state`` hand it over (to a checkpoint, or to
  another form of the equation).
* Stop criteria are simulated time, a step count and wall time; the wall-time
  decision is broadcast from rank 0 so every rank leaves the loop together.
* Observers (diagnostics rows, fields, progress, snapshots) each have their
  own cadence: ``due(step, last)`` decides, ``__call__(t, step)`` acts
  (collectively), ``close()`` flushes.

:func:`make_stepper` picks the stepper an equation's registry entry asks for
(linear → matrix factorised once, adaptive → Newton sub-steps, wrapped in the
wave–fluid hybrid of :mod:`nhj.hybrid` when the problem has a wave form, particles).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mpi4py import MPI

from nhj.equations.base import SemiDiscrete
from nhj.hybrid import HybridStepper
from nhj.interrupt import Interrupt
from nhj.interrupt import name as signal_name
from nhj.problem import Problem, StepperKind
from nhj.propagators import RationalStepper
from nhj.separable import SeparableExponential
from nhj.solvers import SolverError, preset_options
from nhj.stepper import (
    AdaptiveStepper,
    ParticleStepper,
    StepControl,
    StepFailure,
    StepperState,
    TimeStepper,
)
from nhj.timeschemes import Exponential, Rational, get_scheme

log = logging.getLogger(__name__)


class Stepper(Protocol):
    """What the loop needs of a stepper.

    Attributes:
        t: Simulated time after the steps taken.
        steps: Output steps taken.
        stats: Totals for the summary (accepted/rejected sub-steps, ...).
        columns: Names of the per-output-step figures of :meth:`diagnostics`.
    """

    t: float
    steps: int
    columns: tuple[str, ...]

    @property
    def stats(self) -> dict[str, Any]:
        """Totals for the summary."""

    def advance(self) -> None:
        """Take one output step dt (collective)."""

    def diagnostics(self) -> dict[str, Any]:
        """Figures of the last output step (e.g. Newton iterations)."""

    def close(self) -> None:
        """Destroy solvers now, in the same order on every rank (collective)."""

    def get_state(self) -> StepperState:
        """A copy of everything needed to continue."""

    def set_state(self, state: StepperState) -> None:
        """Continue from ``state``."""


class Observer(Protocol):
    """Something done on a schedule during a run."""

    def due(self, step: int, last: bool) -> bool:
        """Whether to act after ``step`` steps (``last``: the run ends now)."""

    def __call__(self, t: float, step: int) -> None:
        """Act (collective)."""

    def close(self) -> None:
        """Flush and close."""


class Every:
    """Observer calling ``action(t, step)`` every ``every`` steps, at the start and at the end."""

    def __init__(self, every: int, action: Callable[[float, int], None]) -> None:
        self.every, self.action = max(1, every), action

    def due(self, step: int, last: bool) -> bool:
        """Every ``every`` steps and the last one."""
        return step % self.every == 0 or last

    def __call__(self, t: float, step: int) -> None:
        """Act."""
        self.action(t, step)

    def close(self) -> None:
        """Nothing to flush."""


class At:
    """Observer calling ``action(i, t)`` at the given step numbers (i: their index)."""

    def __init__(self, steps: Sequence[int], action: Callable[[int, float], None]) -> None:
        self.steps, self.action = list(steps), action

    def due(self, step: int, last: bool) -> bool:
        """At the listed steps only."""
        return step in self.steps

    def __call__(self, t: float, step: int) -> None:
        """Act for every listing of this step."""
        for i, s in enumerate(self.steps):
            if s == step:
                self.action(i, t)

    def close(self) -> None:
        """Nothing to flush."""


class Progress(Every):
    """Log step, t, the latest diagnostics row and an ETA (rank 0 logs)."""

    def __init__(self, every: int, total: int, row: Callable[[], dict[str, Any]]) -> None:
        super().__init__(every, self._log)
        self.total, self.row, self.t0 = total, row, time.perf_counter()

    def _log(self, t: float, step: int) -> None:
        if step == 0:
            self.t0 = time.perf_counter()
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / step * max(self.total - step, 0)
        values = "  ".join(
            f"{k}={v:.6g}"
            for k, v in self.row().items()
            if k not in ("step", "t") and isinstance(v, (int, float))
        )
        log.info(
            "step %d/%d  t=%.4g  %s  [%.1fs, eta %.1fs]", step, self.total, t, values, elapsed, eta
        )


@dataclass(frozen=True)
class Stop:
    """When :meth:`Simulation.run` returns.

    Attributes:
        steps: Stop after this many output steps in total (None: no limit).
        t_end: Stop at this simulated time (None: no limit).
        wall_s: Stop (as failed) when this much wall time has passed since the
            Simulation was created (None: no limit).
    """

    steps: int | None = None
    t_end: float | None = None
    wall_s: float | None = None


@dataclass(frozen=True)
class Outcome:
    """How a run ended (``completed``, ``failed`` or ``interrupted``), where, and stepper stats."""

    status: str
    message: str
    steps: int
    t: float
    stats: dict[str, Any]


class Simulation:
    """Advance a stepper to a stop criterion, calling observers on their schedules.

    Observers are called once at the start (step 0) of the first :meth:`run`,
    after every step on which they are due, and at the step where the run
    stops. ``run`` may be called again with a later :class:`Stop` to continue.
    """

    def __init__(
        self,
        stepper: Stepper,
        observers: Iterable[Observer] = (),
        comm: MPI.Comm = MPI.COMM_WORLD,
        dt: float | None = None,
        started: float | None = None,
        interrupt: Interrupt | None = None,
        observed: bool = False,
    ) -> None:
        self.stepper, self.observers, self.comm = stepper, list(observers), comm
        self.dt, self.interrupt = dt, interrupt
        # wall time counts from ``started`` (e.g. before the build), else from now
        self.t0 = time.perf_counter() if started is None else started
        self._started = observed  # a resumed run's observers have seen its current step

    def _last(self, stop: Stop) -> bool:
        s = self.stepper
        if stop.steps is not None and s.steps >= stop.steps:
            return True
        if stop.t_end is not None:
            eps = 1e-9 * (self.dt if self.dt else max(abs(stop.t_end), 1.0))
            return s.t >= stop.t_end - eps
        return False

    def _observe(self, last: bool) -> None:
        s = self.stepper
        for o in self.observers:
            if o.due(s.steps, last):
                o(s.t, s.steps)

    def elapsed(self) -> float:
        """Wall time since the simulation was made, the same on every rank (collective)."""
        return float(self.comm.bcast(time.perf_counter() - self.t0, root=0))

    def run(self, stop: Stop) -> Outcome:
        """Step until ``stop``, a wall-time limit, or a failed step (collective).

        A failed step (no acceptable sub-step, a guard, a diverged solve) ends
        the run as ``failed`` with the stepper's message; the state is the last
        accepted one (possibly between output steps, so no observer sees it).
        A signal (``interrupt``) ends it as ``interrupted`` after the step in
        progress; the observers see that step as the last.
        """
        if stop.steps is None and stop.t_end is None:
            raise ValueError("a Stop needs steps or t_end")
        s = self.stepper
        if not self._started:
            self._started = True
            try:
                for o in self.observers:
                    o(s.t, s.steps)
            except SolverError as e:  # the initial state already non-finite
                return Outcome("failed", f"{e} at t = {s.t:g}", s.steps, s.t, dict(s.stats))
        status, message = "completed", ""
        while not self._last(stop):
            try:
                s.advance()
            except StepFailure as e:  # says where and when itself
                status, message = "failed", str(e)
            except SolverError as e:
                status, message = "failed", f"{e} at t = {s.t:g}"
            if status == "failed":
                break  # the state may sit between output steps: no row is written for it
            last = self._last(stop)
            if not last and stop.wall_s is not None and self.elapsed() > stop.wall_s:
                status, message = "failed", f"wall-time limit {stop.wall_s:g} s reached"
                last = True
            signum = self.interrupt.pending(self.comm) if self.interrupt and not last else 0
            if signum:
                status, message = "interrupted", f"{signal_name(signum)} at t = {s.t:g}"
                last = True
            try:
                self._observe(last)
            except SolverError as e:  # e.g. a diagnostic that became non-finite
                status, message = "failed", f"{e} at t = {s.t:g}"
            if status != "completed":
                break
        return Outcome(status, message, s.steps, s.t, dict(s.stats))

    def close(self) -> None:
        """Close the observers, then the stepper (collective, same order on every rank)."""
        for o in self.observers:
            o.close()
        self.stepper.close()

    def __enter__(self) -> Simulation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def linear_stepper(
    sd: SemiDiscrete,
    scheme: str,
    u: Any,
    dt: float,
    bcs: list[Any],
    petsc_options: Mapping[str, Any] | None = None,
) -> Stepper:
    """The stepper of a linear equation: a residual scheme, or a propagator.

    Gauss–Legendre propagators apply the scheme's rational map; ``exponential`` the exact
    propagator of a separable operator, whose factors come with ``sd``.
    """
    s = get_scheme(scheme)
    if isinstance(s, Exponential):
        if not sd.factors:
            raise ValueError("the exponential scheme needs the operator's 1D factors")
        return SeparableExponential(u, sd.factors, dt)
    if isinstance(s, Rational):
        return RationalStepper(sd, s, u, dt, bcs, petsc_options)
    return TimeStepper(sd, scheme, u, dt, bcs, petsc_options)


def make_stepper(problem: Problem, kind: StepperKind) -> Stepper:
    """The stepper an equation's registry entry asks for, over the problem's pieces."""
    case = problem.case
    disc = case.discretisation
    opts = {**preset_options(case.solver.preset), **case.solver.petsc_options}
    if kind == "particles":
        p = problem.particles
        if p is None:
            raise ValueError("a particle stepper needs the problem's particles")
        return ParticleStepper(p.ensemble, disc.dt_used, p.dt, p.update)
    sd = problem.semidiscrete
    if sd is None:
        raise ValueError(f"a {kind} stepper needs the equation's semi-discrete pieces")
    if kind == "linear":
        return linear_stepper(sd, disc.scheme, problem.u0, disc.dt_used, problem.bcs, opts)
    nl, hooks = case.nonlinear, problem.hooks
    control = StepControl(
        tolerance=nl.tolerance,
        dt_min=nl.dt_min,
        max_iterations=nl.max_iterations,
        newton_rtol=nl.newton_rtol,
    )
    fluid = AdaptiveStepper(
        sd,
        disc.scheme,
        problem.u0,
        disc.dt_used,
        problem.bcs,
        opts,
        control,
        guard=hooks.guard,
        hint=hooks.hint,
        error_norm=hooks.error_norm,
        conserve=hooks.conserve,
    )
    bind = getattr(hooks.guard, "bind_stepper", None)
    if bind is not None:  # a mass balance that integrates fluxes over each sub-step
        bind(fluid.substep_states)
    if hooks.wave is None:
        return fluid
    # an inadmissible step is retaken in the equation's wave form (nhj/hybrid.py)
    return HybridStepper(
        fluid, hooks.wave, lambda sd, s, u, dt, bcs: linear_stepper(sd, s, u, dt, bcs, opts)
    )


def simulate(
    problem: Problem,
    kind: StepperKind,
    observers: Iterable[Observer] = (),
    stop: Stop | None = None,
) -> Outcome:
    """Run a built problem with the stepper of ``kind`` to ``stop`` (default: the case's t_end).

    The stepper is made, run and destroyed here; what a caller keeps is what
    its observers saw and the returned :class:`Outcome`.
    """
    disc = problem.case.discretisation
    stepper = make_stepper(problem, kind)
    with Simulation(stepper, observers, problem.msh.comm, dt=disc.dt_used) as sim:
        return sim.run(stop or Stop(steps=disc.steps))


def default_every(steps: int) -> int:
    """About 20 output rows per run."""
    return max(1, math.ceil(steps / 20))
