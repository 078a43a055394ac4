"""Whitelisted expression grammar for case files.

Case files give fields such as a potential, a loss or an initial density as
strings, e.g. ``"0.5*m*omega**2*(x0**2 + 4*x1**2)"`` or
``"exp(-(x0-1)**2/0.25) * cos(2*pi*x1)"``. A case file never executes code:
the strings are read by the small hand-written tokenizer and recursive-descent
parser of this module (no Python evaluation, no Python parser, no symbolic
algebra package) into an immutable tree (:class:`Expr`) that evaluates with
either math backend of :mod:`nhj.backends`: UFL for finite-element forms
(:func:`to_ufl`), numpy at points (:func:`to_numpy`).

Grammar (``|`` alternatives, ``*`` repetition, ``?`` optional)::

    expr   := term (("+" | "-") term)*              left-associative
    term   := unary (("*" | "/") unary)*            left-associative
    unary  := ("+" | "-") unary | power
    power  := atom ("**" unary)?                    right-associative
    atom   := NUMBER | NAME | FUNC "(" expr ("," expr)* ")" | "(" expr ")"

So ``**`` binds tighter than a sign on its left and is right-associative:
``-x0**2`` is ``-(x0**2)``, ``2**3**2`` is ``2**9``, and ``2**-1`` is ``0.5``.

* Numbers: ``2``, ``2.5``, ``.5``, ``5.``, ``1e-3``, ``2.5E+4`` (ASCII digits).
* Variables: exactly the names the field allows (for instance the
  coordinates ``x0, x1, x2`` and the parameters ``gamma, beta, hbar, m``);
  the error message lists them.
* Constants: ``pi``, ``e``.
* Functions (see :data:`FUNCTIONS`): ``sin cos tan asin acos atan sinh cosh
  tanh exp log sqrt abs erf sign`` of one argument (``log`` is natural),
  ``atan2(y, x)``, ``min(a, b)`` and ``max(a, b)``.
* Whitespace (spaces, tabs, newlines) is ignored between tokens.

Everything else is an :class:`ExpressionError` naming the field, the
offending token and its column, and what is allowed, on one line: ``^``
(write ``**``), other operators (``%``, ``//``, comparisons), attribute access
``a.b``, indexing ``a[0]``, strings, keywords, assignments, commas outside a
call, unknown names or functions, wrong argument counts, empty text, text
longer than :data:`MAX_LENGTH` characters, nesting (parentheses, calls, signs,
powers) deeper than :data:`MAX_DEPTH` levels, expression trees deeper than
:data:`MAX_TREE_DEPTH` (e.g. a sum of more than 100 terms: group it with
parentheses), and constant sub-expressions that are not finite real numbers
(``1/0``, ``(-8)**(1/3)``, ``10**400``, ``log(0)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import ufl
from ufl.core.expr import Expr as UflExpr

from nhj import backends
from nhj.schema import CaseError

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_TREE_DEPTH",
    "Binary",
    "Call",
    "Expr",
    "ExpressionError",
    "Num",
    "Unary",
    "Var",
    "parse",
    "to_numpy",
    "to_ufl",
]

#: Whitelisted functions and their numbers of arguments (all exist in every backend).
FUNCTIONS: dict[str, int] = {
    "sin": 1,
    "cos": 1,
    "tan": 1,
    "asin": 1,
    "acos": 1,
    "atan": 1,
    "atan2": 2,
    "sinh": 1,
    "cosh": 1,
    "tanh": 1,
    "exp": 1,
    "log": 1,
    "sqrt": 1,
    "abs": 1,
    "erf": 1,
    "sign": 1,
    "min": 2,
    "max": 2,
}
#: Named constants, taken from the backend (``M.pi``, ``M.e``).
CONSTANTS: tuple[str, ...] = ("pi", "e")
#: Longest accepted expression text, in characters.
MAX_LENGTH = 4000
#: Deepest accepted nesting of parentheses, calls, signs and power exponents.
MAX_DEPTH = 100
#: Deepest accepted expression tree: a chain a+b+c+... counts one level per operation and
#: ``sign`` three (its UFL form is two nested conditionals). UFL's own recursive algorithms
#: fail at a depth of about 250, so this leaves room for the forms around the expression.
MAX_TREE_DEPTH = 100
_WEIGHT = {"sign": 3}

_DIGITS = frozenset("0123456789")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | _DIGITS
_SPACE = frozenset(" \t\r\n")
_OPERATORS = frozenset("+-*/(),")
_RESERVED = frozenset(FUNCTIONS) | frozenset(CONSTANTS)


class ExpressionError(CaseError):
    """An expression outside the grammar, or one that cannot be evaluated.

    ``str()`` is one line, ``"<field>: <reason>; allowed: ..."``.
    """


# --------------------------------------------------------------------------- tree


@dataclass(frozen=True)
class Expr:
    """A node of an immutable expression tree (see the module docstring)."""

    @property
    def children(self) -> tuple[Expr, ...]:
        """The operand nodes (empty for leaves)."""
        return ()

    @property
    def names(self) -> frozenset[str]:
        """The variables used (constants ``pi``, ``e`` excluded)."""
        return frozenset().union(*(c.names for c in self.children))

    def combine(self, values: list[Any], M: Any) -> Any:
        """This node's operation applied to already evaluated ``values`` of its children."""
        raise NotImplementedError  # pragma: no cover - every node overrides it

    def evaluate(self, env: Mapping[str, Any], M: Any, *, field: str = "expression") -> Any:
        """Value of the expression.

        Args:
            env: Values of the variables: UFL expressions or ``fem.Constant`` for
                ``M = backends.UFL``, numpy arrays or numbers for ``backends.NUMPY``.
            M: A math backend of :mod:`nhj.backends`.
            field: Field name used in the error for a variable missing from ``env``.

        Returns:
            A UFL expression or a number (UFL), or an array or a number (numpy).

        Raises:
            ExpressionError: A variable of the expression has no value in ``env``.
        """
        return self.combine([c.evaluate(env, M, field=field) for c in self.children], M)


