"""The whitelisted expression grammar: values in numpy and UFL agree; code is rejected."""

from __future__ import annotations

import nhj  # noqa: F401

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem, mesh

from nhj.expressions import ExpressionError, parse, to_numpy, to_ufl

X = np.array([[0.3, -1.2, 2.0], [0.5, 0.25, -0.7]])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("-x0**2", -X[0] ** 2),
        ("2**-1 * x1", 0.5 * X[1]),
        ("2**3**2", 2.0**9),
        ("1e-3*x0 + .5", 1e-3 * X[0] + 0.5),
        ("(x0 - x1)/(1 + x1**2)", (X[0] - X[1]) / (1 + X[1] ** 2)),
        ("exp(-x0**2)*cos(2*pi*x1)", np.exp(-X[0] ** 2) * np.cos(2 * np.pi * X[1])),
        ("atan2(x1, x0) + sqrt(abs(x0)) - log(e)", np.arctan2(X[1], X[0]) + np.sqrt(np.abs(X[0])) - 1),
        ("tanh(x0) + sinh(x1) - cosh(x0) + erf(x1)", np.tanh(X[0]) + np.sinh(X[1]) - np.cosh(X[0])
         + np.array([0.5204998778, 0.2763263902, -0.6778011938])),
        ("min(x0, x1) + max(x0, 0)", np.minimum(X[0], X[1]) + np.maximum(X[0], 0)),
        ("gamma/beta*x0", 2.0 * X[0]),
    ],
)
def test_numpy_values(text: str, expected: np.ndarray) -> None:
    """Precedence, associativity and functions evaluate as in mathematics."""
    e = parse(text, field="f", names=("x0", "x1", "gamma", "beta"))
    env = {"x0": X[0], "x1": X[1], "gamma": 1.0, "beta": 0.5}
    assert np.allclose(to_numpy(e, env), expected, rtol=1e-9, atol=1e-12)


def test_ufl_agrees_with_numpy() -> None:
    """The same tree interpolated as UFL equals its numpy values at the dof coordinates."""
    msh = mesh.create_unit_square(MPI.COMM_WORLD, 4, 4)
    V = fem.functionspace(msh, ("Lagrange", 2))
    text = "exp(-(x0 - 0.3)**2/0.25) * cos(2*pi*x1) + sqrt(2)*x0*x1 - atan2(x1 + 1, x0 + 1)"
    e = parse(text, field="f", names=("x0", "x1"))
    x = ufl.SpatialCoordinate(msh)
    f = fem.Function(V)
    f.interpolate(fem.Expression(to_ufl(e, {"x0": x[0], "x1": x[1]}), V.element.interpolation_points))
    pts = V.tabulate_dof_coordinates()
    ref = to_numpy(e, {"x0": pts[:, 0], "x1": pts[:, 1]})
    assert np.allclose(f.x.array, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')", "x0.real", "x0[0]", "open('f')", "lambda: 1", "x0 ^ 2", "y", "",
        "1 +", "(1", "a=1", "x0;1", "'s'", "sin(x0, x1)", "foo(x0)", "1 2", "x0 $ 1",
        "(" * 200 + "x0" + ")" * 200, "x0+" * 2000 + "1",
    ],
)
def test_rejected(text: str) -> None:
    """Anything outside the grammar is an ExpressionError: one line, naming the field."""
    with pytest.raises(ExpressionError) as err:
        parse(text, field="potential.V", names=("x0", "x1"))
    msg = str(err.value)
    assert msg.startswith("potential.V: ") and "\n" not in msg


def test_names_and_str_roundtrip() -> None:
    """The printed tree parses back to the same tree; free variables are reported."""
    e = parse("-x0**2 + sin(x1)/gamma - pi", field="f", names=("x0", "x1", "gamma"))
    assert e.names == {"x0", "x1", "gamma"}
    assert parse(str(e), field="f", names=("x0", "x1", "gamma")) == e
