"""The numerics beside the (√p, S) form of Madelung (3.7)–(3.9) / neural HJ (5.2).

What the adaptive stepper needs from the hydrodynamic equations of
:mod:`nhj.equations.madelung`: the ψ-weighted error norm of a step
(|δψ| ≈ |δR| + R|δS|/ħ by (3.10)), and the node guard that stops a run where
ψ = √p e^{iS/ħ} has a node, which the amplitude form cannot follow, with the
messages that say where and what to do. For the log-amplitude form
(:mod:`nhj.equations.madelung_log`): its error norm and the mass projection
that runs after every accepted sub-step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mpi4py import MPI

import numpy as np
from dolfinx import fem

#: What to do about a node where the wave form (3.11) exists but the case asked to stop.
ADVICE = "use nonlinear.nodes = 'hybrid' or equation = 'schrodinger' for this flow"
#: ... and where it does not (α ≠ 1, or a given κ): there is no linear wave equation. The
#: sentence ends with where the run stops: "at the node" (node guard) or "here" (log form).
NO_WAVE_FORM = (
    "no wave form exists for this regime (alpha != 1 or a given kappa: the flow is not "
    "Schrodinger's), so the run stops"
)


def wavefunction_error(u: np.ndarray, pred: np.ndarray, hbar: float) -> tuple[float, float]:
    """(max |δψ|, max |ψ|) for nodal (R, S) pairs: |δψ| ≈ |δR| + R|δS|/ħ by (3.10).

    The phase counts only where the amplitude does: a change of S in the
    vacuum is invisible in ψ and must not shrink the time step.
    """
    R, S = u.reshape(-1, 2).T
    dR, dS = (u - pred).reshape(-1, 2).T
    err = np.abs(dR) + np.abs(R * dS) / hbar
    return float(err.max(initial=0.0)), float(np.abs(R).max(initial=0.0))


def log_wavefunction_error(u: np.ndarray, pred: np.ndarray, hbar: float) -> tuple[float, float]:
    """(max |δψ|, max |ψ|) for nodal (ρ, S) pairs: |δψ| ≈ e^ρ(|δρ| + |δS|/ħ) by (3.10).

    As :func:`wavefunction_error`: what does not show in ψ (the far tail) does not
    shrink the time step nor keep Newton iterating.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        R = np.exp(u.reshape(-1, 2)[:, 0])  # underflows to 0 in the far tail, as it should
        d = np.abs(u - pred).reshape(-1, 2)
        err = float((R * (d[:, 0] + d[:, 1] / hbar)).max(initial=0.0))
    scale = float(R.max(initial=0.0))
    if not (np.isfinite(err) and np.isfinite(scale)):  # e^ρ overflowed: reject, never accept NaN
        return np.inf, 1.0
    return err, scale


