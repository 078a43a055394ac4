# nhj on the official DOLFINx image (its DOLFINx, PETSc, MPI; no dolfinx-solver-real wheel).
# Pinned to the release nhj is developed against; bump deliberately.
FROM ghcr.io/fenics/dolfinx/dolfinx:v0.11.0

ENV PYVISTA_OFF_SCREEN=true \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# pyvista needs GL/X libraries for off-screen rendering
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libxrender1 libxcursor1 libxinerama1 libxft2 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/nhj

# Dependencies first, in their own layer: only pyproject.toml invalidates it.
COPY pyproject.toml README.md ./
RUN mkdir -p nhj && echo '__version__ = "0"' > nhj/__init__.py \
    && pip install ".[test]" && pip uninstall -y nhj && rm -rf nhj build *.egg-info

# Then the code.
COPY nhj ./nhj
COPY meshes ./meshes
COPY cases ./cases
COPY tests ./tests
COPY docs ./docs
RUN pip install --no-deps -e . \
    && python -c "import nhj, dolfinx; print('nhj', nhj.__version__, 'dolfinx', dolfinx.__version__)"

WORKDIR /work
ENTRYPOINT ["nhj"]
CMD ["--help"]
