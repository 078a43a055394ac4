"""Builders: a validated case -> the discrete pieces of one run, one module per equation.

Each module turns case sections into the equation objects of
:mod:`nhj.equations` (which hold the physics), interpolates the initial state,
sets boundary conditions, names output fields and monitors, and declares its
registry entry (:class:`nhj.problem.Equation`). :mod:`nhj.registry` lists the
entries; :mod:`nhj.builders.common` has what several builders share.
"""
