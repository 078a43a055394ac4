"""The wave–fluid hybrid: (√p, S) where ψ has no node, Schrödinger (3.11) where it has.

The (√p, S) form of Madelung (3.7)–(3.9) is singular at a node of
ψ = √p e^{iS/ħ} (3.10): p vanishes inside the support and S jumps by πħ. For
α = 1 (κ = g/β) the same flow is the linear Schrödinger equation (3.11) with
ħ = γ/β (3.12), m = 1/γ (3.13), which has no difficulty there. The
:class:`HybridStepper` advances the fluid form and, when a fluid step is
inadmissible (the node guard, a Newton failure, no acceptable sub-step), retakes
that output step from its start in the wave form on the same mesh and degree,
then returns to the fluid when ψ has no node in the support again — the
"retake the step with the robust method" idea of a-posteriori hybrids
(SpECTRE's DG–FD), with the phase matching of the fluid–wave hybrids for fuzzy
dark matter (GAMER).

Switching, in nodal values of the one P_k×2 space both forms share:

* fluid → wave: ψ_i = ψ(u)_i, the wave form (3.10) of the fluid unknown at the
  dofs, then scaled by √(∫p√g / ∫|ψ_h|²√g). The two integrals differ by the
  nodal interpolation error of the product R² vs |R e^{iS/ħ}|², O(h^{k+1});
  the scale factor is 1 + O(h^{k+1}), a perturbation at the order of the
  scheme, and it makes the invariant both steppers conserve (the midpoint rule
  ∫R²√g, Crank–Nicolson ‖ψ‖²) continuous across the switch to round-off.
* wave → fluid: the amplitude |ψ_i| (scaled likewise) and the phase
  S_i = ħ arg ψ_i unwrapped along a spanning tree of the dof adjacency graph
  (two dofs are adjacent when they share a cell). The tree is the maximum-
  amplitude spanning tree (quality-guided unwrapping: every dof gets its phase
  from its strongest neighbour, so the path avoids the small-|ψ| regions where
  the phase is least certain), built on rank 0 from the gathered graph with
  rank-independent tie-breaking by coordinates, so every rank count gets the
  same S. Where |ψ| < ``TAIL``·max|ψ| the phase is round-off; S is continued
  constant along the tree there (vacuum: p ~ 0, the phase is a convention).
* leaving the fluid before it fails: when ∇S of the fluid turns by more than ħ
  (CURVED) across one dof spacing in the support and the space does not hold that S
  (its ∇S jumps between cells by more than JUMP·ħ per dof spacing, nhj/phase_jumps.py),
  S is not resolved there (streams meeting, a node forming) and the step is retaken as
  a wave. The phase increment |∇S|h/ħ is no such test (a chirped packet's tail has
  large increments and a smooth S), nor the second difference alone (a Gaussian
  state's quadratic S, exact on P_k, k ≥ 2, has any curvature on a coarse mesh).
* no node in the support: on every edge with max(|ψ_a|, |ψ_b|) ≥ τ max|ψ| the
  unwrapped phase increment is below π/2 (a node shows as a jump of π between
  neighbours, a vortex as a winding). τ = node_threshold/10: a dip the guard
  would refuse at −node_threshold max √p counts as a node well before it, so
  the run does not switch straight back (hysteresis); after a return that fails
  at once, the next test waits twice as many wave steps.

While the wave form runs, the fluid unknown holds (scaled |ψ|, unwrapped S) at
every output step, so that the run's fields and ∫p√g are those of ψ; the
reported energy is then the wave's ⟨ψ|H|ψ⟩ (the (√p, S) energy is undefined at a
node). The per-row column ``form`` is 0 (fluid) or 1 (wave); the summary's
``forms`` lists the intervals, the number of switches, the fraction of time in
the wave form and the largest relative mass jump at a switch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from mpi4py import MPI

import numpy as np
from dolfinx import fem
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

from nhj.diagnostics import global_scalar
from nhj.equations.base import SemiDiscrete
from nhj.phase_jumps import GradientJumps
from nhj.solvers import SolverError
from nhj.stepper import AdaptiveStepper, StepperState

#: Below this fraction of max|ψ| the phase of ψ is round-off: S is continued, not unwrapped.
TAIL = 1e-10
#: Largest phase increment between adjacent dofs of a node-free, resolved ψ (the return test).
RESOLVED = 1.0
#: Largest second difference of the fluid's phase along an edge, (∇S_b − ∇S_a)·(x_b − x_a)/ħ,
#: before the fluid retakes its steps as a wave. A resolved S has h²|∇∇S|/ħ ≪ 1 there; streams
#: that meet (the precursor of interference) or a forming node turn ∇S over within a cell. The
#: phase increment |∇S|h/ħ itself is no test for the fluid, which represents S, not e^{iS/ħ}:
#: a chirped Gaussian's tail has increments of 1–2 rad with a second difference of 0.1.
CURVED = 1.0
#: ... unless the space represents that S: the phase error (in ħ) across a dof spacing implied
#: by the jumps of ∇S between cells must pass JUMP as well. A Gaussian state's S on P2 shows
#: round-off (1e-13 on the log form's 8² squeezed state, whose second difference passes 1 at
#: t = 0.5); where the tails meet in cases/madelung_collision_1d.toml (480 cells, dt = 0.02)
#: the jumps are 0.15 when the second difference passes 1 (t = 0.88), 1e-4 before t = 0.5.
JUMP = 1e-2
#: To return to the fluid form: a margin below RESOLVED (hysteresis), on a wider support.
RETURN = 0.8
#: Support edges of the return test: max |ψ| ≥ node_threshold / HYSTERESIS × max |ψ|.
HYSTERESIS = 3.0
#: Longest wait (in wave steps) before testing for a return to the fluid form.
MAX_HOLD = 64
#: Smallest fluid sub-step (relative to dt) before the hybrid retakes the step as a wave:
#: a few halvings, not the 10 of nonlinear.dt_min = 1e-3 — the wave step is cheaper.
DT_MIN = 1.0 / 16

FLUID, WAVE = "fluid", "wave"


@dataclass(frozen=True)
class WaveForm:
    """What the hybrid needs of an equation that has a wave form (from its builder).

    Attributes:
        semidiscrete: Schrödinger (3.11) on the fluid's space, ψ = (Re ψ, Im ψ).
        bcs: Its Dirichlet conditions (ψ = 0 where the fluid has √p = 0).
        hbar: ħ of (3.10) and (3.11).
        wavefunction: u ↦ ψ(u) (3.10), UFL, for the fluid unknown u.
        phase_gradient: u ↦ ∇S, UFL, for the fluid unknown u.
        fluid_mass: u ↦ ∫p√g (UFL), quadratic in |ψ|.
        fluid_state: (nodal (R, S) pairs (n, 2), global max R) ↦ the fluid's nodal
            values (n, 2) (the identity for R = √p, ρ = log R for the log form).
        threshold: The node guard's threshold (nonlinear.node_threshold).
        scheme: The linear scheme of the wave form (Crank–Nicolson conserves ‖ψ‖²).
    """

    semidiscrete: SemiDiscrete
    bcs: list[Any]
    hbar: float
    wavefunction: Callable[[Any], Any]
    phase_gradient: Callable[[Any], Any]
    fluid_mass: Callable[[Any], Any]
    fluid_state: Callable[[np.ndarray, float], np.ndarray]
    threshold: float
    scheme: str = "crank_nicolson"


def _key(x: np.ndarray) -> np.ndarray:
    """A pseudo-random number in [0, 1) per point, a function of its coordinates only."""
    s = np.sin(x @ np.array([12.9898, 78.233, 37.719])) * 43758.5453
    return s - np.floor(s)


class DofGraph:
    """The dof adjacency graph of a Lagrange space, and its gathered copy on rank 0.

    Local edges (pairs of local nodes in an owned cell) serve the collective node
    test; rank 0 keeps the global graph (global node numbers, coordinates) for
    the phase unwrapping, and every rank the global numbers of its local nodes
    to receive the unwrapped phase.
    """

    def __init__(self, space: Any) -> None:
        msh = space.mesh
        self.comm = msh.comm
        tdim = msh.topology.dim
        cells = msh.topology.index_map(tdim).size_local
        D = np.asarray(space.dofmap.list)[:cells]
        a, b = np.triu_indices(D.shape[1], 1)
        E = np.sort(np.stack((D[:, a].ravel(), D[:, b].ravel()), axis=1), axis=1)
        self.edges = np.unique(E, axis=0) if len(E) else np.zeros((0, 2), dtype=np.int32)
        im = space.dofmap.index_map
        self.n = im.size_local
        local = np.arange(im.size_local + im.num_ghosts, dtype=np.int32)
        self.numbers = im.local_to_global(local)
        self.N = im.size_global
        x = space.tabulate_dof_coordinates()
        parts = self.comm.gather((self.numbers[self.edges], self.numbers[: self.n], x[: self.n]))
        self.global_edges: np.ndarray | None = None
        if self.comm.rank == 0:
            assert parts is not None
            E = np.unique(np.sort(np.vstack([p[0] for p in parts]), axis=1), axis=0)
            X = np.zeros((self.N, 3))
            for _, g, xx in parts:
                X[g] = xx
            self.global_edges, self.key = E, _key(X)

    def gather(self, values: np.ndarray) -> np.ndarray | None:
        """The owned nodal values (n, c) of every rank by global number, on rank 0."""
        parts = self.comm.gather((self.numbers[: self.n], values[: self.n]))
        if self.comm.rank != 0:
            return None
        assert parts is not None
        out = np.zeros((self.N, *values.shape[1:]), dtype=values.dtype)
        for g, v in parts:
            out[g] = v
        return out

    def scatter(self, values: np.ndarray | None) -> np.ndarray:
        """Rank 0's global array, restricted to this rank's local (owned and ghost) nodes."""
        return np.asarray(self.comm.bcast(values, root=0))[self.numbers]


def unwrap(graph: DofGraph, z: np.ndarray, hbar: float) -> np.ndarray:
    """S = ħ arg z along the maximum-amplitude spanning tree from the largest |z| (rank 0).

    Edge costs 2 max|z| − min(|z_a|, |z_b|) are positive (csgraph drops zeros) and
    made distinct by a coordinate key of relative size 1e-9, so the tree, and S, do
    not depend on the global numbering (the partition).
    """
    E = graph.global_edges
    assert E is not None
    A = np.abs(z)
    top = float(A.max(initial=0.0)) or 1.0
    key = graph.key
    weak = np.minimum(A[E[:, 0]], A[E[:, 1]]) / top
    ek = (key[E[:, 0]] + key[E[:, 1]]) % 1.0
    cost = 2.0 - weak + 1e-9 * ek
    N = len(z)
    tree = minimum_spanning_tree(coo_matrix((cost, (E[:, 0], E[:, 1])), shape=(N, N)).tocsr())
    start = int(np.argmax(A / top + 1e-9 * key))
    order, parent = breadth_first_order(tree, start, directed=False)
    S = hbar * np.angle(z)
    inc = np.zeros(N)
    child = order[1:]
    up = parent[child]
    step = np.angle(z[child] * np.conj(z[up]))
    inc[child] = np.where(A[child] >= TAIL * top, hbar * step, 0.0)
    S_list, inc_list, up_list = S.tolist(), inc.tolist(), parent.tolist()
    for j in child.tolist():  # parents come first in breadth-first order
        S_list[j] = S_list[up_list[j]] + inc_list[j]
    return np.asarray(S_list)


def largest_jump(graph: DofGraph, z: np.ndarray, S: np.ndarray, hbar: float, tau: float) -> float:
    """max |ΔS|/ħ over the global edges in the support (max |z| ≥ τ max|z|) (rank 0)."""
    E = graph.global_edges
    assert E is not None
    A = np.abs(z)
    sup = np.maximum(A[E[:, 0]], A[E[:, 1]]) >= tau * A.max(initial=0.0)
    d = np.abs(S[E[sup, 1]] - S[E[sup, 0]]) / hbar
    return float(d.max(initial=0.0))


class PhaseSteps:
    """Where ψ(u) has its largest phase step between neighbouring dofs in the support.

    A failure that does not say where (the step controller's error estimate) is
    placed there: a node, or the unresolved phase that precedes one (collective).
    """

    def __init__(self, u: fem.Function, psi: Any, tau: float) -> None:
        space = u.function_space
        self.graph, self.tau, self.comm = DofGraph(space), tau, space.mesh.comm
        self.z = fem.Function(space)
        self.expr = fem.Expression(psi, space.element.interpolation_points)
        self.x = space.tabulate_dof_coordinates()[:, : space.mesh.geometry.dim]

    def __call__(self) -> Any:
        """Coordinates of the worst support edge's first dof (None if there is no edge)."""
        self.z.interpolate(self.expr)
        pair = self.z.x.array.reshape(-1, 2)
        z = pair[:, 0] + 1j * pair[:, 1]
        A = np.abs(z)
        top = self.comm.allreduce(float(A[: self.graph.n].max(initial=0.0)), op=MPI.MAX)
        a, b = self.graph.edges[:, 0], self.graph.edges[:, 1]
        sup = np.flatnonzero(np.maximum(A[a], A[b]) >= self.tau * top)
        d = np.abs(np.angle(z[b[sup]] * np.conj(z[a[sup]])))
        i = int(np.argmax(d)) if len(d) else -1
        local = (float(d[i]), self.x[a[sup[i]]].tolist()) if len(d) else (-1.0, None)
        return max(self.comm.allgather(local), key=lambda v: v[0])[1]


class HybridStepper:
    """Advance a (√p, S) run, retaking inadmissible steps in the wave form (3.11).

    The stepper protocol of :mod:`nhj.simulation` (advance, t, steps, stats,
    columns/diagnostics, get_state/set_state, close). ``make_linear(sd, scheme, ψ,
    dt, bcs)`` makes the wave stepper, on first need: every decision below
    rests on collective reductions, so every rank creates it at the same step.
    """

    def __init__(
        self,
        fluid: AdaptiveStepper,
        wave: WaveForm,
        make_linear: Callable[[SemiDiscrete, str, fem.Function, float, list[Any]], Any],
    ) -> None:
        self.fluid, self.form, self.make_linear = fluid, wave, make_linear
        c = fluid.control
        fluid.control = replace(c, dt_min=max(c.dt_min, DT_MIN))
        self.u = fluid.u
        self.space = self.u.function_space
        self.comm = self.space.mesh.comm
        self.t, self.steps, self.dt = fluid.t, fluid.steps, fluid.dt_out
        self.mode = FLUID
        self.tau_fluid = wave.threshold  # the fluid's support, and the wave's (hysteresis)
        # the second difference of S that sends the fluid to the wave form (CURVED), and the
        # phase step below which ψ may return (RESOLVED): or twice the initial ones, where the
        # mesh does not resolve the initial state's phase
        self.leave: float | None = None
        self.resolved: float | None = None
        self.tau = wave.threshold / HYSTERESIS
        self.graph = DofGraph(self.space)
        self._fluid_mass = fem.form(wave.fluid_mass(self.u))
        self._wave: Any = None
        self.psi: fem.Function | None = None
        self.intervals: list[list[Any]] = [[self.t, None, FLUID]]
        self.switches, self.mass_jump, self.hold, self.since = 0, 0.0, 1, 0
        self.reasons: list[str] = []
        self._iterations = 0
        dim = self.space.mesh.geometry.dim
        X = self.space.tabulate_dof_coordinates()[:, :dim]
        self.x = np.round(X, 4)
        # ∇S of the fluid at the dofs, and the edge vectors, for the second difference of S
        vector = fem.functionspace(
            self.space.mesh, ("Lagrange", self.space.element.basix_element.degree, (dim,))
        )
        self._grad_S = fem.Function(vector)
        pts = vector.element.interpolation_points
        self._to_grad_S = fem.Expression(wave.phase_gradient(self.u), pts)
        self._edge = X[self.graph.edges[:, 1]] - X[self.graph.edges[:, 0]]
        self._jumps = GradientJumps(self.space, wave.phase_gradient(self.u), wave.hbar)
        self.jumpy: float | None = None  # the bar of the jumps, JUMP or twice the initial ones

    columns: tuple[str, ...] = (*AdaptiveStepper.columns, "form")

    # -- the two forms ---------------------------------------------------------------

    def _make_psi(self) -> None:
        """ψ and the expression ψ(u) (3.10) that the fluid's tests read (once; collective)."""
        if self.psi is not None:
            return
        self.psi = fem.Function(self.space, name="psi")
        self._scratch = fem.Function(self.space)  # ψ(u) of the fluid state, for its test
        pts = self.space.element.interpolation_points
        self._to_psi = fem.Expression(self.form.wavefunction(self.u), pts)

    def _make_wave(self) -> None:
        """The wave form's compiled functionals and linear stepper (once; collective).

        Made at the first switch, not before: a run that stays fluid would pay their
        compilation and the wave operator's factorisation for nothing.
        """
        self._make_psi()
        if self._wave is not None:
            return
        assert self.psi is not None
        f = self.form
        fun = f.semidiscrete.functionals
        self._wave_mass = fem.form(fun["mass"](self.psi))
        self._wave_energy = fem.form(fun["energy"](self.psi)) if "energy" in fun else None
        self._wave = self.make_linear(f.semidiscrete, f.scheme, self.psi, self.dt, f.bcs)

    def _mass(self, form: fem.Form) -> float:
        return global_scalar(form, self.comm)

    def _switch(self, mode: str, jump: float, t: float, reason: str) -> None:
        self.mass_jump = max(self.mass_jump, jump)
        self.intervals[-1][1] = t
        self.intervals.append([t, None, mode])
        self.mode, self.switches, self.since = mode, self.switches + 1, 0
        self.reasons.append(f"t = {t:.6g}: {reason}"[:300])

    def to_wave(self, reason: str) -> None:
        """ψ = ψ(u) at the dofs, scaled to the fluid's ∫p√g (collective)."""
        if self.switches:  # it had returned too early: wait longer next time
            self.hold = min(2 * self.hold, MAX_HOLD)
        self._make_wave()
        assert self.psi is not None
        self.psi.interpolate(self._to_psi)
        self.psi.x.scatter_forward()
        m_f, m_w = self._mass(self._fluid_mass), self._mass(self._wave_mass)
        self.psi.x.array[:] *= np.sqrt(m_f / m_w)
        jump = abs(self._mass(self._wave_mass) - m_f) / m_f
        self._switch(WAVE, jump, self.t, reason)

    def _fluid_from_wave(self) -> float:
        """u = (scaled |ψ|, unwrapped S); returns the largest support phase jump / ħ."""
        assert self.psi is not None
        hbar = self.form.hbar
        pair = self.psi.x.array.reshape(-1, 2)
        z = self.graph.gather(pair[:, 0] + 1j * pair[:, 1])
        S_all, jump = None, 0.0
        if z is not None:  # rank 0
            S_all = unwrap(self.graph, z, hbar)
            jump = largest_jump(self.graph, z, S_all, hbar, self.tau)
        S = self.graph.scatter(S_all)
        A = np.hypot(pair[:, 0], pair[:, 1])
        top = self.comm.allreduce(float(A[: self.graph.n].max(initial=0.0)), op=MPI.MAX)
        state = self.form.fluid_state
        self.u.x.array[:] = state(np.column_stack((A, S)), top).ravel()
        c = np.sqrt(self._mass(self._wave_mass) / self._mass(self._fluid_mass))
        self.u.x.array[:] = state(np.column_stack((c * A, S)), c * top).ravel()
        self.u.x.scatter_forward()
        return float(self.comm.bcast(jump, root=0))

    def _nodal_psi(self) -> np.ndarray:
        """ψ at the dofs: of the wave form, or ψ(u) (3.10) of the fluid unknown (local)."""
        assert self.psi is not None
        if self.mode == FLUID:
            self._scratch.interpolate(self._to_psi)
            pair = self._scratch.x.array.reshape(-1, 2)
        else:
            pair = self.psi.x.array.reshape(-1, 2)
        return np.asarray(pair[:, 0] + 1j * pair[:, 1])

    def worst_curvature(self, z: np.ndarray, tau: float) -> tuple[float, Any]:
        """max |(∇S_b − ∇S_a)·(x_b − x_a)|/ħ of the fluid over support edges, and where.

        ∇S is interpolated at the dofs; for a quadratic S (a Gaussian state) on P2 the
        value is exactly (x_b − x_a)ᵀ∇∇S(x_b − x_a)/ħ (collective).
        """
        self._grad_S.interpolate(self._to_grad_S)
        self._grad_S.x.scatter_forward()
        G = self._grad_S.x.array.reshape(-1, self._edge.shape[1])
        a, b = self.graph.edges[:, 0], self.graph.edges[:, 1]
        sup = self._support(z, tau, np.minimum)  # S is undetermined where √p vanishes
        c = np.abs(np.einsum("ij,ij->i", G[b[sup]] - G[a[sup]], self._edge[sup])) / self.form.hbar
        return self._largest(c, sup)

    def worst_edge(self, z: np.ndarray, tau: float) -> tuple[float, Any]:
        """max |arg(z_b z̄_a)| over support edges (max |z| ≥ τ max|z|), and where (collective).

        A node shows as an increment near π, an unresolved phase (|∇S| h/ħ large,
        e.g. two streams meeting, the precursor of interference) as one growing
        towards it; a resolved node-free ψ stays below π/2.
        """
        a, b = self.graph.edges[:, 0], self.graph.edges[:, 1]
        sup = self._support(z, tau, np.maximum)
        return self._largest(np.abs(np.angle(z[b[sup]] * np.conj(z[a[sup]]))), sup)

    def _support(self, z: np.ndarray, tau: float, which: Any) -> np.ndarray:
        """Local edges with which(|z_a|, |z_b|) ≥ τ max|z| (collective).

        np.maximum: either end in the support; np.minimum: both ends.
        """
        A = np.abs(z)
        top = self.comm.allreduce(float(A[: self.graph.n].max(initial=0.0)), op=MPI.MAX)
        a, b = self.graph.edges[:, 0], self.graph.edges[:, 1]
        return np.flatnonzero(which(A[a], A[b]) >= tau * top)

    def _largest(self, values: np.ndarray, sup: np.ndarray) -> tuple[float, Any]:
        """The largest per-edge value over all ranks, and its edge's first dof (collective)."""
        i = int(np.argmax(values)) if len(values) else -1
        local = (
            (float(values[i]), self.x[self.graph.edges[sup[i], 0]].tolist())
            if len(values)
            else (0.0, None)
        )
        return max(self.comm.allgather(local), key=lambda v: v[0])

    def to_fluid(self) -> None:
        """Continue as (√p, S) from the current ψ (u already holds it; collective)."""
        assert self.psi is not None
        m_w, m_f = self._mass(self._wave_mass), self._mass(self._fluid_mass)
        f = self.fluid
        stats = dict(f.stats)
        arrays = {"u": self.u.x.array.copy(), "previous": self.u.x.array.copy()}
        extra = {"h": self.dt, "h_previous": 0.0, "stats": stats, "jacobian": None}
        f.set_state(StepperState(self.t, self.steps, arrays, extra))
        self._switch(FLUID, abs(m_f - m_w) / m_w, self.t, "psi has no node in the support")

    # -- the protocol ----------------------------------------------------------------

    def advance(self) -> None:
        """One output step dt in the current form (collective)."""
        self._iterations = 0
        if self.mode == FLUID:
            if self.leave is None:  # a coarse mesh: the initial state raises the bars
                self._make_psi()
                z0 = self._nodal_psi()
                self.leave = max(CURVED, 2.0 * self.worst_curvature(z0, self.tau_fluid)[0])
                self.jumpy = max(JUMP, 2.0 * self._jumps(z0, self.tau_fluid)[0])
                self.resolved = max(RESOLVED, 2.0 * self.worst_edge(z0, self.tau_fluid)[0])
            start = self.u.x.array.copy()
            f = self.fluid
            balance = f.guard_state()  # the log form's mass balance moves with u
            f.t, f.steps = self.t, self.steps
            try:
                f.advance()
            except SolverError as e:  # the node guard, Newton, the step controller
                self._iterations = f.last_iterations
                self.u.x.array[:] = start  # the last accepted output step, not a sub-step
                f.set_guard_state(balance)
                self.to_wave(str(e))
            else:
                self._iterations = f.last_iterations
                self._make_psi()
                z = self._nodal_psi()
                bend, where = self.worst_curvature(z, self.tau_fluid)
                jump = self._jumps(z, self.tau_fluid)[0] if bend >= self.leave else 0.0
                if bend < self.leave or jump < (self.jumpy or JUMP):
                    self.t, self.steps = f.t, f.steps
                    self.since += 1
                    return
                self.u.x.array[:] = start
                f.set_guard_state(balance)
                self.to_wave(
                    f"S unresolved (streams meeting, or a node forming) near x = {where} at "
                    f"t = {f.t:.6g} (grad S turns by {bend:.2f} hbar across one dof spacing, "
                    f"its jumps between cells imply {jump:.2g} hbar)"
                )
        w = self._wave
        w.t, w.steps = self.t, self.steps
        w.advance()
        self.steps += 1
        self.t = self.steps * self.dt
        self.since += 1
        jump = self._fluid_from_wave()  # the fields and ∫p√g of the run are those of ψ
        back = RETURN * (self.resolved or RESOLVED)
        if self.since < self.hold or jump >= back:
            return
        if self.worst_edge(self._nodal_psi(), self.tau)[0] < back:
            self.to_fluid()

    def diagnostics(self) -> dict[str, Any]:
        """Newton iterations, rejected sub-steps, the form (0 fluid, 1 wave); ⟨ψ|H|ψ⟩ in wave."""
        out: dict[str, Any] = {
            "newton_iterations": self._iterations,
            "rejected_steps": self.fluid.stats["rejected"],
            "form": 0 if self.mode == FLUID else 1,
        }
        if self.mode == WAVE and self._wave_energy is not None:
            out["energy"] = self._mass(self._wave_energy)
        return out

    @property
    def stats(self) -> dict[str, Any]:
        """The fluid stepper's totals and ``forms``: intervals, switches, time fractions."""
        intervals = [[a, self.t if b is None else b, m] for a, b, m in self.intervals]
        total = sum(b - a for a, b, _ in intervals)
        wave = sum(b - a for a, b, m in intervals if m == WAVE)
        return {
            **self.fluid.stats,
            "forms": {
                "intervals": intervals,
                "switches": self.switches,
                "fraction_wave": wave / total if total > 0 else 0.0,
                "mass_jump": self.mass_jump,
                "reasons": list(self.reasons),
            },
        }

    def get_state(self) -> StepperState:
        """The fluid's state, ψ in the wave form, and the switching record."""
        s = self.fluid.get_state()
        arrays = dict(s.arrays)
        if self.mode == WAVE:
            assert self.psi is not None
            arrays["psi"] = self.psi.x.array.copy()
        extra = {
            "fluid": s.extra,
            "form": self.mode,
            "intervals": [list(i) for i in self.intervals],
            "switches": self.switches,
            "mass_jump": self.mass_jump,
            "hold": self.hold,
            "leave": self.leave,
            "jumpy": self.jumpy,
            "resolved": self.resolved,
            "since": self.since,
            "reasons": list(self.reasons),
        }
        return StepperState(self.t, self.steps, arrays, extra)

    def set_state(self, state: StepperState) -> None:
        """Continue from ``state`` in the form it was in (collective)."""
        e = state.extra
        arrays = {k: v for k, v in state.arrays.items() if k != "psi"}
        self.fluid.set_state(StepperState(state.t, state.steps, arrays, e["fluid"]))
        self.t, self.steps = state.t, state.steps
        self.mode, self.intervals = e["form"], [list(i) for i in e["intervals"]]
        self.switches, self.mass_jump = e["switches"], e["mass_jump"]
        self.hold, self.since, self.reasons = e["hold"], e["since"], list(e["reasons"])
        self.leave, self.resolved = e.get("leave"), e.get("resolved")
        self.jumpy = e.get("jumpy")
        if self.mode == WAVE:
            self._make_wave()
            assert self.psi is not None
            self.psi.x.array[:] = state.arrays["psi"]

    def close(self) -> None:
        """Destroy the solvers, fluid first (collective, the same order on every rank)."""
        self.fluid.close()
        if self._wave is not None:
            self._wave.close()
