"""The sections of a case file, as frozen dataclasses validated from TOML tables.

Each section validates its own table (unknown keys rejected, every value
checked) and raises :class:`nhj.schema.CaseError` naming the field and what is
allowed. Which sections an equation reads, its schemes and its cross-section
rules are declared by its registry entry (:mod:`nhj.registry`); the loader
(:mod:`nhj.case`) puts the two together. The schema is documented in
``docs/cases.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nhj.expressions import Expr, parse
from nhj.meshes import MeshSpec
from nhj.safety import check_petsc_options
from nhj.schema import (
    CaseError,
    as_bool,
    as_float,
    as_floats,
    as_int,
    as_str,
    as_table,
    check_keys,
    join,
    require,
)
from nhj.tensors import coordinate_names, is_constant

PARAMETER_NAMES = ("gamma", "beta", "hbar", "m")


TINY, HUGE = 1e-30, 1e30
"""Range of γ, β and ħ: the forms carry γ³/β², 1/γ and γ/β, which must stay finite."""


def _scale(value: Any, field: str) -> float:
    """A number > 0 within [TINY, HUGE]."""
    x = as_float(value, field, positive=True)
    if not TINY <= x <= HUGE:
        raise CaseError(field, f"must lie in [{TINY:g}, {HUGE:g}], got {x:g}")
    return x


@dataclass(frozen=True)
class Parameters:
    """Learning parameters γ, β and the derived ħ = γ/β (3.12), m = 1/γ (3.13).

    Attributes:
        gamma: Learning rate γ > 0.
        beta: Lagrange multiplier β > 0.
        hbar_override: An explicit ħ for scans (None: ħ = γ/β); marked in outputs.
    """

    gamma: float
    beta: float
    hbar_override: float | None = None

    @classmethod
    def from_table(cls, t: Mapping[str, Any]) -> Parameters:
        """Validate [parameters]."""
        s = "parameters"
        check_keys(t, ("gamma", "beta", "hbar"), s)
        hb = t.get("hbar")
        return cls(
            gamma=_scale(require(t, "gamma", s), join(s, "gamma")),
            beta=_scale(require(t, "beta", s), join(s, "beta")),
            hbar_override=None if hb is None else _scale(hb, join(s, "hbar")),
        )

    @property
    def hbar(self) -> float:
        """ħ = γ/β (3.12) unless overridden."""
        return self.gamma / self.beta if self.hbar_override is None else self.hbar_override

    @property
    def m(self) -> float:
        """M = 1/γ (3.13)."""
        return 1.0 / self.gamma

    def values(self) -> dict[str, float]:
        """Values of the parameter names usable in expressions."""
        return {"gamma": self.gamma, "beta": self.beta, "hbar": self.hbar, "m": self.m}


#: Largest harmonic frequency: far beyond any resolvable ω dt, below where √(ħ/mω)² underflows.
MAX_OMEGA = 1e8

#: Most time steps a case may ask for (t_end/dt): 10⁸ steps of a 1D case are days.
MAX_STEPS = 10**8
#: Highest Lagrange degree: P5/P6 with gauss2/gauss3 are the cheapest way to 1e-4..1e-6 on
#: smooth linear flows (docs/performance.md); beyond P6 the cell matrices (~k^{2d} entries)
#: and quadrature grow fast while that benchmark found no target that needed them.
MAX_DEGREE = 6


@dataclass(frozen=True)
class Discretisation:
    """Element degree, time scheme, time step and final time."""

    degree: int = 1
    scheme: str = "crank_nicolson"
    dt: float = 0.01
    t_end: float = 1.0

    @classmethod
    def from_table(
        cls, t: Mapping[str, Any], scheme: str, schemes: tuple[str, ...]
    ) -> Discretisation:
        """Validate [discretisation] with the equation's default and allowed schemes."""
        s = "discretisation"
        check_keys(t, ("degree", "scheme", "dt", "t_end"), s)
        d = cls(
            degree=as_int(t.get("degree", 1), join(s, "degree"), lo=1, hi=MAX_DEGREE),
            scheme=as_str(t.get("scheme", scheme), join(s, "scheme"), schemes),
            dt=as_float(require(t, "dt", s), join(s, "dt"), positive=True),
            t_end=as_float(require(t, "t_end", s), join(s, "t_end"), positive=True),
        )
        if d.t_end < d.dt:
            raise CaseError(join(s, "t_end"), f"must be >= dt = {d.dt:g}, got {d.t_end:g}")
        if d.t_end / d.dt > MAX_STEPS:
            # a typo such as t_end = 1e18 would otherwise start a run that never ends
            raise CaseError(
                join(s, "t_end"),
                f"t_end/dt must be at most {MAX_STEPS:.0e} steps, got {d.t_end / d.dt:.3g}",
            )
        return d

    @property
    def steps(self) -> int:
        """Number of steps; dt is shrunk so that they end exactly at t_end."""
        return max(1, math.ceil(self.t_end / self.dt - 1e-9))

    @property
    def dt_used(self) -> float:
        """The time step actually taken, t_end/steps ≤ dt."""
        return self.t_end / self.steps