@dataclass(frozen=True)
class Num(Expr):
    """A number literal."""

    value: float

    def combine(self, values: list[Any], M: Any) -> Any:
        """The number."""
        return self.value

    def __str__(self) -> str:
        return repr(float(self.value))


@dataclass(frozen=True)
class Var(Expr):
    """A variable, or one of the constants ``pi``, ``e``."""

    name: str

    @property
    def names(self) -> frozenset[str]:
        """This variable (empty for a constant)."""
        return frozenset() if self.name in CONSTANTS else frozenset((self.name,))

    def evaluate(self, env: Mapping[str, Any], M: Any, *, field: str = "expression") -> Any:
        """The value from ``env`` (or the backend's constant)."""
        if self.name in CONSTANTS:
            return getattr(M, self.name)
        if self.name not in env:
            given = ", ".join(sorted(env)) or "none"
            raise ExpressionError(field, f"no value for variable {self.name!r}; given: {given}")
        return env[self.name]

    def combine(self, values: list[Any], M: Any) -> Any:  # pragma: no cover - via evaluate
        """Not used: a variable's value comes from the environment."""
        raise TypeError("a variable has no value without an environment")

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Unary(Expr):
    """A sign, ``-a`` or ``+a``."""

    op: str
    arg: Expr

    @property
    def children(self) -> tuple[Expr, ...]:
        """The operand."""
        return (self.arg,)

    def combine(self, values: list[Any], M: Any) -> Any:
        """±operand."""
        return -values[0] if self.op == "-" else values[0]

    def __str__(self) -> str:
        return f"({self.op}{self.arg})"


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a**b,
}


@dataclass(frozen=True)
class Binary(Expr):
    """A binary operation ``+ - * / **``."""

    op: str
    left: Expr
    right: Expr

    @property
    def children(self) -> tuple[Expr, ...]:
        """Left and right operands."""
        return (self.left, self.right)

    def combine(self, values: list[Any], M: Any) -> Any:
        """The operation applied to the operand values."""
        return _BINARY[self.op](values[0], values[1])

    def __str__(self) -> str:
        return f"({self.left} {self.op} {self.right})"


