"""Advance a semi-discrete equation in time with a registered scheme.

The stepper owns the history uⁿ, uⁿ⁻¹, … and one solver per scheme in use
(a multi-step scheme's start-up scheme gets its own). It never builds physics:
it asks the scheme for the residual of the equation's labelled pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem

from nhj.collocation import Collocation
from nhj.equations.base import SemiDiscrete
from nhj.langevin import Ensemble
from nhj.sections import NonlinearSpec
from nhj.solvers import ConstantMatrixProblem, NewtonFailure, NewtonSolver, SolverError
from nhj.timeschemes import Rational, get_scheme


@dataclass
class StepperState:
    """What a stepper needs to continue a run: time, step count and this rank's arrays.

    Attributes:
        t: Simulated time.
        steps: Output steps taken.
        arrays: Named local arrays (owned and ghost entries), copied.
        extra: Further numbers (step sizes, statistics), JSON-serialisable.
        particles: (t, blocks) of a particle stepper's ensemble (see ``Ensemble.state``).
    """

    t: float
    steps: int
    arrays: dict[str, np.ndarray]
    extra: dict[str, Any]
    particles: Any = None


class TimeStepper:
    """u ← uⁿ⁺¹ for a linear, autonomous equation (matrix factorised once per scheme).

    Attributes:
        u: The current state, updated in place by :meth:`advance`.
        dt: The time step as a ``fem.Constant``.
        t: Current time.
        steps: Steps taken.
    """

    def __init__(
        self,
        eq: SemiDiscrete,
        scheme: str,
        u: fem.Function,
        dt: float,
        bcs: list[Any],
        petsc_options: Mapping[str, Any] | None = None,
        prefix: str = "nhj_",
    ) -> None:
        if not eq.linear:
            raise ValueError("TimeStepper handles linear equations; use a Newton stepper")
        self.u, self.t, self.steps = u, 0.0, 0
        space = eq.space
        self.dt = fem.Constant(space.mesh, float(dt))
        self.scheme = get_scheme(scheme)
        self.history = [fem.Function(space) for _ in range(self.scheme.steps)]
        self._next = fem.Function(space)
        w, v = ufl.TrialFunction(space), ufl.TestFunction(space)
        self._problems: dict[str, ConstantMatrixProblem] = {}
        # A list, not a set: PETSc objects must be created (and destroyed) in the same
        # order on every rank, and set order follows the per-process string hash seed.
        names = [n for n in (self.scheme.startup, self.scheme.name) if n is not None]
        for s in names:
            F = get_scheme(s).residual(eq, w, self.history, v, self.dt)  # type: ignore[arg-type]
            self._problems[s] = ConstantMatrixProblem(
                F, self._next, bcs, f"{prefix}{s}_", petsc_options
            )
        # Krylov iterations (the iterative preset): of the last step, and in total
        self.last_iterations, self.linear_iterations = 0, 0
        if any(p.iterative for p in self._problems.values()):
            self.columns = ("linear_iterations",)

    def close(self) -> None:
        """Destroy the solvers now, in the same order on every rank (collective).

        Left to the garbage collector, MUMPS objects may be destroyed in a
        different order on different ranks, which deadlocks.
        """
        for name in list(self._problems):
            del self._problems[name]

    columns: tuple[str, ...] = ()

    @property
    def stats(self) -> dict[str, Any]:
        """Krylov iterations of an iterative solver (a direct one: one solve per step)."""
        if not self.columns:
            return {}
        return {
            "linear_iterations": self.linear_iterations,
            "linear_iterations_per_step": self.linear_iterations / max(self.steps, 1),
        }

    def diagnostics(self) -> dict[str, Any]:
        """Krylov iterations of the last step (iterative solver only)."""
        return {"linear_iterations": self.last_iterations} if self.columns else {}

    def get_state(self) -> StepperState:
        """u and the history of a multi-step scheme."""
        arrays = {"u": self.u.x.array.copy()}
        arrays.update({f"history_{k}": h.x.array.copy() for k, h in enumerate(self.history)})
        return StepperState(self.t, self.steps, arrays, {"dt": float(self.dt.value)})

    def set_state(self, state: StepperState) -> None:
        """Continue from ``state`` (same mesh and partition)."""
        self.u.x.array[:] = state.arrays["u"]
        for k, h in enumerate(self.history):
            h.x.array[:] = state.arrays[f"history_{k}"]
        self.t, self.steps = state.t, state.steps

    def advance(self) -> None:
        """Take one step of size dt."""
        for k in range(len(self.history) - 1, 0, -1):
            self.history[k].x.array[:] = self.history[k - 1].x.array
        self.history[0].x.array[:] = self.u.x.array
        filled = min(self.steps + 1, self.scheme.steps)
        name = self.scheme.name if filled == self.scheme.steps else self.scheme.startup
        problem = self._problems[name]  # type: ignore[index]
        problem.solve()
        self.last_iterations = problem.iterations
        self.linear_iterations += problem.iterations
        self.u.x.array[:] = self._next.x.array
        self.steps += 1
        self.t = self.steps * float(self.dt.value)  # no accumulated round-off in t


@dataclass(frozen=True)
class StepControl:
    """Adaptive time-step control of a nonlinear equation.

    Attributes:
        tolerance: Bound on the local error estimate ‖u − u_pred‖/‖u‖ (∞-norms, or the
            stepper's ``error_norm``), with u_pred the linear extrapolation of the last
            two accepted states (None: control on Newton convergence only).
        dt_min: Smallest sub-step, relative to the case's dt, before the run is
            declared failed.
        growth: Largest factor by which a sub-step grows after an accepted one.
        newton_rtol: Relative Newton tolerance on the update (∞-norm).
        max_iterations: Newton iterations before a sub-step is rejected.
    """

    # the case schema's defaults ([nonlinear], nhj.sections): one place for each value
    tolerance: float | None = NonlinearSpec.tolerance
    dt_min: float = NonlinearSpec.dt_min
    growth: float = 2.0
    newton_rtol: float = NonlinearSpec.newton_rtol
    max_iterations: int = NonlinearSpec.max_iterations


#: After a Newton failure at h_f, sub-steps stay below CEILING·h_f, a ceiling that rises by
#: CEILING_GROWTH per accepted sub-step (×2 in 7): the "no growth after a convergence
#: failure" of CVODE, spread over a few sub-steps. On the double slit to t = 0.2 it cut the
#: rejected sub-steps from 19 to 13 and the factorisations from 163 to 125 (issue 10).
CEILING = 0.9
CEILING_GROWTH = 1.1


def max_norm(u: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(max |u − pred|, max |u|) over the given (owned) entries."""
    return float(np.max(np.abs(u - pred), initial=0.0)), float(np.max(np.abs(u), initial=0.0))


class StepFailure(SolverError):
    """No acceptable sub-step above ``dt_min`` (or a guard rejected the state)."""

    def __init__(self, message: str, where: Any = None) -> None:
        super().__init__(message)
        self.where = where


class AdaptiveStepper:
    """u ← u(t + dt) for a nonlinear equation, by accepted and rejected sub-steps.

    Each :meth:`advance` covers exactly one output step dt of the case with
    sub-steps h ≤ dt: a sub-step is rejected (and retried with h/2, or with h
    from the error estimate) when Newton fails or the estimate exceeds the
    tolerance, and grows back towards dt after success. A ``guard`` looks at
    every accepted state and may stop the run (e.g. a node of ψ); the state
    is then rolled back to the last accepted one, so what is saved is good.

    Attributes:
        stats: accepted and rejected sub-steps, Newton iterations, factorisations,
            smallest and largest accepted h.
    """

    def __init__(
        self,
        eq: SemiDiscrete,
        scheme: str,
        u: fem.Function,
        dt: float,
        bcs: list[Any],
        petsc_options: Mapping[str, Any] | None = None,
        control: StepControl | None = None,
        guard: Callable[[float], str | None] | None = None,
        hint: Callable[[Any, float], str] | None = None,
        error_norm: Callable[[np.ndarray, np.ndarray], tuple[float, float]] | None = None,
        prefix: str = "nhj_newton_",
        conserve: Callable[[], float] | None = None,
    ) -> None:
        self.u, self.t, self.steps = u, 0.0, 0
        self.control = control or StepControl()
        self.guard, self.hint, self.conserve = guard, hint, conserve
        self.error_norm = error_norm or max_norm
        space = eq.space
        self.dt_out = float(dt)
        self.h = float(dt)
        self.dt = fem.Constant(space.mesh, float(dt))
        self.scheme = get_scheme(scheme)
        if self.scheme.steps != 1:
            raise ValueError(f"adaptive stepping needs a one-step scheme, not {scheme}")
        self.history = [fem.Function(space)]
        self._previous = fem.Function(space)  # the accepted state before history[0]
        self._jacobian_history = np.zeros_like(self._previous.x.array)
        self._h_previous = 0.0
        # below the h at which Newton last failed (advance); a new state lifts it
        self.h_ceiling = math.inf
        self._stages_previous: np.ndarray | None = None  # that sub-step's stage values
        # Gauss–Legendre: Newton solves for the s stage values together (nhj/collocation.py)
        self.stages: Collocation | None = None
        if isinstance(self.scheme, Rational):
            self.stages = Collocation(eq, self.scheme.stages, self.history[0], self.dt, bcs)
            F, unknown, bcs = self.stages.F, self.stages.w, self.stages.bcs
        else:
            F = self.scheme.residual(eq, u, self.history, ufl.TestFunction(space), self.dt)
            unknown = u
        c = self.control
        self.newton = NewtonSolver(
            F,
            unknown,
            bcs,
            prefix,
            petsc_options,
            rtol=c.newton_rtol,
            max_iterations=c.max_iterations,
            norm=error_norm,
        )
        self.stats: dict[str, Any] = {
            "accepted": 0,
            "rejected": 0,
            "newton_iterations": 0,
            "factorisations": 0,
            "dt_min": None,
            "dt_max": None,
        }
        if conserve is not None:
            self.stats["mass_correction"] = 0.0  # the largest, relative, per sub-step
        self.last_iterations = 0

    columns: tuple[str, ...] = ("newton_iterations", "rejected_steps")

    def close(self) -> None:
        """Destroy the solver (collective)."""
        self.newton.close()

    def diagnostics(self) -> dict[str, Any]:
        """Newton iterations of the last output step and rejected sub-steps so far."""
        return {
            "newton_iterations": self.last_iterations,
            "rejected_steps": self.stats["rejected"],
        }

    def get_state(self) -> StepperState:
        """u, the previous accepted state, h, the statistics and where J was factorised.

        The previous state feeds the predictor. The lagged Jacobian J(u_J, uⁿ_J, h_J)
        is part of the state: a resumed run refactorises that same matrix, so it
        takes the same chord iterates as the run that was not interrupted
        (identical diagnostics, not merely equal to the Newton tolerance).
        """
        arrays = {"u": self.u.x.array.copy(), "previous": self._previous.x.array.copy()}
        if self._stages_previous is not None:
            arrays.update(self._as_dof_arrays("previous_stage", self._stages_previous))
        extra: dict[str, Any] = {
            "h": self.h,
            "h_previous": self._h_previous,
            "h_ceiling": None if math.isinf(self.h_ceiling) else self.h_ceiling,  # JSON
            "stats": dict(self.stats),
            "jacobian": None,
        }
        n = self.newton
        if n.jacobian_at is not None and not n.stale:
            arrays.update(self._as_dof_arrays("jacobian_u", n.jacobian_at))
            arrays["jacobian_history"] = self._jacobian_history.copy()
            extra["jacobian"] = {"h": float(self.dt.value)}
        guard = self.guard_state()
        if guard is not None:
            extra["guard"] = guard
        return StepperState(self.t, self.steps, arrays, extra)

    def _as_dof_arrays(self, name: str, a: np.ndarray) -> dict[str, np.ndarray]:
        """``a`` as arrays a checkpoint maps like u (one per stage for a stage vector)."""
        if self.stages is None:  # Newton's unknown is u itself
            return {name: a.copy()}
        staged = a.reshape(-1, self.stages.s, self.stages.bs)
        return {f"{name}_{i}": staged[:, i].ravel().copy() for i in range(self.stages.s)}

    def _from_dof_arrays(self, name: str, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """The stage array (nodes, s, bs) of :meth:`_as_dof_arrays`."""
        assert self.stages is not None
        bs = self.stages.bs
        parts = [arrays[f"{name}_{i}"].reshape(-1, bs) for i in range(self.stages.s)]
        return np.stack(parts, axis=1)

    def guard_state(self) -> dict[str, Any] | None:
        """The state of a guard that keeps a balance (MassProjection), else None.

        It changes with every accepted sub-step, so whoever rolls u back (a checkpoint, the
        hybrid retaking an output step) rolls this back with it.
        """
        get = getattr(self.guard, "get_state", None)
        return get() if get is not None else None

    def set_guard_state(self, state: dict[str, Any] | None) -> None:
        """Put back what :meth:`guard_state` returned."""
        if state is not None:
            self.guard.set_state(state)  # type: ignore[union-attr]

    def set_state(self, state: StepperState) -> None:
        """Continue from ``state``; the Jacobian is refactorised at the next solve."""
        self.u.x.array[:] = state.arrays["u"]
        self._previous.x.array[:] = state.arrays["previous"]
        self._stages_previous = None
        if self.stages is not None and "previous_stage_0" in state.arrays:
            self._stages_previous = self._from_dof_arrays("previous_stage", state.arrays)
        self.h, self._h_previous = state.extra["h"], state.extra["h_previous"]
        self.h_ceiling = state.extra.get("h_ceiling") or math.inf
        self.stats = dict(state.extra["stats"])
        self.newton.factorisations = int(self.stats.get("factorisations") or 0)
        self.t, self.steps = state.t, state.steps
        self.newton.stale = True
        self.set_guard_state(state.extra.get("guard"))
        jac = state.extra.get("jacobian")
        if jac is not None:  # rebuild the lagged Jacobian the interrupted run was using
            self.history[0].x.array[:] = state.arrays["jacobian_history"]
            self.dt.value = jac["h"]  # type: ignore[assignment]  # a scalar Constant takes a float
            if self.stages is None:
                at = state.arrays["jacobian_u"]
            else:  # Newton's unknown is the stage vector
                at = self._from_dof_arrays("jacobian_u", state.arrays).ravel()
            self.newton.refactorise_at(at)
            self._jacobian_history = state.arrays["jacobian_history"].copy()

    def substep_states(self) -> list[tuple[float, np.ndarray]]:
        """The time quadrature of the last sub-step: (weight, state) pairs, Σ weight = 1.

        The Gauss points of a collocation scheme (b_i, U_i), else the midpoint (local arrays).
        """
        if self.stages is not None:
            return self.stages.quadrature()
        return [(1.0, 0.5 * (self.history[0].x.array + self.u.x.array))]

    @property
    def order(self) -> int:
        """The order in h of the error estimate ‖u − u_pred‖.

        s + 1 for s Gauss stages (their polynomial extrapolated), 2 for the midpoint rule
        (a line through two states).
        """
        return 2 if self.stages is None else self.stages.s + 1

    def _predict(self, h: float) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(u, stages) at t + h extrapolated from the last accepted sub-step.

        u is None at the start; the stages (:meth:`Collocation.predict`) are None unless a
        collocation scheme has an accepted sub-step's stage values to extrapolate.
        """
        if self._h_previous == 0.0:
            return None, None
        un = self.history[0].x.array
        if self.stages is None or self._stages_previous is None:
            return un + (h / self._h_previous) * (un - self._previous.x.array), None
        p = self.stages.predict(self._previous.x.array, self._stages_previous, h / self._h_previous)
        return p[:, -1].ravel(), p[:, :-1]

    def _substep(self, h: float) -> float:
        """Try one sub-step of size h from history[0]; returns the error / tolerance.

        Newton starts from the extrapolated state, and the distance of the
        converged state from that prediction, O(h^order), is the error estimate.
        """
        if h != float(self.dt.value):
            self.dt.value = h  # type: ignore[assignment]  # a scalar Constant takes a float
            self.newton.stale = True  # the Jacobian has mass/h in it
        pred, stages = self._predict(h)
        self.u.x.array[:] = self.history[0].x.array if pred is None else pred
        if self.stages is not None:
            if stages is None:
                self.stages.guess(self.u.x.array)
            else:
                self.stages.set_stages(stages)
        before = self.newton.factorisations
        try:
            self.newton.solve()
        finally:  # a failed solve's iterations were paid for too
            self.last_iterations += self.newton.iterations
        if self.stages is not None:
            self.stages.update(self.u)
        if self.newton.factorisations != before:  # J was refactorised at this uⁿ
            self._jacobian_history = self.history[0].x.array.copy()
        if self.control.tolerance is None or pred is None:
            return 0.0
        n = (
            self.u.function_space.dofmap.index_map.size_local
            * self.u.function_space.dofmap.index_map_bs
        )
        err, scale = self.error_norm(self.u.x.array[:n], pred[:n])
        comm = self.u.function_space.mesh.comm
        err, scale = comm.allreduce(err, op=MPI.MAX), comm.allreduce(scale, op=MPI.MAX)
        return err / scale / self.control.tolerance

    def advance(self) -> None:
        """Advance u by one output step dt (collective)."""
        c = self.control
        t_end = (self.steps + 1) * self.dt_out
        t = self.t
        self.last_iterations = 0
        while t < t_end - 1e-12 * self.dt_out:
            remaining = t_end - t
            # equal sub-steps to the output time, so that they share h and with it the
            # factorisation of J (mass/h is in it): h then 0.64 h as the remainder made
            # two per output step. Within 1e-9 of the last h, keep it exactly.
            n = max(1, math.ceil(remaining / self.h * (1 - 1e-9)))
            h = remaining / n
            if abs(h - float(self.dt.value)) <= 1e-9 * h:
                h = float(self.dt.value)
            self.history[0].x.array[:] = self.u.x.array
            try:
                err = self._substep(h)
                failure = None
            except NewtonFailure as e:
                err, failure = np.inf, e
            if err > 1.0:
                self.stats["rejected"] += 1
                self.u.x.array[:] = self.history[0].x.array
                shrink = 0.5 if failure else max(0.2, 0.9 * err ** (-1.0 / self.order))
                self.h = h * shrink
                if failure:
                    self.h_ceiling = min(self.h_ceiling, CEILING * h)
                if self.h < c.dt_min * self.dt_out:
                    why = failure if failure else f"error estimate {err:.3g} × tolerance"
                    where = getattr(failure, "where", None)
                    hint = self.hint(where, t) if self.hint else ""
                    raise StepFailure(
                        f"no acceptable time step above {c.dt_min * self.dt_out:.3g} "
                        f"at t = {t:.6g} ({why}){hint}",
                        where,
                    )
                continue
            if self.conserve is not None:
                fix = self.conserve()
                self.stats["mass_correction"] = max(self.stats.get("mass_correction", 0.0), fix)
            message = self.guard(t + h) if self.guard else None
            if message:
                self.u.x.array[:] = self.history[0].x.array
                raise StepFailure(message)
            self._previous.x.array[:] = self.history[0].x.array
            self._h_previous = h
            if self.stages is not None:
                self._stages_previous = self.stages.stage_values()
            t = t_end if n == 1 else t + h  # the last one lands on t_end, whatever round-off
            self.stats["accepted"] += 1
            self.stats["dt_min"] = min(self.stats["dt_min"] or h, h)
            self.stats["dt_max"] = max(self.stats["dt_max"] or h, h)
            grow = c.growth if err == 0 else min(c.growth, 0.9 * err ** (-1.0 / self.order))
            self.h = min(self.dt_out, h * max(1.0, grow)) if err < 0.5 else h
            # Newton's basin, not the error estimate, limits h after a Newton failure: growing
            # straight back past the failing h diverges again (the double slit's fluid steps)
            self.h_ceiling *= CEILING_GROWTH
            self.h = min(self.h, max(self.h_ceiling, h))
        self.stats["newton_iterations"] += self.last_iterations
        self.stats["factorisations"] = self.newton.factorisations
        self.steps += 1
        self.t = self.steps * self.dt_out


class ParticleStepper:
    """Advance a Langevin ensemble (2.5) by one output step dt (many Euler–Maruyama steps).

    ``after`` runs after every step (the histogram density on the mesh).
    """

    columns: tuple[str, ...] = ()

    def __init__(
        self,
        ensemble: Ensemble,
        dt: float,
        dt_particles: float,
        after: Callable[[], None] | None = None,
    ) -> None:
        self.ensemble, self.dt, self.dt_particles, self.after = ensemble, dt, dt_particles, after
        self.t, self.steps = 0.0, 0

    @property
    def stats(self) -> dict[str, Any]:
        """Nothing beyond steps."""
        return {}

    def diagnostics(self) -> dict[str, Any]:
        """No per-step figures (the moments are a monitor)."""
        return {}

    def close(self) -> None:
        """Nothing to destroy."""

    def advance(self) -> None:
        """One step of size dt."""
        self.steps += 1
        self.t = self.steps * self.dt
        self.ensemble.advance(self.t, self.dt_particles)
        if self.after is not None:
            self.after()

    def get_state(self) -> StepperState:
        """No dof arrays: the ensemble's blocks (positions, masks, streams) are ``particles``."""
        e = self.ensemble
        return StepperState(self.t, self.steps, {}, {}, particles=(e.t, e.state()))

    def set_state(self, state: StepperState) -> None:
        """Continue from ``state``: the particles and their streams continue bit-identically."""
        t, blocks = state.particles
        self.ensemble.restore(blocks, t)
        self.t, self.steps = state.t, state.steps
        if self.after is not None:
            self.after()