@dataclass(frozen=True)
class MetricSpec:
    """The metric g_{μν}: None (flat), or a K×K table of numbers/expressions in x."""

    entries: tuple[tuple[Any, ...], ...] | None = None

    @classmethod
    def from_table(cls, t: Mapping[str, Any], dim: int) -> MetricSpec:
        """Validate [metric]."""
        s = "metric"
        check_keys(t, ("g",), s)
        if "g" not in t:
            return cls()
        return cls(tensor_entries(t["g"], join(s, "g"), dim, coordinate_names(dim)))

    @property
    def is_constant(self) -> bool:
        """Whether every entry is a number (or the metric is flat)."""
        return is_constant(self.entries)


def tensor_entries(
    value: Any, f: str, dim: int, names: tuple[str, ...]
) -> tuple[tuple[Any, ...], ...]:
    """A K×K list of numbers or expression strings, symmetric as written."""
    if not isinstance(value, list) or len(value) != dim:
        raise CaseError(f, f"must be a {dim}x{dim} list of lists (numbers or expression strings)")
    rows = []
    for i, row in enumerate(value):
        if not isinstance(row, list) or len(row) != dim:
            raise CaseError(f"{f}[{i}]", f"must be a list of {dim} entries")
        rows.append(
            tuple(
                parse(e, field=f"{f}[{i}][{j}]", names=names)
                if isinstance(e, str)
                else as_float(e, f"{f}[{i}][{j}]")
                for j, e in enumerate(row)
            )
        )
    for i in range(dim):
        for j in range(i):
            if str(rows[i][j]) != str(rows[j][i]):
                raise CaseError(f, f"must be symmetric: entry [{i}][{j}] differs from [{j}][{i}]")
    return tuple(rows)


@dataclass(frozen=True)
class PotentialSpec:
    """The potential: V, a harmonic V = ½ m Σ ω_i² y_i², or the loss L̄ giving V by (3.6).

    The loss is an expression, or L̄ = ½ Σ a_i y_i² by its curvatures a_i.
    """

    V: Expr | None = None
    loss: Expr | None = None
    omega: tuple[float, ...] | None = None
    curvature: tuple[float, ...] | None = None

    @property
    def has_loss(self) -> bool:
        """Whether a loss L̄ is given (required by the Fokker–Planck equation)."""
        return self.loss is not None or self.curvature is not None

    @classmethod
    def from_table(cls, t: Mapping[str, Any], dim: int) -> PotentialSpec:
        """Validate [potential]; at most one of V, loss, omega."""
        s = "potential"
        keys = ("V", "loss", "omega", "curvature")
        check_keys(t, keys, s)
        given = [k for k in keys if k in t]
        if len(given) > 1:
            raise CaseError(
                join(s, given[1]),
                f"give only one of V, loss, omega, curvature (also got {given[0]})",
            )
        names = coordinate_names(dim) + PARAMETER_NAMES
        if "V" in t:
            return cls(V=parse(as_str(t["V"], join(s, "V")), field=join(s, "V"), names=names))
        if "loss" in t:
            f = join(s, "loss")
            return cls(loss=parse(as_str(t["loss"], f), field=f, names=names))
        if "omega" in t:
            omega = as_floats(t["omega"], join(s, "omega"), dim, nonnegative=True)
            if max(omega) > MAX_OMEGA:  # the coherent width sqrt(hbar/(m omega)) underflows
                raise CaseError(
                    join(s, "omega"), f"entries must be in 0..{MAX_OMEGA:g}, got {list(omega)}"
                )
            return cls(omega=omega)
        if "curvature" in t:
            a = as_floats(t["curvature"], join(s, "curvature"), dim, positive=True)
            # the same bound as omega's, squared: the Gibbs width sqrt(T/a) and the OU relaxation
            # e^{-γ a t} stay representable (a = 1e308 made ∫e^{-2βL̄/γ} = 0 and S = a_i + a_j
            # overflow in the exact solution)
            if max(a) > MAX_OMEGA**2:
                raise CaseError(
                    join(s, "curvature"), f"entries must be in (0, {MAX_OMEGA**2:g}], got {list(a)}"
                )
            return cls(curvature=a)
        return cls()