@dataclass(frozen=True)
class Call(Expr):
    """A call of a whitelisted function (a key of :data:`FUNCTIONS`)."""

    func: str
    args: tuple[Expr, ...]

    @property
    def children(self) -> tuple[Expr, ...]:
        """The arguments."""
        return self.args

    def combine(self, values: list[Any], M: Any) -> Any:
        """The backend's function of the argument values."""
        return getattr(M, self.func)(*values)

    def __str__(self) -> str:
        return f"{self.func}({', '.join(map(str, self.args))})"


# ---------------------------------------------------------------------- tokenizer


class _Token(NamedTuple):
    kind: str  # "num", "name", "op" or "end"
    text: str
    col: int  # 0-based offset into the text


def _allowed(names: Collection[str]) -> str:
    return (
        f"allowed: numbers, + - * / **, parentheses, functions {' '.join(FUNCTIONS)}, "
        f"constants {' '.join(CONSTANTS)}, variables {' '.join(sorted(names)) or '(none)'}"
    )


def _excerpt(text: str, col: int | None) -> str:
    """The text (or, if long, the part around ``col``) quoted on one line."""
    if len(text) <= 60:
        return f"in {text!r}"
    lo = 0 if col is None else max(0, min(col - 25, len(text) - 50))
    part = text[lo : lo + 50]
    return f"near {'...' if lo else ''}{part!r}{'...' if lo + 50 < len(text) else ''}"


