"""Primitives for validating TOML case tables.

Every case section is a frozen dataclass built by a ``from_table`` classmethod
that uses these helpers, so that every bad input produces the same kind of
one-line message: ``<section.field>: <what is wrong>; <what is allowed>``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any


class CaseError(ValueError):
    """A case file (or CLI input) that cannot be run, with a one-line reason.

    Attributes:
        field: Dotted path of the offending field, e.g. ``"parameters.gamma"``.
        reason: What is wrong and what is allowed.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def join(section: str, key: str) -> str:
    """Dotted field name of ``key`` inside ``section`` (which may be empty)."""
    return f"{section}.{key}" if section else key


def check_keys(table: Mapping[str, Any], allowed: Collection[str], section: str) -> None:
    """Reject keys of ``table`` that are not in ``allowed``."""
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise CaseError(
            join(section, unknown[0]),
            f"unknown key; allowed keys in [{section or 'top level'}] are "
            + ", ".join(sorted(allowed)),
        )


def require(table: Mapping[str, Any], key: str, section: str) -> Any:
    """Return ``table[key]`` or raise a CaseError naming the missing field."""
    if key not in table:
        raise CaseError(join(section, key), "is required but missing")
    return table[key]


def as_float(
    value: Any,
    field: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    lo: float | None = None,
    hi: float | None = None,
) -> float:
    """Validate a real number (TOML int or float, not bool) with optional bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CaseError(field, f"must be a number, got {type(value).__name__} {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise CaseError(field, f"must be finite, got {x}")
    if positive and x <= 0:
        raise CaseError(field, f"must be > 0, got {x:g}")
    if nonnegative and x < 0:
        raise CaseError(field, f"must be >= 0, got {x:g}")
    if lo is not None and x < lo or hi is not None and x > hi:
        if lo is not None and hi is not None:
            raise CaseError(field, f"must lie in [{lo:g}, {hi:g}], got {x:g}")
        bound = f">= {lo:g}" if lo is not None else f"<= {hi:g}"
        raise CaseError(field, f"must be {bound}, got {x:g}")
    return x


def as_int(value: Any, field: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """Validate an integer with optional inclusive bounds."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CaseError(field, f"must be an integer, got {type(value).__name__} {value!r}")
    if lo is not None and value < lo or hi is not None and value > hi:
        bounds = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise CaseError(field, f"must be an integer in {bounds}, got {value}")
    return value


def as_str(value: Any, field: str, choices: Collection[str] | None = None) -> str:
    """Validate a string, optionally one of ``choices``."""
    if not isinstance(value, str):
        raise CaseError(field, f"must be a string, got {type(value).__name__} {value!r}")
    if choices is not None and value not in choices:
        raise CaseError(field, f"must be one of {', '.join(sorted(choices))}; got {value!r}")
    return value


def as_bool(value: Any, field: str) -> bool:
    """Validate a TOML boolean."""
    if not isinstance(value, bool):
        raise CaseError(field, f"must be true or false, got {value!r}")
    return value


def as_table(value: Any, field: str) -> Mapping[str, Any]:
    """Validate a TOML table (inline or section)."""
    if not isinstance(value, Mapping):
        raise CaseError(field, f"must be a table, got {type(value).__name__}")
    return value


def as_floats(
    value: Any, field: str, length: int | None = None, **bounds: Any
) -> tuple[float, ...]:
    """Validate a list of numbers, optionally of a given length."""
    if not isinstance(value, list):
        raise CaseError(field, f"must be a list of numbers, got {value!r}")
    if length is not None and len(value) != length:
        raise CaseError(field, f"must have {length} entries (one per dimension), got {len(value)}")
    return tuple(as_float(v, f"{field}[{i}]", **bounds) for i, v in enumerate(value))
