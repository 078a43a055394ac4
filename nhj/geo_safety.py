"""The ``.geo`` allow-list: what a case's gmsh file may contain (:func:`check_geo`).

A gmsh ``.geo`` file is a scripting language: ``SystemCall``, ``Printf ... >``,
``Save``, ``Include``, ``Merge``, ``OnelabRun`` ... run programs or read and write
files. :func:`check_geo` accepts geometry, meshing options and bounded loops only
and raises :class:`nhj.schema.CaseError` (one line) on anything else, before gmsh
sees the file. The other allow-lists (PETSc options, names, paths) are in
:mod:`nhj.safety`. Stdlib, :mod:`nhj.schema` and :mod:`nhj.safety` only.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from nhj.safety import GEO_FIELD, elide
from nhj.schema import CaseError

__all__ = ["MAX_GEO_ITERATIONS", "check_geo"]

MAX_GEO_ITERATIONS = 100_000
"""Most values a ``.geo`` range or (nested) ``For`` loop may produce."""


# ---------------------------------------------------------------------------------------
# .geo files

# Every keyword of gmsh's .geo lexer (src/parser/Gmsh.l, gmsh 4.15). Any other identifier
# is a variable name to the parser, except in the leading position of a statement, where
# gmsh also recognises command names (Include, Merge, Save, SystemCall, Sleep, Mesh, ...):
# only the statements of _STATEMENTS and assignments may start a statement.
_GMSH_KEYWORDS = frozenset(
    """
    Abort Abs AbsolutePath Acos AdaptMesh Affine Alias AliasWithOptions ArcCos Append ArcSin
    ArcTan ArcTan2 Asin Atan Atan2 BSpline Betti Bezier Box Block BooleanCoherence
    BooleanCommon BooleanCut BooleanDifference BooleanFragments BooleanFuse
    BooleanIntersection BooleanSection BooleanUnion BoundingBox Call Catenary CatmullRom Ceil
    CenterOfMass Chamfer Characteristic Circle ClassifySurfaces CodeName Coherence Cohomology
    Color ColorTable Combine Compound Cone Coordinates CopyOptions Cos Cosh Cpu CreateGeometry
    CreateTopology CurrentDir CurrentDirectory CurrentFileName Curve Cylinder DefineConstant
    DefineNumber DefineString Degenerated Delete Dilate DimNameSpace DirName Disk Draw Ellipse
    Ellipsis Ellipsoid Elliptic Else ElseIf EndFor EndIf Error Euclidian Exists Exit Exp
    Extrude Fabs Field FileExists Fillet Find FixRelativePath Floor Fmod For Function
    GMSH_MAJOR_VERSION GMSH_MINOR_VERSION GMSH_PATCH_VERSION GeoEntity GetEnv GetForced
    GetForcedStr GetNumber GetString GetStringValue GetValue GmshExecutableName HealShapes
    Hide Hole Homology Hypot INTERPOLATION_SCHEME If In Intersect Knots Layers Length Levelset
    LinSpace Line List ListFromFile Log Log10 LogSpace LowerCase LowerCaseIn MPI_Rank MPI_Size
    Macro Mass MatrixOfInertia Max Memory MeshAlgorithm MeshSize MeshSizeFromBoundary Min
    Modulo N2S NameStruct NameToString NewModel Normal Nurbs OnelabAction OnelabRun Order
    Parametric Parent Periodic Physical Pi Plane Plugin Point PolarSphere Printf Quadric
    QuadTriAddVerts QuadTriNoNewVerts Rand RecombLaterals Recombine Rectangle Recursive
    RecombineMesh RefineMesh RelocateMesh ReorientMesh RenumberMeshNodes RenumberMeshElements
    Return ReverseMesh Reverse Rotate Round Ruled S2N ScaleLastLayer SetChanged SetFactory
    SetTag SetMaxTag SetNumber SetPartition SetString Sewing ShapeFromFile Show Sin Sinh Slide
    Smoother Sphere Spline Split Sprintf Sqrt Step Str StrCat StrChoice StrCmp StrFind StrLen
    StrPrefix StrRelative StrReplace StrSub StringToName Struct Surface Symmetry SyncModel T2
    T3 TIME Tan Tanh TestLevel TextAttributes ThickSolid ThruSections Today Torus TotalMemory
    TransformMesh TransfQuadTri Transfinite Translate UndefineConstant Unique UnsplitWindow
    UpperCase Using Volume Warning Wedge Wire
    newreg newp newl newc newll newcl news newsl newv newf
    """.split()
)

_SHAPES = """
    Point Line Curve Circle Ellipse Spline BSpline Bezier CatmullRom Plane Surface Ruled Volume
    Compound Rectangle Disk Box Block Sphere Cylinder Cone Torus Wedge ThruSections Fillet
    Chamfer Wire BooleanUnion BooleanDifference BooleanIntersection BooleanFragments
    BooleanFuse BooleanCut BooleanCommon Extrude Translate Rotate Dilate Symmetry Affine
    Transfinite Recombine Smoother Characteristic MeshSize Periodic Reverse Coherence Physical
