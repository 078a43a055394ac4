"""scheme = "exponential": the exact propagator of a separable Schrödinger operator (3.11).

nhj/separable.py claims that on a tensor-product space the semi-discrete state is
propagated exactly in time. The tests check the claim against what it implies:

* one step is the matrix exponential of the real system DOLFINx assembles on the 2D mesh
  (so the Kronecker structure is not assumed by the check), and the order-6 Gauss scheme
  on that mesh converges to it at its order;
* the state does not depend on dt (one step to T or many);
* ‖ψ‖² and ⟨ψ|H|ψ⟩ are kept to round-off (the propagator is M-unitary);
* Q_k's space error against the exact state then converges at order k + 1 with no time
  error in the way;
* a case that does not separate is refused with the field named, and the result is the
  same on 1 and 2 ranks.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
import scipy.linalg
import ufl
from dolfinx import fem
from schrodinger_helpers import rates

import nhj  # noqa: F401
from nhj.builders.schrodinger import axis_factors
from nhj.case import load_case
from nhj.diagnostics import Functionals
from nhj.problem import Problem
from nhj.registry import build, entry
from nhj.schema import CaseError
from nhj.sections import Case
from nhj.separable import SeparableExponential
from nhj.simulation import make_stepper, simulate

ROOT = Path(__file__).resolve().parents[1]
EPS = np.finfo(float).eps


def coherent(cells: int, degree: int, dt: float, t_end: float, **mesh: object) -> Case:
    """cases/coherent_2d_exact_time.toml at another resolution (ħ = 0.5, ω = (1, 2))."""
    base = load_case(ROOT / "cases" / "coherent_2d_exact_time.toml")
    case = replace(
        base,
        mesh=replace(base.mesh, cells=(cells, cells), **mesh),  # type: ignore[arg-type]
        discretisation=replace(base.discretisation, degree=degree, dt=dt, t_end=t_end),
    )
    entry(case.equation).rules(case)
    return case


def with_scheme(case: Case, scheme: str, dt: float) -> Case:
    """``case`` with another time scheme and step."""
    return replace(case, discretisation=replace(case.discretisation, scheme=scheme, dt=dt))


def final(case: Case, comm: MPI.Comm = MPI.COMM_WORLD) -> tuple[np.ndarray, float, dict]:
    """(gathered ψ dofs keyed by coordinates, error_l2 at t_end, mass/energy at 0 and end)."""
    problem = build(case, comm)
    f = Functionals(problem.u0, problem.semidiscrete.functionals)  # type: ignore[union-attr]
    before = f()
    outcome = simulate(problem, entry(case.equation).stepper)
    assert outcome.status == "completed", outcome.message
    after = f()
    (err,) = [m for m in problem.monitors if "error_l2" in m.columns]
    e = err(outcome.t)["error_l2"]
    V = problem.space
    n = V.dofmap.index_map.size_local
    x = V.tabulate_dof_coordinates()[:n, :2]
    psi = problem.u0.x.array.reshape(-1, 2)[:n]
    rows = np.hstack([np.round(x, 10), psi])
    allrows = np.vstack(comm.allgather(rows))
    allrows = allrows[np.lexsort((allrows[:, 1], allrows[:, 0]))]
    return allrows[:, 2:], e, {"before": before, "after": after}


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """Relative Euclidean distance of two dof vectors."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def expm_step(p: Problem, dt: float) -> np.ndarray:
    """expm(dt L) u₀, L = −M⁻¹A of the real system assembled from the problem's own forms.

    Dense, on the dofs free of Dirichlet conditions (those stay 0): for small problems only.
    """
    sd = p.semidiscrete
    assert sd is not None
    w, v = ufl.TrialFunction(p.space), ufl.TestFunction(p.space)
    M = fem.assemble_matrix(fem.form(sd.M(None, w, v))).to_dense()
    A = fem.assemble_matrix(fem.form(sd.operator(w, v))).to_dense()
    fixed = np.concatenate([bc.dof_indices()[0] for bc in p.bcs] + [np.array([], dtype=int)])
    free = np.setdiff1d(np.arange(M.shape[0]), fixed)
    u0 = p.u0.x.array.copy()
    L = -np.linalg.solve(M[np.ix_(free, free)], A[np.ix_(free, free)])
    out = np.zeros_like(u0)
    out[free] = scipy.linalg.expm(dt * L) @ u0[free]
    return out


