"""A small TOML writer for the point case files of a sweep (the inverse of ``tomllib``).

Case documents are tables of scalars, arrays and sub-tables; that is all this writes:
scalars and arrays inline, tables as ``[a.b]`` headers, arrays of tables as inline tables.
``tomllib.loads(dumps(d)) == d`` for such documents (tested).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.fullmatch(k) else json.dumps(k, ensure_ascii=False)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON escapes are TOML basic-string escapes
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(doc: Mapping[str, Any]) -> str:
    """The TOML text of ``doc``."""
    lines: list[str] = []

    def table(t: Mapping[str, Any], path: tuple[str, ...]) -> None:
        scalars = [(k, v) for k, v in t.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in t.items() if isinstance(v, Mapping)]
        if path and (scalars or not tables):
            lines.append(f"\n[{'.'.join(_key(p) for p in path)}]")
        lines.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars)
        for k, v in tables:
            table(v, (*path, k))

    table(doc, ())
    return "\n".join(lines).lstrip("\n") + "\n"