@dataclass(frozen=True)
class NoiseSpec:
    """The noise tensor κ of (2.8): from the power law g ∝ κ^α (2.9), or given.

    Attributes:
        alpha: α in [0, 1]; κ = g^{1/α}/β for α > 0 (1 quantum, 1/2 efficient, 0 SGD).
        kappa: κ_{μν} given directly (K×K numbers or expressions); required for α = 0.
    """

    alpha: float = 1.0
    kappa: tuple[tuple[Any, ...], ...] | None = None

    @classmethod
    def from_table(cls, t: Mapping[str, Any], dim: int) -> NoiseSpec:
        """Validate [noise]."""
        s = "noise"
        check_keys(t, ("alpha", "kappa"), s)
        alpha = as_float(t.get("alpha", 1.0), join(s, "alpha"), lo=0.0, hi=1.0)
        kappa = None
        if "kappa" in t:
            kappa = tensor_entries(t["kappa"], join(s, "kappa"), dim, coordinate_names(dim))
        if alpha == 0 and kappa is None:
            raise CaseError(join(s, "kappa"), "is required for alpha = 0 (SGD: g = δ, κ given)")
        return cls(alpha, kappa)


BOUNDARY_CONDITIONS = ("dirichlet", "zero_flux")


@dataclass(frozen=True)
class BoundarySpec:
    """Outer boundary: ``dirichlet`` (ψ = 0 or p = 0) or ``zero_flux`` (natural)."""

    condition: str | None = None

    @classmethod
    def from_table(cls, t: Mapping[str, Any]) -> BoundarySpec:
        """Validate [boundary]."""
        check_keys(t, ("condition",), "boundary")
        c = t.get("condition")
        return cls(None if c is None else as_str(c, "boundary.condition", BOUNDARY_CONDITIONS))


@dataclass(frozen=True)
class LangevinSpec:
    """Particles of the Langevin equation (2.5), the reference for (2.7).

    Attributes:
        particles: Number of particles N.
        seed: Seed; particle block b uses the stream (seed, b), whatever the rank count.
        dt: Euler–Maruyama step (default: discretisation.dt / 4).
        bins: Histogram bins per direction (default: chosen from the mesh).
    """

    particles: int = 100_000
    seed: int = 0
    dt: float | None = None
    bins: tuple[int, ...] | None = None

    @classmethod
    def from_table(cls, t: Mapping[str, Any], dim: int) -> LangevinSpec:
        """Validate [langevin]."""
        s = "langevin"
        check_keys(t, ("particles", "seed", "dt", "bins"), s)
        bins = t.get("bins")
        if bins is not None:
            if not isinstance(bins, list) or len(bins) != dim:
                raise CaseError(join(s, "bins"), f"must be a list of {dim} integers >= 2")
            bins = tuple(as_int(b, f"{join(s, 'bins')}[{i}]", lo=2) for i, b in enumerate(bins))
        dt = t.get("dt")
        return cls(
            particles=as_int(t.get("particles", 100_000), join(s, "particles"), lo=100),
            seed=as_int(t.get("seed", 0), join(s, "seed"), lo=0),
            dt=None if dt is None else as_float(dt, join(s, "dt"), positive=True),
            bins=bins,
        )


INITIAL_KINDS = ("gaussian", "coherent", "expression")


@dataclass(frozen=True)
class InitialSpec:
    """Initial state: a Gaussian packet, a harmonic coherent state, or p and S expressions."""

    kind: str
    center: tuple[float, ...] = ()
    width: tuple[float, ...] = ()
    momentum: tuple[float, ...] = ()
    p: Expr | None = None
    S: Expr | None = None

    @classmethod
    def from_table(cls, t: Mapping[str, Any], dim: int) -> InitialSpec:
        """Validate [initial]."""
        s = "initial"
        kind = as_str(require(t, "kind", s), join(s, "kind"), INITIAL_KINDS)
        zeros = [0.0] * dim
        if kind == "expression":
            check_keys(t, ("kind", "p", "S"), s)
            names = coordinate_names(dim) + PARAMETER_NAMES
            p = parse(as_str(require(t, "p", s), join(s, "p")), field=join(s, "p"), names=names)
            S = parse(as_str(t.get("S", "0"), join(s, "S")), field=join(s, "S"), names=names)
            return cls(kind, p=p, S=S)
        keys = ("kind", "center", "momentum") + (("width",) if kind == "gaussian" else ())
        check_keys(t, keys, s)
        return cls(
            kind,
            center=as_floats(t.get("center", zeros), join(s, "center"), dim),
            momentum=as_floats(t.get("momentum", zeros), join(s, "momentum"), dim),
            width=as_floats(require(t, "width", s), join(s, "width"), dim, positive=True)
            if kind == "gaussian"
            else (),
        )


