"""The whitelisted expression grammar: numpy and UFL values agree; anything else is rejected."""

from __future__ import annotations

import math
import re
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
import ufl
from dolfinx import fem, mesh

import nhj  # noqa: F401  (orders MPI before dolfinx for the PyPI wheel)
from nhj import backends, expressions
from nhj.expressions import (
    FUNCTIONS,
    MAX_LENGTH,
    MAX_TREE_DEPTH,
    Binary,
    Call,
    ExpressionError,
    Num,
    Unary,
    Var,
    parse,
    to_numpy,
    to_ufl,
)
from nhj.schema import CaseError

NAMES = ("x0", "x1", "t", "gamma", "beta", "hbar", "m")
X0 = np.array([0.3, -1.2, 2.0, 0.0, -0.05])
X1 = np.array([0.5, 0.25, -0.7, 1.5, -0.9])
ENV = {"x0": X0, "x1": X1, "t": 0.75, "gamma": 1.0, "beta": 0.5, "hbar": 2.0, "m": 1.0}
ERF = np.vectorize(math.erf)


def values(text: str, env: dict | None = None) -> np.ndarray:
    """``text`` parsed with all test names and evaluated with numpy."""
    return to_numpy(parse(text, field="f", names=NAMES), ENV if env is None else env)


# ------------------------------------------------------------------------------- numpy


@pytest.mark.parametrize(
    "text, expected",
    [
        # numbers
        ("1e-3*x0 + .5", 1e-3 * X0 + 0.5),
        ("2.5E+1 - 5. + 1E2*x1", 25.0 - 5.0 + 100.0 * X1),
        ("007 + 0.125", 7.125),
        # precedence and associativity
        ("1 - 2 - 3", -4.0),
        ("8/4/2", 1.0),
        ("2 + 3*4 - 10/5", 12.0),
        ("-x0**2", -(X0**2)),
        ("(-x0)**2", X0**2),
        ("-2**2", -4.0),
        ("2**3**2", 512.0),
        ("(2**3)**2", 64.0),
        ("2**-1 * x1", 0.5 * X1),
        ("2**-x1", 2.0 ** (-X1)),
        ("-x1**-2", -(X1**-2.0)),
        ("--x0 + +x1 - -1", X0 + X1 + 1),
        ("x0*x1**2/4", X0 * X1**2 / 4),
        ("x0 - x1*x0 / (1 + x1**2)", X0 - X1 * X0 / (1 + X1**2)),
        ("  x0\n\t+ x1  ", X0 + X1),
        # constants and parameters
        ("pi*e", math.pi * math.e),
        ("0.5*m*(hbar/gamma)**2*(x0**2 + 4*x1**2) + beta*t", 0.5 * 4 * (X0**2 + 4 * X1**2) + 0.375),
        (
            "exp(-(x0-1)**2/0.25) * cos(2*pi*x1)",
            np.exp(-((X0 - 1) ** 2) / 0.25) * np.cos(2 * np.pi * X1),
        ),
        # every function
        ("sin(x0) + cos(x1) + tan(x0/2)", np.sin(X0) + np.cos(X1) + np.tan(X0 / 2)),
        (
            "asin(x0/3) + acos(x1/2) + atan(x0)",
            np.arcsin(X0 / 3) + np.arccos(X1 / 2) + np.arctan(X0),
        ),
        ("atan2(x1, x0)", np.arctan2(X1, X0)),
        ("sinh(x0) - cosh(x1) * tanh(x0)", np.sinh(X0) - np.cosh(X1) * np.tanh(X0)),
        ("exp(x0) + log(x1**2 + 1) + log(e)", np.exp(X0) + np.log(X1**2 + 1) + 1),
        ("sqrt(abs(x0)) + abs(x1)", np.sqrt(np.abs(X0)) + np.abs(X1)),
        ("erf(x0) - erf(-x1)", ERF(X0) + ERF(X1)),
        ("sign(x0) + 10*sign(x1)", np.sign(X0) + 10 * np.sign(X1)),
        ("min(x0, x1) + max(x0, 0)", np.minimum(X0, X1) + np.maximum(X0, 0)),
        # functions of constants only
        ("sqrt(2)*x0 + sign(-3) + min(1, 2) + erf(0.5)", np.sqrt(2) * X0 - 1 + 1 + math.erf(0.5)),
    ],
)
def test_numpy_values(text: str, expected: np.ndarray) -> None:
    """Precedence, associativity, numbers and functions evaluate as in mathematics."""
    got = values(text)
    np.testing.assert_allclose(
        np.broadcast_to(got, np.shape(expected)), expected, rtol=1e-13, atol=1e-15
    )


