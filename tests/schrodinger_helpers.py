"""Shared set-up for Schrödinger tests: a Gaussian state stepped with the library API."""

from __future__ import annotations

from dataclasses import dataclass

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem, mesh

import nhj  # noqa: F401  (orders dolfinx_solver first)
from nhj import backends
from nhj.covariant import Metric
from nhj.diagnostics import ExactError, Functionals
from nhj.equations.schrodinger import Schrodinger
from nhj.exact import GaussianState
from nhj.meshes import boundary_facets
from nhj.simulation import Every, Simulation, Stop, linear_stepper


@dataclass
class Outcome:
    """Result of a short run."""

    error: float
    mass: list[float]
    energy: list[float]
    u: fem.Function


def interval(n: int, a: float = -10.0, b: float = 10.0) -> mesh.Mesh:
    """A 1D mesh of n cells."""
    return mesh.create_interval(MPI.COMM_WORLD, n, [a, b])


def square(n: int, a: float = -6.0, b: float = 6.0) -> mesh.Mesh:
    """A 2D triangle mesh of n×n squares."""
    return mesh.create_rectangle(MPI.COMM_WORLD, [[a, a], [b, b]], [n, n])


def evolve(
    msh: mesh.Mesh,
    state: GaussianState,
    degree: int,
    dt: float,
    t_end: float,
    scheme: str = "crank_nicolson",
    metric: Metric | None = None,
    record_every: int = 0,
) -> Outcome:
    """Step ψ from the exact initial state to t_end; error against the exact state."""
    dim = msh.geometry.dim
    metric = metric or Metric.flat(dim)
    V = state.potential(ufl.SpatialCoordinate(msh), backends.UFL)
    eq = Schrodinger(metric, V, state.hbar, state.m)
    W = fem.functionspace(msh, ("Lagrange", degree, (2,)))
    u = fem.Function(W)
    C0 = state.coefficients(0.0)
    u.interpolate(lambda x: np.vstack(state.psi(x, C0, backends.NUMPY)))
    dofs = fem.locate_dofs_topological(W, msh.topology.dim - 1, boundary_facets(msh))
    bcs = [fem.dirichletbc(np.zeros(2), dofs, W)]
    sd = eq.semidiscrete(W)
    stepper = linear_stepper(sd, scheme, u, dt, bcs)
    functionals = Functionals(u, sd.functionals)
    masses, energies = [], []
    n = int(round(t_end / dt))

    def record(t: float, step: int) -> None:
        f = functionals()
        masses.append(f["mass"])
        energies.append(f["energy"])

    # every `record_every` steps and at the end; only at the start and the end without it
    with Simulation(stepper, [Every(record_every or n, record)], msh.comm, dt=dt) as sim:
        outcome = sim.run(Stop(steps=n))
    assert outcome.status == "completed", outcome.message
    error = ExactError(u, state, metric, degree)(outcome.t)["error_l2"]
    return Outcome(error, masses, energies, u)


def rates(errors: list[float], factor: float = 2.0) -> np.ndarray:
    """Observed orders log(e_k/e_{k+1})/log(factor)."""
    e = np.asarray(errors)
    return np.log(e[:-1] / e[1:]) / np.log(factor)