@dataclass(frozen=True)
class OutputSpec:
    """Output cadence and content.

    Attributes:
        every: Steps between diagnostics rows (None: about 20 rows).
        fields_every: Steps between VTX field outputs (None: ``every``).
        fields: Whether to write fields.bp.
        exact: Whether to report the error against the whole-space exact solution
            when the case has one (false where walls or a small domain make it
            inapplicable).
        checkpoint_every: Steps between checkpoints (None: none on a step cadence).
        checkpoint_minutes: Wall-clock minutes between checkpoints (None: none on a
            clock cadence). A signal always writes one (docs/faults.md).
    """

    every: int | None = None
    fields_every: int | None = None
    fields: bool = True
    exact: bool = True
    checkpoint_every: int | None = None
    checkpoint_minutes: float | None = None

    @classmethod
    def from_table(cls, t: Mapping[str, Any]) -> OutputSpec:
        """Validate [output]."""
        s = "output"
        keys = (
            "every",
            "fields",
            "fields_every",
            "exact",
            "checkpoint_every",
            "checkpoint_minutes",
        )
        check_keys(t, keys, s)
        every = t.get("every")
        fe = t.get("fields_every")
        ce, cm = t.get("checkpoint_every"), t.get("checkpoint_minutes")
        return cls(
            checkpoint_every=None if ce is None else as_int(ce, join(s, "checkpoint_every"), lo=1),
            checkpoint_minutes=None
            if cm is None
            else as_float(cm, join(s, "checkpoint_minutes"), positive=True),
            every=None if every is None else as_int(every, join(s, "every"), lo=1),
            fields_every=None if fe is None else as_int(fe, join(s, "fields_every"), lo=1),
            fields=as_bool(t.get("fields", True), join(s, "fields")),
            exact=as_bool(t.get("exact", True), join(s, "exact")),
        )


SOLVER_PRESETS = ("direct", "iterative")  # nhj.solvers.preset_options builds each


@dataclass(frozen=True)
class SolverSpec:
    """A solver preset and PETSc options merged over it (values: strings, numbers, booleans).

    Attributes:
        preset: ``direct`` (MUMPS LU, the default) or ``iterative`` (FGMRES with the
            PRESB/AMG block preconditioner of nhj/iterative.py); see docs/cases.md.
        petsc_options: Overrides of the preset's options.
    """

    petsc_options: Mapping[str, Any] = field(default_factory=dict)
    preset: str = "direct"

    @classmethod
    def from_table(cls, t: Mapping[str, Any]) -> SolverSpec:
        """Validate [solver]."""
        s = "solver"
        check_keys(t, ("petsc_options", "preset"), s)
        preset = as_str(t.get("preset", "direct"), join(s, "preset"), SOLVER_PRESETS)
        opts = as_table(t.get("petsc_options", {}), join(s, "petsc_options"))
        for k, v in opts.items():
            if not isinstance(v, (str, int, float, bool)):
                raise CaseError(
                    join(s, f"petsc_options.{k}"), "must be a string, number or boolean"
                )
        check_petsc_options(opts, join(s, "petsc_options"))  # no viewers/monitors/logs
        return cls(dict(opts), preset)


AMPLITUDES = ("sqrt", "log")


@dataclass(frozen=True)
class VacuumSpec:
    """Phase diffusion where p is negligible (madelung, neural_hj).

    Attributes:
        nu: ν₀ ≥ 0, relative: the coefficient of ν_h ∫∇S·∇v is ν₀ max √p₀ ℓ² (h/ℓ)^{k+1}
            (h the largest cell, ℓ the domain diameter, k the degree), so it vanishes
            under refinement at the order of the discretisation. 0 switches it off
            (the run then fails where p underflows).
        amplitude: The amplitude unknown: "sqrt" (R = √p, R = 0 on a Dirichlet wall) or
            "log" (ρ = log √p, natural walls, no division by R and no phase diffusion).
            None (absent): "sqrt" (nhj.builders.madelung.choose_amplitude).
    """

    nu: float = 0.05
    amplitude: str | None = None

    @classmethod
    def from_table(cls, t: Mapping[str, Any]) -> VacuumSpec:
        """Validate [vacuum]."""
        check_keys(t, ("nu", "amplitude"), "vacuum")
        a = t.get("amplitude")
        return cls(
            nu=as_float(t.get("nu", cls.nu), "vacuum.nu", lo=0.0),
            amplitude=None if a is None else as_str(a, "vacuum.amplitude", AMPLITUDES),
        )


