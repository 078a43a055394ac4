"""A seeded mutation fuzzer over every shipped case: bad input is exit 2 and one line (issue 11).

Each mutant is one shipped case (cases/ and cases/verify/, the latter without its
[verify]/[full] tables), made small (few cells, two steps), with one mutation: a key
deleted or renamed, a value of another type, 0, negative, NaN, ±inf, ±1e308, a list
of the wrong length, a non-SPD tensor, an expression undefined on part of the mesh,
a huge string, deep nesting; or the file itself binary, UTF-16 or truncated.
``nhj check`` must return 0 or 2, with exactly one stderr line on 2 and never a
traceback; a sample of the accepted mutants is run and must return 0, 1 or 2 the
same way. The seed is fixed, so a failure names a reproducible mutant.
"""

from __future__ import annotations

import json
import math
import random
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nhj.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "cases").glob("*.toml")) + sorted((ROOT / "cases/verify").glob("*.toml"))
# ~3 % of mutants are valid cases: 1280 leave a sample of >= 20 to run whatever the case list
MUTANTS, RUNS, SEED = 1280, 20, 20261202

EXPRESSIONS = ["sqrt(x0)", "log(x0)", "x0/0", "1/(x0 - x0)", "exp(1e4*x0)", "gamma*beta", "2.0"]
VALUES: list[Any] = [0, -1, -1.0, math.nan, math.inf, -math.inf, 1e308, -1e308, 10**18, True]
VALUES += ["", "x" * 100_000, [], [1.0] * 7, {}, [[1.0, 2.0], [2.0, 1.0]], [[0.0]]]


def small(d: dict[str, Any]) -> dict[str, Any]:
    """The case at a tiny resolution and two steps (its structure unchanged)."""
    d = {k: v for k, v in d.items() if k not in ("verify", "full")}
    mesh = d.get("mesh", {})
    if isinstance(mesh.get("cells"), list):
        mesh["cells"] = [min(int(n), 8) for n in mesh["cells"]]
    if "size" in mesh:
        mesh["size"] = max(float(mesh["size"]), 1.0)
    disc = d.get("discretisation", {})
    if "dt" in disc:
        disc["t_end"] = 2 * float(disc["dt"])
    if "langevin" in d:
        d["langevin"]["particles"] = min(int(d["langevin"].get("particles", 1000)), 1000)
    d.setdefault("output", {})["fields"] = False
    return d


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"


def toml(d: dict[str, Any]) -> str:
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"[{json.dumps(k)}]")
            lines += [f"{json.dumps(kk)} = {toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def paths(d: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into the nested tables and lists of d."""
    out = []
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out += paths(v, (*prefix, k))
    return out


def mutate(d: dict[str, Any], rng: random.Random) -> tuple[str, dict[str, Any]]:
    """One mutation of d (in place); returns its description."""
    path = rng.choice(paths(d))
    *head, key = path
    parent = d
    for k in head:
        parent = parent[k]
    old = parent[key]
    op = rng.choice(["delete", "rename", "value", "value", "expression", "length", "nest"])
    if op == "delete" or (op == "rename" and isinstance(parent, list)):
        if isinstance(parent, list):
            parent.pop(key)
        else:
            del parent[key]
    elif op == "rename":
        parent[f"{key}_x"] = parent.pop(key)
    elif op == "value":
        parent[key] = rng.choice(VALUES)
    elif op == "expression":
        parent[key] = rng.choice(EXPRESSIONS)
    elif op == "length":
        parent[key] = [old] * rng.choice([0, 2, 4]) if not isinstance(old, list) else old * 2
    else:
        v: Any = old
        for _ in range(rng.choice([2, 50, 400])):
            v = [v]
        parent[key] = v
    return f"{op} {'.'.join(map(str, path))}", d


def text_mutant(text: str, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["binary", "utf16", "truncate", "nested"])
    if kind == "binary":
        return kind, bytes(rng.randrange(256) for _ in range(200))
    if kind == "utf16":
        return kind, text.encode("utf-16")
    if kind == "truncate":
        return kind, text[: rng.randrange(len(text))].encode()
    return kind, (text + "deep = " + "[" * 10_000 + "]" * 10_000 + "\n").encode()


def mutants() -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    bases = [(p, small(tomllib.loads(p.read_text()))) for p in SHIPPED]
    out = []
    for i in range(MUTANTS):
        path, base = bases[i % len(bases)]
        d = json.loads(json.dumps(base))  # a deep copy (NaN-free: the bases are plain)
        if rng.random() < 0.1:
            what, data = text_mutant(toml(d), rng)
        else:
            what, d = mutate(d, rng)
            data = toml(d).encode()
        out.append((f"{i:03d} {path.stem}: {what}", data))
    return out


def one_line_or_none(rc: int, err: str, allowed: tuple[int, ...]) -> str:
    """'' if the outcome is as required, else what is wrong."""
    if "Traceback" in err:
        return f"traceback (exit {rc}): {err[-600:]}"
    if rc not in allowed:
        return f"exit {rc}: {err[-600:]}"
    if rc == 2 and (len(err.strip().splitlines()) != 1 or len(err.strip()) > 200):
        return f"not one line of <= 200 characters: {err[:600]!r}"
    return ""


def outcome(run: Callable[[], int], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    try:
        rc = run()
    except SystemExit as e:  # argparse
        rc = int(e.code or 0)
    except Exception as e:  # noqa: BLE001 - the point: report any escape as a failure
        import traceback

        return 1, "Traceback " + "".join(traceback.format_exception(e))
    return rc, capsys.readouterr().err


@pytest.mark.skip_in_parallel
def test_mutants_check_and_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """≥ 300 mutants: `nhj check` is 0 or 2 (one line); a sample of runs is 0, 1 or 2."""
    failures, accepted = [], []
    for k, (name, data) in enumerate(mutants()):
        case = tmp_path / f"m{k:03d}.toml"
        case.write_bytes(data)
        rc, err = outcome(lambda case=case: main(["-q", "check", str(case)]), capsys)
        problem = one_line_or_none(rc, err, (0, 2))
        if problem:
            failures.append(f"{name}: {problem}")
        elif rc == 0:
            accepted.append((name, case))
    rng = random.Random(SEED)
    for name, case in rng.sample(accepted, min(RUNS, len(accepted))):
        out = tmp_path / f"out-{case.stem}"
        rc, err = outcome(lambda: main(["-q", "run", str(case), "--out", str(out)]), capsys)
        problem = one_line_or_none(rc, err, (0, 1, 2))
        if problem:
            failures.append(f"run {name}: {problem}")
    assert not failures, f"{len(failures)} mutants escaped:\n" + "\n".join(failures)
    assert len(accepted) >= RUNS
