# Sourced by scripts/main and scripts/test: make sure .venv exists and is current.
#
# Finds a Python >= 3.12 (NHJ_PYTHON, then PATH, then pyenv's versions, then uv),
# creates .venv and installs nhj with DOLFINx from the dolfinx-solver-real wheel.
# NHJ_NO_DOLFINX_WHEEL=1 uses an existing DOLFINx (conda, Docker) instead.
NHJ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NHJ_VENV="$NHJ_ROOT/.venv"

nhj_python_ok() {
    [ -n "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

nhj_find_python() {
    local c root
    if [ -n "${NHJ_PYTHON:-}" ]; then
        nhj_python_ok "$NHJ_PYTHON" && { echo "$NHJ_PYTHON"; return 0; }
        echo "nhj: NHJ_PYTHON=$NHJ_PYTHON is not a Python >= 3.12" >&2
        return 1
    fi
    for c in python3.13 python3.12 python3 python; do
        c="$(command -v "$c" 2>/dev/null)" || continue
        nhj_python_ok "$c" && { echo "$c"; return 0; }
    done
    root="$( (command -v pyenv >/dev/null 2>&1 && pyenv root) 2>/dev/null || true)"
    for c in $(ls -d "${root:-/nonexistent}"/versions/3.1[2-9]* "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]* 2>/dev/null | sort -r -V); do
        nhj_python_ok "$c/bin/python" && { echo "$c/bin/python"; return 0; }
    done
    if command -v uv >/dev/null 2>&1; then
        c="$(uv python find '>=3.12' 2>/dev/null)" && nhj_python_ok "$c" && { echo "$c"; return 0; }
    fi
    echo "nhj: no Python >= 3.12 found (looked at NHJ_PYTHON, on PATH, in pyenv versions, via uv); install one, e.g. 'pyenv install 3.12', or set NHJ_PYTHON" >&2
    return 1
}

nhj_bootstrap() {
    local stamp="$NHJ_VENV/.nhj-installed" py extra="[dolfinx,test]" venv_flags=""
    if nhj_python_ok "$NHJ_VENV/bin/python" && [ -f "$stamp" ] && [ "$stamp" -nt "$NHJ_ROOT/pyproject.toml" ]; then
        return 0
    fi
    if ! nhj_python_ok "$NHJ_VENV/bin/python"; then
        py="$(nhj_find_python)" || return 1
        if [ -n "${NHJ_NO_DOLFINX_WHEEL:-}" ]; then venv_flags="--system-site-packages"; fi
        echo "nhj: creating .venv with $py ($("$py" -V 2>&1))" >&2
        rm -rf "$NHJ_VENV"
        "$py" -m venv $venv_flags "$NHJ_VENV" || return 1
    fi
    [ -n "${NHJ_NO_DOLFINX_WHEEL:-}" ] && extra="[test]"
    echo "nhj: installing nhj$extra into .venv (DOLFINx, PETSc, MPICH, pyvista, gmsh; first time takes a few minutes)" >&2
    "$NHJ_VENV/bin/python" -m pip install --quiet --upgrade pip >&2 || return 1
    "$NHJ_VENV/bin/python" -m pip install --quiet -e "$NHJ_ROOT$extra" >&2 || return 1
    touch "$stamp"
}

if [ -n "${NHJ_BOOTSTRAP_FIND_ONLY:-}" ]; then
    nhj_find_python
    return $? 2>/dev/null || exit $?
fi
nhj_bootstrap || { echo "nhj: setting up .venv failed" >&2; return 1 2>/dev/null || exit 1; }
export PATH="$NHJ_VENV/bin:$PATH"
export PYVISTA_OFF_SCREEN=true