def test_number_only_expression_is_a_number() -> None:
    """An expression of numbers evaluates to a plain float in numpy."""
    v = values("2*sqrt(4) - 1e1/4")
    assert isinstance(v, float) and v == 1.5


def test_names_and_tree() -> None:
    """The tree has the expected shape; ``names`` lists variables, not constants."""
    e = parse("-x0**2 + sin(x1)/gamma - pi", field="f", names=NAMES)
    assert e.names == {"x0", "x1", "gamma"}
    assert e == Binary(
        "-",
        Binary(
            "+",
            Unary("-", Binary("**", Var("x0"), Num(2.0))),
            Binary("/", Call("sin", (Var("x1"),)), Var("gamma")),
        ),
        Var("pi"),
    )
    assert parse("2*e", field="f", names=NAMES).names == frozenset()
    with pytest.raises(AttributeError):
        e.op = "+"  # type: ignore[misc]  # frozen
    assert hash(e) == hash(parse("-x0**2 + sin(x1)/gamma - pi", field="f", names=NAMES))


@pytest.mark.parametrize(
    "text",
    [
        "-x0**2 + sin(x1)/gamma - pi",
        "2**-1**x0",
        "--x0",
        "atan2(-x1, x0) * 1e-300",
        "min(max(x0, x1), 0.1) / (1 + t)",
        "(((x0)))",
        "1/3*x0",
    ],
)
def test_str_roundtrip(text: str) -> None:
    """The canonical print parses back to the same tree and the same values."""
    e = parse(text, field="f", names=NAMES)
    again = parse(str(e), field="f", names=NAMES)
    assert again == e and str(again) == str(e)
    np.testing.assert_array_equal(to_numpy(again, ENV), to_numpy(e, ENV))


def test_str_is_canonical() -> None:
    """Spacing, redundant parentheses and number spelling do not change the print."""
    a = parse("x0*2 + 1", field="f", names=NAMES)
    b = parse("((x0) * 2.0)+1.", field="f", names=NAMES)
    assert str(a) == str(b) == "((x0 * 2.0) + 1.0)"


def test_missing_variable() -> None:
    """A variable without a value is an ExpressionError naming the field and the variable."""
    e = parse("x0 + gamma", field="potential.V", names=NAMES)
    with pytest.raises(ExpressionError, match=r"^potential\.V: no value for variable 'gamma'"):
        to_numpy(e, {"x0": X0}, field="potential.V")
    with pytest.raises(ExpressionError, match="^expression: "):
        to_ufl(e, {"x0": 1.0})


def test_long_sum_within_limits() -> None:
    """A sum of MAX_TREE_DEPTH terms is accepted (and one more term is not)."""
    n = MAX_TREE_DEPTH
    assert values("+".join(["x0"] * n)) == pytest.approx(n * X0)
    with pytest.raises(ExpressionError, match="tree deeper"):
        parse("+".join(["x0"] * (n + 1)), field="f", names=NAMES)
    grouped = "+".join(["(" + "+".join(["x0"] * 50) + ")"] * 4)
    assert values(grouped) == pytest.approx(200 * X0)


# --------------------------------------------------------------------------------- UFL


@pytest.fixture(scope="module")
def p2() -> fem.FunctionSpace:
    """P2 on a 4x4 unit square."""
    msh = mesh.create_unit_square(MPI.COMM_WORLD, 4, 4)
    return fem.functionspace(msh, ("Lagrange", 2))


@pytest.mark.parametrize(
    "text",
    [
        "exp(-(x0 - 0.3)**2/0.25) * cos(2*pi*x1) + sqrt(2)*x0*x1 - atan2(x1 + 1, x0 + 1)",
        "0.5*m*(hbar/gamma)**2*(x0**2 + 4*x1**2) - 2**-x0**2 + t",
        "sin(x0) + tan(x1/2) + asin(x0/2) + acos(x1/3) + atan(x0 - x1)",
        "sinh(x0) + cosh(x1)/tanh(x0 + 1) + log(1 + x0*x1) + erf(x0 - 0.5)",
        "abs(x0 - 0.5) + sign(x1 - 0.55) + min(x0, x1) - max(x0, 1 - x1) + sqrt(3) + erf(1)",
    ],
)
def test_ufl_agrees_with_numpy(p2: fem.FunctionSpace, text: str) -> None:
    """The same tree interpolated as UFL equals its numpy values at the dof coordinates."""
    msh = p2.mesh
    e = parse(text, field="f", names=NAMES)
    x = ufl.SpatialCoordinate(msh)
    env_ufl = {"x0": x[0], "x1": x[1], "t": fem.Constant(msh, 0.75)}
    env_ufl |= {k: fem.Constant(msh, float(ENV[k])) for k in ("gamma", "beta", "hbar", "m")}
    f = fem.Function(p2)
    f.interpolate(fem.Expression(to_ufl(e, env_ufl), p2.element.interpolation_points))
    pts = p2.tabulate_dof_coordinates()
    ref = to_numpy(e, {**ENV, "x0": pts[:, 0], "x1": pts[:, 1]})
    np.testing.assert_allclose(f.x.array, ref, rtol=1e-12, atol=1e-12)


