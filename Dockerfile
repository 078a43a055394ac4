# nhj on the official DOLFINx image.
#
# The DOLFINx, PETSc, MPI (MPICH) and gmsh used here are the image's own (Ubuntu 24.04,
# Python 3.12, the image's venv /dolfinx-env first on PATH, DOLFINx on PYTHONPATH), so nhj is
# installed with NHJ_NO_DOLFINX_WHEEL=1 semantics: `pip install .[test]`, WITHOUT the `dolfinx`
# extra (the dolfinx-solver-real wheel would bring a second PETSc/MPI stack).
# Pinned to the DOLFINx release nhj is developed against (the wheel is 0.11.0 too); bump deliberately.
#
#   docker build -t nhj .
#   docker run --rm -v "$PWD/results:/work/results" nhj run /opt/nhj/cases/coherent_2d.toml --out results/coherent_2d
#   docker run --rm --entrypoint mpirun nhj -n 2 nhj run /opt/nhj/cases/coherent_2d.toml --out /tmp/r
#   docker run --rm --entrypoint /opt/nhj/scripts/test nhj
FROM ghcr.io/fenics/dolfinx/dolfinx:v0.11.0

ENV PYVISTA_OFF_SCREEN=true \
    NHJ_NO_DOLFINX_WHEEL=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Off-screen rendering for pyvista/VTK without a display: GL, EGL (Mesa) and OSMesa.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libgl1 libegl1 libegl-mesa0 libosmesa6 libxrender1 libxcursor1 libxinerama1 libxft2 libglu1-mesa \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/nhj

# Dependencies first, in their own cached layer: only pyproject.toml (and README.md, which it
# names as the long description) invalidate it. A stub package lets pip resolve and install
# nhj's dependencies; the stub itself is removed again.
COPY pyproject.toml README.md ./
RUN mkdir -p nhj && echo '__version__ = "0"' > nhj/__init__.py \
    && pip install ".[test]" \
    && pip uninstall -y nhj \
    && rm -rf nhj build ./*.egg-info

# Then the code (editable, so tests and scripts see the same tree).
COPY nhj ./nhj
COPY meshes ./meshes
COPY cases ./cases
COPY tests ./tests
COPY scripts ./scripts
COPY docs ./docs
RUN pip install --no-deps -e . \
    && python -c "import nhj, dolfinx; print('nhj', nhj.__version__, 'dolfinx', dolfinx.__version__)"

WORKDIR /work
ENTRYPOINT ["nhj"]
CMD ["--help"]
