"""Sweep files: a base case, fixed values and a grid over dotted case keys, validated whole.

A sweep file (TOML; ``cases/sweeps/`` has commented examples, the schema is in the README)::

    base = "../free_packet_1d.toml"   # a case file, relative to the sweep file, or
    verify = "packet_1d"              # a verification case: a name in cases/verify/ or a path

    [set]                             # the same values at every point
    "mesh.cells" = [200]

    [grid]                            # the points: the product of the axes
    product = { "parameters.gamma" = [0.5, 1.0], "parameters.beta" = [1.0, 2.0] }
    zip = { "mesh.cells" = [100, 200], "discretisation.dt" = [0.02, 0.01] }
    # (several zipped axes: [[grid.zip]] tables, each one axis)

    [run]                             # ranks, jobs, max_wall_s, mode (verify: quick | full)
    [slurm]                           # partition, account, qos, time, modules, sbatch, ...

Every key of ``product`` is one axis; every ``zip`` table is one axis whose lists
(of equal length) advance together. Points run in row-major order (the first axis
slowest) and are named from their values (the first key of each axis), e.g.
``gamma=0.5_beta=2`` — stable across reruns. A verification point checks the pair
(γ, β) of its own ``[parameters]``: ``verify.pairs`` is dropped unless the sweep sets it.
"""

from __future__ import annotations

import copy
import itertools
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nhj.schema import CaseError, as_str, as_table, check_keys
from nhj.sweep.options import RunSpec, SlurmSpec
from nhj.sweep.tomlw import dumps

VERIFY_DIR = Path(__file__).resolve().parents[2] / "cases" / "verify"
"""Shipped verification cases (``verify = "packet_1d"`` names one of them)."""

_SEGMENT = re.compile(r"^[A-Za-z0-9_]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+=-]")


@dataclass(frozen=True)
class Axis:
    """One axis of the grid: dotted keys whose values advance together (one row per step)."""

    keys: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class Point:
    """One point of the grid: its index, stable name, values (dotted key → value), document."""

    index: int
    name: str
    values: dict[str, Any]
    doc: dict[str, Any]

    @property
    def text(self) -> str:
        """The point's case file."""
        return dumps(self.doc)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file (its points are built and validated by :func:`points`)."""

    path: Path
    name: str
    kind: str  # "case" | "verify"
    base: Path
    base_doc: dict[str, Any]
    fixed: dict[str, Any]
    axes: tuple[Axis, ...]
    run: RunSpec
    slurm: SlurmSpec
    text: str

    @property
    def keys(self) -> list[str]:
        """Every dotted key the grid varies, axis by axis."""
        return [k for a in self.axes for k in a.keys]


def flatten(t: Mapping[str, Any], field: str, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a table (``{"a": {"b": 1}}`` and ``{"a.b": 1}`` both give ``a.b``)."""
    out: dict[str, Any] = {}
    for k, v in t.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, field, f"{key}."))
            continue
        if not all(_SEGMENT.fullmatch(s) for s in key.split(".")):
            raise CaseError(f"{field}.{key}", "is not a dotted case key such as parameters.gamma")
        out[key] = v
    return out


def _values(v: Any, field: str) -> list[Any]:
    if not isinstance(v, list) or not v:
        raise CaseError(field, f"must be a non-empty list of values, got {v!r}")
    return v


