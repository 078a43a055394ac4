"""Math backends: one formula, evaluated as UFL or as numpy.

Exact solutions and parsed case expressions are written once against a
backend ``M`` (``M.exp``, ``M.sin``, …). ``UFL`` builds symbolic expressions
for finite-element forms; ``NUMPY`` evaluates at points (interpolation, checks
at mesh vertices). Keeping one formula for both is what makes the exact
solution in an error form and the one in an interpolation provably the same.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
import numpy as np
import ufl


UFL = SimpleNamespace(
    sin=ufl.sin, cos=ufl.cos, tan=ufl.tan, asin=ufl.asin, acos=ufl.acos, atan=ufl.atan,
    atan2=ufl.atan2, sinh=ufl.sinh, cosh=ufl.cosh, tanh=ufl.tanh, exp=ufl.exp, log=ufl.ln,
    sqrt=ufl.sqrt, abs=abs, erf=ufl.erf, sign=ufl.sign, min=ufl.min_value, max=ufl.max_value,
    pi=math.pi, e=math.e,
)

NUMPY = SimpleNamespace(
    sin=np.sin, cos=np.cos, tan=np.tan, asin=np.arcsin, acos=np.arccos, atan=np.arctan,
    atan2=np.arctan2, sinh=np.sinh, cosh=np.cosh, tanh=np.tanh, exp=np.exp, log=np.log,
    sqrt=np.sqrt, abs=np.abs, erf=np.vectorize(math.erf, otypes=[float]), sign=np.sign,
    min=np.minimum, max=np.maximum, pi=math.pi, e=math.e,
)