def test_ufl_of_numbers_only(p2: fem.FunctionSpace) -> None:
    """An expression without variables becomes a UFL constant of the right value."""
    u = to_ufl(parse("sqrt(2) + sign(-3)*min(pi, 4) + erf(0.5)", field="f", names=NAMES), {})
    assert isinstance(u, ufl.core.expr.Expr)
    expected = math.sqrt(2) - math.pi + math.erf(0.5)
    assert float(u) == pytest.approx(expected, rel=1e-15)
    area = fem.assemble_scalar(fem.form(u * ufl.dx(domain=p2.mesh)))
    assert MPI.COMM_WORLD.allreduce(area, op=MPI.SUM) == pytest.approx(expected, rel=1e-12)


def test_backends_have_every_function() -> None:
    """Every whitelisted function exists in both backends; UFL keeps numbers numbers."""
    assert set(FUNCTIONS) == set(backends.FUNCTION_NAMES)
    for name, arity in FUNCTIONS.items():
        args = (0.4, 0.7)[:arity]
        u, n = getattr(backends.UFL, name)(*args), getattr(backends.NUMPY, name)(*args)
        assert isinstance(u, float) and u == pytest.approx(float(n), rel=1e-15), name
    assert backends.UFL.pi == backends.NUMPY.pi == math.pi
    assert backends.UFL.e == backends.NUMPY.e == math.e
    assert backends.UFL.log(math.e) == pytest.approx(1.0)


# --------------------------------------------------------------------------- rejection

BAD = [
    # code
    "__import__('os')",
    "__import__",
    "x0.real",
    "x0.__class__",
    "x0[0]",
    "open('f')",
    "lambda: 1",
    "lambda x0: x0",
    "import os",
    "os.system('ls')",
    "exec('1')",
    "eval('1')",
    "__builtins__",
    "x0 if x0 else 1",
    "[x0]",
    "{x0}",
    "{'a': 1}",
    "'s'",
    '"s"',
    "f'{x0}'",
    "b'x'",
    "x0 @ x1",
    "x0 % 2",
    "x0 // 2",
    "~x0",
    "x0 < 1",
    "x0 == 1",
    "not x0",
    "x0 and x1",
    "a=1",
    "x0 := 1",
    "x0;1",
    "x0 # comment",
    "\\x0",
    "x0\\\n+1",
    "x0\x00",
    "$x0",
    "`x0`",
    "x0 ! 1",
    "x0 & x1",
    "x0 | x1",
    "x0 ? 1 : 2",
    "True",
    "None",
    "pow(x0, 2)",
    "math.pi",
    "np.sin(x0)",
    # grammar
    "x0 ^ 2",
    "y",
    "X0",
    "x3",
    "",
    "   ",
    "\n",
    "1 +",
    "(1",
    "1)",
    "()",
    "(x0))",
    "1 2",
    "x0 x1",
    "2x0",
    "1e",
    "1e+",
    "1..2",
    "1.2.3",
    ".",
    "e1",
    "x0 ** ",
    "** 2",
    "*x0",
    "/x0",
    "x0,x1",
    "1, 2",
    "sin",
    "sin x0",
    "sin()",
    "sin(x0, x1)",
    "sin(x0,)",
    "atan2(x0)",
    "min(x0, x1, 1)",
    "foo(x0)",
    "Sin(x0)",
    "pi(2)",
    "x0(2)",
    "e(1)",
    "x0 $ 1",
    # unicode look-alikes
    "٣*x0",
    "x0²",
    "ｘ0",
    "x0 − 1",
    "x0·x1",
    "π",
    "x0 ×2",
    # constants that are not finite real numbers
    "1/0",
    "x0 + 1/(1-1)",
    "0**-1",
    "(-8)**(1/3)",
    "10**400",
    "1e999",
    "exp(1000)",
    "sqrt(-1)",
    "log(0)",
    "asin(2)",
    "2**2**2**2**2",
    # size
    "(" * 101 + "x0" + ")" * 101,
    "sin(" * 101 + "x0" + ")" * 101,
    "-" * 101 + "x0",
    "x0**" * 101 + "1",
    "2**" * 1300 + "1",
    "-" * 3999 + "1",
    "+".join(["x0"] * 1000),
    "x0+" * 2000 + "1",
    "1" * (MAX_LENGTH + 1),
    " " * (MAX_LENGTH + 1),
]