class _Parser:
    """Tokenizer and recursive-descent parser for one expression text."""

    def __init__(self, text: str, field: str, names: frozenset[str]) -> None:
        self.text, self.field, self.allowed = text, field, names
        self.depth = 0
        self._tree_depth: dict[int, int] = {}  # id(node) -> depth of its subtree
        self._value: dict[int, float] = {}  # id(node) -> value, for constant subtrees
        self._nodes: list[Expr] = []  # keeps nodes alive so that ids stay unique
        self.pos = 0  # next character to tokenize
        self.tokens: list[_Token] = []  # tokenized lazily, so errors come in text order
        self.i = 0  # next token to parse

    def error(self, what: str, col: int | None = None) -> ExpressionError:
        where = "" if col is None else f" at column {col + 1}"
        excerpt = _excerpt(self.text, col)
        return ExpressionError(self.field, f"{what}{where} {excerpt}; {_allowed(self.allowed)}")

    def _lex(self) -> _Token:
        """The token at ``self.pos`` (skipping whitespace); advances ``self.pos``."""
        text, n, pos = self.text, len(self.text), self.pos
        while pos < n and text[pos] in _SPACE:
            pos += 1
        if pos == n:
            tok = _Token("end", "", n)
        elif text[pos] in _DIGITS or (
            text[pos] == "." and pos + 1 < n and text[pos + 1] in _DIGITS
        ):
            tok = _Token("num", text[pos : self._number_end(pos)], pos)
        elif text[pos] in _NAME_START:
            end = pos + 1
            while end < n and text[end] in _NAME_CHARS:
                end += 1
            tok = _Token("name", text[pos:end], pos)
        elif text.startswith("**", pos):
            tok = _Token("op", "**", pos)
        elif text[pos] in _OPERATORS:
            tok = _Token("op", text[pos], pos)
        elif text[pos] == "^":
            raise self.error("'^' is not a power operator (write x0**2)", pos)
        else:
            raise self.error(f"unexpected character {text[pos]!r}", pos)
        self.pos = pos + len(tok.text)
        return tok

    def _number_end(self, pos: int) -> int:
        """End of the number starting at ``pos``: digits [. digits] [e [+-] digits]."""
        text, n = self.text, len(self.text)
        while pos < n and text[pos] in _DIGITS:
            pos += 1
        if pos < n and text[pos] == ".":
            pos += 1
            while pos < n and text[pos] in _DIGITS:
                pos += 1
        if pos < n and text[pos] in "eE":
            k = pos + 1
            if k < n and text[k] in "+-":
                k += 1
            if k < n and text[k] in _DIGITS:
                pos = k
                while pos < n and text[pos] in _DIGITS:
                    pos += 1
        return pos

    # ------------------------------------------------------------------ parser

    def peek(self) -> _Token:
        while len(self.tokens) <= self.i:
            self.tokens.append(self._lex())
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.peek()
        if tok.kind == "end":
            raise self.error("unexpected end of expression", tok.col)
        self.i += 1
        return tok

    def expect(self, text: str, opened: _Token) -> None:
        tok = self.peek()
        if tok.text != text or tok.kind != "op":
            found = "end of expression" if tok.kind == "end" else repr(tok.text)
            raise self.error(
                f"expected {text!r} to close {opened.text!r} of column {opened.col + 1}, "
                f"found {found}",
                tok.col,
            )
        self.i += 1

    def node(self, node: Expr, col: int) -> Expr:
        """Register ``node``: check the tree depth and that constant subtrees are finite."""
        kids = node.children
        weight = _WEIGHT.get(node.func, 1) if isinstance(node, Call) else 1
        depth = weight + max((self._tree_depth[id(k)] for k in kids), default=0)
        if depth > MAX_TREE_DEPTH:
            raise self.error(
                f"expression tree deeper than {MAX_TREE_DEPTH} (group long chains of "
                "operations with parentheses)",
                col,
            )
        self._nodes.append(node)
        self._tree_depth[id(node)] = depth
        if isinstance(node, Num):
            self._value[id(node)] = node.value
        elif isinstance(node, Var):
            if node.name in CONSTANTS:
                self._value[id(node)] = getattr(backends.NUMPY, node.name)
        elif all(id(k) in self._value for k in kids):
            self._value[id(node)] = self.fold(node, [self._value[id(k)] for k in kids], col)
        return node

    def fold(self, node: Expr, values: list[float], col: int) -> float:
        """Value of a constant subtree; an error unless it is a finite real number."""
        why = "not finite"
        try:
            with np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
                v = node.combine([np.float64(x) for x in values], backends.NUMPY)
            if np.iscomplexobj(v):
                why = "complex"
            elif math.isfinite(float(v)):
                return float(v)
        except (ArithmeticError, ValueError) as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        shown = str(node) if len(str(node)) <= 40 else str(node)[:37] + "..."
        raise self.error(f"constant {shown} is not a finite real number ({why})", col)

    def enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(
                f"nesting (parentheses, calls, signs, powers) deeper than {MAX_DEPTH}", tok.col
            )

    def parse(self) -> Expr:
        if self.peek().kind == "end":
            raise self.error("empty expression")
        e = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            hint = " (missing operator?)" if tok.kind != "op" or tok.text == "(" else ""
            raise self.error(f"unexpected {tok.text!r}{hint}", tok.col)
        return e

    def expr(self) -> Expr:
        e = self.term()
        while (tok := self.peek()).kind == "op" and tok.text in ("+", "-"):
            self.i += 1
            e = self.node(Binary(tok.text, e, self.term()), tok.col)
        return e

    def term(self) -> Expr:
        e = self.unary()
        while (tok := self.peek()).kind == "op" and tok.text in ("*", "/"):
            self.i += 1
            e = self.node(Binary(tok.text, e, self.unary()), tok.col)
        return e

    def unary(self) -> Expr:
        tok = self.peek()
        self.enter(tok)  # every level of recursion passes here
        if tok.kind == "op" and tok.text in ("+", "-"):
            self.i += 1
            e = self.node(Unary(tok.text, self.unary()), tok.col)
        else:
            e = self.power()
        self.depth -= 1
        return e

    def power(self) -> Expr:
        base = self.atom()
        tok = self.peek()
        if tok.kind == "op" and tok.text == "**":
            self.i += 1
            return self.node(Binary("**", base, self.unary()), tok.col)
        return base

    def atom(self) -> Expr:
        tok = self.take()
        if tok.kind == "num":
            value = float(tok.text)
            if not math.isfinite(value):
                raise self.error(f"number {tok.text} is out of range", tok.col)
            return self.node(Num(value), tok.col)
        if tok.kind == "name":
            if tok.text not in _RESERVED and tok.text not in self.allowed:
                # Reported before the next token is read, so that errors come in text order.
                called = self.text[self.pos :].lstrip(" \t\r\n").startswith("(")
                raise self.error(
                    f"unknown {'function' if called else 'name'} {tok.text!r}", tok.col
                )
            if self.peek().text == "(" and self.peek().kind == "op":
                return self.call(tok)
            if tok.text in FUNCTIONS:
                raise self.error(f"function {tok.text!r} needs arguments: {tok.text}(...)", tok.col)
            return self.node(Var(tok.text), tok.col)
        if tok.text == "(":
            e = self.expr()
            self.expect(")", tok)
            return e
        raise self.error(f"unexpected {tok.text!r}", tok.col)

    def call(self, name: _Token) -> Expr:
        if name.text not in FUNCTIONS:
            what = "constant" if name.text in CONSTANTS else "variable"
            raise self.error(f"{what} {name.text!r} is not a function", name.col)
        opened = self.take()
        args = [self.expr()]
        while (tok := self.peek()).kind == "op" and tok.text == ",":
            self.i += 1
            args.append(self.expr())
        self.expect(")", opened)
        arity = FUNCTIONS[name.text]
        if len(args) != arity:
            raise self.error(
                f"{name.text} takes {arity} argument{'s' if arity > 1 else ''}, got {len(args)}",
                name.col,
            )
        return self.node(Call(name.text, tuple(args)), name.col)


