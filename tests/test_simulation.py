"""The run loop and its steppers on their own: wall-time stop, field cadence, the adaptive
Newton stepper (reject, regrow, Jacobian reuse, rollback), state hand-over, and the order of
every scheme the nonlinear stepper accepts.
"""

from __future__ import annotations

import csv
import json
import math
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mpi4py import MPI

import numpy as np
import pytest
import pyvista
from case_helpers import merged, write_case

import nhj  # noqa: F401  (orders dolfinx_solver first)
from nhj import simulation
from nhj.case import case_from_dict
from nhj.cli import main
from nhj.problem import Problem, schemes_for
from nhj.registry import EQUATIONS, build
from nhj.simulation import Every, Simulation, Stop, make_stepper
from nhj.stepper import CEILING, CEILING_GROWTH, AdaptiveStepper, StepControl, StepFailure
from nhj.timeschemes import SCHEMES, Rational

COMM = MPI.COMM_WORLD

# A free Schrödinger packet: 1D P1, 10 steps of 0.05 (cheap; the loop is what is tested).
WAVE = {
    "equation": "schrodinger",
    "parameters": {"gamma": 1.0, "beta": 1.0},
    "mesh": {"type": "interval", "lower": [-10.0], "upper": [10.0], "cells": [100]},
    "discretisation": {"degree": 1, "dt": 0.05, "t_end": 0.5},
    "initial": {"kind": "gaussian", "center": [-1.0], "width": [1.0], "momentum": [1.0]},
    "output": {"every": 1},
}

# A moving Madelung packet with an exact solution: 1D P2, 60 cells, ħ = 1.
PACKET = {
    "equation": "madelung",
    "parameters": {"gamma": 1.0, "beta": 1.0},
    "mesh": {"type": "interval", "lower": [-10.0], "upper": [10.0], "cells": [60]},
    "discretisation": {"degree": 2, "dt": 0.1, "t_end": 0.5},
    "initial": {"kind": "gaussian", "center": [-2.0], "width": [1.0], "momentum": [2.0]},
}


def problem(d: dict[str, Any]) -> Problem:
    """The built problem of a case dict."""
    return build(case_from_dict(d, Path(".")), COMM)


def adaptive(p: Problem, control: StepControl, scheme: str = "implicit_midpoint", guard=None):
    """The Newton stepper over a problem's pieces, with the given control and guard."""
    return AdaptiveStepper(
        p.semidiscrete,
        scheme,
        p.u0,
        p.case.discretisation.dt_used,
        p.bcs,
        None,
        control,
        guard=guard,
        hint=p.hooks.hint,
        error_norm=p.hooks.error_norm,
    )


def exact_error(p: Problem, t: float) -> float:
    """error_l2 of a problem against its exact state at t."""
    (monitor,) = [m for m in p.monitors if "error_l2" in m.columns]
    return monitor(t)["error_l2"]


def owned(p: Problem) -> np.ndarray:
    """This rank's owned dof values of the state."""
    im = p.space.dofmap.index_map
    return p.u0.x.array[: im.size_local * p.space.dofmap.index_map_bs].copy()


def run_cli(d: dict[str, Any], directory: Path, name: str, *extra: str) -> tuple[int, Path]:
    """`nhj run` on a case dict (rank 0 writes the file); (exit code, result directory)."""
    path = write_case(directory, name, d) if COMM.rank == 0 else None
    path = COMM.bcast(path, root=0)
    out = directory / f"{name}-out"
    return main(["-q", "run", str(path), "--out", str(out), *extra]), out


def rows_of(out: Path) -> list[dict[str, str]]:
    """The rows of a result's diagnostics.csv."""
    with (out / "diagnostics.csv").open() as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------
# B1 the wall-time stop


class Ticking:
    """A stepper whose every step takes one second of a fake clock."""

    def __init__(self, stepper: Any, clock: list[float]) -> None:
        self.inner, self.clock = stepper, clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def advance(self) -> None:
        self.inner.advance()
        self.clock[0] += 1.0


