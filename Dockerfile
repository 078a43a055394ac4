# nhj in the README's environment: a venv made by scripts/bootstrap.sh with
# `pip install -e .[dolfinx,test]` (DOLFINx 0.11, PETSc and MPICH from the dolfinx-solver-real
# wheel, pyvista, gmsh), on a Debian trixie base (Python 3.13). docs/docker.md has the recipe as
# tested (podman, a local base image); in short:
#
#   docker build -t nhj .                                   # BASE=debian:trixie
#   docker build --build-arg BASE=python:3.13-slim-trixie -t nhj .
#   mkdir -p results
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/results:/work/results" \
#       nhj run /opt/nhj/cases/coherent_2d.toml --out results/coherent_2d
#   docker run --rm --shm-size 1g --entrypoint mpirun nhj -n 2 nhj run /opt/nhj/cases/coherent_2d.toml --out /tmp/r
#   docker run --rm --shm-size 1g --entrypoint /opt/nhj/scripts/test nhj
#
# BASE: any Debian trixie image; one without a Python >= 3.12 with headers gets Debian's python3.
ARG BASE=debian:trixie
FROM ${BASE}

# Package index settings for pip, as on the building machine (scripts/docker-check passes the
# host's); unset means pip's defaults. Build-time only: none of them is kept in the image's ENV.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_TRUSTED_HOST
ARG PIP_CERT
ARG PIP_CONSTRAINT

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# System packages (this layer changes only with the list):
# - gcc, libc6-dev (and Python's headers): FFCx JIT-compiles every form with cffi and a C compiler;
# - GL/EGL with Mesa's software renderer and the X libraries gmsh's and VTK's wheels link against
#   (pyvista renders off-screen, no display).
RUN set -eu; \
    pkgs="gcc libc6-dev libgomp1 \
          libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri libglu1-mesa \
          libx11-6 libxext6 libxfixes3 libxrender1 libxcursor1 libxinerama1 libxft2 libfontconfig1"; \
    if ! python3 -c 'import os, sys, sysconfig; sys.exit(sys.version_info < (3, 12) or not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then \
        pkgs="$pkgs python3 python3-venv python3-dev"; \
    fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends $pkgs; \
    rm -rf /var/lib/apt/lists/*

# A non-root user for the default; any other uid works too (`--user "$(id -u):$(id -g)"`): HOME
# is writable by every uid and caches live in /tmp (DOLFINx/FFCx JIT: $XDG_CACHE_HOME/fenics).
RUN useradd --uid 1000 --user-group --create-home --home-dir /home/nhj --shell /bin/bash nhj \
    && chmod 1777 /home/nhj \
    && mkdir -p /work/results && chown nhj:nhj /work /work/results && chmod 1777 /work/results
ENV HOME=/home/nhj \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.config/matplotlib \
    PYVISTA_OFF_SCREEN=true \
    PATH=/opt/nhj/.venv/bin:$PATH

WORKDIR /opt/nhj

# Dependencies first, in their own cached layer: only pyproject.toml and scripts/bootstrap.sh
# invalidate it. bootstrap.sh makes .venv exactly as scripts/main and scripts/test do, here for a
# stub package and an empty README.md (pyproject's readme); the code layer comes over the stub
# (the editable install maps the package name to /opt/nhj/nhj).
COPY pyproject.toml ./
COPY scripts/bootstrap.sh ./scripts/
RUN mkdir -p nhj && echo '"""stub: replaced by the code layer."""' > nhj/__init__.py \
    && : > README.md \
    && bash scripts/bootstrap.sh \
    && .venv/bin/python -c 'from mpi4py import MPI; import dolfinx, petsc4py, pyvista, gmsh; print("dolfinx", dolfinx.__version__)'

# Then the code (see .dockerignore for what stays out). The stamp is renewed so that
# scripts/test and scripts/main see .venv as current (the copied pyproject.toml keeps its mtime).
COPY . .
RUN .venv/bin/python -m pip install -qq --no-deps -e . \
    && touch .venv/.nhj-installed \
    && .venv/bin/python -c 'from mpi4py import MPI; import nhj, dolfinx; print("nhj", nhj.__version__, "dolfinx", dolfinx.__version__)'

USER nhj
WORKDIR /work
ENTRYPOINT ["nhj"]
CMD ["--help"]
