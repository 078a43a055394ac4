"""What ``nhj verify`` measures, as plain records (a leaf: stdlib and numpy only).

A check returns a :class:`Check` (name, passed, value, tolerance, details);
the orchestration collects them, with the series the figures need
(:class:`Fit`, :class:`Comparison`, :class:`Profile`), into a :class:`Report`.
The report writer (:mod:`nhj.verify.report`) reads these records and nothing
else. :class:`Perturbation` is the one object through which tests make a check
fail on purpose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

JUDGED = ("p", "grad_S")
"""The mismatches (columns of :class:`nhj.verify.observables.Mismatch`) checks are judged on."""


@dataclass(frozen=True)
class Perturbation:
    """Deliberate errors injected into the checks, to show that each can fail (default: none).

    Attributes:
        m_factor: Schrödinger runs with the mass m = m_factor/γ instead of 1/γ (3.13).
        hbar_expected: The ħ-fit is compared with this instead of γ/β (3.12).
        hbar_factor: The mass fit holds ħ at hbar_factor·γ/β instead of γ/β (3.12).
        beta_gibbs: The Gibbs density exp(−2β_g L̄/γ)/Z is taken at this β_g instead of β.
        hbar_H: The ground state is that of H with this ħ instead of γ/β (V stays (3.6)).
        coincide: The regimes check claims every α coincides with Schrödinger (True)
            or none does (False) instead of what theory.md says (None).
    """

    m_factor: float = 1.0
    hbar_expected: float | None = None
    hbar_factor: float = 1.0
    beta_gibbs: float | None = None
    hbar_H: float | None = None
    coincide: bool | None = None


NONE = Perturbation()
"""No perturbation: the checks as shipped."""


@dataclass
class Check:
    """The outcome of one check.

    Attributes:
        name: Check and case, e.g. ``"hbar_fit[packet_1d] gamma=1 beta=2"``.
        passed: Whether the criterion holds.
        value: The measured number the criterion is about.
        tolerance: The bound it is held to (upper or lower: see ``details["criterion"]``).
        details: The criterion in words, the measured series, wall time, ...
    """

    name: str
    passed: bool
    value: float
    tolerance: float
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record (non-finite numbers become None)."""
        return {
            "name": self.name,
            "passed": bool(self.passed),
            "value": finite(self.value),
            "tolerance": finite(self.tolerance),
            "details": jsonable(self.details),
        }


def finite(x: Any) -> float | None:
    """The number as a float, or None if it is not finite."""
    x = float(x)
    return x if math.isfinite(x) else None