"""
# keywords that may start a statement
_STATEMENTS = frozenset((_SHAPES + " Field SetFactory DefineConstant").split())
# keywords that may appear inside a statement (arguments, expressions, lists)
_WORDS = _STATEMENTS | frozenset(
    """
    Pi Sqrt Sin Cos Tan Asin Acos Atan Atan2 ArcSin ArcCos ArcTan ArcTan2 Sinh Cosh Tanh Exp
    Log Log10 Fabs Abs Floor Ceil Round Fmod Modulo Hypot Min Max Rand Step In Using Layers
    Length Hole Delete Recursive QuadTriAddVerts QuadTriNoNewVerts RecombLaterals
    ScaleLastLayer DefineNumber StrCat Sprintf Unique BoundingBox
    newreg newp newl newc newll newcl news newsl newv newf
    GMSH_MAJOR_VERSION GMSH_MINOR_VERSION GMSH_PATCH_VERSION
    """.split()
)
# control flow, handled by the statement splitter
_CONTROL = frozenset(("For", "EndFor", "If", "ElseIf", "Else", "EndIf"))
# statements whose arguments may hold strings (names, labels, SetFactory, MathEval)
_STRINGS_IN = frozenset(("Physical", "DefineConstant", "SetFactory", "Field"))
_FACTORIES = ("OpenCASCADE", "Built-in")
_ONELAB_ATTRIBUTES = frozenset(
    "Name Min Max Step Choices Help Label Visible ReadOnly Closed Units Highlight".split()
)

MESH_OPTIONS = frozenset(
    """
    MeshSizeMin MeshSizeMax MeshSizeFactor MeshSizeFromPoints MeshSizeFromCurvature
    MeshSizeExtendFromBoundary MeshSizeFromParametricPoints CharacteristicLengthMin
    CharacteristicLengthMax CharacteristicLengthFactor CharacteristicLengthFromPoints
    CharacteristicLengthFromCurvature CharacteristicLengthExtendFromBoundary Algorithm
    Algorithm3D RecombineAll RecombinationAlgorithm Recombine3DAll SubdivisionAlgorithm
    ElementOrder SecondOrderLinear HighOrderOptimize Optimize OptimizeNetgen
    OptimizeThreshold Smoothing AnisoMax AllowSwapAngle RandomFactor ToleranceInitialDelaunay
    MinimumCirclePoints MinimumCurvePoints MinimumElementsPerTwoPi LcIntegrationPrecision
    """.split()
)
"""``Mesh.<option>`` names a ``.geo`` may set (numbers only): sizes and algorithms."""

GEOMETRY_OPTIONS = frozenset(
    """
    Tolerance ToleranceBoolean OCCFixDegenerated OCCFixSmallEdges OCCFixSmallFaces
    OCCSewFaces OCCMakeSolids OCCBooleanPreserveNumbering OCCUnionUnify AutoCoherence
    OldNewReg ExtrudeReturnLateralEntities CopyMeshingMethod MatchMeshTolerance
    """.split()
)
"""``Geometry.<option>`` names a ``.geo`` may set (numbers only): tolerances and healing."""

_OPTIONS = {"Mesh": MESH_OPTIONS, "Geometry": GEOMETRY_OPTIONS}

FIELD_TYPES = frozenset(
    """
    Distance Threshold MathEval MathEvalAniso Box Ball Cylinder Frustum Constant Min Max
    MinAniso MaxAniso Restrict Mean Laplacian Gradient Curvature MaxEigenHessian
    BoundaryLayer Extend Param Attractor AttractorAnisoCurve Octree IntersectAniso
    """.split()
)
"""Mesh size fields a ``.geo`` may create (not Structured/PostView: files; ExternalProcess)."""

_FIELD_OPTIONS = frozenset(
    """
    PointsList CurvesList EdgesList SurfacesList FacesList VolumesList NodesList
    ExcludedSurfacesList FanPointsList FanNodesList NumPointsPerCurve NNodesByEdge Sampling
    InField IField FieldsList SizeMin SizeMax DistMin DistMax LcMin LcMax Sigmoid
    StopAtDistMax F FX FY FZ M11 M12 M13 M22 M23 M33 VIn VOut XMin XMax YMin YMax ZMin ZMax
    Thickness Radius XCenter YCenter ZCenter XAxis YAxis ZAxis R1_inner R1_outer R2_inner
    R2_outer X1 X2 Y1 Y2 Z1 Z2 Value IncludeBoundary Delta Ratio hwall_n hwall_t hfar
    thickness AnisoMax Quads BetaLaw Beta NbLayers IntersectMetrics SizeMaxNormal
    SizeMaxTangent DistMaxNormal DistMaxTangent
    """.split()
)

_SUMMARY = (
    "nhj accepts geometry and meshing statements only: shapes, booleans, transforms, "
    "Physical groups, mesh sizes and fields, DefineConstant, variables, For/If"
)

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\n\f\v]+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<open_comment>/\*)
  | (?P<string>"[^"]*"|'[^']*')
  | (?P<number>\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\.\.\.|::|\+=|-=|\*=|/=|\|\||&&|\+\+|--|==|!=|<=|>=|>>|<<|[-+*/^%=<>!?:#~,;.()\[\]{}&|])
    """,
    re.VERBOSE | re.DOTALL,
)
_OPEN, _CLOSE = frozenset("([{"), frozenset(")]}")
_ASSIGN = frozenset(("=", "+=", "-=", "*=", "/=", "++", "--"))
_DELIMITERS = _ASSIGN | {",", ";"}