def test_one_step_is_the_matrix_exponential_of_the_2d_system() -> None:
    """One step equals expm(dt L), L = −M⁻¹A of the real 2D system DOLFINx assembles.

    Q2 on 6² quadrilaterals (11² free nodes, 242 real unknowns after ψ = 0 on the walls):
    M and A are assembled from the equation's forms on the 2D mesh itself, so the check
    does not assume the Kronecker structure it tests, and scipy's expm of the dense
    242×242 L is the exact propagator to ~‖dt L‖·eps. Both sides are round-off
    apart: 1e-11 is ~1e4 eps, the conditioning of M and Φ at these sizes.
    """
    p = build(coherent(6, 2, 0.3, 0.3), MPI.COMM_SELF)
    expected = expm_step(p, 0.3)
    stepper = make_stepper(p, "linear")
    stepper.advance()
    assert rel(p.u0.x.array, expected) < 1e-11


def test_exponential_is_the_limit_of_gauss3() -> None:
    """gauss3 on the same 2D mesh approaches the exponential state as dt shrinks.

    Q3 on 16² quadrilaterals to t = 0.5. gauss3's distance to the exact propagator is its
    time error alone. Its observed order climbs towards 6 as dt·λ enters the asymptotic
    range for the interpolated ψ₀'s high modes (the nodal interpolant carries a little of
    every mode up to λ_max ~ k⁴/h²): we assert the finest pair's order is above 5 and
    below 6.3 (the scheme's order bounds it), i.e. convergence at the scheme's order, not
    to a floor.
    """
    case = coherent(16, 3, 0.5, 0.5)
    exact_t, _, _ = final(case)
    dists = [rel(final(with_scheme(case, "gauss3", dt))[0], exact_t) for dt in (0.025, 0.0125)]
    order = np.log2(dists[0] / dists[1])
    assert 5.0 < order < 6.3, (dists, order)


def test_the_state_does_not_depend_on_dt_and_invariants_are_kept() -> None:
    """One step of T, or 20 steps of T/20: the same ψ, and ‖ψ‖², ⟨H⟩ kept to round-off.

    exp(T L) = exp(dt L)^n exactly; the difference is the round-off of n applications of
    an M-unitary map of ~100 nodes per axis (~n·100·eps ≈ 1e-12). The invariants move by
    the same round-off.
    """
    case = coherent(12, 4, 1.0, 1.0)
    one, e1, _ = final(case)
    many, e20, inv = final(with_scheme(case, "exponential", 0.05))
    assert rel(many, one) < 1e-11
    assert abs(e1 - e20) < 1e-11
    for name in ("mass", "energy"):
        drift = abs(inv["after"][name] - inv["before"][name]) / abs(inv["before"][name])
        assert drift < 1e3 * EPS, (name, drift)


@pytest.mark.parametrize("degree", [2, 3])
def test_space_error_converges_at_order_k_plus_1(degree: int) -> None:
    """error_l2 against the exact coherent state falls at Q_k's order, with no time error.

    The Galerkin solution's error has the projection part O(h^{k+1}) and a phase (dispersion)
    part O(h^{2k}) that grows with t; the observed order of the finest pair therefore lies
    between k + 1 and 2k (approaching k + 1 under refinement; measured 3.35 for Q2 on
    64/128 cells, 4.23 for Q3 on 32/64). A time error would pull it towards 0, a wrong
    space below k + 1. Bounds: [k + 1 − 0.2, 2k + 0.2].
    """
    cells = (32, 64, 128) if degree == 2 else (16, 32, 64)
    errors = [final(coherent(n, degree, 1.5, 1.5))[1] for n in cells]
    r = rates(errors)
    assert degree + 1 - 0.2 < r[-1] < 2 * degree + 0.2, (errors, r)


def test_a_1d_double_well_with_zero_flux_walls(tmp_path: Path) -> None:
    """In 1D any V separates: a double well with natural walls, against expm.

    The factor is the case itself (V(x) = (x² − 1)², zero_flux walls: every node evolves).
    Same check as in 2D: one step of 0.4 on 40 P3 cells (242 real unknowns) is the matrix
    exponential of the assembled system to round-off.
    """
    text = (ROOT / "cases" / "free_packet_1d.toml").read_text()
    for a, b in [
        ("cells = [800]", "cells = [40]"),
        ("[-20.0]", "[-4.0]"),
        ("[20.0]", "[4.0]"),
        ("degree = 2", "degree = 3"),
        ('"crank_nicolson"', '"exponential"'),
        ("dt = 0.005", "dt = 0.4"),
        ("t_end = 4.0", "t_end = 0.4"),
        ("center = [-5.0]", "center = [-1.0]"),
        ("momentum = [2.0]", "momentum = [0.5]"),
    ]:
        assert a in text, a
        text = text.replace(a, b)
    text += '\n[potential]\nV = "(x0**2 - 1)**2"\n\n[boundary]\ncondition = "zero_flux"\n'
    path = tmp_path / "well.toml"
    path.write_text(text)
    case = load_case(path)
    assert case.boundary.condition == "zero_flux"

    p = build(case, MPI.COMM_SELF)
    assert not p.bcs
    expected = expm_step(p, 0.4)
    assert simulate(p, "linear").status == "completed"
    assert rel(p.u0.x.array, expected) < 1e-11