@pytest.mark.mpi
def test_wall_time_stop_ends_failed_at_the_last_completed_step(monkeypatch) -> None:
    """Stop(wall_s=2.5) with steps of 1 s (a fake clock, so the test does not depend on the
    machine's speed): the run ends after step 3 as "failed", with the wall-time message; the
    observers saw steps 0..3, and the state is bit for bit that of a plain 3-step run.
    """
    clock = [0.0]
    monkeypatch.setattr(simulation, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    p = problem(WAVE)
    seen: list[tuple[int, np.ndarray]] = []
    stepper = Ticking(make_stepper(p, "linear"), clock)
    observer = Every(1, lambda t, step: seen.append((step, owned(p))))
    with Simulation(stepper, [observer], COMM, dt=0.05) as sim:
        outcome = sim.run(Stop(steps=10, wall_s=2.5))
    assert outcome.status == "failed" and "wall-time limit 2.5 s reached" in outcome.message
    assert outcome.steps == 3 and outcome.t == pytest.approx(0.15)
    assert [s for s, _ in seen] == [0, 1, 2, 3]
    assert np.array_equal(seen[-1][1], owned(p))  # the last row is of the final state

    reference = problem(WAVE)
    with Simulation(make_stepper(reference, "linear"), [], COMM, dt=0.05) as sim:
        assert sim.run(Stop(steps=3)).status == "completed"
    assert np.array_equal(owned(reference), owned(p))


@pytest.mark.skip_in_parallel
def test_max_wall_s_on_the_command_line(tmp_path: Path) -> None:
    """`nhj run --max-wall-s 1e-9`: the limit has passed by the first step (the build alone
    takes longer), so the run stops after step 1 with exit code 1, status "failed" and a
    one-line "wall-time limit" message; rows 0 and 1 are written and final.vtu holds the
    state after step 1, equal to that of a run with t_end = dt.
    """
    code, out = run_cli(WAVE, tmp_path, "wall", "--max-wall-s", "1e-9")
    s = json.loads((out / "summary.json").read_text())
    assert code == 1 and s["status"] == "failed"
    assert "wall-time limit" in s["message"] and "\n" not in s["message"]
    assert s["steps"] == 1 and s["t_final"] == pytest.approx(0.05)
    rows = rows_of(out)
    assert [int(r["step"]) for r in rows] == [0, 1]

    code, ref = run_cli(merged(WAVE, {"discretisation": {"t_end": 0.05}}), tmp_path, "one")
    assert code == 0
    assert rows_of(ref) == rows
    a, b = pyvista.read(str(out / "final.vtu")), pyvista.read(str(ref / "final.vtu"))
    assert np.array_equal(a.point_data["p"], b.point_data["p"])
    assert float(np.max(a.point_data["p"])) > 0.1  # a real state, not zeros


# ---------------------------------------------------------------------------------------------
# B2 [output] fields_every


def bp_steps(path: Path) -> int:
    """Steps in a BP5 file (ADIOS2 2.9+): the 's' records of its md.idx.

    md.idx is a 64-byte header ("ADIOS-BP v2" ... "Index Table") followed by records of
    one type byte, a little-endian uint64 length and that many bytes: 'w' (writer map)
    and one 's' (step) per step. No ADIOS2 Python module is installed to ask instead.
    """
    data = (path / "md.idx").read_bytes()
    assert data.startswith(b"ADIOS-BP v2") and b"Index Table" in data[:64], data[:64]
    kinds, i = [], 64
    while i < len(data):
        (n,) = struct.unpack_from("<Q", data, i + 1)
        kinds.append(chr(data[i]))
        i += 9 + n
    assert i == len(data) and set(kinds) <= {"w", "s"}, kinds
    return kinds.count("s")


@pytest.mark.skip_in_parallel
@pytest.mark.parametrize(
    "output, steps",
    [
        ({"every": 4, "fields_every": 3}, [0, 3, 6, 9, 10]),  # its own cadence, and the end
        ({"every": 4}, [0, 4, 8, 10]),  # default: the rows' cadence
        ({"every": 4, "fields_every": 20}, [0, 10]),  # longer than the run: start and end
    ],
    ids=["fields_every_3", "default", "fields_every_20"],
)
def test_fields_every(output: dict, steps: list[int], tmp_path: Path, monkeypatch) -> None:
    """fields.bp has one VTX step per scheduled write, at the scheduled times, independent
    of the rows (10 steps of 0.05). Writes are recorded at the writer, and the file's own
    step count is read from its index.
    """
    from dolfinx import io

    written: list[float] = []

    class Recording(io.VTXWriter):
        def write(self, t: float) -> None:
            written.append(t)
            super().write(t)

    monkeypatch.setattr(io, "VTXWriter", Recording)
    code, out = run_cli(merged(WAVE, {"output": output}), tmp_path, "fields")
    assert code == 0
    assert written == pytest.approx([0.05 * s for s in steps])
    assert bp_steps(out / "fields.bp") == len(steps)
    assert [int(r["step"]) for r in rows_of(out)] == [0, 4, 8, 10]  # rows keep their cadence


@pytest.mark.skip_in_parallel
def test_fields_false_writes_no_fields(tmp_path: Path) -> None:
    """[output] fields = false: no fields.bp (final.vtu is still written)."""
    code, out = run_cli(merged(WAVE, {"output": {"fields": False}}), tmp_path, "nofields")
    assert code == 0
    assert not (out / "fields.bp").exists() and (out / "final.vtu").is_file()


# ---------------------------------------------------------------------------------------------
# B3 the adaptive stepper on its own


def record_solves(stepper: AdaptiveStepper) -> list[tuple[float, bool]]:
    """Wrap the stepper's Newton solver: (sub-step h, whether J was factorised) per solve."""
    log: list[tuple[float, bool]] = []
    newton, solve = stepper.newton, stepper.newton.solve

    def recorded() -> int:
        before = newton.factorisations
        try:
            return solve()
        finally:
            log.append((float(stepper.dt.value), newton.factorisations > before))

    newton.solve = recorded  # type: ignore[method-assign]
    return log


def test_rejected_substeps_are_retried_smaller_in_equal_substeps() -> None:
    """dt = 0.1 with tolerance 1e-2: the second sub-step's error estimate (2.3 × tolerance,
    measured) rejects it; it is retried with a smaller h, h grows by at most the growth
    factor per accepted sub-step, each output step is covered by equal sub-steps (they share
    the factorised Jacobian), and every output step still ends exactly on k·dt.

    The final state is correct: each accepted h is ≤ dt, so the midpoint rule's local errors
    (∝ h³) are each below those of uniform steps of dt, and the error against the exact
    solution is at most that of the uniform run (a rejected trial state left in u, or t
    advanced by the wrong h, is an O(h) error in the phase).
    """
    p = problem(PACKET)
    stepper = adaptive(p, StepControl(tolerance=1e-2))
    log = record_solves(stepper)
    times = []
    for _ in range(5):
        stepper.advance()
        times.append(stepper.t)
    stats = stepper.stats
    assert times == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5], abs=1e-14)
    assert stats["rejected"] > 0 and stats["accepted"] > 5
    assert stats["dt_min"] < 0.1 and stats["dt_max"] == pytest.approx(0.1)
    h = np.array([hh for hh, _ in log])
    assert np.all(h[1:] / h[:-1] <= StepControl().growth * (1 + 1e-12))  # grow ≤ 2 per step
    assert h.min() < h[0]  # the rejected sub-step was retried smaller
    # the rejection is at the start of an output step, so every h is dt / n for an integer n
    assert np.allclose(0.1 / h, np.round(0.1 / h), rtol=0, atol=1e-9)
    error = exact_error(p, stepper.t)
    stepper.close()

    uniform = problem(PACKET)
    plain = adaptive(uniform, StepControl(tolerance=None))
    for _ in range(5):
        plain.advance()
    assert plain.stats["rejected"] == 0 and plain.stats["accepted"] == 5
    assert error <= exact_error(uniform, plain.t), (error, exact_error(uniform, plain.t))
    plain.close()


