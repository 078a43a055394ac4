"""Case files are data (issue 11, item 5): .geo allow-list, PETSc options, names, mesh paths.

Each hostile input exits 2 with one line through the CLI and writes nothing: a sentinel file
that the input would create stays absent and the directory listing is unchanged.
"""

from __future__ import annotations

import nhj  # noqa: F401  (orders MPI before dolfinx for the PyPI wheel)

# isort: split
from pathlib import Path

import pytest
from case_helpers import CASES, load, merged, write_case

from nhj.cli import main
from nhj.geo_safety import MAX_GEO_ITERATIONS, check_geo
from nhj.meshes import MESH_DIR
from nhj.safety import check_mesh_file, check_name, check_petsc_options
from nhj.schema import CaseError

DISK = (MESH_DIR / "disk.geo").read_text()
# a forbidden statement goes after the Disk(1) line, so comments and statements precede it
AFTER = DISK.splitlines().index("Disk(1) = {0, 0, 0, R, R};") + 1
LINE = AFTER + 1

FORBIDDEN = {
    "SystemCall": 'SystemCall "touch {s}";',
    "Printf to a file": 'Printf("pwned") > "{s}";',
    "Printf": 'Printf("pwned");',
    "Save": 'Save "{s}.msh";',
    "Include": 'Include "{other}";',
    "Merge": 'Merge "{other}";',
    "OnelabRun": 'OnelabRun("x", "touch {s}");',
    "Exit": "Exit;",
    "Delete": "Delete Physicals;",
    "Plugin": "Plugin(NewView).Run;",
    "General option": "General.Terminal = 1;",
    "Mesh option that writes": "Mesh.SaveAll = 1;",
    "GetEnv": 'x = GetEnv("HOME");',
    "endless For": "For i In {{1:1e15}}\n  x = i;\nEndFor",
    "For over a variable": "For i In {{1:R}}\nEndFor",
    "huge list": "x[] = {{1:1e12}};",
    "ExternalProcess field": "Field[1] = ExternalProcess;",
}


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def gmsh_case(directory: Path, file: str, size: float = 1.0) -> Path:
    """cases/disk_2d.toml with mesh.file = file, written into directory."""
    d = merged(load("disk_2d"), {"mesh": {"file": file, "size": size}})
    return write_case(directory, "case", d)


