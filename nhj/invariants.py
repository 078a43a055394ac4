"""Projection of a Newton-stepped state back onto its conserved mass after a sub-step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from dolfinx import fem

from nhj.diagnostics import global_scalar


class MassRescale:
    """u_c ← c u_c on the components c that carry the amplitude, c = √(M₀/M) (collective).

    M = ∫p√g of the current state, M₀ that of the state at construction. For the
    (√p, S) form of (3.7) the midpoint rule with the skew-symmetric transport keeps
    ∫R²√g exactly for the exact solution of each step's nonlinear system (tested
    with w = R_mid the transport vanishes), so a state leaves it only by the Newton
    remainder. Rescaling R puts it back, which lets Newton stop at a tolerance set
    by the time scheme's accuracy instead of by the mass bound. The factor is 1 to
    within that remainder (~newton_rtol), far below the scheme's error.

    ``__call__`` returns |M/M₀ − 1| before the rescale: the scheme's own
    conservation per sub-step, which the stepper reports as ``mass_correction``.
    """

    def __init__(self, u: fem.Function, total: Any, components: Sequence[int]) -> None:
        self.u, self.components = u, list(components)
        self.form = fem.form(total)
        self.bs = u.function_space.dofmap.index_map_bs
        self.target = self.mass()

    def mass(self) -> float:
        """∫p√g of the current state (collective)."""
        return global_scalar(self.form, self.u.function_space.mesh.comm)

    def __call__(self) -> float:
        """Rescale the amplitude so that ∫p√g = M₀; the relative correction made."""
        M = self.mass()
        if not M > 0.0:  # nothing to rescale (a state without mass cannot come from M₀ > 0)
            return 0.0
        # owned and ghost entries are scaled alike: no scatter needed
        self.u.x.array.reshape(-1, self.bs)[:, self.components] *= np.sqrt(self.target / M)
        return abs(M / self.target - 1.0)