def _opens(t: _Tok) -> int:
    return int(t.kind == "op" and t.text in _OPEN)


def _closes(t: _Tok) -> int:
    return int(t.kind == "op" and t.text in _CLOSE)


class _Tok:
    __slots__ = ("kind", "text", "line", "start", "end", "depth")

    def __init__(self, kind: str, text: str, line: int, start: int, end: int) -> None:
        self.kind, self.text, self.line, self.start, self.end = kind, text, line, start, end
        self.depth = 0  # bracket depth within its statement, set by _statements

    def __repr__(self) -> str:
        return f"{self.kind}:{self.text}"


class _Geo:
    """One ``.geo`` text under check: its tokens, then its statements in order."""

    def __init__(self, text: str, path: Path) -> None:
        self.text, self.path = text, path
        self.loops: list[int] = []  # iteration counts of the enclosing For loops

    def fail(self, line: int, statement: str, detail: str = _SUMMARY) -> CaseError:
        return CaseError(
            GEO_FIELD,
            f"{self.path} line {line}: '{elide(statement)}' is not allowed in a .geo file "
            f"({detail})",
        )

    def tokens(self) -> list[_Tok]:
        text, out, pos, line = self.text, [], 0, 1
        if "\0" in text:
            raise self.fail(text.count("\n", 0, text.index("\0")) + 1, "\\0", "a NUL byte")
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                rest = text[pos : pos + 2]
                what = (
                    "an unterminated string"
                    if rest[:1] in "\"'"
                    else "a character gmsh does not parse"
                )
                raise self.fail(line, text[pos : pos + 20], what)
            kind = m.lastgroup
            assert kind is not None
            if kind == "open_comment":
                raise self.fail(line, text[pos : pos + 20], "an unterminated comment")
            if kind not in ("space", "comment"):
                out.append(_Tok(kind, m.group(), line, pos, m.end()))
            line += m.group().count("\n")
            pos = m.end()
        return out

    def statements(self, toks: list[_Tok]) -> list[list[_Tok]]:
        """Split at ``;`` outside brackets; For/If headers and EndFor/Else/EndIf stand alone."""
        out: list[list[_Tok]] = []
        i = 0
        while i < len(toks):
            t = toks[i]
            if t.kind == "name" and t.text in ("EndFor", "Else", "EndIf"):
                j = i + 1 + int(i + 1 < len(toks) and toks[i + 1].text == ";")
            elif t.kind == "name" and t.text in ("For", "If", "ElseIf"):
                j = i + 1
                while j < len(toks) and not _opens(toks[j]) and toks[j].text != ";":
                    j += 1
                j = self._close(toks, j) if j < len(toks) and _opens(toks[j]) else j
            else:
                j, depth = i, 0
                while j < len(toks) and not (toks[j].text == ";" and depth == 0):
                    depth = max(depth + _opens(toks[j]) - _closes(toks[j]), 0)
                    j += 1
                j += int(j < len(toks))  # the ';'
            stmt = toks[i:j]
            depth = 0
            for s in stmt:  # an opener or closer is at the depth outside its group
                depth = max(depth - _closes(s), 0)
                s.depth = depth
                depth += _opens(s)
            out.append(stmt)
            i = j
        return out

    @staticmethod
    def _close(toks: list[_Tok], j: int) -> int:
        """Index after the bracket group that opens at ``toks[j]``."""
        depth = 0
        while j < len(toks):
            depth += _opens(toks[j]) - _closes(toks[j])
            j += 1
            if depth == 0:
                break
        return j

    def source(self, stmt: list[_Tok]) -> str:
        return self.text[stmt[0].start : stmt[-1].end]

    def check(self, stmt: list[_Tok]) -> None:
        """Refuse ``stmt`` unless the allow-list covers it."""
        head, src, line = stmt[0], self.source(stmt), stmt[0].line
        if head.kind != "name":
            raise self.fail(line, src)
        if head.text in _CONTROL:
            self._control(stmt, src)
            return
        if head.text in _OPTIONS:
            self._option(stmt, src)
        elif head.text == "SetFactory":
            texts = [t.text for t in stmt]
            factory = stmt[2].text[1:-1] if len(stmt) > 3 and stmt[2].kind == "string" else ""
            if factory not in _FACTORIES or texts[1] != "(" or texts[3:] not in ([")"], [")", ";"]):
                raise self.fail(line, src, 'SetFactory("OpenCASCADE") or SetFactory("Built-in")')
        elif head.text == "Field":
            self._field(stmt, src)
        elif head.text == "DefineConstant":
            self._define_constant(stmt, src)
        elif head.text == "Background":
            if [t.text for t in stmt[1:3]] != ["Field", "="]:
                raise self.fail(line, src)
        elif head.text not in _STATEMENTS and (
            head.text in _GMSH_KEYWORDS or not self._is_assignment(stmt)
        ):
            raise self.fail(line, src)
        self._words(stmt, src, strings=head.text in _STRINGS_IN)

    def _words(self, stmt: list[_Tok], src: str, strings: bool) -> None:
        """Keywords inside a statement, dotted names, strings and ranges."""
        head = stmt[0].text
        for k, t in enumerate(stmt):
            if k == 0:
                continue
            command = t.kind == "string" and stmt[k - 1].kind == "name"
            if command and not (
                head == "DefineConstant" and stmt[k - 1].text in _ONELAB_ATTRIBUTES
            ):
                # gmsh's commands are a name followed by a string: SystemCall "...", Save "..."
                raise self.fail(t.line, src, f"'{stmt[k - 1].text}' followed by a string")
            if t.kind == "string" and not strings:
                raise self.fail(
                    t.line, src, "strings only in Physical names, DefineConstant and SetFactory"
                )
            after_dot = k > 0 and stmt[k - 1].text == "."
            if t.kind == "name" and not after_dot and t.text in _GMSH_KEYWORDS:
                if t.text not in _WORDS:
                    raise self.fail(t.line, src, f"'{t.text}' is not a geometry or meshing word")
            if t.kind == "op" and t.text in (".", "::"):
                self._dot(stmt, k, src)
        self._ranges(stmt, src)

    @staticmethod
    def _is_assignment(stmt: list[_Tok]) -> bool:
        """``x = ...``, ``x[] += ...``, ``x~{i} = ...``, ``x(2) = ...``, ``x++``."""
        j = 1
        while j < len(stmt) and stmt[j].text in ("[", "(", "~"):
            if stmt[j].text == "~":
                j += 1
            if j >= len(stmt) or stmt[j].text not in _OPEN:
                return False
            j = _Geo._close(stmt, j)
        return j < len(stmt) and stmt[j].text in _ASSIGN

    def _option(self, stmt: list[_Tok], src: str) -> None:
        head = stmt[0].text
        ok = (
            len(stmt) > 4
            and stmt[1].text == "."
            and stmt[2].text in _OPTIONS[head]
            and stmt[3].text == "="
        )
        if not ok:
            raise self.fail(
                stmt[0].line,
                src,
                f"only the {head}.* options listed in docs/cases.md, set to a number",
            )

    def _dot(self, stmt: list[_Tok], k: int, src: str) -> None:
        """``Mesh.X`` / ``Geometry.X`` with X allowed, or ``Field[n].X`` in a Field statement."""
        before = stmt[k - 1] if k > 0 else None
        after = stmt[k + 1] if k + 1 < len(stmt) else None
        if before is None or after is None or after.kind != "name":
            raise self.fail(stmt[0].line, src)
        if before.text == "]" and stmt[0].text == "Field":
            return
        if before.kind == "name" and before.text in _OPTIONS:
            if after.text in _OPTIONS[before.text]:
                return
            raise self.fail(
                before.line,
                src,
                f"'{before.text}.{after.text}' is not an allowed option; see docs/cases.md",
            )
        raise self.fail(before.line, src, "only Mesh.* and Geometry.* options have dotted names")

    def _field(self, stmt: list[_Tok], src: str) -> None:
        """``Field[e] = Type;`` or ``Field[e].Option = value;`` with allowed names."""
        if len(stmt) < 2 or stmt[1].text != "[":
            raise self.fail(stmt[0].line, src)
        j = self._close(stmt, 1)
        rest = [t.text for t in stmt[j:]]
        if (
            rest[:1] == ["="]
            and len(rest) >= 2
            and rest[1] in FIELD_TYPES
            and rest[2:] in ([], [";"])
        ):
            return
        if rest[:1] == ["="]:
            raise self.fail(
                stmt[0].line, src, "field types: " + ", ".join(sorted(FIELD_TYPES))[:120] + "..."
            )
        if rest[:1] == ["."] and len(rest) >= 3 and rest[1] in _FIELD_OPTIONS and rest[2] == "=":
            return
        raise self.fail(stmt[0].line, src, "not an allowed field option")

    def _define_constant(self, stmt: list[_Tok], src: str) -> None:
        """Only the ONELAB attributes of _ONELAB_ATTRIBUTES in ``DefineConstant[x = {v, ...}]``."""
        for k, t in enumerate(stmt):
            if t.kind == "name" and t.depth == 2 and k > 0 and stmt[k - 1].text == ",":
                if t.text not in _ONELAB_ATTRIBUTES:
                    raise self.fail(t.line, src, f"'{t.text}' is not an allowed ONELAB attribute")

    def _control(self, stmt: list[_Tok], src: str) -> None:
        head = stmt[0].text
        if head == "For":
            rng = self._for_range(stmt)
            if rng is None:
                raise self.fail(
                    stmt[0].line,
                    src,
                    f"For takes a literal range: For (a:b:c) or For i In {{a:b:c}}, "
                    f"at most {MAX_GEO_ITERATIONS} iterations",
                )
            count = self._count(rng, stmt, src)
            self.loops.append(count)
        elif head == "EndFor":
            if self.loops:
                self.loops.pop()
        elif head in ("If", "ElseIf"):
            self._words(stmt, src, strings=False)  # the condition is an expression

    @staticmethod
    def _for_range(stmt: list[_Tok]) -> list[_Tok] | None:
        texts = [t.text for t in stmt]
        if texts[1:2] == ["("] and texts[-1] == ")":
            inner = stmt[2:-1]
        elif (
            len(stmt) > 4
            and stmt[1].kind == "name"
            and stmt[1].text not in _GMSH_KEYWORDS
            and texts[2:4] == ["In", "{"]
            and texts[-1] == "}"
        ):
            inner = stmt[4:-1]
        else:
            return None
        return inner if _literal_range(inner) is not None else None

    def _count(self, element: list[_Tok], stmt: list[_Tok], src: str) -> int:
        bounds = _literal_range(element)
        line = element[0].line if element else stmt[0].line
        if bounds is None:
            raise self.fail(
                line,
                src,
                f"a range a:b or a:b:c takes literal numbers (at most {MAX_GEO_ITERATIONS} "
                "values), not expressions",
            )
        a, b, step = bounds
        if step == 0 or (b - a) * step < 0 or not all(map(math.isfinite, (a, b, step))):
            raise self.fail(line, src, "a range whose step does not lead from a to b")
        count = math.floor(abs(b - a) / abs(step) + 1e-9) + 1
        total = count * math.prod(self.loops)
        if total > MAX_GEO_ITERATIONS:
            raise self.fail(
                line, src, f"{total:.3g} iterations; at most {MAX_GEO_ITERATIONS} in a .geo"
            )
        return count

    def _ranges(self, stmt: list[_Tok], src: str) -> None:
        """Every ``a:b[:c]`` (not a ``?:`` conditional) has literal bounds and few values."""
        seen: set[int] = set()
        for k, t in enumerate(stmt):
            if t.kind != "op" or t.text not in (":", "...") or k in seen:
                continue
            lo, hi = k, k
            while lo > 0 and not _delimits(stmt[lo - 1], t.depth):
                lo -= 1
            while hi + 1 < len(stmt) and not _delimits(stmt[hi + 1], t.depth):
                hi += 1
            element = stmt[lo : hi + 1]
            if any(e.text == "?" and e.depth == t.depth for e in element):
                continue  # a conditional c ? a : b
            seen.update(i for i in range(lo, hi + 1) if stmt[i].text in (":", "..."))
            self._count(element, stmt, src)