@pytest.mark.parametrize("label", sorted(FORBIDDEN))
def test_forbidden_geo(label: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sentinel = tmp_path / "SENTINEL"
    other = tmp_path / "other.geo"
    other.write_text(f'SystemCall "touch {sentinel}";\n')
    statement = FORBIDDEN[label].format(s=sentinel, other=other)
    lines = DISK.splitlines()
    lines[AFTER:AFTER] = statement.splitlines()
    (tmp_path / "evil.geo").write_text("\n".join(lines) + "\n")
    case = gmsh_case(tmp_path, "evil.geo")
    before = listing(tmp_path)
    assert main(["check", str(case)]) == 2
    err = one_error_line(capsys)
    assert "mesh.file: " in err and f"evil.geo line {LINE}: " in err, err
    assert "is not allowed in a .geo file" in err
    assert not sentinel.exists() and not (Path.cwd() / "SENTINEL").exists()
    assert listing(tmp_path) == before


def test_geo_option_file_is_not_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """gmsh merges <name>.geo.opt beside a .geo; nhj hands gmsh a checked copy instead."""
    sentinel = tmp_path / "SENTINEL"
    (tmp_path / "plain.geo").write_text(DISK)
    (tmp_path / "plain.geo.opt").write_text(f'SystemCall "touch {sentinel}";\n')
    case = gmsh_case(tmp_path, "plain.geo", size=2.0)
    before = listing(tmp_path)
    assert main(["-q", "check", str(case)]) == 0
    assert not sentinel.exists()
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    "options, key",
    [
        ({"ksp_view": "ascii:{s}"}, "ksp_view"),
        ({"options_file": "{s}"}, "options_file"),
        ({"log_view": True}, "log_view"),
        ({"malloc_dump": True}, "malloc_dump"),
        ({"-ksp_monitor": "ascii:{s}"}, "-ksp_monitor"),
        ({"ksp_monitor_true_residual": True}, "ksp_monitor_true_residual"),
        ({"ksp_converged_reason": "ascii:{s}"}, "ksp_converged_reason"),
        ({"mg_levels_ksp_view": True}, "mg_levels_ksp_view"),
        ({"mat_mumps_icntl_1": 7}, "mat_mumps_icntl_1"),  # a Fortran unit: writes fort.7
        ({"pc_type": "ascii:{s}"}, "pc_type"),
        ({"snes_type": "../{s}"}, "snes_type"),
    ],
)
def test_petsc_writers_refused(
    options: dict, key: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sentinel = tmp_path / "SENTINEL"
    opts = {k: v.format(s=sentinel) if isinstance(v, str) else v for k, v in options.items()}
    d = merged(load("free_packet_1d"), {"solver": {"petsc_options": opts}})
    case = write_case(tmp_path, "case", d)
    out = tmp_path / "out"
    before = listing(tmp_path)
    assert main(["run", str(case), "--out", str(out)]) == 2
    err = one_error_line(capsys)
    assert f"solver.petsc_options.{key}: " in err, err
    assert len(err) - len(f"nhj: error: {case}: ") <= 220, err  # ~200 but for a long key
    assert not sentinel.exists() and not out.exists()
    assert listing(tmp_path) == before


def test_petsc_solver_settings_accepted() -> None:
    check_petsc_options(
        {
            "ksp_type": "gmres",
            "pc_type": "hypre",
            "pc_hypre_type": "boomeramg",
            "pc_factor_mat_solver_type": "superlu_dist",
            "ksp_rtol": 1e-10,
            "ksp_max_it": 200,
            "ksp_error_if_not_converged": True,
            "mg_levels_ksp_type": "chebyshev",
            "mg_levels_1_pc_type": "jacobi",
            "fieldsplit_0_pc_type": "lu",
            "sub_pc_type": "ilu",
            "mat_mumps_icntl_14": 50,
            "mat_mumps_cntl_1": 0.01,
            "snes_linesearch_type": "bt",
            "eps_nev": 3,
            "st_type": "sinvert",
            "st_ksp_type": "preonly",
            "st_pc_factor_mat_solver_type": "mumps",
        }
    )


@pytest.mark.parametrize("name", ["/abs/dir", "../up", "a\\b", "sub/dir", "..", "x..y"])
def test_name_with_a_path(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """No --out: the name would become the result directory (and replace what is there)."""
    victim = tmp_path / "victim"
    (victim / "fields.bp").mkdir(parents=True)
    (victim / "fields.bp" / "keep").write_text("x")
    d = merged(load("free_packet_1d"), {"mesh": {"cells": [20]}})
    d["name"] = str(victim) if name == "/abs/dir" else name
    case = write_case(tmp_path, "case", d)
    before = listing(tmp_path)
    assert main(["run", str(case)]) == 2
    err = one_error_line(capsys)
    assert ": name: " in err and "cannot name a result directory" in err, err
    assert listing(tmp_path) == before


@pytest.mark.parametrize("name", ["", ".hidden", "a b", "x" * 101, "é", "a:b"])
def test_check_name_refuses(name: str) -> None:
    with pytest.raises(CaseError, match=r"^name: "):
        check_name(name)


@pytest.mark.parametrize("name", ["disk_2d", "run-1.2", "a+b", "X"])
def test_check_name_accepts(name: str) -> None:
    check_name(name)


def test_mesh_file_escaping(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A relative mesh.file stays in the case's directory or meshes/, symlinks included."""
    (tmp_path / "outside.geo").write_text(DISK)
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    (inner / "link.geo").symlink_to(tmp_path / "outside.geo")
    for file in ("../../outside.geo", "../../outside", "link.geo"):
        assert main(["check", str(gmsh_case(inner, file))]) == 2, file
        err = one_error_line(capsys)
        assert "mesh.file: " in err and "is outside the case's directory and meshes/" in err
    # an absolute path is the way to name a file elsewhere
    assert main(["-q", "check", str(gmsh_case(inner, str(tmp_path / "outside.geo"), 2.0))]) == 0
    # and meshes/ stays reachable from anywhere
    check_mesh_file(MESH_DIR / "disk.geo", inner, MESH_DIR)
    check_mesh_file(inner / "sub" / "x.geo", inner, MESH_DIR)


def test_geo_allow_list_accepts_geometry() -> None:
    """Shipped geometries and the usual meshing statements pass."""
    for path in MESH_DIR.glob("*.geo"):
        check_geo(path.read_text(), path)
    check_geo(
        "\n".join(
            [
                'DefineConstant[ h = {0.1, Name "Parameters/h", Min 0, Max 1} ];',
                'SetFactory("Built-in");',
                "/* a block comment with SystemCall in it */ lc = h; // Save in a comment",
                "For i In {0:9}",
                "  Point(i + 1) = {i, 0, 0, lc};",
                "EndFor",
                "For (1:3)",
                "EndFor",
                "Line(1) = {1, 2}; Line(2) = {2, 3}; Line(3) = {3, 1};",
                "Curve Loop(1) = {1, 2, 3};",
                "Plane Surface(1) = {1};",
                "If (h > 0.5)",
                "  Mesh.Algorithm = 6;",
                "Else",
                "  Mesh.Algorithm = 5;",
                "EndIf",
                "s = h > 1 ? 1 : 2;",
                "l[] = {1:10:2};",
                "Transfinite Curve{1} = 10 Using Progression 1.1;",
                "Recombine Surface{1};",
                "Field[1] = Distance;",
                "Field[1].CurvesList = {1};",
                "Field[2] = MathEval;",
                'Field[2].F = "0.1 + x";',
                "Background Field = 2;",
                "out[] = Extrude {0, 0, 1} { Surface{1}; Layers{2}; Recombine; };",
                'Physical Surface("domain", 1) = {1};',
                "Geometry.Tolerance = 1e-8;",
                "Coherence;",
            ]
        ),
        Path("ok.geo"),
    )


def test_nested_loops_multiply() -> None:
    n = int(MAX_GEO_ITERATIONS**0.5) + 1
    text = f"For i In {{1:{n}}}\nFor j In {{1:{n}}}\nEndFor\nEndFor\n"
    with pytest.raises(CaseError, match=r"line 2: .*iterations; at most"):
        check_geo(text, Path("loops.geo"))


def test_shipped_cases_load() -> None:
    """Every shipped case passes the checks on load (tests/test_cases.py runs each one)."""
    from nhj.case import load_case

    for path in sorted(CASES.glob("*.toml")):
        load_case(path)


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_verification_cases_load(mode: str) -> None:
    """Every verification case passes the checks on load, in both modes."""
    from nhj.verify import load_verify_case

    for path in sorted((CASES / "verify").glob("*.toml")):
        load_verify_case(path, mode)
