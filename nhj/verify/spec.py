"""Verification cases: a case file with a ``[verify]`` table (and ``[full]`` for --full).

A verification case is an ordinary case (docs/cases.md) plus a ``[verify]``
table naming its checks, the (γ, β) pairs, observation times, refinement
levels and tolerances (:class:`VerifySpec`); an optional ``[full]`` table is
deep-merged over the whole file for ``nhj verify --full``. The shipped cases
are in ``cases/verify/`` (docs/verify.md). Also here: the case variants the
checks run (another (γ, β), a refined mesh) and the step numbers of the
observation times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nhj.builders.common import gaussian_state
from nhj.case import case_from_dict, read_toml
from nhj.registry import EQUATIONS
from nhj.schema import CaseError, as_float, as_floats, as_int, as_str, as_table, check_keys
from nhj.sections import MAX_DEGREE, Case, Discretisation

VERIFY_DIR = Path(__file__).resolve().parents[2] / "cases" / "verify"
"""The shipped verification cases."""

MODES = ("quick", "full")
CHECKS = (
    "correspondence",
    "refinement",
    "hbar_fit",
    "mass_fit",
    "ground_state",
    "fokker_planck",
    "regimes",
)
"""The checks, in the order the report lists them."""
FIT_REFERENCES = ("schrodinger", "exact")
"""What the ħ- and mass fits compare the Madelung data with (VerifySpec.fit_reference)."""
SUPPORT = 1e-3
"""The support of p for the phase comparison and the report's phase panels: p > SUPPORT · max p."""


