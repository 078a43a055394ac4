"""Case files are data: allow-lists for what a case may hand to gmsh, PETSc and the disk.

The ``.geo`` allow-list (a gmsh ``.geo`` file is a scripting language:
``SystemCall``, ``Printf ... >``, ``Save``, ``Include``, ``Merge``, ``OnelabRun``
... run programs or read and write files) is :mod:`nhj.geo_safety`. PETSc options
include viewers, monitors and logs that write wherever their value points, and a
case ``name`` becomes a directory. Each check here accepts an explicit allow-list
and raises :class:`nhj.schema.CaseError` (one line) on anything else, before
gmsh, PETSc or the file system sees the input.
A leaf module: stdlib and :mod:`nhj.schema` only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nhj.schema import CaseError

__all__ = ["GEO_FIELD", "check_mesh_file", "check_name", "check_petsc_options", "elide"]

GEO_FIELD = "mesh.file"


def elide(text: str, n: int = 60) -> str:
    """``text`` on one line, cut to ``n`` characters (for quoting input in a message)."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


# ---------------------------------------------------------------------------------------
# PETSc options

# sub-solver prefixes: mg_levels_ksp_type, fieldsplit_0_pc_type, st_ksp_type, ...
_PETSC_PREFIX = re.compile(r"(mg_levels(_\d+)?|mg_coarse|sub|redundant|st|fieldsplit_[a-z0-9]+)_")
_PETSC_ALLOWED = re.compile(
    r"""
    ksp_(type|rtol|atol|divtol|max_it|min_it|norm_type|pc_side|initial_guess_nonzero
        |error_if_not_converged|reuse_preconditioner|gmres_restart|gmres_modifiedgramschmidt
        |gmres_classicalgramschmidt|gmres_cgs_refinement_type|gmres_preallocate
        |lgmres_augment|fgmres_restart|gcr_restart|bcgsl_ell|richardson_scale
        |chebyshev_eigenvalues|chebyshev_esteig|chebyshev_esteig_steps)
  | pc_(type|use_amat|factor_[a-z0-9_]+|hypre_[a-z0-9_]+|gamg_[a-z0-9_]+|mg_[a-z0-9_]+
        |ml_[a-z0-9_]+|asm_[a-z0-9_]+|gasm_[a-z0-9_]+|bjacobi_[a-z0-9_]+|jacobi_[a-z0-9_]+
        |sor_[a-z0-9_]+|fieldsplit_[a-z0-9_]+|composite_[a-z0-9_]+|redundant_number)
  | mat_mumps_icntl_([4-9]|1[0-9]|2[013-9]|[3-9][0-9])
  | mat_mumps_cntl_[0-9]+
  | mat_superlu_dist_(rowperm|colperm|equil|replacetinypivot|iterrefine|fact|parsymbfact)
  | snes_(type|rtol|atol|stol|max_it|max_funcs|max_fail|max_linear_solve_fail
        |divergence_tolerance|error_if_not_converged|force_iteration|lag_jacobian
        |lag_jacobian_persists|lag_preconditioner|lag_preconditioner_persists|mf_operator
        |trtol|linesearch_[a-z0-9_]+|ksp_ew[a-z0-9_]*|newtontr_[a-z0-9_]+|qn_[a-z0-9_]+
        |ngmres_[a-z0-9_]+|anderson_[a-z0-9_]+|ncg_type)
  | eps_(type|nev|ncv|mpd|tol|max_it|target|which|problem_type|hermitian|gen_hermitian
        |non_hermitian|gen_non_hermitian|largest_magnitude|smallest_magnitude|largest_real
        |smallest_real|target_magnitude|target_real|true_residual|conv_abs|conv_rel
        |conv_norm|balance|two_sided|purify|krylovschur_[a-z0-9_]+)
  | st_(type|shift|matmode)
    """,
    re.VERBOSE,
)
# what a viewer, monitor, log or dump is called; named in the message when a key has one
_PETSC_WRITERS = re.compile(
    r"view|monitor|log|dump|options_file|options_left|history|draw|test|file|output|matlab"
    r"|save|print|converged_reason|trace|malloc|python|socket|binary|ascii"
)
_PETSC_VALUE = re.compile(r"[A-Za-z0-9_.+-]{0,64}")
_PETSC_ALLOWED_SUMMARY = "allowed: ksp_*, pc_*, snes_*, eps_*, st_* settings, mat_mumps_icntl_*"