def parse_grid(grid: Mapping[str, Any]) -> tuple[Axis, ...]:
    """The axes of ``[grid]``: each ``product`` key, then each ``zip`` table."""
    check_keys(grid, ("product", "zip"), "grid")
    axes = [
        Axis((k,), tuple((x,) for x in _values(v, f"grid.product.{k}")))
        for k, v in flatten(
            as_table(grid.get("product", {}), "grid.product"), "grid.product"
        ).items()
    ]
    raw = grid.get("zip", [])
    tables = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(tables, list):
        raise CaseError(
            "grid.zip", "must be a table of equal-length lists or a list of such tables"
        )
    for i, t in enumerate(tables):
        f = "grid.zip" if isinstance(raw, Mapping) else f"grid.zip[{i}]"
        lists = {k: _values(v, f"{f}.{k}") for k, v in flatten(as_table(t, f), f).items()}
        if not lists:
            raise CaseError(f, "needs at least one key")
        if len({len(v) for v in lists.values()}) > 1:
            sizes = ", ".join(f"{k} has {len(v)}" for k, v in lists.items())
            raise CaseError(f, f"lists must have equal lengths ({sizes})")
        axes.append(Axis(tuple(lists), tuple(zip(*lists.values(), strict=True))))
    if not axes:
        raise CaseError("grid", "needs product = {...} and/or zip = {...} with at least one key")
    seen: set[str] = set()
    for k in (k for a in axes for k in a.keys):
        if k in seen:
            raise CaseError(f"grid.{k}", "appears on two axes; a key belongs to one axis")
        seen.add(k)
    return tuple(axes)


def _resolve(name: str, sweep_dir: Path, verify: bool) -> Path:
    if verify and not name.endswith(".toml") and (VERIFY_DIR / f"{name}.toml").is_file():
        return VERIFY_DIR / f"{name}.toml"
    path = (sweep_dir / Path(name).expanduser()).resolve()
    if not path.is_file():
        where = f"a .toml file or a name in {VERIFY_DIR}" if verify else "a case file"
        raise CaseError("verify" if verify else "base", f"{name!r} is not {where}")
    return path


def load_sweep(path: Path) -> SweepSpec:
    """Read and validate a sweep file (not yet its points).

    Raises:
        CaseError: Naming the field of the sweep file that is wrong.
    """
    from nhj.case import read_toml

    path = Path(path)
    text, d = read_toml(path)
    check_keys(d, ("base", "verify", "name", "description", "set", "grid", "run", "slurm"), "")
    if ("base" in d) == ("verify" in d):
        raise CaseError("base", "give exactly one of base = CASE or verify = VERIFICATION_CASE")
    kind = "verify" if "verify" in d else "case"
    base = _resolve(
        as_str(d[kind if kind == "verify" else "base"], kind),
        path.resolve().parent,
        kind == "verify",
    )
    _, base_doc = read_toml(base)
    if kind == "verify" and "verify" not in base_doc:
        raise CaseError("verify", f"{base} has no [verify] table: it is not a verification case")
    if "grid" not in d:
        raise CaseError("grid", "is required: [grid] with product = {...} and/or zip = {...}")
    axes = parse_grid(as_table(d["grid"], "grid"))
    fixed = flatten(as_table(d.get("set", {}), "set"), "set")
    for k in fixed:
        if any(k in a.keys for a in axes):
            raise CaseError(f"set.{k}", "is also on a grid axis; give it in one place")
    return SweepSpec(
        path=path,
        name=as_str(d.get("name", path.stem), "name"),
        kind=kind,
        base=base,
        base_doc=base_doc,
        fixed=fixed,
        axes=axes,
        run=RunSpec.from_table(as_table(d.get("run", {}), "run")),
        slurm=SlurmSpec.from_table(as_table(d.get("slurm", {}), "slurm")),
        text=text,
    )


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        s = str(v).lower()
    elif isinstance(v, float):
        s = f"{v:g}"
    elif isinstance(v, (list, tuple)):
        s = "x".join(_fmt(x) for x in v)
    else:
        s = str(v)
    return _UNSAFE.sub("-", s)


def _labels(axes: Sequence[Axis], full: bool) -> list[list[str]]:
    """Per axis, the keys that name it and how they are written."""
    short = [a.keys[0].split(".")[-1] for a in axes]
    out = []
    for a, s in zip(axes, short, strict=True):
        keys = a.keys if full else a.keys[:1]
        out.append([k.split(".")[-1] if short.count(s) == 1 else k for k in keys])
    return out


