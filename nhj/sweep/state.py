"""The sweep directory: point files, point statuses read from their results, sweep.json/csv.

Layout::

    DIR/sweep.toml            copy of the sweep file
    DIR/sweep.json            the grid, every point (values, status, wall time, figures),
                              the SLURM jobs, and after ``nhj sweep report`` the ``law``
    DIR/sweep.csv             one row per point
    DIR/cases/<point>.toml    the point's case file (what ``nhj run``/``nhj verify`` reads)
    DIR/points/<point>/       the point's ordinary result directory
    DIR/logs/<point>.log      its output (local backend; SLURM: DIR/slurm/)
    DIR/logs/<point>.exit     its exit code, when the process ended without a final status

A point's status comes from its own result: ``summary.json`` (``nhj run``) or
``report.json`` (``nhj verify``: completed if every check passed, else failed), then
from its exit file; a directory without either is ``running`` (alive, or killed:
a rerun of the sweep starts it again), no directory ``pending``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nhj.schema import CaseError
from nhj.sweep.spec import Point, SweepSpec

FINAL = ("completed", "failed")
STATUSES = ("pending", "queued", "running", "interrupted", "failed", "completed")
CASE_FIGURES = ("steps", "t_final", "error_l2", "mass_drift", "energy_drift")


@dataclass
class PointState:
    """What a point's files say."""

    status: str = "pending"
    wall_s: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    live: bool = False  # a live process holds its result directory
    message: str = ""


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _finite(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def dumps(data: Any) -> str:
    """Strict JSON (non-finite floats become null)."""
    return json.dumps(_finite(data), indent=2, allow_nan=False, default=str) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and a rename: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _alive_lock(pdir: Path) -> bool:
    info = _json(pdir / ".lock")
    if not isinstance(info, dict) or info.get("host") != socket.gethostname():
        return isinstance(info, dict)  # another host's lock: assume it is alive
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    return True


def _verify_figures(report: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "checks_passed": report.get("checks_passed"),
        "checks_total": report.get("checks_total"),
    }
    fits = [r for r in report.get("hbar_fit") or [] if isinstance(r, dict)]
    if len(fits) == 1:
        out["hbar_fit"] = fits[0].get("hbar_fit")
        out["hbar_rel_error"] = fits[0].get("rel_error")
    elif fits:
        out["hbar_fits"] = [{k: r.get(k) for k in ("gamma", "beta", "hbar_fit")} for r in fits]
    return out


class SweepDir:
    """The directory of one sweep (the driver's view; points only write their own dirs)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def case_file(self, name: str) -> Path:
        """DIR/cases/<name>.toml."""
        return self.path / "cases" / f"{name}.toml"

    def point_dir(self, name: str) -> Path:
        """DIR/points/<name>."""
        return self.path / "points" / name

    def log(self, name: str) -> Path:
        """DIR/logs/<name>.log."""
        return self.path / "logs" / f"{name}.log"

    def exit_file(self, name: str) -> Path:
        """DIR/logs/<name>.exit."""
        return self.path / "logs" / f"{name}.exit"

    @property
    def json(self) -> Path:
        """DIR/sweep.json."""
        return self.path / "sweep.json"

    def prepare(self, spec: SweepSpec, pts: Iterable[Point]) -> None:
        """Make DIR for the sweep; refuse one that holds another sweep's points.

        Raises:
            CaseError("--out", ...): DIR is a file, or a point's case file differs.
        """
        if self.path.exists() and not self.path.is_dir():
            raise CaseError("--out", f"{self.path} is a file; give a directory")
        pts = list(pts)
        for p in pts:
            f = self.case_file(p.name)
            if f.is_file() and f.read_text(encoding="utf-8") != p.text:
                raise CaseError(
                    "--out",
                    f"{self.path} holds another sweep (point {p.name} differs from its "
                    f"{f.relative_to(self.path)}); give a new --out",
                )
        for sub in ("cases", "points", "logs"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        write_atomic(self.path / "sweep.toml", spec.text)
        for p in pts:
            if not self.case_file(p.name).is_file():
                write_atomic(self.case_file(p.name), p.text)

    def state(self, name: str, kind: str) -> PointState:
        """A point's status and figures, from its result files."""
        pdir = self.point_dir(name)
        if kind == "case":
            s = _json(pdir / "summary.json")
            if isinstance(s, dict) and s.get("status"):
                figs = {k: s.get(k) for k in CASE_FIGURES if s.get(k) is not None}
                st = PointState(
                    str(s["status"]), s.get("wall_s"), figs, message=s.get("message", "")
                )
                if st.status == "interrupted":
                    return st
                st.live = st.status not in FINAL and _alive_lock(pdir)
                return self._ended(name, st, pdir / "summary.json")
        else:
            r = _json(pdir / "report.json")
            if isinstance(r, dict) and "passed" in r:
                status = "completed" if r.get("passed") else "failed"
                st = PointState(status, r.get("wall_s"), _verify_figures(r))
                return self._ended(name, st, pdir / "report.json")
        if not pdir.is_dir():
            return self._ended(name, PointState("pending"))
        return self._ended(name, PointState("running", live=kind == "case" and _alive_lock(pdir)))

    def _ended(self, name: str, st: PointState, result: Path | None = None) -> PointState:
        """A point without a final status whose process has ended (its exit file).

        An exit file older than the point's ``result`` file is from an earlier attempt.
        """
        info = _json(self.exit_file(name))
        if (
            result is not None
            and isinstance(info, dict)
            and _mtime(self.exit_file(name)) < _mtime(result)
        ):
            info = None
        if not isinstance(info, dict) or st.live or st.status in FINAL:
            if isinstance(info, dict) and st.status in FINAL:
                st.wall_s = info.get("wall_s", st.wall_s)  # the whole process, start-up included
            return st
        rc = int(info.get("returncode", 1))
        st.status = "interrupted" if rc >= 128 or rc < 0 else "failed"
        st.wall_s = info.get("wall_s", st.wall_s)
        st.message = st.message or f"exit code {rc} (see {self.log(name)})"
        return st

    def write_exit(self, name: str, returncode: int, wall_s: float) -> None:
        """Record how a point's process ended."""
        write_atomic(
            self.exit_file(name),
            json.dumps({"returncode": returncode, "wall_s": wall_s, "time": time.time()}) + "\n",
        )

    def clear(self, name: str) -> None:
        """Forget a point's previous ending (before it runs again)."""
        self.exit_file(name).unlink(missing_ok=True)

    def read(self) -> dict[str, Any]:
        """sweep.json (CaseError if DIR holds none)."""
        d = _json(self.json)
        if not isinstance(d, dict) or not isinstance(d.get("points"), list):
            raise CaseError("DIR", f"{self.path} holds no sweep (no readable sweep.json)")
        return d

    def refresh(self, record: dict[str, Any], names: Iterable[str] | None = None) -> dict[str, Any]:
        """Statuses and figures of the points in ``record`` (or only ``names``) from their files."""
        only = None if names is None else set(names)
        for p in record["points"]:
            if only is None or p["name"] in only:
                st = self.state(p["name"], record["kind"])
                p.update(
                    status=st.status, wall_s=st.wall_s, figures=st.figures, message=st.message,
                    live=st.live,
                )  # fmt: skip
        record["counts"] = counts(record["points"])
        return record

    def write(self, record: dict[str, Any]) -> None:
        """sweep.json and sweep.csv, each atomically."""
        record["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_atomic(self.json, dumps(record))
        write_atomic(self.path / "sweep.csv", to_csv(record))


def new_record(
    spec: SweepSpec, pts: Iterable[Point], old: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The sweep.json of ``spec`` (keeping the SLURM jobs and law of an earlier one)."""
    old = old or {}
    return {
        "sweep": spec.name,
        "file": str(spec.path.resolve()),
        "kind": spec.kind,
        "base": str(spec.base),
        "keys": spec.keys,
        "fixed": spec.fixed,
        "grid": [{"keys": list(a.keys), "rows": [list(r) for r in a.rows]} for a in spec.axes],
        "points": [
            {"name": p.name, "index": p.index, "values": p.values, "dir": f"points/{p.name}"}
            for p in pts
        ],
        "slurm_jobs": list(old.get("slurm_jobs", [])),
        **({"law": old["law"]} if "law" in old else {}),
    }


def counts(pts: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Points per status."""
    out = dict.fromkeys(STATUSES, 0)
    for p in pts:
        out[p["status"]] = out.get(p["status"], 0) + 1
    return out


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def figure_keys(record: Mapping[str, Any]) -> list[str]:
    """The figures any point has, in a fixed order."""
    keys: list[str] = []
    for p in record["points"]:
        keys += [k for k in p.get("figures", {}) if k not in keys]
    return keys


def to_csv(record: Mapping[str, Any]) -> str:
    """sweep.csv: name, status, the grid's values, wall time, figures."""
    buf = io.StringIO()
    figs = figure_keys(record)
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "status", *record["keys"], "wall_s", *figs])
    for p in record["points"]:
        w.writerow(
            [p["name"], p.get("status", ""), *(_cell(p["values"].get(k)) for k in record["keys"])]
            + [_cell(p.get("wall_s")), *(_cell(p.get("figures", {}).get(k)) for k in figs)]
        )
    return buf.getvalue()


def table(record: Mapping[str, Any]) -> str:
    """The status table: point, status, wall time, key figures; then the counts."""
    figs = [k for k in figure_keys(record) if k != "hbar_fits"][:5]
    rows = [["point", "status", "wall_s", *figs]]
    for p in record["points"]:
        f = p.get("figures", {})
        rows.append(
            [
                p["name"],
                p.get("status", ""),
                _cell(p.get("wall_s")),
                *(_cell(f.get(k)) for k in figs),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    c = counts(record["points"])
    lines.append(
        ", ".join(f"{n} {s}" for s, n in c.items() if n) + f" ({len(record['points'])} points)"
    )
    return "\n".join(lines)


def progress(c: Mapping[str, int], total: int, eta_s: float | None) -> str:
    """``sweep: 3/25 done, 2 running, 0 failed; ETA 1m05s``."""
    eta = "" if eta_s is None else f"; ETA {int(eta_s // 60)}m{int(eta_s % 60):02d}s"
    return (
        f"sweep: {c.get('completed', 0)}/{total} done, {c.get('running', 0)} running, "
        f"{c.get('failed', 0)} failed{eta}"
    )