class MassProjection:
    """After each accepted sub-step: ρ ← ρ + c, c = ½ log(M*/M), M = ∫e^{2ρ}√g (collective).

    The log form's equations see ρ only through ∇ρ, so adding a constant is an
    exact symmetry; this keeps ∫p√g on its balance to round-off while the
    midpoint rule alone drifts by O(h²) (:mod:`nhj.equations.madelung_log`).
    The target M* is the initial mass less what (3.7) carried out through the
    open walls: M* ← M* − h ∮p γ g⁻¹∇S·n √g ds with the scheme's quadrature in time
    over the sub-step (its midpoint, or the Gauss points of a collocation scheme).
    Called as the stepper's guard, it never stops the run: e^ρ has no node. Its
    balance (target, outflow so far) is part of the stepper's checkpoint state
    (``get_state`` / ``set_state``), so a resumed run holds the same balance.

    Attributes:
        target: M*, the mass the state is projected to.
        outflow: ∫ of the outflux over time so far.
    """

    def __init__(self, u: fem.Function, total: Any, outflux: Any, mid: fem.Function) -> None:
        self.u, self.mid = u, mid  # outflux is a form in mid
        self.total, self.outflux = fem.form(total), fem.form(outflux)
        self.target, self.outflow = self.mass(), 0.0
        self.t_previous: float | None = None
        # the time quadrature of the outflux over a sub-step: the stepper's own (bind_stepper)
        self.states: Callable[[], list[tuple[float, np.ndarray]]] | None = None

    def bind_stepper(self, states: Callable[[], list[tuple[float, np.ndarray]]]) -> None:
        """Integrate the outflux with the stepper's quadrature of its last sub-step.

        ``states()`` gives weights and states (Σ w = 1): the midpoint for the midpoint
        rule, the Gauss points of a collocation scheme, whose order a midpoint flux would
        cap at 2.
        """
        self.states = states

    def _assemble(self, form: Any) -> float:
        comm = self.u.function_space.mesh.comm
        return float(comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM))

    def mass(self) -> float:
        """∫ e^{2ρ} √g dq of the current state (collective)."""
        return self._assemble(self.total)

    def __call__(self, t: float) -> str | None:
        """Project the current state onto the mass balance; never a message."""
        M = self.mass()
        if self.states is None:  # the quadrature is the stepper's decision, not repeated here
            raise RuntimeError("MassProjection needs bind_stepper (nhj.simulation.make_stepper)")
        flux = 0.0
        for weight, state in self.states():
            self.mid.x.array[:] = state
            flux += weight * self._assemble(self.outflux)
        out = (t - (self.t_previous or 0.0)) * flux
        self.target -= out
        self.outflow += out
        self.u.x.array.reshape(-1, 2)[:, 0] += 0.5 * float(np.log(self.target / M))
        self.t_previous = t
        return None

    def get_state(self) -> dict[str, Any]:
        """The balance, for a checkpoint (the same numbers on every rank)."""
        return {"target": self.target, "outflow": self.outflow, "t_previous": self.t_previous}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue the balance of an interrupted run."""
        self.target, self.outflow = float(state["target"]), float(state["outflow"])
        self.t_previous = state["t_previous"]


class Outflow:
    """Monitor: the mass (3.7) has carried out through the open walls so far.

    ``mass + outflow`` is what the run conserves (Problem.balances): with the
    projection's balance it stays at the initial mass to round-off.
    """

    columns = ("outflow",)

    def __init__(self, projection: MassProjection) -> None:
        self.projection = projection

    def __call__(self, t: float) -> dict[str, float]:
        """{"outflow": ∫₀ᵗ ∮p γ g⁻¹∇S·n √g ds} (a global number, no communication)."""
        return {"outflow": self.projection.outflow}


class NodeGuard:
    """Stops a (p, S) run at a node of ψ: √p changing sign inside the support.

    ψ = √p e^{iS/ħ} (3.10) vanishes at a node and S jumps by πħ across it; the
    amplitude form cannot follow that, the Schrödinger form (3.11) can.
    """

    def __init__(self, u: fem.Function, threshold: float, advice: str = ADVICE) -> None:
        self.u, self.threshold, self.advice = u, threshold, advice
        space = u.function_space
        self.n = space.dofmap.index_map.size_local
        self.x = space.tabulate_dof_coordinates()[: self.n, : space.mesh.geometry.dim]

    def __call__(self, t: float) -> str | None:
        """A one-line message if the current state has a node, else None (collective)."""
        comm = self.u.function_space.mesh.comm
        R = self.u.x.array.reshape(-1, 2)[: self.n, 0]
        R_max = comm.allreduce(float(R.max(initial=0.0)), op=MPI.MAX)
        i = int(np.argmin(R)) if len(R) else -1
        lowest = comm.allgather(
            (float(R[i]) if len(R) else np.inf, self.x[i].tolist() if len(R) else None)
        )
        R_min, where = min(lowest, key=lambda p: p[0])
        if R_min >= -self.threshold * R_max:
            return None
        return node_message(where, t, advice=self.advice)

    def explain(self, where: Any, t: float) -> str:
        """Why a step failed at ``where``: a node in the support, or the vacuum (collective)."""
        comm = self.u.function_space.mesh.comm
        R = self.u.x.array.reshape(-1, 2)[: self.n, 0]
        R_max = comm.allreduce(float(np.abs(R).max(initial=0.0)), op=MPI.MAX)
        if where is None or R_max == 0:
            return ""
        d = np.linalg.norm(self.x - np.asarray(where)[: self.x.shape[1]], axis=1)
        i = int(np.argmin(d)) if len(d) else -1
        near = comm.allgather((float(d[i]), float(R[i])) if len(d) else (np.inf, 0.0))
        level = abs(min(near)[1]) / R_max
        if level < 1e-3:
            at = np.round(np.asarray(where), 4).tolist()
            persists = (
                "p has a node or S a caustic there (crossing characteristics)"
                if self.advice.startswith(NO_WAVE_FORM)
                else "psi has nodes there (interfering tails) and equation = 'schrodinger' is "
                "the form to use"
            )
            return (
                f"; it failed in the far tail of p near x = {at} (sqrt(p)/max sqrt(p) = "
                f"{level:.1e}), where S is unresolved or undefined: refine the mesh or raise "
                f"vacuum.nu; if it persists, {persists}"
            )
        return "; " + node_message(where, t, certain=False, advice=self.advice)


def node_message(where: Any, t: float, certain: bool = True, advice: str = ADVICE) -> str:
    """The one-line explanation of a run stopped at (or near) a node of ψ."""
    at = "" if where is None else f" near x = {np.round(np.asarray(where), 4).tolist()}"
    if advice.startswith(NO_WAVE_FORM):
        # no ψ here: what stops a (√p, S) flow is p vanishing, or S folding over where the
        # pressure of this regime is too weak to keep its characteristics apart (a caustic:
        # cases/neural_hj_fisher_metric.toml at α = ½, docs/theory.md)
        what = "the flow reaches a node of p" if certain else "most likely a node of p"
        return (
            f"{what} or a caustic (crossing characteristics of S){at} at t = {t:.6g}: "
            f"S is not single-valued there; {advice} (last good state saved)"
        )
    what = "the flow reaches a node of psi" if certain else "most likely a node of psi"
    return (
        f"{what}{at} at t = {t:.6g}: p vanishes inside the support and S is undefined "
        f"there; {advice} (last good state saved)"
    )


def log_hint(where: Any, t: float) -> str:
    """Why a log-form step failed: under-resolution, never a node or the vacuum (e^ρ > 0)."""
    at = "" if where is None else f" near x = {np.round(np.asarray(where), 4).tolist()}"
    return (
        f"; in the log-amplitude form{at} at t = {t:.6g} (p = e^(2 rho) > 0 has no node "
        "there): the flow is under-resolved, refine the mesh or lower discretisation.dt, "
        "or try vacuum.amplitude = 'sqrt'"
    )