@pytest.mark.parametrize("text", BAD)
def test_rejected(text: str) -> None:
    """Anything outside the grammar is an ExpressionError: one line, naming the field."""
    with pytest.raises(ExpressionError) as err:
        parse(text, field="potential.V", names=NAMES)
    msg = str(err.value)
    assert msg.startswith("potential.V: ") and "\n" not in msg and "\r" not in msg
    assert "allowed: numbers, + - * / **" in msg
    assert "variables beta gamma hbar m t x0 x1" in msg
    assert len(msg) < 600
    assert isinstance(err.value, CaseError) and err.value.field == "potential.V"


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("x0 ^ 2", r"'\^' is not a power operator \(write x0\*\*2\) at column 4 "),
        ("x0 + y", r"unknown name 'y' at column 6 in 'x0 \+ y'"),
        ("x0.real", r"unexpected character '\.' at column 3"),
        ("open('f')", r"unknown function 'open' at column 1"),
        ("a=1", r"unknown name 'a' at column 1"),
        ("lambda: 1", r"unknown name 'lambda' at column 1"),
        ("pi(2)", r"constant 'pi' is not a function at column 1"),
        ("__import__('os')", r"unknown function '__import__' at column 1"),
        ("1 +", r"unexpected end of expression at column 4"),
        ("(1", r"expected '\)' to close '\(' of column 1, found end of expression"),
        ("2x0", r"unexpected 'x0' \(missing operator\?\) at column 2"),
        ("sin(x0, x1)", r"sin takes 1 argument, got 2 at column 1"),
        ("x0(2)", r"variable 'x0' is not a function"),
        ("sin", r"function 'sin' needs arguments"),
        ("", r"empty expression"),
        ("1/0", r"constant \(1\.0 / 0\.0\) is not a finite real number .* at column 2"),
        ("(" * 101 + "x0" + ")" * 101, r"nesting .* deeper than 100 at column 101"),
        ("1" * (MAX_LENGTH + 1), r"longer than 4000"),
    ],
)
def test_rejection_messages(text: str, pattern: str) -> None:
    """Messages name the offending token and its (1-based) column."""
    with pytest.raises(ExpressionError, match=pattern):
        parse(text, field="f", names=NAMES)


def test_long_text_is_excerpted() -> None:
    """An error deep in a long text quotes only the part around the offending token."""
    text = "sin(x0)*x1 - " * 60 + "y"
    with pytest.raises(ExpressionError) as err:
        parse(text, field="f", names=NAMES)
    assert f"column {len(text)}" in str(err.value) and len(str(err.value)) < 400


@pytest.mark.parametrize("value", [None, 1.0, 2, ["x0"], b"x0", {"x0": 1}])
def test_non_string(value: object) -> None:
    """Only strings are expressions."""
    with pytest.raises(ExpressionError, match=r"^f: must be an expression string"):
        parse(value, field="f", names=NAMES)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["sin", "pi", "e", "x-1", "1x", "ｘ", ""])
def test_bad_variable_names_are_a_programming_error(name: str) -> None:
    """Callers cannot declare function or constant names, or non-identifiers, as variables."""
    with pytest.raises(ValueError, match="cannot be an expression variable"):
        parse("1", field="f", names=("x0", name))


def test_no_code_execution_in_source() -> None:
    """The grammar is implemented without Python's evaluators or parsers."""
    source = Path(expressions.__file__).read_text(encoding="utf-8")
    words = r"\b(eval|exec|compile|literal_eval|sympify|pickle|__import__|getattr\(__builtins__)\b"
    code = [line for line in source.splitlines() if not line.lstrip().startswith(("#", "*"))]
    assert not re.search(words + r"\s*\(", "\n".join(code))
    assert not re.search(r"^\s*(import|from)\s+(ast|sympy|pickle|builtins)\b", source, re.M)
