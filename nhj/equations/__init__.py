"""One module per equation; each declares a semi-discrete residual M(∂ₜu, v) + A(u; v) = 0."""

from nhj.equations.base import SemiDiscrete

__all__ = ["SemiDiscrete"]