def jsonable(x: Any) -> Any:
    """Nested data with numpy scalars/arrays as Python numbers and NaN/inf as None."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return finite(x)
    return x


def failed(name: str, tol: float, criterion: str, error: Exception, **details: Any) -> Check:
    """A check whose computation failed (e.g. a run with no acceptable time step)."""
    return Check(
        name, False, math.nan, tol, {"criterion": criterion, "error": str(error), **details}
    )


def observed_orders(h: Sequence[float], e: Sequence[float]) -> list[float]:
    """log(e_i/e_{i+1}) / log(h_i/h_{i+1}) for consecutive levels."""
    return [
        math.log(e[i] / e[i + 1]) / math.log(h[i] / h[i + 1])
        if e[i] > 0 and e[i + 1] > 0
        else math.nan
        for i in range(len(e) - 1)
    ]


@dataclass
class Comparison:
    """Madelung (M), Schrödinger (S) and exact (E) compared at the observation times.

    ``series[k][c]`` lists the mismatch ``c`` (p, grad_S, grad_S_unweighted) per
    time for k in "MS", "ME", "SE" (the latter two only when the case has an
    exact solution).
    """

    times: tuple[float, ...]
    series: dict[str, dict[str, list[float]]]
    dofs: int
    h: float
    madelung_wall_s: float
    stats: dict[str, Any]

    @property
    def forms(self) -> list[str]:
        """The form of the hydrodynamic run at each observation time (:func:`forms_at`)."""
        return forms_at(self.stats, self.times)

    def judged(self) -> list[int]:
        """The observation times (indices) whose Madelung state came from the (√p, S) form."""
        return [i for i, f in enumerate(self.forms) if f == FLUID]

    def worst(self, key: str = "MS") -> dict[str, float]:
        """The judged mismatches (p, grad_S), each maximised over the judged times.

        NaN when every observation time fell in a wave-form interval: such a run is
        Schrödinger there and no evidence for the correspondence (issue 10).
        """
        idx = self.judged()
        return {c: max((self.series[key][c][i] for i in idx), default=math.nan) for c in JUDGED}


FLUID, WAVE = "fluid", "wave"
"""The forms of the wave–fluid hybrid (nhj/hybrid.py), as its ``forms`` intervals name them."""


def forms_at(stats: Mapping[str, Any], times: Sequence[float]) -> list[str]:
    """The form that produced the state at each time, from a hybrid run's ``forms`` intervals.

    The interval [a, b] covers the steps ending in (a, b]: a failed fluid step is retaken as
    a wave step from its start a, and the state at a switch back to the fluid is the wave's.
    A run without ``forms`` (no hybrid, or it never left the fluid) is fluid throughout.
    """
    intervals = (stats.get("forms") or {}).get("intervals") or []
    eps = 1e-9 * max([abs(t) for t in times] + [1.0])

    def form(t: float) -> str:
        for a, b, m in intervals:
            if a + eps < t <= b + eps:
                return str(m)
        return FLUID

    return [form(t) for t in times]


def wave_fraction(stats: Mapping[str, Any]) -> float:
    """The fraction of simulated time the hydrodynamic run spent in the wave form (0 if none)."""
    return float((stats.get("forms") or {}).get("fraction_wave", 0.0))


@dataclass
class Fit:
    """An ħ-fit: the minimiser, the evaluations and the curve around the minimum."""

    hbar_expected: float
    hbar_fit: float
    J_min: float
    evaluations: list[tuple[float, float]]
    curve: list[tuple[float, float]]
    curvature: float
    width: float
    at_bound: bool


@dataclass
class Profile:
    """1D profiles of ψ₀², the Gibbs density and the Fokker–Planck p (rank 0 only)."""

    x: np.ndarray
    psi2: np.ndarray
    gibbs: np.ndarray
    p: np.ndarray


@dataclass
class Report:
    """Everything ``nhj verify`` measured."""

    mode: str
    checks: list[Check] = field(default_factory=list)
    fits: list[tuple[str, Fit]] = field(default_factory=list)
    comparisons: list[tuple[str, Comparison]] = field(default_factory=list)
    profiles: list[tuple[str, Profile]] = field(default_factory=list)
    panels: Path | None = None
    wall_s: float = 0.0
    ranks: int = 1

    @property
    def passed(self) -> bool:
        """Whether every check passed (and there was at least one)."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    def hbar_table(self) -> list[dict[str, Any]]:
        """Rows gamma, beta, hbar_expected, hbar_fit, rel_error, uncertainty of every ħ-fit."""
        return self._fit_table("hbar_fit", ("hbar_expected", "hbar_fit"))

    def mass_table(self) -> list[dict[str, Any]]:
        """Rows gamma, beta, m_expected, m_fit, rel_error, uncertainty of every mass fit."""
        return self._fit_table("mass_fit", ("m_expected", "m_fit"))

    def _fit_table(self, check: str, keys: tuple[str, str]) -> list[dict[str, Any]]:
        cols = ("case", "gamma", "beta", *keys, "rel_error", "uncertainty")
        return [
            {k: c.details.get(k) for k in cols} | {"passed": c.passed}
            for c in self.checks
            if c.name.startswith(f"{check}[")
        ]