GP = {
    "equation": "gross_pitaevskii",
    "parameters": {"gamma": 1.0, "beta": 1.0},
    "mesh": {"type": "interval", "lower": [-10.0], "upper": [10.0], "cells": [60]},
    "discretisation": {"degree": 2, "dt": 0.1, "t_end": 0.5},
    "coupling": {"g": 0.05},
    "initial": {"kind": "gaussian", "center": [-2.0], "width": [1.0], "momentum": [2.0]},
}


def test_after_a_newton_failure_h_stays_below_the_failing_h() -> None:
    """max_iterations = 3 makes Newton fail at the case's dt = 0.1 and succeed at small h
    (no error estimate: only Newton limits h). After a failure at h_f every sub-step stays
    below CEILING·h_f, a ceiling that rises by CEILING_GROWTH per accepted sub-step, or at
    the h just accepted; without the ceiling h doubles after each success (the growth
    factor), past h_f straight away. The ceiling is part of the stepper's state.
    """
    p = problem(PACKET)
    stepper = adaptive(p, StepControl(tolerance=None, max_iterations=3))
    log: list[tuple[float, bool]] = []
    newton, solve = stepper.newton, stepper.newton.solve

    def recorded() -> int:
        ok = False
        try:
            iterations, ok = solve(), True
            return iterations
        finally:
            log.append((float(stepper.dt.value), ok))

    newton.solve = recorded  # type: ignore[method-assign]
    for _ in range(3):
        stepper.advance()
    assert sum(not ok for _, ok in log) >= 3 and sum(ok for _, ok in log) >= 10
    ceiling, accepted = math.inf, math.inf
    for h, ok in log:
        assert h <= max(ceiling, accepted) * (1 + 1e-12), (h, ceiling, accepted)
        if ok:
            ceiling, accepted = ceiling * CEILING_GROWTH, h
        else:
            ceiling = min(ceiling, CEILING * h)
    assert stepper.h_ceiling == pytest.approx(ceiling, rel=1e-12)
    state = stepper.get_state()
    stepper.close()
    again = adaptive(problem(PACKET), StepControl(tolerance=None, max_iterations=3))
    again.set_state(state)
    assert again.h_ceiling == stepper.h_ceiling
    again.close()


