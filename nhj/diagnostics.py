"""Global scalars of the state: one helper assembles and reduces them all.

Every diagnostic (mass, energy, errors) is an integral assembled on each rank
and summed with ``comm.allreduce``, so all ranks hold the same value and may
take the same branch; only rank 0 writes it out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem

from nhj import backends
from nhj.covariant import Metric


def global_scalar(form: fem.Form, comm: MPI.Comm) -> float:
    """∫ form over the whole mesh (collective)."""
    return float(comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM))


class Functionals:
    """Named scalar functionals of a state, compiled once and evaluated collectively."""

    def __init__(self, u: fem.Function, functionals: Mapping[str, Callable[[Any], Any]]) -> None:
        self.comm = u.function_space.mesh.comm
        self.forms = {name: fem.form(f(u)) for name, f in functionals.items()}

    def __call__(self) -> dict[str, float]:
        """Current values of every functional."""
        return {name: global_scalar(f, self.comm) for name, f in self.forms.items()}


def quadrature(degree: int) -> Any:
    """A measure with a quadrature degree fit for smooth non-polynomial integrands."""
    return ufl.dx(metadata={"quadrature_degree": 2 * degree + 4})


class ExactError:
    """Relative L2 errors (√g-weighted) against an exact solution.

    ``error_l2`` = ‖u − u_ex‖/‖u_ex‖ for the unknown u (a Function or any UFL
    expression of it, e.g. ψ = √p e^{iS/ħ} (3.10) built from (p, S)); with
    ``density`` also ``error_p`` = ‖p − |u_ex|²‖/‖|u_ex|²‖. The exact solution
    provides ``coefficients(t)`` (numbers, placed in a ``fem.Constant`` so that
    the forms compile once) and ``components(x, C, M)``. ``weight`` (UFL, optional)
    multiplies both integrals, e.g. the indicator of a region both of two runs cover.
    """

    def __init__(
        self,
        u: Any,
        state: Any,
        metric: Metric,
        degree: int,
        msh: Any = None,
        density: Any = None,
        weight: Any = None,
    ) -> None:
        msh = msh if msh is not None else u.function_space.mesh
        self.state, self.comm = state, msh.comm
        self.C = fem.Constant(msh, state.coefficients(0.0))
        x = ufl.SpatialCoordinate(msh)
        parts = state.components(x, self.C, backends.UFL)
        ex = ufl.as_vector(parts) if len(parts) > 1 else parts[0]
        dx = quadrature(degree)

        w = 1 if weight is None else weight

        def relative(a: Any, b: Any) -> tuple[fem.Form, fem.Form]:
            return (
                fem.form(metric.volume(w * ufl.inner(a - b, a - b), dx)),
                fem.form(metric.volume(w * ufl.inner(b, b), dx)),
            )

        self.forms = {"error_l2": relative(u, ex)}
        if density is not None:
            self.forms["error_p"] = relative(density, ufl.inner(ex, ex))
        self.columns = tuple(self.forms)

    def __call__(self, t: float) -> dict[str, float]:
        """Relative errors at time t."""
        self.C.value[:] = self.state.coefficients(t)
        out = {}
        for k, (e, r) in self.forms.items():
            num, den = global_scalar(e, self.comm), global_scalar(r, self.comm)
            # an exact state that underflows on the mesh (e.g. a huge momentum) has no
            # relative error: NaN, not a crash of the run
            out[k] = float(np.sqrt(num / den)) if den > 0 else math.nan
        return out


class MinValue:
    """The smallest nodal value of a scalar field (undershoots are reported, not clipped)."""

    def __init__(self, u: fem.Function, name: str) -> None:
        self.u, self.columns = u, (name,)
        self.n_owned = u.function_space.dofmap.index_map.size_local

    def __call__(self, t: float) -> dict[str, float]:
        """Global min over owned dofs (collective)."""
        local = self.u.x.array[: self.n_owned]
        m = float(local.min()) if local.size else np.inf
        return {self.columns[0]: float(self.u.function_space.mesh.comm.allreduce(m, op=MPI.MIN))}


class GibbsDistance:
    """Distances of p to the stationary p∞ = e^{log w}/∫e^{log w}√g (α = 1 of (2.7)).

    Columns: ``gibbs_l1`` = ∫|p − p∞|√g, ``rel_entropy`` = ∫ p log(p/p∞)√g (p clipped
    at 0 inside the logarithm), ``free_energy`` = ∫ p (L̄ + (γ/2β) log p)√g.
    """

    columns = ("gibbs_l1", "rel_entropy", "free_energy")

    def __init__(
        self,
        p: fem.Function,
        logweight: Any,
        loss: Any,
        temperature: float,
        metric: Metric,
        degree: int,
    ) -> None:
        msh = p.function_space.mesh
        self.comm = msh.comm
        dx = quadrature(degree)
        Z = global_scalar(fem.form(metric.volume(ufl.exp(logweight), dx)), self.comm)
        if not (0 < Z < np.inf):
            raise ValueError(f"the Gibbs weight e^(-2 beta L/gamma) integrates to {Z:g} here")
        pinf = ufl.exp(logweight) / Z
        logp = ufl.ln(ufl.max_value(p, 1e-300))
        self.forms = {
            "gibbs_l1": fem.form(metric.volume(abs(p - pinf), dx)),
            "rel_entropy": fem.form(
                metric.volume(ufl.max_value(p, 0) * (logp - logweight + np.log(Z)), dx)
            ),
            "free_energy": fem.form(
                metric.volume(p * loss + temperature * ufl.max_value(p, 0) * logp, dx)
            ),
        }

    def __call__(self, t: float) -> dict[str, float]:
        """All three distances (collective)."""
        return {k: global_scalar(f, self.comm) for k, f in self.forms.items()}
