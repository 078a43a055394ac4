"""What the checks compare: hydrodynamic snapshots, the wave reference and their mismatch.

* :func:`hydrodynamic_snapshots` runs Madelung (3.7)–(3.9) or neural HJ
  (3.7) + (5.2) with the stepper its registry entry asks for and keeps (√p, S)
  at the observation times (an :class:`~nhj.simulation.At` observer).
* :class:`Wave` is Schrödinger (3.11) on the mesh of such a run, started from
  its p₀, S₀ by ψ₀ = √p₀ e^{iS₀/ħ} (3.10), with ħ a ``fem.Constant`` so that a
  scan over ħ compiles the forms once.
* :class:`Mismatch` measures (p_a, ∇S_a) against (p_b, ∇S_b): the pairs are
  ``Madelung.density_and_phase_gradient`` = (R², ∇S),
  ``Schrodinger.density_and_phase_gradient`` = (|ψ|², ħ∇arg ψ) and the exact
  Gaussian state's (:class:`Exact`), weighted on the :class:`Support` of p.

Every function here is collective: all scalars are assembled and reduced on
every rank.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem

from nhj import backends
from nhj.builders.common import boundary_conditions, make_potential, mesh_and_metric
from nhj.covariant import Metric
from nhj.diagnostics import global_scalar, quadrature
from nhj.equations.schrodinger import Schrodinger, wavefunction
from nhj.registry import EQUATIONS
from nhj.sections import Case
from nhj.simulation import At, Simulation, Stop, simulate
from nhj.solvers import SolverError
from nhj.stepper import TimeStepper
from nhj.verify.records import NONE, Perturbation
from nhj.verify.spec import SUPPORT, step_indices

FLOOR = 0.0
"""ħ∇arg ψ is taken as 0 where |ψ|² ≤ FLOOR: only where |ψ|² underflows (0/0 otherwise)."""

Pair = tuple[Any, Any]
"""(p, ∇S) as UFL expressions."""


@dataclass
class Snapshots:
    """States of a Madelung / neural HJ run at the observation times.

    Attributes:
        space: The (√p, S) space.
        equation: The hydrodynamic equation object (gives the (p, ∇S) pair).
        u0: The initial state (local values with ghosts).
        states: The state at each observation time.
        times: The observation times.
        steps: Their step numbers.
        dt: The output step.
        stats: The adaptive stepper's statistics.
        wall_s: Wall time of the run.
    """

    space: Any
    equation: Any
    u0: np.ndarray
    states: list[np.ndarray]
    times: tuple[float, ...]
    steps: list[int]
    dt: float
    stats: dict[str, Any]
    wall_s: float

    def pair(self, u: fem.Function) -> Pair:
        """(p, ∇S) = (R², ∇S) of a state ``u`` on :attr:`space`."""
        return cast(Pair, self.equation.density_and_phase_gradient(u))


def hydrodynamic_snapshots(
    case: Case, msh: Any, metric: Metric, times: Sequence[float]
) -> Snapshots:
    """Run (3.7) + (5.2) on ``msh`` and keep (√p, S) at ``times`` (collective).

    Raises:
        SolverError: The run failed (e.g. no acceptable time step).
    """
    t0 = time.perf_counter()
    entry = EQUATIONS[case.equation]
    problem = entry.build(case, msh, metric)
    steps = step_indices(times, case.discretisation)
    u = problem.u0
    u0 = u.x.array.copy()
    kept: dict[int, np.ndarray] = {}

    def keep(i: int, t: float) -> None:
        kept[i] = u.x.array.copy()

    outcome = simulate(problem, entry.stepper, [At(steps, keep)], Stop(steps=steps[-1]))
    if outcome.status != "completed":
        raise SolverError(outcome.message)
    return Snapshots(
        problem.space,
        problem.equation,
        u0,
        [kept[i] for i in range(len(steps))],
        tuple(times),
        steps,
        case.discretisation.dt_used,
        outcome.stats,
        time.perf_counter() - t0,
    )


@dataclass
class MadelungRun:
    """A Madelung run of a case: its mesh, metric and snapshots (shared between checks)."""

    case: Case
    msh: Any
    metric: Metric
    snaps: Snapshots


def madelung_run(case: Case, comm: MPI.Comm, times: Sequence[float]) -> MadelungRun:
    """Run the case's Madelung equation and keep the states at ``times`` (collective).

    Raises:
        SolverError: The run failed.
    """
    msh, metric = mesh_and_metric(case, comm)
    return MadelungRun(case, msh, metric, hydrodynamic_snapshots(case, msh, metric, times))


class Wave:
    """Schrödinger (3.11) on the mesh of a hydrodynamic run, started from its p₀, S₀.

    ψ₀ = √p₀ e^{iS₀/ħ} (3.10) is interpolated from the Madelung initial state
    (R₀, S₀), so every trial ħ starts from the same p₀ and S₀ (on the Madelung
    space itself, ψ₀ takes the nodal values R₀ e^{iS₀/ħ}). ħ is a
    ``fem.Constant``: a scan over ħ compiles the forms once and factorises the
    Crank–Nicolson matrix once per ħ. ``perturb.m_factor`` ≠ 1 runs with a
    deliberately wrong mass (m = m_factor/γ), for tests that a check can fail.
    """

    def __init__(
        self,
        case: Case,
        msh: Any,
        metric: Metric,
        hydro_space: Any,
        degree: int | None = None,
        perturb: Perturbation = NONE,
    ) -> None:
        par = case.parameters
        degree = case.discretisation.degree if degree is None else degree
        self.case = case
        # a Constant, not a float: every ħ of a scan reuses the compiled forms
        self.hbar: Any = cast(Any, fem.Constant(msh, par.hbar))
        self.m_default = par.m * perturb.m_factor
        self.m: Any = cast(Any, fem.Constant(msh, self.m_default))  # a Constant: the mass fit
        V = make_potential(case, msh, metric)
        self.eq = Schrodinger(metric, V, self.hbar, self.m)
        self.space = fem.functionspace(msh, ("Lagrange", degree, (2,)))
        self.psi = fem.Function(self.space, name="psi")
        self._u0 = fem.Function(hydro_space)
        self._initial = fem.Expression(
            wavefunction(self._u0[0], self._u0[1], self.hbar),
            self.space.element.interpolation_points,
        )
        self.bcs = boundary_conditions(case, self.space, "dirichlet", np.zeros(2))

    def pair(self) -> Pair:
        """(|ψ|², ħ∇arg ψ) of the current ψ, 0/0 guarded where |ψ|² underflows."""
        return cast(Pair, self.eq.density_and_phase_gradient(self.psi, FLOOR))

    def run(
        self,
        hbar: float,
        u0: np.ndarray,
        steps: Sequence[int],
        dt: float,
        observe: Callable[[int], None],
        m: float | None = None,
    ) -> None:
        """Step to the last of ``steps`` with ħ = hbar (and mass m); observe(i) at steps[i].

        Collective. ``m`` None: m = m_factor/γ (3.13).

        Raises:
            SolverError: A step failed.
        """
        self.hbar.value = hbar
        self.m.value = self.m_default if m is None else m
        self._u0.x.array[:] = u0
        self.psi.interpolate(self._initial)
        for bc in self.bcs:
            bc.set(self.psi.x.array)
        stepper = TimeStepper(
            self.eq.semidiscrete(self.space),
            "crank_nicolson",
            self.psi,
            dt,
            self.bcs,
            self.case.solver.petsc_options,
            prefix="nhj_verify_",
        )
        seen = At(steps, lambda i, t: observe(i))
        with Simulation(stepper, [seen], self.space.mesh.comm, dt=dt) as sim:
            outcome = sim.run(Stop(steps=steps[-1]))
        if outcome.status != "completed":
            raise SolverError(outcome.message)


class Exact:
    """(|ψ|², ħ∇arg ψ) of the exact Gaussian state, its time coefficients in a Constant.

    ħ and the coefficients are ``fem.Constant`` values, so :meth:`use` switches to the
    exact state of another ħ and m (the ħ- and mass fits against the exact reference)
    without recompiling.
    """

    def __init__(self, state: Any, msh: Any) -> None:
        self.state = state
        self.C = fem.Constant(msh, state.coefficients(0.0))
        self.hbar: Any = cast(Any, fem.Constant(msh, float(state.hbar)))
        A, phase = state.amplitude_phase(ufl.SpatialCoordinate(msh), self.C, backends.UFL)
        self.pair: Pair = (A**2, self.hbar * ufl.grad(phase))

    def use(self, state: Any) -> None:
        """Make the expression that of ``state`` (same dimension and frame)."""
        self.state = state
        self.hbar.value = float(state.hbar)
        self.at(0.0)

    def at(self, t: float) -> None:
        """Move the expression to time t."""
        self.C.value[:] = self.state.coefficients(t)


class Support:
    """The support χ = 1 where p > SUPPORT · max R² (nodal maximum), else 0, and p itself.

    ``u`` is a (√p, S) state and ``p`` its density R² as UFL.
    """

    def __init__(self, u: fem.Function, p: Any) -> None:
        self.u, self.p = u, p
        self.threshold = fem.Constant(u.function_space.mesh, 0.0)
        self.chi = ufl.conditional(ufl.gt(self.p, self.threshold), 1.0, 0.0)

    def update(self) -> None:
        """Recompute the threshold from the current u (collective)."""
        n = self.u.function_space.dofmap.index_map.size_local
        local = float(np.max(self.u.x.array.reshape(-1, 2)[:n, 0] ** 2, initial=0.0))
        comm = self.u.function_space.mesh.comm
        self.threshold.value = SUPPORT * comm.allreduce(local, op=MPI.MAX)


class Mismatch:
    """Relative L² mismatches (√g-weighted) of a = (p_a, v_a) against a reference b.

    ``p`` = ‖p_a − p_b‖/‖p_b‖ over the domain. For the phase gradients v
    (covectors, |v|²_g = g^{μν}v_μv_ν) on the support χ of the Madelung density p:
    ``grad_S`` = ‖χ√p (v_a − v_b)‖_g / ‖χ√p v_b‖_g, the velocity mismatch in the
    probability-weighted norm of the kinetic energy ∫ p|∇S|²_g; and
    ``grad_S_unweighted`` = ‖χ(v_a − v_b)‖_g / ‖χ v_b‖_g, reported only: at the edge
    of the support (p ~ 10⁻³ max p) ħ∇arg ψ amplifies the error of ψ by |ψ|⁻¹ ~ 30.
    """

    columns = ("p", "grad_S", "grad_S_unweighted")

    def __init__(
        self, a: Pair, b: Pair, support: Support, metric: Metric, degree: int, comm: MPI.Comm
    ) -> None:
        dx = quadrature(degree)
        (pa, va), (pb, vb) = a, b
        dv = va - vb
        chi, w = support.chi, support.chi * support.p
        self.comm = comm
        integrands = [
            (pa - pb) ** 2,
            pb**2,
            w * metric.inner(dv, dv),
            w * metric.inner(vb, vb),
            chi * metric.inner(dv, dv),
            chi * metric.inner(vb, vb),
        ]
        self.forms = [fem.form(metric.volume(f, dx)) for f in integrands]

    def __call__(self) -> dict[str, float]:
        """The three mismatches now (collective; the same numbers on every rank)."""
        n = [global_scalar(f, self.comm) for f in self.forms]
        e = [math.sqrt(n[i] / n[i + 1]) if n[i + 1] > 0 else math.inf for i in (0, 2, 4)]
        return dict(zip(self.columns, self.comm.bcast(e, root=0), strict=True))
