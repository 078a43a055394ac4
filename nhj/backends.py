"""Math backends: one formula, evaluated as UFL or as numpy.

Exact solutions (:mod:`nhj.exact`) and parsed case expressions
(:mod:`nhj.expressions`) are written once against a backend ``M``
(``M.exp(-x**2) * M.cos(M.pi * y)``) instead of twice. :data:`UFL` builds
symbolic expressions for finite-element forms (error functionals, potentials,
diffusion tensors); :data:`NUMPY` evaluates the same formula at points
(interpolation of initial data, checks at dof coordinates, particle
references). Keeping one formula for both is what makes the exact solution in
an error form and the one that is interpolated provably the same function.

Both backends have the same attributes:

============  ===========================  ====================
name          UFL                          numpy
============  ===========================  ====================
sin ... tanh  ufl.sin ... ufl.tanh         np.sin ... np.tanh
asin/acos     ufl.asin / ufl.acos          np.arcsin / np.arccos
atan          ufl.atan                     np.arctan
atan2(y, x)   ufl.atan2                    np.arctan2
exp, log      ufl.exp, ufl.ln (natural)    np.exp, np.log
sqrt, abs     ufl.sqrt, abs                np.sqrt, np.abs
erf           ufl.erf                      scipy.special.erf
sign          ufl.sign                     np.sign
min, max      ufl.min_value / max_value    np.minimum / np.maximum
pi, e         math.pi, math.e              math.pi, math.e
dot(A, B)     ufl.dot                      np.matmul (batched)
============  ===========================  ====================

The numpy backend also has ``matrix_power(G, p)`` of SPD matrices (batched,
by eigen-decomposition); UFL powers of a metric are built by
:func:`nhj.equations.learning.matrix_power`, which needs to know whether g is
constant.

The UFL functions also accept plain real numbers (``M.sqrt(2) * x[0]``): if
every argument is a number the value is computed with numpy and returned as a
Python ``float``, so constant sub-expressions stay numbers instead of becoming
UFL trees (or failing, as ``ufl.sign(2.0)`` or ``ufl.min_value`` would).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.special
import ufl

__all__ = ["FUNCTION_NAMES", "NUMPY", "UFL"]

#: Names of the functions every backend provides (constants ``pi``, ``e`` aside).
FUNCTION_NAMES: tuple[str, ...] = (
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "atan2",
    "sinh",
    "cosh",
    "tanh",
    "exp",
    "log",
    "sqrt",
    "abs",
    "erf",
    "sign",
    "min",
    "max",
)


def _matrix_power_np(G: np.ndarray, power: float) -> np.ndarray:
    """G^power of symmetric positive definite matrices (..., K, K), batched.

    K ≤ 2 in closed form: a particle step takes powers of 10⁴–10⁵ small matrices, and
    LAPACK's per-matrix eigh cost more than the arithmetic (5 s of a 19 s Langevin test).
    For 2×2, G^p = f(λ₂) I + [f(λ₁) − f(λ₂)]/(λ₁ − λ₂) (G − λ₂ I) with f = x^p (Newton's
    form of Sylvester's formula): exact for distinct eigenvalues, and stable as they merge,
    since ‖G − λ₂ I‖ ~ λ₁ − λ₂ cancels the divided difference's rounding.
    """
    K = G.shape[-1]
    if K == 1:
        return G**power
    if K != 2:
        w, Q = np.linalg.eigh(G)
        return (Q * w[..., None, :] ** power) @ np.swapaxes(Q, -1, -2)
    a, b, d = G[..., 0, 0], 0.5 * (G[..., 0, 1] + G[..., 1, 0]), G[..., 1, 1]
    l1 = 0.5 * (a + d) + np.hypot(0.5 * (a - d), b)
    l2 = (a * d - b * b) / l1  # not l1 − 2r: no cancellation when G is ill-conditioned
    f1, f2 = l1**power, l2**power
    gap = l1 - l2
    with np.errstate(invalid="ignore", divide="ignore"):
        dd = np.where(gap > 0, (f1 - f2) / np.where(gap > 0, gap, 1.0), power * l1 ** (power - 1))
    eye = np.eye(2)
    return dd[..., None, None] * (G - l2[..., None, None] * eye) + f2[..., None, None] * eye


def _erf(x: Any) -> Any:
    """The error function of numbers or arrays (a float for a number)."""
    y = scipy.special.erf(x)
    return float(y) if np.ndim(y) == 0 else y


NUMPY = SimpleNamespace(
    sin=np.sin,
    cos=np.cos,
    tan=np.tan,
    asin=np.arcsin,
    acos=np.arccos,
    atan=np.arctan,
    atan2=np.arctan2,
    sinh=np.sinh,
    cosh=np.cosh,
    tanh=np.tanh,
    exp=np.exp,
    log=np.log,
    sqrt=np.sqrt,
    abs=np.abs,
    erf=_erf,
    sign=np.sign,
    min=np.minimum,
    max=np.maximum,
    dot=np.matmul,
    matrix_power=_matrix_power_np,
    pi=math.pi,
    e=math.e,
)
"""The numpy backend: functions of arrays (or numbers), elementwise."""


def _number_safe(ufl_f: Callable[..., Any], numpy_f: Callable[..., Any]) -> Callable[..., Any]:
    """``ufl_f``, except that arguments that are all real numbers go to ``numpy_f``."""

    def f(*args: Any) -> Any:
        if all(isinstance(a, Real) for a in args):
            return float(numpy_f(*(float(a) for a in args)))
        return ufl_f(*args)

    f.__name__ = f.__qualname__ = getattr(ufl_f, "__name__", "f")
    f.__doc__ = getattr(ufl_f, "__doc__", None)
    return f


_UFL_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sin": ufl.sin,
    "cos": ufl.cos,
    "tan": ufl.tan,
    "asin": ufl.asin,
    "acos": ufl.acos,
    "atan": ufl.atan,
    "atan2": ufl.atan2,
    "sinh": ufl.sinh,
    "cosh": ufl.cosh,
    "tanh": ufl.tanh,
    "exp": ufl.exp,
    "log": ufl.ln,
    "sqrt": ufl.sqrt,
    "abs": abs,
    "erf": ufl.erf,
    "sign": ufl.sign,
    "min": ufl.min_value,
    "max": ufl.max_value,
}

UFL = SimpleNamespace(
    **{name: _number_safe(f, getattr(NUMPY, name)) for name, f in _UFL_FUNCTIONS.items()},
    dot=ufl.dot,
    pi=math.pi,
    e=math.e,
)
"""The UFL backend: symbolic functions of UFL expressions (numbers stay numbers)."""