@dataclass(frozen=True)
class VerifySpec:
    """The ``[verify]`` table of a verification case.

    Attributes:
        checks: Which checks the case feeds (names in :data:`CHECKS`).
        pairs: (γ, β) pairs for correspondence and hbar_fit (default: the case's).
        times: Observation times (> 0, multiples of dt, ≤ t_end).
        refinement: Cells along x0 per refinement level (other directions in
            proportion; dt ∝ 1/cells from the case's cells and dt).
        alphas: The regimes α of the ``regimes`` check.
        bracket: The ħ search interval is [ħ_e/bracket, bracket·ħ_e], ħ_e = γ/β.
        mismatch_tolerance: Bound on relative L² mismatches (correspondence, regimes).
        hbar_tolerance: Bound on |ħ_fit/(γ/β) − 1| (and |m_fit γ − 1|) and on the width
            of the minimum.
        fit_reference: What the ħ- and mass fits compare the Madelung data with:
            "schrodinger" (a Schrödinger run per trial value, degree ``schrodinger_degree``
            on the Madelung mesh) or "exact" (the exact Gaussian state of (3.11) for the
            trial ħ, m in the same V, from the same p₀, S₀: no reference error at all;
            cases with an exact Gaussian state only).
        fit_uncertainty_cells: Cells along x0 of a coarser level on which the ħ- and mass
            fits are repeated for their discretisation uncertainty (Roache's GCI,
            :mod:`nhj.verify.hbar_fit`); None: no uncertainty.
        gibbs_tolerance: Bound on L¹ distances to the Gibbs density.
        separation: Regimes that must differ do so by more than separation × tolerance.
        schrodinger_degree: Degree of the Schrödinger reference (None: the case's degree);
            on the same mesh, a higher degree makes ψ the more accurate side.
    """

    checks: tuple[str, ...]
    pairs: tuple[tuple[float, float], ...] = ()
    times: tuple[float, ...] = ()
    refinement: tuple[int, ...] = ()
    alphas: tuple[float, ...] = (1.0, 0.5, 0.0)
    bracket: float = 4.0
    mismatch_tolerance: float = 1e-2
    hbar_tolerance: float = 5e-3
    gibbs_tolerance: float = 1e-3
    separation: float = 10.0
    schrodinger_degree: int | None = None
    fit_uncertainty_cells: int | None = None
    fit_reference: str = "schrodinger"

    KEYS = (
        "checks",
        "pairs",
        "times",
        "refinement",
        "alphas",
        "bracket",
        "mismatch_tolerance",
        "hbar_tolerance",
        "gibbs_tolerance",
        "separation",
        "schrodinger_degree",
        "fit_uncertainty_cells",
        "fit_reference",
    )

    @classmethod
    def from_table(cls, t: Mapping[str, Any], case: Case) -> VerifySpec:
        """Validate [verify] against the case it belongs to."""
        s = "verify"
        check_keys(t, cls.KEYS, s)
        raw = t.get("checks")
        if not isinstance(raw, list) or not raw:
            raise CaseError(f"{s}.checks", f"must be a non-empty list of {', '.join(CHECKS)}")
        checks = tuple(as_str(c, f"{s}.checks[{i}]", CHECKS) for i, c in enumerate(raw))
        par = case.parameters
        pairs: tuple[tuple[float, float], ...] = ((par.gamma, par.beta),)
        if "pairs" in t:
            if not isinstance(t["pairs"], list) or not t["pairs"]:
                raise CaseError(f"{s}.pairs", "must be a non-empty list of [gamma, beta] pairs")
            pairs = tuple(
                as_floats(p, f"{s}.pairs[{i}]", 2, positive=True)  # type: ignore[misc]
                for i, p in enumerate(t["pairs"])
            )
        times = as_floats(t.get("times", []), f"{s}.times", positive=True)
        refinement = tuple(
            as_int(n, f"{s}.refinement[{i}]", lo=1)
            for i, n in enumerate(_list(t.get("refinement", []), f"{s}.refinement"))
        )
        spec = cls(
            checks=checks,
            pairs=pairs,
            times=times,
            refinement=refinement,
            alphas=as_floats(t.get("alphas", [1.0, 0.5, 0.0]), f"{s}.alphas", lo=0.0, hi=1.0),
            bracket=as_float(t.get("bracket", 4.0), f"{s}.bracket", lo=1.01, hi=100.0),
            mismatch_tolerance=as_float(
                t.get("mismatch_tolerance", 1e-2), f"{s}.mismatch_tolerance", positive=True
            ),
            hbar_tolerance=as_float(
                t.get("hbar_tolerance", 5e-3), f"{s}.hbar_tolerance", positive=True
            ),
            gibbs_tolerance=as_float(
                t.get("gibbs_tolerance", 1e-3), f"{s}.gibbs_tolerance", positive=True
            ),
            separation=as_float(t.get("separation", 10.0), f"{s}.separation", lo=1.0),
            schrodinger_degree=None
            if "schrodinger_degree" not in t
            else as_int(t["schrodinger_degree"], f"{s}.schrodinger_degree", lo=1, hi=MAX_DEGREE),
            fit_uncertainty_cells=None
            if "fit_uncertainty_cells" not in t
            else as_int(
                t["fit_uncertainty_cells"],
                f"{s}.fit_uncertainty_cells",
                lo=1,
                hi=case.mesh.cells[0] - 1,
            ),
            fit_reference=as_str(
                t.get("fit_reference", "schrodinger"), f"{s}.fit_reference", FIT_REFERENCES
            ),
        )
        spec.validate(case)
        return spec

    def validate(self, case: Case) -> None:
        """Cross-checks between the checks asked for and the case."""
        s = "verify"
        fits = {"hbar_fit", "mass_fit"} & set(self.checks)
        hydro = {"correspondence", "refinement"} & set(self.checks) | fits
        if hydro and case.equation != "madelung":
            raise CaseError(
                f"{s}.checks",
                f"{', '.join(sorted(hydro))} need equation = "
                f"'madelung' (the data are p and S), not {case.equation!r}",
            )
        if "regimes" in self.checks and case.equation not in ("madelung", "neural_hj"):
            raise CaseError(f"{s}.checks", "regimes needs equation = 'neural_hj' or 'madelung'")
        gibbs = {"ground_state", "fokker_planck"} & set(self.checks)
        if gibbs and (case.equation != "fokker_planck" or not case.potential.has_loss):
            raise CaseError(
                f"{s}.checks",
                f"{', '.join(sorted(gibbs))} need equation = 'fokker_planck' with potential.loss",
            )
        if gibbs and (case.noise.alpha != 1 or case.noise.kappa is not None):
            raise CaseError(
                "noise.alpha",
                "the Gibbs density is the stationary state at alpha = 1 (kappa = g/beta) only",
            )
        if (hydro or "regimes" in self.checks) and not self.times:
            raise CaseError(
                f"{s}.times",
                "is required for correspondence, refinement, hbar_fit, mass_fit and regimes",
            )
        if self.times:
            step_indices(self.times, case.discretisation, f"{s}.times")
        if self.fit_reference == "exact" and not _has_exact_state(case):
            raise CaseError(
                f"{s}.fit_reference",
                "'exact' needs an exact Gaussian state: initial.kind gaussian or coherent, "
                "V harmonic or 0, a constant metric, output.exact (or use 'schrodinger')",
            )
        if self.fit_uncertainty_cells is not None:
            f = f"{s}.fit_uncertainty_cells"
            if not fits:
                raise CaseError(f, "needs hbar_fit or mass_fit among verify.checks")
            if case.mesh.is_gmsh:
                raise CaseError(f, "needs a built-in mesh (interval, rectangle, box)")
            n = self.fit_uncertainty_cells
            step_indices(self.times, refined(case, n).discretisation, f"{f} ({n} cells): times")
        if {"refinement", "ground_state"} & set(self.checks):
            r = self.refinement
            if len(r) < 2 or any(b <= a for a, b in zip(r, r[1:], strict=False)):
                raise CaseError(
                    f"{s}.refinement", f"needs at least two increasing cell counts, got {list(r)}"
                )
            if case.mesh.is_gmsh:
                raise CaseError(
                    f"{s}.refinement", "needs a built-in mesh (interval, rectangle, box)"
                )
            if "refinement" in self.checks:
                for n in r:
                    step_indices(
                        self.times,
                        refined(case, n).discretisation,
                        f"{s}.times (at the refinement level of {n} cells)",
                    )