def _delimits(t: _Tok, depth: int) -> bool:
    """Whether ``t`` ends the list element around a ``:`` at ``depth``."""
    return t.depth < depth or (t.depth == depth and t.text in _DELIMITERS)


def _literal_range(element: list[_Tok]) -> tuple[float, float, float] | None:
    """(a, b, step) of ``a:b`` or ``a:b:c`` written with (signed) number literals."""
    parts: list[list[str]] = [[]]
    for t in element:
        if t.text in (":", "..."):
            parts.append([])
        else:
            parts[-1].append(t.text)
    if len(parts) not in (2, 3):
        return None
    values = []
    for p in parts:
        sign = 1.0
        while p and p[0] in "+-":
            sign = -sign if p[0] == "-" else sign
            p = p[1:]
        if len(p) != 1 or not re.fullmatch(r"[\d.]+(?:[eE][-+]?\d+)?", p[0]):
            return None
        values.append(sign * float(p[0]))
    return values[0], values[1], values[2] if len(values) == 3 else 1.0


def check_geo(text: str, path: Path) -> None:
    """Accept a gmsh ``.geo`` text only if it is made of geometry and meshing statements.

    The allow-list: points, curves, surfaces, volumes and their loops, OpenCASCADE shapes,
    booleans, extrusions and transforms, Physical groups, Transfinite/Recombine/mesh sizes,
    size fields of :data:`FIELD_TYPES`, ``Mesh.``/``Geometry.`` options of
    :data:`MESH_OPTIONS`/:data:`GEOMETRY_OPTIONS` set to numbers, ``SetFactory``,
    ``DefineConstant``, variable assignments, ``If`` and ``For`` with literal ranges of at
    most :data:`MAX_GEO_ITERATIONS` iterations (nested loops multiply). Anything else
    (``SystemCall``, ``Printf``, ``Save``, ``Include``, ``Merge``, ``OnelabRun``, ``Exit``,
    ``Delete`` as a statement, ``Plugin``, ``General.*``, ``Macro``/``Call``, ...) is refused.

    Args:
        text: The file's text.
        path: The file, named in the message.

    Raises:
        CaseError: ``mesh.file: <path> line N: '<statement>' is not allowed ...``.
    """
    geo = _Geo(text, path)
    for stmt in geo.statements(geo.tokens()):
        geo.check(stmt)