def check_petsc_options(options: Mapping[str, Any], field: str = "solver.petsc_options") -> None:
    """Accept only PETSc solver settings: no viewers, monitors, logs, dumps or option files.

    A key (without a leading ``-``) is allowed if it matches a solver setting of the
    allow-list, possibly behind sub-solver prefixes (``mg_levels_``, ``sub_``,
    ``fieldsplit_<name>_``, ``st_``). A string value is a word of letters, digits and
    ``_ . + -`` (so no ``ascii:/path`` viewer targets).

    Raises:
        CaseError: ``<field>.<key>: not an allowed PETSc option ...``, one line.
    """
    for key, value in options.items():
        name = f"{field}.{elide(str(key), 60)}"
        ok = isinstance(key, str) and re.fullmatch(r"[a-z][a-z0-9_]*", key) is not None
        writes = isinstance(key, str) and _PETSC_WRITERS.search(key.lower()) is not None
        if ok and not writes:
            rest = key
            for _ in range(4):
                if _PETSC_ALLOWED.fullmatch(rest):
                    break
                m = _PETSC_PREFIX.match(rest)
                if m is None:
                    ok = False
                    break
                rest = rest[m.end() :]
            else:
                ok = _PETSC_ALLOWED.fullmatch(rest) is not None
        if not ok or writes:
            why = "viewers, monitors, logs, option files write files"
            raise CaseError(name, f"not an allowed PETSc option ({why}); {_PETSC_ALLOWED_SUMMARY}")
        if isinstance(value, str) and _PETSC_VALUE.fullmatch(value) is None:
            raise CaseError(
                name,
                f"value {elide(repr(value), 40)} is not allowed; give a number, a boolean or "
                "a word of letters, digits and _.+- (no viewer targets such as ascii:file)",
            )


# ---------------------------------------------------------------------------------------
# names and paths

_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,99}")


def check_name(name: str, field: str = "name") -> None:
    """Accept a case name that is one plain path component (it becomes ``results/<name>``).

    Letters, digits and ``_ . + -``, 1 to 100 characters, not starting with ``.``, no
    ``..`` (so no slash or backslash, absolute paths or parent directories).

    Raises:
        CaseError: On any other name.
    """
    if not isinstance(name, str) or _NAME.fullmatch(name) is None or ".." in name:
        raise CaseError(
            field,
            f"{elide(repr(name), 60)} cannot name a result directory; use 1-100 letters, "
            "digits and _ . + - (no / \\ or .., not starting with '.')",
        )


def check_mesh_file(path: Path, case_dir: Path, mesh_dir: Path) -> None:
    """Accept a mesh file found from a relative ``mesh.file`` only inside its search roots.

    The resolved file (symlinks followed) must lie inside the case's directory or the
    shipped ``meshes/``; ``../../elsewhere.geo`` or a symlink out of them is refused. An
    absolute ``mesh.file`` is the way to use a file elsewhere (callers skip this check).

    Raises:
        CaseError: ``mesh.file: ... is outside ...``.
    """
    resolved = Path(path).resolve()
    for root in (case_dir, mesh_dir):
        if resolved.is_relative_to(Path(root).resolve()):
            return
    raise CaseError(
        GEO_FIELD,
        f"{elide(str(resolved), 80)} is outside the case's directory and meshes/; a relative "
        "mesh.file must stay inside them (give an absolute path for another file)",
    )
