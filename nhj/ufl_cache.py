"""Let finished runs go: a CPython 3.12.0–3.13.1 cache keeps UFL's traversers, and their meshes.

``functools.singledispatchmethod`` on those releases caches bound methods in a
WeakKeyDictionary whose values reference their keys, so every UFL ``DAGTraverser``
(one per derivative taken, e.g. each Jacobian) outlives its use, with the arguments,
function spaces and meshes in its visited cache. A process that builds many problems
(the test suite, ``nhj verify``, the benchmarks) keeps every mesh, and the MPI
communicators each holds, until MPICH's 2048 per process run out and the process
aborts or crashes (measured: one Mesh kept per run; the benchmark aborted after ~300
runs with "Too many communicators"). Later CPython releases dropped the cache, and
clearing it is then a no-op.
"""

from __future__ import annotations

import gc


def release_ufl_caches() -> None:
    """Clear the singledispatchmethod caches of every UFL DAGTraverser class, then collect."""
    from ufl.corealg.dag_traverser import DAGTraverser

    todo, seen = [DAGTraverser], set()
    while todo:
        cls = todo.pop()
        seen.add(cls)
        for attr in vars(cls).values():
            cache = getattr(attr, "_method_cache", None)
            if cache is not None:
                cache.clear()
        todo += [c for c in cls.__subclasses__() if c not in seen]
    gc.collect()
