"""Advance a semi-discrete equation in time with a registered scheme.

The stepper owns the history uⁿ, uⁿ⁻¹, … and one solver per scheme in use
(a multi-step scheme's start-up scheme gets its own). It never builds physics:
it asks the scheme for the residual of the equation's labelled pieces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ufl
from dolfinx import fem

from nhj.equations.base import SemiDiscrete
from nhj.solvers import ConstantMatrixProblem
from nhj.timeschemes import get_scheme


class TimeStepper:
    """u ← uⁿ⁺¹ for a linear, autonomous equation (matrix factorised once per scheme).

    Attributes:
        u: The current state, updated in place by :meth:`advance`.
        dt: The time step as a ``fem.Constant``.
        t: Current time.
        steps: Steps taken.
    """

    def __init__(self, eq: SemiDiscrete, scheme: str, u: fem.Function, dt: float,
                 bcs: list[Any], petsc_options: Mapping[str, Any] | None = None,
                 prefix: str = "nhj_") -> None:
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

    def close(self) -> None:
        """Destroy the solvers now, in the same order on every rank (collective).

        Left to the garbage collector, MUMPS objects may be destroyed in a
        different order on different ranks, which deadlocks.
        """
        for name in list(self._problems):
            del self._problems[name]

    def advance(self) -> None:
        """Take one step of size dt."""
        for k in range(len(self.history) - 1, 0, -1):
            self.history[k].x.array[:] = self.history[k - 1].x.array
        self.history[0].x.array[:] = self.u.x.array
        filled = min(self.steps + 1, self.scheme.steps)
        name = self.scheme.name if filled == self.scheme.steps else self.scheme.startup
        self._problems[name].solve()  # type: ignore[index]
        self.u.x.array[:] = self._next.x.array
        self.steps += 1
        self.t = self.steps * float(self.dt.value)  # no accumulated round-off in t
