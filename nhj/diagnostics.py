"""Global scalars of the state: one helper assembles and reduces them all.

Every diagnostic (mass, energy, errors) is an integral assembled on each rank
and summed with ``comm.allreduce``, so all ranks hold the same value and may
take the same branch; only rank 0 writes it out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem

from nhj import backends
from nhj.covariant import Metric
from nhj.exact import GaussianState


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
    """Relative L2 error ‖u − ψ_ex‖/‖ψ_ex‖ (√g-weighted) against a Gaussian state."""

    def __init__(self, u: fem.Function, state: GaussianState, metric: Metric, degree: int) -> None:
        msh = u.function_space.mesh
        self.state, self.comm = state, msh.comm
        self.C = fem.Constant(msh, state.coefficients(0.0))
        x = ufl.SpatialCoordinate(msh)
        re, im = state.psi(x, self.C, backends.UFL)
        ex = ufl.as_vector((re, im))
        dx = quadrature(degree)
        self.err = fem.form(metric.volume(ufl.inner(u - ex, u - ex), dx))
        self.ref = fem.form(metric.volume(ufl.inner(ex, ex), dx))

    def __call__(self, t: float) -> float:
        """Relative error at time t."""
        self.C.value[:] = self.state.coefficients(t)
        return float(np.sqrt(global_scalar(self.err, self.comm) / global_scalar(self.ref, self.comm)))
