"""Case files: TOML, validated on load into a frozen :class:`~nhj.sections.Case`.

A case never executes code: expressions are strings parsed by the whitelisted
grammar of :mod:`nhj.expressions`. Every invalid input raises
:class:`nhj.schema.CaseError` naming the field and what is allowed; the CLI
turns it into one line on stderr and exit code 2. The sections are validated
by :mod:`nhj.sections`; which of them an equation reads, its schemes and its
rules come from its registry entry (:mod:`nhj.registry`). The schema is
documented in ``docs/cases.md``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from nhj.meshes import MeshSpec, check_dofs
from nhj.registry import EQUATIONS, equations_reading
from nhj.safety import check_name
from nhj.schema import CaseError, as_str, as_table, check_keys, require
from nhj.sections import (
    COMMON_SECTIONS,
    OPTIONAL_SECTIONS,
    BoundarySpec,
    Case,
    Discretisation,
    InitialSpec,
    LangevinSpec,
    MetricSpec,
    NoiseSpec,
    NonlinearSpec,
    OutputSpec,
    Parameters,
    PotentialSpec,
    SolverSpec,
    VacuumSpec,
)
from nhj.timeschemes import SCHEMES

__all__ = ["Case", "case_from_dict", "load_case", "read_toml"]


def _own_sections() -> tuple[str, ...]:
    return tuple(k for e in EQUATIONS.values() for k in e.own)


def case_from_dict(
    d: Mapping[str, Any], base_dir: Path, name: str = "case", max_dofs: int | None = None
) -> Case:
    """Validate a parsed TOML document against the schema of its equation's entry.

    ``max_dofs`` (``--max-dofs``) replaces the case's ``mesh.max_dofs``; the size is
    checked here, before any mesh exists, where it can be estimated.
    """
    check_keys(d, COMMON_SECTIONS + OPTIONAL_SECTIONS + _own_sections(), "")
    equation = as_str(require(d, "equation", ""), "equation", tuple(EQUATIONS))
    entry = EQUATIONS[equation]
    for key in d:
        if key not in COMMON_SECTIONS and key not in entry.sections and key not in entry.own:
            users = " or ".join(repr(n) for n in equations_reading(key))
            raise CaseError(key, f"applies to equation = {users} only")

    def section(key: str, required: bool = False) -> Mapping[str, Any]:
        if required:
            require(d, key, "")
        return as_table(d.get(key, {}), key)

    scheme = section("discretisation", True).get("scheme")
    # a non-string scheme is refused with the allowed names by Discretisation.from_table
    if isinstance(scheme, str) and scheme in SCHEMES and scheme not in entry.schemes:
        kind = "a one-step scheme" if entry.stepper == "adaptive" else "one of"
        raise CaseError(
            "discretisation.scheme",
            f"{equation} needs {kind}: {', '.join(repr(n) for n in entry.schemes)} "
            f"(default {entry.default_scheme!r}); got {scheme!r}",
        )
    mesh = MeshSpec.from_table(section("mesh", True), base_dir)
    if max_dofs is not None:
        mesh = replace(mesh, max_dofs=max_dofs)
    dim = mesh.dim
    check_name(as_str(d.get("name", "case"), "name"))  # an explicit name becomes a directory
    case = Case(
        name=as_str(d.get("name", name), "name"),
        equation=equation,
        description=as_str(d.get("description", ""), "description"),
        parameters=Parameters.from_table(section("parameters", True)),
        mesh=mesh,
        discretisation=Discretisation.from_table(
            section("discretisation", True), entry.default_scheme, entry.schemes
        ),
        metric=MetricSpec.from_table(section("metric"), dim),
        potential=PotentialSpec.from_table(section("potential"), dim),
        initial=InitialSpec.from_table(section("initial", True), dim),
        output=OutputSpec.from_table(section("output")),
        solver=SolverSpec.from_table(section("solver")),
        noise=NoiseSpec.from_table(section("noise"), dim),
        boundary=BoundarySpec.from_table(section("boundary")),
        langevin=LangevinSpec.from_table(section("langevin"), dim)
        if "langevin" in d or "langevin" in entry.required
        else None,
        vacuum=VacuumSpec.from_table(section("vacuum")),
        nonlinear=NonlinearSpec.from_table(section("nonlinear")),
        own={key: parse(section(key)) for key, parse in entry.own.items()},
    )
    entry.rules(case)
    if case.solver.preset == "iterative" and entry.stepper == "adaptive":
        linear = ", ".join(n for n, e in EQUATIONS.items() if e.stepper == "linear")
        raise CaseError(  # the PRESB/AMG preconditioner does not converge on Newton Jacobians
            "solver.preset",
            f"'iterative' applies to the linear equations ({linear}); {equation} needs 'direct'",
        )
    check_dofs(case.mesh, case.discretisation.degree, equation)
    return case


def read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    """The text of a TOML file and its parsed table; CaseError("case", ...) when it cannot be."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CaseError("case", f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise CaseError(
            "case", f"{path} is not UTF-8 text (byte {e.start}); save the case file as UTF-8"
        ) from None
    return text, parse_toml(text, f"{path} is")


def parse_toml(text: str, what: str = "case text is") -> dict[str, Any]:
    """The table of a TOML text; CaseError("case", ...) if it is not valid or too deep."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CaseError("case", f"{what} not valid TOML: {e}".replace("\n", " ")) from None
    except RecursionError:
        raise CaseError("case", f"{what} not usable: arrays or tables nested too deeply") from None


def case_from_text(text: str, base_dir: Path, name: str, max_dofs: int | None = None) -> Case:
    """Validate the text of a case file (e.g. a result directory's copy, on resume)."""
    d = parse_toml(text)
    return replace(case_from_dict(d, base_dir, name=name, max_dofs=max_dofs), text=text)


def load_case(path: str | Path, max_dofs: int | None = None) -> Case:
    """Read and validate a case file; raises CaseError on any problem."""
    path = Path(path)
    text, d = read_toml(path)
    case = case_from_dict(d, path.resolve().parent, name=path.stem, max_dofs=max_dofs)
    return replace(case, path=path, text=text)