@pytest.mark.parametrize(
    "change, field",
    [
        ({"cell": None}, "mesh"),  # triangles: P_k is no tensor-product space
        ({"V": "x0*x1"}, "potential"),
        ({"g": ((1.0, 0.2), (0.2, 1.0))}, "metric.g"),
    ],
)
def test_a_case_that_does_not_separate_is_refused(change: dict, field: str) -> None:
    """Triangles, a V that couples the axes, a non-diagonal metric: CaseError naming the field."""
    case = coherent(8, 2, 0.5, 0.5)
    if "cell" in change:
        case = replace(case, mesh=replace(case.mesh, cell=None))
    elif "V" in change:
        case = replace(case, potential=replace(case.potential, V=change["V"], omega=None))
    else:
        case = replace(case, metric=replace(case.metric, entries=change["g"]))
    with pytest.raises(CaseError) as info:
        entry(case.equation).rules(case)
    assert info.value.field == field


def test_factors_of_another_space_are_refused_on_every_rank() -> None:
    """Quadrilateral factors on a triangle space: P2's nodes here are the same points, but
    its dof count is not the product (the stepper checks both, collectively)."""
    quad = coherent(4, 2, 0.5, 0.5)
    tri = replace(with_scheme(quad, "gauss3", 0.5), mesh=replace(quad.mesh, cell=None))
    p = build(tri, MPI.COMM_WORLD)
    factors = axis_factors(quad, True)
    with pytest.raises(ValueError):
        SeparableExponential(p.u0, factors, 0.5)
    moved = replace(tri, mesh=replace(tri.mesh, lower=(-6.9, -7.0)))
    with pytest.raises(ValueError):
        SeparableExponential(build(moved, MPI.COMM_WORLD).u0, factors, 0.5)


def test_too_many_nodes_per_axis_is_refused() -> None:
    """A fine 1D-style axis (P2, 2000 cells: 4001 nodes) would need dense 4001² factors."""
    case = coherent(8, 2, 0.5, 0.5)
    case = replace(case, mesh=replace(case.mesh, cells=(2000, 8)))
    with pytest.raises(CaseError) as info:
        entry(case.equation).rules(case)
    assert info.value.field == "mesh.cells" and "4001" in info.value.reason


def test_the_newton_stepped_equations_do_not_take_it(tmp_path: Path) -> None:
    """Madelung is nonlinear (a Newton stepper): the loader refuses the scheme."""
    text = (ROOT / "cases" / "madelung_coherent_2d.toml").read_text()
    text = text.replace("[discretisation]", '[discretisation]\nscheme = "exponential"', 1)
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(CaseError) as info:
        load_case(path)
    assert info.value.field == "discretisation.scheme"
    allowed = info.value.reason.split("got")[0]  # the allowed names come before "got"
    assert "implicit_midpoint" in allowed and "exponential" not in allowed


def ou_2d(tmp_path: Path, cells: int, degree: int, dt: float, t_end: float, **extra: str) -> Case:
    """An anisotropic Ornstein–Uhlenbeck case on quadrilaterals (curvature 1.5, 0.6)."""
    text = f"""equation = "fokker_planck"
[parameters]
gamma = 1.0
beta = 2.0
[mesh]
type = "rectangle"
lower = [-3.0, -4.0]
upper = [3.0, 4.0]
cells = [{cells}, {cells}]
cell = "quadrilateral"
[discretisation]
degree = {degree}
scheme = "exponential"
dt = {dt}
t_end = {t_end}
[potential]
curvature = [1.5, 0.6]
[initial]
kind = "gaussian"
center = [0.8, -0.5]
width = [0.4, 0.6]
"""
    for section, line in extra.items():
        text += f"[{section}]\n{line}\n"
    path = tmp_path / f"ou{cells}.toml"
    path.write_text(text)
    return load_case(path)


def test_fokker_planck_one_step_is_the_matrix_exponential(tmp_path: Path) -> None:
    """(2.7) on Q2, 6² quadrilaterals, zero-flux walls: one step is expm of the 2D system.

    The Fokker–Planck operator is not symmetric, so the factors come from scipy's expm of
    each axis's −M_i⁻¹A_i; the reference is expm of the whole assembled 2D system (169
    nodes), 1e-11 apart as for Schrödinger. ∫p√g is kept to round-off: A's columns sum to
    zero, so exp(dt L) keeps Mᵀ1·p; 1e3 eps over a step.
    """
    p = build(ou_2d(tmp_path, 6, 2, 0.5, 0.5), MPI.COMM_SELF)
    assert not p.bcs
    expected = expm_step(p, 0.5)
    f = Functionals(p.u0, p.semidiscrete.functionals)  # type: ignore[union-attr]
    before = f()["mass"]
    stepper = make_stepper(p, "linear")
    stepper.advance()
    assert rel(p.u0.x.array, expected) < 1e-11
    assert abs(f()["mass"] - before) / before < 1e3 * EPS