def test_jacobian_is_reused_and_refactorised_only_when_h_changes() -> None:
    """Weakly nonlinear Gross–Pitaevskii (g = 0.05): the lagged Jacobian contracts the chord
    iteration far below max_rate = 0.2, so J is factorised exactly when the sub-step h (and
    with it the M/h in J) changes, and reused for every other iteration and sub-step.
    Measured: 16 factorisations for 61 Newton iterations over 22 sub-steps (5 rejected).
    """
    p = problem(GP)
    stepper = adaptive(p, StepControl(tolerance=1e-2))
    log = record_solves(stepper)
    for _ in range(5):
        stepper.advance()
    stats = stepper.stats
    assert stats["rejected"] > 0  # so that h changes more than once
    changed = [True] + [log[i][0] != log[i - 1][0] for i in range(1, len(log))]
    assert [f for _, f in log] == changed
    assert stats["factorisations"] == sum(changed) < stats["newton_iterations"]
    stepper.close()


@pytest.mark.mpi
def test_guard_rolls_back_to_the_last_accepted_state() -> None:
    """A guard refusing the first state past t = 0.25 stops the run as "failed" with its
    message; u is the last state the guard accepted (compared array to array), t and steps
    are those of the last completed output step, and no observer saw the refused state.
    """
    p = problem(PACKET)
    accepted: list[np.ndarray] = []

    def guard(t: float) -> str | None:
        if t > 0.25:
            return f"refused at t = {t:.4g}"
        accepted.append(p.u0.x.array.copy())
        return None

    stepper = adaptive(p, StepControl(tolerance=None), guard=guard)
    seen: list[int] = []
    with Simulation(stepper, [Every(1, lambda t, s: seen.append(s))], COMM, dt=0.1) as sim:
        outcome = sim.run(Stop(steps=5))
        assert outcome.status == "failed" and outcome.message == "refused at t = 0.3"
        assert outcome.steps == 2 and outcome.t == pytest.approx(0.2) and seen == [0, 1, 2]
        assert len(accepted) == 2 and not np.array_equal(accepted[-1], accepted[0])
        assert np.array_equal(p.u0.x.array, accepted[-1])
        with pytest.raises(StepFailure, match="refused"):
            stepper.advance()  # the stepper itself raises StepFailure
        assert np.array_equal(p.u0.x.array, accepted[-1])


# get_state / set_state: run N steps, save, run M more; a fresh stepper restored from the
# saved state and run M steps gives the same arrays. Madelung with a tight tolerance, so that
# the saved state carries a lagged Jacobian, h < dt and statistics; BDF2 so that the linear
# stepper's history matters; Langevin so that the particles' random streams continue.
HANDOVER = {
    "adaptive": merged(PACKET, {"nonlinear": {"tolerance": 1e-2}}),
    "linear": merged(WAVE, {"discretisation": {"scheme": "bdf2"}}),
    "particles": {
        "equation": "langevin",
        "parameters": {"gamma": 1.0, "beta": 2.0},
        "mesh": {"type": "interval", "lower": [-4.0], "upper": [4.0], "cells": [40]},
        "discretisation": {"degree": 1, "dt": 0.05, "t_end": 0.5},
        "potential": {"curvature": [1.5]},
        "initial": {"kind": "gaussian", "center": [1.0], "width": [0.3]},
        "langevin": {"particles": 5000, "seed": 7},
    },
}


def snapshot(p: Problem, stepper: Any) -> np.ndarray:
    """The state's arrays: dof values, and the particles' positions for a particle stepper."""
    if p.particles is None:
        return p.u0.x.array.copy()
    return np.concatenate([p.u0.x.array, p.particles.ensemble.x.ravel()])


