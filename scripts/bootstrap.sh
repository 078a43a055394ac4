# shellcheck shell=bash
# Sourced by scripts/main and scripts/test (bash): make sure .venv exists and is current,
# then put it first on PATH.
#
# (Re)installs when .venv/bin/python is missing or older than 3.12, or when the stamp
# .venv/.nhj-installed is older than pyproject.toml (or was made in the other mode).
#
#   NHJ_PYTHON=/path/to/python   use this interpreter for .venv (must be >= 3.12)
#   NHJ_NO_DOLFINX_WHEEL=1       DOLFINx is already importable (conda, Docker): make .venv with
#                                --system-site-packages and install nhj[test] without the
#                                dolfinx-solver-real wheel
#   NHJ_BOOTSTRAP_FIND_ONLY=1    only print the interpreter the search picks (exit 1 if none)
#
# The interpreter search: NHJ_PYTHON, then python3.13, python3.12, python3, python on PATH,
# then pyenv's versions (also when pyenv itself is not on PATH), then `uv python find`.
# Uses bash built-ins only until an interpreter is found.

NHJ_ROOT="${BASH_SOURCE[0]}"
case "$NHJ_ROOT" in */*) NHJ_ROOT="${NHJ_ROOT%/*}" ;; *) NHJ_ROOT=. ;; esac
NHJ_ROOT="$(cd "$NHJ_ROOT/.." && pwd)"
NHJ_VENV="$NHJ_ROOT/.venv"

nhj_no_wheel() {
    [ -n "${NHJ_NO_DOLFINX_WHEEL:-}" ] && [ "${NHJ_NO_DOLFINX_WHEEL}" != 0 ]
}

# True if $1 runs and is Python >= 3.12 (a pyenv shim that refuses to run counts as no).
nhj_python_ok() {
    [ -n "${1:-}" ] && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

# True if $1 is a usable interpreter for this mode (NHJ_NO_DOLFINX_WHEEL: it must see dolfinx).
nhj_python_usable() {
    nhj_python_ok "$1" || return 1
    if nhj_no_wheel; then "$1" -c 'import dolfinx' >/dev/null 2>&1 || return 1; fi
}

# Print the path of a usable Python >= 3.12, or one line on stderr and return 1.
nhj_find_python() {
    local c root d
    if [ -n "${NHJ_PYTHON:-}" ]; then
        nhj_python_usable "$NHJ_PYTHON" && { echo "$NHJ_PYTHON"; return 0; }
        if nhj_no_wheel; then
            echo "nhj: NHJ_PYTHON=$NHJ_PYTHON is not a Python >= 3.12 that can import dolfinx" >&2
        else
            echo "nhj: NHJ_PYTHON=$NHJ_PYTHON is not a Python >= 3.12" >&2
        fi
        return 1
    fi
    for c in python3.13 python3.12 python3 python; do
        c="$(command -v "$c" 2>/dev/null)" || continue
        nhj_python_usable "$c" && { echo "$c"; return 0; }
    done
    root=""
    if command -v pyenv >/dev/null 2>&1; then root="$(pyenv root 2>/dev/null)" || root=""; fi
    for d in "$root" "${PYENV_ROOT:-}" "${HOME:-/nonexistent}/.pyenv"; do
        if [ -z "$d" ] || [ ! -d "$d/versions" ]; then continue; fi
        local versions=("$d"/versions/3.1[2-9]*)  # glob order is ascending: try newest first
        local i
        for ((i = ${#versions[@]} - 1; i >= 0; i--)); do
            c="${versions[i]}/bin/python"
            nhj_python_usable "$c" && { echo "$c"; return 0; }
        done
    done
    if command -v uv >/dev/null 2>&1; then
        c="$(uv python find '>=3.12' 2>/dev/null)" && nhj_python_usable "$c" && { echo "$c"; return 0; }
    fi
    if nhj_no_wheel; then
        echo "nhj: NHJ_NO_DOLFINX_WHEEL is set but no Python >= 3.12 that can import dolfinx was found (looked on PATH, in pyenv versions, via uv); activate your conda env or set NHJ_PYTHON=/path/to/python" >&2
    else
        echo "nhj: no Python >= 3.12 found (looked on PATH, in pyenv versions, via uv); install one, e.g. \`pyenv install 3.12\`, or set NHJ_PYTHON=/path/to/python" >&2
    fi
    return 1
}

nhj_bootstrap() {
    local stamp="$NHJ_VENV/.nhj-installed" mode=dolfinx-wheel extra="[dolfinx,test]" py
    if nhj_no_wheel; then mode=system-dolfinx; extra="[test]"; fi
    if nhj_python_ok "$NHJ_VENV/bin/python" && [ -f "$stamp" ] && [ "$stamp" -nt "$NHJ_ROOT/pyproject.toml" ] \
        && [ "$(cat "$stamp")" = "$mode" ]; then
        return 0
    fi
    # (Re)create .venv if its Python is missing/too old, or its site-packages mode is wrong.
    local want_system=false have_system=false
    [ "$mode" = system-dolfinx ] && want_system=true
    grep -qs '^include-system-site-packages *= *true' "$NHJ_VENV/pyvenv.cfg" && have_system=true
    if ! nhj_python_ok "$NHJ_VENV/bin/python" || [ "$want_system" != "$have_system" ]; then
        py="$(nhj_find_python)" || return 1
        echo "nhj: creating .venv with $py ($("$py" -V 2>&1))" >&2
        rm -rf "$NHJ_VENV"
        if $want_system; then
            "$py" -m venv --system-site-packages "$NHJ_VENV" || return 1
            # A venv made from inside another venv (e.g. the DOLFINx image's /dolfinx-env) only
            # sees the base interpreter's packages: add the parent environment's site-packages.
            local parent sp
            parent="$("$py" -c 'import site, sys
if sys.prefix != sys.base_prefix: print("\n".join(site.getsitepackages()))')" || return 1
            if [ -n "$parent" ]; then
                sp="$("$NHJ_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
                    || return 1
                printf '%s\n' "$parent" > "$sp/_nhj_parent_env.pth"
            fi
        else
            "$py" -m venv "$NHJ_VENV" || return 1
        fi
    fi
    if [ "$mode" = system-dolfinx ]; then
        echo "nhj: installing nhj$extra into .venv (using the DOLFINx already installed)" >&2
    else
        echo "nhj: installing nhj$extra into .venv (DOLFINx, PETSc, MPICH, pyvista, gmsh wheels; a few minutes the first time)" >&2
    fi
    # -qq: errors only (pip warnings, e.g. about a machine-wide pip.conf, would bury the output)
    "$NHJ_VENV/bin/python" -m pip install -qq --disable-pip-version-check --upgrade pip >&2 || return 1
    "$NHJ_VENV/bin/python" -m pip install -qq --disable-pip-version-check -e "$NHJ_ROOT$extra" >&2 \
        || return 1
    if [ "$mode" = system-dolfinx ] && ! "$NHJ_VENV/bin/python" -c 'import dolfinx' >/dev/null 2>&1; then
        echo "nhj: NHJ_NO_DOLFINX_WHEEL is set but .venv cannot import dolfinx" >&2
        return 1
    fi
    echo "$mode" > "$stamp"
}

# `return` when sourced (the normal case), `exit` if run as `bash scripts/bootstrap.sh`.
# shellcheck disable=SC2317
if [ -n "${NHJ_BOOTSTRAP_FIND_ONLY:-}" ]; then
    nhj_find_python
    return $? 2>/dev/null || exit $?
fi
# shellcheck disable=SC2317
nhj_bootstrap || { echo "nhj: setting up .venv failed" >&2; return 1 2>/dev/null || exit 1; }
export PATH="$NHJ_VENV/bin:$PATH"
export PYVISTA_OFF_SCREEN=true