#: nonlinear.nodes: retake an inadmissible (√p, S) step as a wave, or stop the run.
NODE_TREATMENTS = ("hybrid", "stop")


@dataclass(frozen=True)
class NonlinearSpec:
    """Newton and adaptive sub-stepping of madelung/neural_hj, and node detection.

    Attributes:
        tolerance: Local error estimate bound per sub-step (relative ∞-norm).
        dt_min: Smallest sub-step relative to discretisation.dt before failing.
        max_iterations: Newton iterations before a sub-step is rejected.
        newton_rtol: Newton tolerance on the relative update.
        node_threshold: A node of ψ is declared where √p < −node_threshold·max √p
            (the amplitude changes sign inside the support).
        nodes: What an inadmissible (√p, S) step does: ``hybrid`` retakes it in the
            wave form ψ = √p e^{iS/ħ} (3.10)-(3.11) and returns to (√p, S) when ψ has
            no node in the support again (only where a wave form exists: α = 1,
            κ from the power law); ``stop`` ends the run there (nhj/hybrid.py).
    """

    tolerance: float = 1e-2
    dt_min: float = 1e-3
    max_iterations: int = 12
    newton_rtol: float = 1e-7
    node_threshold: float = 1e-2
    nodes: str = "hybrid"

    @classmethod
    def from_table(cls, t: Mapping[str, Any]) -> NonlinearSpec:
        """Validate [nonlinear]."""
        s = "nonlinear"
        keys = ("tolerance", "dt_min", "max_iterations", "newton_rtol", "node_threshold", "nodes")
        check_keys(t, keys, s)
        return cls(
            nodes=as_str(t.get("nodes", cls.nodes), join(s, "nodes"), NODE_TREATMENTS),
            tolerance=as_float(
                t.get("tolerance", cls.tolerance), join(s, "tolerance"), positive=True
            ),
            dt_min=as_float(t.get("dt_min", cls.dt_min), join(s, "dt_min"), positive=True, hi=1.0),
            max_iterations=as_int(
                t.get("max_iterations", cls.max_iterations), join(s, "max_iterations"), lo=2, hi=100
            ),
            newton_rtol=as_float(
                t.get("newton_rtol", cls.newton_rtol),
                join(s, "newton_rtol"),
                positive=True,
                hi=1e-3,
            ),
            node_threshold=as_float(
                t.get("node_threshold", cls.node_threshold),
                join(s, "node_threshold"),
                positive=True,
                hi=1.0,
            ),
        )


@dataclass(frozen=True)
class Case:
    """A validated case file.

    The shared sections are fields; ``own`` holds the validated sections that
    only one equation declares (e.g. ``[coupling]`` of gross_pitaevskii).
    """

    name: str
    equation: str
    parameters: Parameters
    mesh: MeshSpec
    discretisation: Discretisation
    metric: MetricSpec
    potential: PotentialSpec
    initial: InitialSpec
    output: OutputSpec
    solver: SolverSpec
    noise: NoiseSpec = field(default_factory=NoiseSpec)
    boundary: BoundarySpec = field(default_factory=BoundarySpec)
    langevin: LangevinSpec | None = None
    vacuum: VacuumSpec = field(default_factory=VacuumSpec)
    nonlinear: NonlinearSpec = field(default_factory=NonlinearSpec)
    own: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None
    text: str = ""
    description: str = ""

    @property
    def dim(self) -> int:
        """Number of trainable variables K (the mesh dimension)."""
        return self.mesh.dim

    def section(self, name: str) -> Any:
        """A section that only this case's equation declares (its registry entry's ``own``)."""
        return self.own[name]


#: Sections every equation reads; the others are declared per equation in the registry.
COMMON_SECTIONS = (
    "equation",
    "name",
    "description",
    "parameters",
    "mesh",
    "discretisation",
    "metric",
    "potential",
    "initial",
    "output",
    "solver",
    "boundary",
)
#: Sections that only some equations read (see each registry entry's ``sections``).
OPTIONAL_SECTIONS = ("noise", "langevin", "vacuum", "nonlinear")