def _has_exact_state(case: Case) -> bool:
    return EQUATIONS[case.equation].exact(case) and gaussian_state(case) is not None


def _list(value: Any, f: str) -> list[Any]:
    if not isinstance(value, list):
        raise CaseError(f, f"must be a list, got {value!r}")
    return value


@dataclass(frozen=True)
class VerifyCase:
    """A validated verification case: the case (with ``[full]`` applied) and its [verify]."""

    name: str
    case: Case
    spec: VerifySpec
    path: Path


def deep_merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with the tables of ``over`` merged in recursively (other values replaced)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merged(out[k], v)
        else:
            out[k] = v
    return out


def load_verify_case(path: str | Path, mode: str = "quick") -> VerifyCase:
    """Read a verification case; ``mode = "full"`` merges its [full] table first."""
    path = Path(path)
    text, d = read_toml(path)
    vc = verify_case_from_dict(d, path.resolve().parent, path.stem, mode)
    return replace(vc, case=replace(vc.case, path=path, text=text), path=path)


def verify_case_from_dict(
    d: Mapping[str, Any], base_dir: Path, name: str, mode: str = "quick"
) -> VerifyCase:
    """Validate a parsed verification case (a case with [verify] and optional [full])."""
    if mode not in MODES:
        raise CaseError("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    d = dict(d)
    full = as_table(d.pop("full", {}), "full")
    if mode == "full":
        d = deep_merged(d, full)
    if "verify" not in d:
        raise CaseError("verify", f"{name} has no [verify] table: it is not a verification case")
    verify = as_table(d.pop("verify"), "verify")
    case = case_from_dict(d, base_dir, name=name)
    return VerifyCase(name, case, VerifySpec.from_table(verify, case), base_dir / f"{name}.toml")


def find_cases(names: Sequence[str] | None) -> list[Path]:
    """Paths of verification cases: names in cases/verify/ or files (default: all shipped)."""
    shipped = sorted(VERIFY_DIR.glob("*.toml")) if VERIFY_DIR.is_dir() else []
    if not names:
        if not shipped:
            raise CaseError("--cases", f"no verification cases in {VERIFY_DIR}; name case files")
        return shipped
    paths = []
    for n in names:
        p = Path(n)
        if p.suffix == ".toml" and p.is_file():
            paths.append(p)
        elif (VERIFY_DIR / f"{n}.toml").is_file():
            paths.append(VERIFY_DIR / f"{n}.toml")
        else:
            known = ", ".join(q.stem for q in shipped) or "none"
            raise CaseError(
                "--cases", f"no verification case {n!r} (a .toml file or one of: {known})"
            )
    return paths


def with_pair(case: Case, gamma: float, beta: float, hbar: float | None = None) -> Case:
    """The case at (γ, β) (ħ = γ/β unless ``hbar`` overrides it)."""
    return replace(
        case,
        parameters=replace(
            case.parameters, gamma=float(gamma), beta=float(beta), hbar_override=hbar
        ),
    )


def refined(case: Case, cells: int) -> Case:
    """The case with ``cells`` along x0 (others in proportion) and dt ∝ 1/cells."""
    c0 = case.mesh.cells[0]
    f = cells / c0
    mesh = replace(case.mesh, cells=tuple(max(1, round(n * f)) for n in case.mesh.cells))
    disc = replace(case.discretisation, dt=case.discretisation.dt_used / f)
    return replace(case, mesh=mesh, discretisation=disc)


def with_cells(case: Case, cells: int) -> Case:
    """The case with ``cells`` along x0 (others in proportion), dt unchanged."""
    f = cells / case.mesh.cells[0]
    return replace(
        case, mesh=replace(case.mesh, cells=tuple(max(1, round(n * f)) for n in case.mesh.cells))
    )


def step_indices(
    times: Sequence[float], disc: Discretisation, f: str = "verify.times"
) -> list[int]:
    """Step numbers of the observation times; CaseError unless each is a multiple of dt ≤ t_end."""
    dt = disc.dt_used
    out = []
    for t in times:
        k = round(t / dt)
        if abs(k * dt - t) > 1e-9 * max(1.0, t) or k < 1 or t > disc.t_end * (1 + 1e-12):
            raise CaseError(
                f, f"{t:g} is not a positive multiple of dt = {dt:g} up to t_end = {disc.t_end:g}"
            )
        out.append(k)
    if out != sorted(set(out)):
        raise CaseError(f, "must be increasing")
    return out
