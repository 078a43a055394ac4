"""``nhj sweep``: parameter grids of cases as batch jobs, and the measured law ħ = f(γ, β).

A sweep file names a base case (or a verification case) and a grid over dotted case
keys; every point is validated in-process before anything runs, then runs as an
ordinary ``nhj run`` / ``nhj verify`` subprocess writing its own result directory —
on a local pool (``--jobs N`` points of ``--ranks K`` each) or as one SLURM job array.
The sweep is resumable: the points' own result files say what is done.

Modules (imports go down the list; none goes back up):

* :mod:`nhj.sweep.tomlw` — a small TOML writer for the point case files;
* :mod:`nhj.sweep.options` — ``[run]`` and ``[slurm]``, and what may reach a job script;
* :mod:`nhj.sweep.spec` — the sweep file, its grid, the points and their validation;
* :mod:`nhj.sweep.state` — the sweep directory, point statuses, sweep.json/csv, tables;
* :mod:`nhj.sweep.commands` — the command line of a point (and the resume hook);
* :mod:`nhj.sweep.local`, :mod:`nhj.sweep.slurm` — the two backends;
* :mod:`nhj.sweep.law` — least squares of log ħ_fit = log C + a log γ + b log β, figure;
* :mod:`nhj.sweep.cli` — ``nhj sweep SWEEP.toml``, ``nhj sweep status``, ``nhj sweep report``.
"""

from __future__ import annotations