def _names(axes: Sequence[Axis], combos: Sequence[tuple[int, ...]]) -> list[str]:
    for full in (False, True):
        labels = _labels(axes, full)
        names = [
            "_".join(
                f"{lab}={_fmt(a.rows[i][j])}"
                for a, i, labs in zip(axes, combo, labels, strict=True)
                for j, lab in enumerate(labs)
            )
            for combo in combos
        ]
        if len(set(names)) == len(names):
            return names
    dup = next(n for n in names if names.count(n) > 1)
    raise CaseError("grid", f"two points have the same values ({dup}); remove the repeated value")


def assign(doc: dict[str, Any], key: str, value: Any, field: str) -> None:
    """Set the dotted ``key`` in ``doc`` (making missing tables)."""
    *head, last = key.split(".")
    t = doc
    for i, h in enumerate(head):
        nxt = t.setdefault(h, {})
        if not isinstance(nxt, dict):
            raise CaseError(field, f"{'.'.join(head[: i + 1])} is not a table in the base case")
        t = nxt
    t[last] = copy.deepcopy(value)


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        both = isinstance(v, Mapping) and isinstance(out.get(k), Mapping)
        out[k] = _merged(out[k], v) if both else v
    return out


def points(spec: SweepSpec) -> list[Point]:
    """Every point of the grid with its case document (not validated: see :func:`validate`)."""
    combos = list(itertools.product(*(range(len(a.rows)) for a in spec.axes)))
    out = []
    varied = set(spec.fixed) | set(spec.keys)
    for index, (combo, name) in enumerate(zip(combos, _names(spec.axes, combos), strict=True)):
        values = {
            k: v
            for a, i in zip(spec.axes, combo, strict=True)
            for k, v in zip(a.keys, a.rows[i], strict=True)
        }
        doc = copy.deepcopy(spec.base_doc)
        doc.pop("name", None)  # the point's file name names it
        for k, v in (*spec.fixed.items(), *values.items()):
            assign(doc, k, v, k)
        if spec.kind == "verify" and "verify.pairs" not in varied:
            doc["verify"].pop("pairs", None)  # the point checks the pair of its [parameters]
            if isinstance(doc.get("full"), dict) and isinstance(doc["full"].get("verify"), dict):
                doc["full"]["verify"].pop("pairs", None)
        out.append(Point(index, name, values, doc))
    return out


class PointError(CaseError):
    """A point of the grid that is not a valid case: names the point and the field."""

    def __init__(self, point: str, error: CaseError) -> None:
        self.point = point
        super().__init__(error.field, error.reason)

    def __str__(self) -> str:
        return f"point {self.point}: {self.field}: {self.reason}"


def validate(spec: SweepSpec, point: Point) -> None:
    """Validate a point in-process (case schema; for verification points also [verify]).

    Makes a relative ``mesh.file`` absolute in the point's document (its file is written
    elsewhere than the base case). Raises :class:`PointError` on the first invalid field.
    """
    from nhj.case import case_from_dict
    from nhj.meshes import resolve_geo

    base_dir = spec.base.parent
    try:
        d = dict(point.doc)
        full = d.pop("full", {})
        d.pop("verify", None)
        if spec.kind == "verify" and spec.run.mode == "full" and isinstance(full, Mapping):
            d = _merged(d, {k: v for k, v in full.items() if k != "verify"})
        case_from_dict(d, base_dir, point.name)
        for t in (point.doc.get("mesh"), (point.doc.get("full") or {}).get("mesh")):
            if isinstance(t, dict) and isinstance(t.get("file"), str):
                t["file"] = str(resolve_geo(t["file"], base_dir))
        if spec.kind == "verify":
            _validate_verify(point, spec.run.mode)
    except CaseError as e:
        raise PointError(point.name, e) from None


def _validate_verify(point: Point, mode: str) -> None:
    """The [verify] table, through nhj.verify's public loader of a verification case file."""
    try:
        from nhj.verify import load_verify_case
    except ImportError:  # nhj.verify without its loader: the case part is validated above
        return
    with tempfile.TemporaryDirectory(prefix="nhj-sweep-") as tmp:
        path = Path(tmp) / f"{point.name}.toml"
        path.write_text(point.text, encoding="utf-8")
        load_verify_case(path, mode)