@pytest.mark.mpi
@pytest.mark.parametrize("kind", sorted(HANDOVER))
def test_state_round_trip(kind: str) -> None:
    """Save after N = 2 steps, run M = 3 more; restore into a fresh stepper, run M = 3:
    the same arrays to 1e-12 (relative), the same t, steps and statistics.

    Both runs perform the same floating-point operations from the same state (the lagged
    Jacobian is refactorised at the saved point), so they agree to round-off; 1e-12 allows
    for nothing else.
    """
    d = HANDOVER[kind]
    assert EQUATIONS[d["equation"]].stepper == kind
    p = problem(d)
    stepper = make_stepper(p, kind)
    for _ in range(2):
        stepper.advance()
    state = stepper.get_state()
    for _ in range(3):
        stepper.advance()
    first, stats = snapshot(p, stepper), dict(stepper.stats)
    if kind == "adaptive":
        # the (√p, S) stepper's sub-step (inside the wave-fluid hybrid when there is one)
        h = getattr(stepper, "fluid", stepper).h
        assert stats["rejected"] > 0 and h < 0.1  # a state worth handing over
    t, steps = stepper.t, stepper.steps
    stepper.close()

    q = problem(d)
    fresh = make_stepper(q, kind)
    fresh.set_state(state)
    for _ in range(3):
        fresh.advance()
    second = snapshot(q, fresh)
    scale = np.max(np.abs(first), initial=1.0)
    assert np.max(np.abs(first - second), initial=0.0) <= 1e-12 * scale
    assert (fresh.t, fresh.steps) == (t, steps) and dict(fresh.stats) == stats
    fresh.close()


# ---------------------------------------------------------------------------------------------
# B4 every scheme the nonlinear stepper allows, at its declared order


#: The residual schemes; the Gauss collocation schemes' orders are in tests/test_collocation.py,
#: on a flow without space error: here the P2 interpolation error of ψ₀ sits in modes of
#: ω ≈ 180 that no A-stable, non-L-stable scheme damps, and at order 4 and 6 their
#: dt-independent share (measured: differences of 1e-9 growing, not shrinking, with dt)
#: hides the C dt^{2s} of the resolved modes at every dt ≥ 1/ω.
RESIDUAL = tuple(n for n in schemes_for("adaptive") if not issubclass(SCHEMES[n], Rational))


@pytest.mark.parametrize("scheme", RESIDUAL)
def test_adaptive_scheme_order(scheme: str) -> None:
    """Uniform Newton steps (no error control) of the Madelung packet to t = 0.4 at dt = 0.1,
    0.05, 0.025; the order from the differences of successive ψ = R e^{iS/ħ} (Richardson:
    the spatial error cancels, it is the same mesh) is the scheme's declared order, and the
    finest run is closer to the exact solution than the coarsest.

    Margin 0.15: from three levels the observed order is p + O(dt), the next term of the
    error expansion; measured deviations are 0.08 for implicit Euler and 0.02 for the
    second-order schemes, and a level further (dt = 0.0125) halves the Euler one, as an O(dt)
    term should. Finer dt are not used: the highest P2 modes (ω ≈ 180 on h = 1/3) carry the
    interpolation error of ψ₀ and are resolved in time only for dt ≲ 1/ω; from dt = 0.00625
    on they add a difference of ~1e-4 that does not shrink with dt (measured).
    """
    order = SCHEMES[scheme].order
    psi, errors = [], []
    for dt in (0.1, 0.05, 0.025):
        p = problem(merged(PACKET, {"discretisation": {"dt": dt, "t_end": 0.4}}))
        stepper = adaptive(p, StepControl(tolerance=None), scheme=scheme)
        with Simulation(stepper, [], COMM, dt=dt) as sim:
            outcome = sim.run(Stop(steps=round(0.4 / dt)))
            assert outcome.status == "completed" and outcome.stats["rejected"] == 0
        u = owned(p).reshape(-1, 2)
        psi.append(u[:, 0] * np.exp(1j * u[:, 1]))  # ħ = 1
        errors.append(exact_error(p, outcome.t))
    d = [
        COMM.allreduce(float(np.sum(np.abs(a - b) ** 2)), op=MPI.SUM) for a, b in zip(psi, psi[1:])
    ]
    observed = 0.5 * np.log2(d[0] / d[1])  # d are squared norms
    assert abs(observed - order) < 0.15, (scheme, order, observed, d)
    assert errors[-1] < errors[0], errors