# --------------------------------------------------------------------------- API


def parse(text: str, *, field: str, names: Collection[str]) -> Expr:
    """Parse a case-file expression by the whitelisted grammar of this module.

    Args:
        text: The expression, e.g. ``"0.5*m*(x0**2 + 4*x1**2)"``.
        field: Dotted name of the case field, used in error messages.
        names: The variables the expression may use, e.g. ``("x0", "x1", "gamma")``.

    Returns:
        The immutable expression tree.

    Raises:
        ExpressionError: ``text`` is not a string of the grammar (one-line message
            starting with ``field``).
        ValueError: ``names`` holds something that cannot be a variable (a function
            or constant name, or not an ASCII identifier): a programming error.
    """
    allowed = frozenset(names)
    for name in allowed:
        ok = isinstance(name, str) and name[:1] in _NAME_START and set(name) <= _NAME_CHARS
        if not ok or name in _RESERVED:
            raise ValueError(f"{name!r} cannot be an expression variable")
    if not isinstance(text, str):
        shown = repr(text) if len(repr(text)) <= 40 else type(text).__name__
        raise ExpressionError(
            field, f"must be an expression string, got {shown}; " + _allowed(allowed)
        )
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            field,
            f"expression of {len(text)} characters is longer than {MAX_LENGTH}; "
            + _allowed(allowed),
        )
    return _Parser(text, field, allowed).parse()


def to_ufl(expr: Expr, env: Mapping[str, Any], *, field: str = "expression") -> UflExpr:
    """The expression as UFL.

    Args:
        expr: A parsed expression.
        env: UFL values of its variables (``SpatialCoordinate`` components,
            ``fem.Constant``) or numbers.
        field: Field name for the error of a missing variable.

    Returns:
        A UFL expression (a constant one for an expression without variables).
    """
    return ufl.as_ufl(expr.evaluate(env, backends.UFL, field=field))


def to_numpy(expr: Expr, env: Mapping[str, Any], *, field: str = "expression") -> Any:
    """The expression evaluated with numpy.

    Args:
        expr: A parsed expression.
        env: Values of its variables: arrays (broadcast together) or numbers.
        field: Field name for the error of a missing variable.

    Returns:
        An array, or a number for an expression of numbers only.
    """
    return expr.evaluate(env, backends.NUMPY, field=field)