def test_fokker_planck_converges_to_the_exact_ou_transient(tmp_path: Path) -> None:
    """error_l2 against the exact OU density: Q2's order with no time error, dt-independent.

    Cells 8, 16, 32 on [-3, 3]×[-4, 4] to t = 1: the observed order of the finest pair is
    within 0.3 of 3 (a parabolic problem has no dispersion part; the pre-asymptotic range
    ends by 16 cells at these widths); 1 step or 10 give the same error to 1e-10.
    """
    errors = []
    for n in (8, 16, 32):
        p = build(ou_2d(tmp_path, n, 2, 1.0, 1.0), MPI.COMM_WORLD)
        out = simulate(p, "linear")
        assert out.status == "completed"
        (err,) = [m for m in p.monitors if "error_l2" in m.columns]
        errors.append(err(out.t)["error_l2"])
    r = rates(errors)
    assert abs(r[-1] - 3.0) < 0.3, (errors, r)
    p = build(ou_2d(tmp_path, 32, 2, 0.1, 1.0), MPI.COMM_WORLD)
    out = simulate(p, "linear")
    (err,) = [m for m in p.monitors if "error_l2" in m.columns]
    assert abs(err(out.t)["error_l2"] - errors[-1]) < 1e-10


def test_crank_nicolson_converges_to_it_at_order_2(tmp_path: Path) -> None:
    """Crank–Nicolson's (2.7) state on the same 2D mesh approaches the exponential one as dt².

    Q2 on 16² cells to t = 1, dt = 0.01 and 0.005: the distance is CN's time error alone
    and falls by 4 (order within 0.1 of 2; measured 1.6e-5 → 4.1e-6).
    """
    case = ou_2d(tmp_path, 16, 2, 1.0, 1.0)
    p = build(case, MPI.COMM_WORLD)
    simulate(p, "linear")
    exact_t = p.u0.x.array.copy()
    dists = []
    for dt in (0.01, 0.005):
        q = build(with_scheme(case, "crank_nicolson", dt), MPI.COMM_WORLD)
        assert simulate(q, "linear").status == "completed"
        dists.append(rel(q.u0.x.array, exact_t))
    assert abs(np.log2(dists[0] / dists[1]) - 2.0) < 0.1, dists


def test_fokker_planck_that_does_not_separate_is_refused(tmp_path: Path) -> None:
    """A loss expression in 2D, or an off-diagonal κ: CaseError naming the field."""
    case = ou_2d(tmp_path, 6, 2, 0.5, 0.5)
    loss = replace(case, potential=replace(case.potential, curvature=None, loss="x0*x1"))
    with pytest.raises(CaseError) as info:
        entry(loss.equation).rules(loss)
    assert info.value.field == "potential.loss"
    kappa = replace(case, noise=replace(case.noise, kappa=((1.0, 0.3), (0.3, 1.0))))
    with pytest.raises(CaseError) as info:
        entry(kappa.equation).rules(kappa)
    assert info.value.field == "noise.kappa"


@pytest.mark.mpi
def test_same_state_on_every_partition() -> None:
    """Distributed over COMM_WORLD or whole on each rank: the same ψ and error to round-off."""
    case = coherent(10, 3, 0.25, 0.5)
    dist, e_dist, _ = final(case, MPI.COMM_WORLD)
    whole, e_whole, _ = final(case, MPI.COMM_SELF)
    assert rel(dist, whole) < 1e-12
    assert abs(e_dist - e_whole) < 1e-12


def test_stepper_state_round_trip() -> None:
    """get_state/set_state (checkpoints) continue to the same ψ as an uninterrupted run."""
    case = coherent(8, 2, 0.25, 0.5)
    whole, _, _ = final(case)
    p = build(case, MPI.COMM_WORLD)
    s = make_stepper(p, "linear")
    s.advance()
    state = s.get_state()
    p.u0.x.array[:] = 0.0
    s.set_state(state)
    s.advance()
    assert s.t == pytest.approx(0.5) and s.steps == 2
    n = p.space.dofmap.index_map.size_local
    x = p.space.tabulate_dof_coordinates()[:n, :2]
    rows = np.hstack([np.round(x, 10), p.u0.x.array.reshape(-1, 2)[:n]])
    rows = np.vstack(MPI.COMM_WORLD.allgather(rows))
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    assert rel(rows[:, 2:], whole) < 1e-13
