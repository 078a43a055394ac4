"""Whitelisted expression grammar for case files.

Case files give fields such as a potential or an initial density as strings,
e.g. ``"0.5*m*omega**2*(x0**2 + 4*x1**2)"``. They are parsed here by a small
hand-written recursive-descent parser — never by ``eval``/``exec`` or a
general-purpose symbolic parser — into an immutable tree that evaluates with
either math backend of :mod:`nhj.backends` (UFL for forms, numpy at points).

Grammar::

    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := ("+" | "-") unary | power
    power   := atom ("**" unary)?          # right-associative; -x**2 == -(x**2)
    atom    := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"

Numbers: ``2``, ``2.5``, ``.5``, ``1e-3``. Names: the variables a field allows
(coordinates ``x0, x1, x2``, parameters such as ``gamma``), the constants
``pi`` and ``e``, and the functions in :data:`FUNCTIONS`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from nhj import backends
from nhj.schema import CaseError

#: Whitelisted functions and their number of arguments.
FUNCTIONS: dict[str, int] = {
    "sin": 1, "cos": 1, "tan": 1, "asin": 1, "acos": 1, "atan": 1, "atan2": 2, "sinh": 1,
    "cosh": 1, "tanh": 1, "exp": 1, "log": 1, "sqrt": 1, "abs": 1, "erf": 1, "sign": 1,
    "min": 2, "max": 2,
}
CONSTANTS = ("pi", "e")
MAX_LENGTH = 4000
MAX_DEPTH = 100

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op>\*\*|[-+*/(),]))"
)


class ExpressionError(CaseError):
    """An expression outside the grammar (one line, naming the field)."""


@dataclass(frozen=True)
class Expr:
    """A node of the expression tree."""

    @property
    def names(self) -> frozenset[str]:
        """Variables used."""
        return frozenset()

    def evaluate(self, env: Mapping[str, Any], M: Any) -> Any:  # pragma: no cover - abstract
        """Value with variables from ``env`` and functions from backend ``M``."""
        raise TypeError


@dataclass(frozen=True)
class Num(Expr):
    """A number literal."""

    value: float

    def evaluate(self, env: Mapping[str, Any], M: Any) -> Any:
        """The number."""
        return self.value

    def __str__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class Var(Expr):
    """A variable or named constant."""

    name: str

    @property
    def names(self) -> frozenset[str]:
        """This variable (constants excluded)."""
        return frozenset() if self.name in CONSTANTS else frozenset((self.name,))

    def evaluate(self, env: Mapping[str, Any], M: Any) -> Any:
        """Value from ``env`` (or the backend's constant)."""
        if self.name in CONSTANTS:
            return getattr(M, self.name)
        if self.name not in env:
            raise ExpressionError("expression", f"no value for variable {self.name!r}")
        return env[self.name]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Unary(Expr):
    """Unary minus (or plus)."""

    op: str
    arg: Expr

    @property
    def names(self) -> frozenset[str]:
        """Variables of the operand."""
        return self.arg.names

    def evaluate(self, env: Mapping[str, Any], M: Any) -> Any:
        """±operand."""
        v = self.arg.evaluate(env, M)
        return -v if self.op == "-" else v

    def __str__(self) -> str:
        return f"({self.op}{self.arg})"


@dataclass(frozen=True)
class Binary(Expr):
    """A binary operation + - * / **."""

    op: str
    left: Expr
    right: Expr

    @property
    def names(self) -> frozenset[str]:
        """Variables of both operands."""
        return self.left.names | self.right.names

    def evaluate(self, env: Mapping[str, Any], M: Any) -> Any:
        """The operation applied to the operand values."""
        a, b = self.left.evaluate(env, M), self.right.evaluate(env, M)
        match self.op:
            case "+":
                return a + b
            case "-":
                return a - b
            case "*":
                return a * b
            case "/":
                return a / b
        return a**b

    def __str__(self) -> str:
        return f"({self.left} {self.op} {self.right})"


@dataclass(frozen=True)
class Call(Expr):
    """A call of a whitelisted function."""

    func: str
    args: tuple[Expr, ...]

    @property
    def names(self) -> frozenset[str]:
        """Variables of all arguments."""
        return frozenset().union(*(a.names for a in self.args))

    def evaluate(self, env: Mapping[str, Any], M: Any) -> Any:
        """The backend's function of the argument values."""
        vals = [a.evaluate(env, M) for a in self.args]
        if M is backends.UFL and all(isinstance(v, (int, float)) for v in vals):
            return float(getattr(backends.NUMPY, self.func)(*vals))  # numbers stay numbers
        return getattr(M, self.func)(*vals)

    def __str__(self) -> str:
        return f"{self.func}({', '.join(map(str, self.args))})"


class _Parser:
    def __init__(self, text: str, field: str, names: Collection[str]) -> None:
        self.text, self.field, self.allowed = text, field, frozenset(names)
        self.tokens = self._tokenize()
        self.i = 0
        self.depth = 0

    def error(self, what: str, col: int | None = None) -> ExpressionError:
        where = f" at column {col + 1}" if col is not None else ""
        allowed = (
            f"allowed: numbers, + - * / **, parentheses, functions {' '.join(FUNCTIONS)}, "
            f"constants pi e, variables {' '.join(sorted(self.allowed)) or '(none)'}"
        )
        return ExpressionError(self.field, f"{what}{where} in {self.text!r}; {allowed}")

    def _tokenize(self) -> list[tuple[str, str, int]]:
        out, pos, n = [], 0, len(self.text)
        while pos < n:
            if self.text[pos:].strip() == "":
                break
            m = _TOKEN.match(self.text, pos)
            if m is None or m.end() == pos:
                col = pos + len(self.text[pos:]) - len(self.text[pos:].lstrip())
                ch = self.text[col]
                hint = " (use ** for powers)" if ch == "^" else ""
                raise self.error(f"unexpected character {ch!r}{hint}", col)
            kind = m.lastgroup or ""
            out.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        return out

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end of expression")
        if value is not None and tok[1] != value:
            raise self.error(f"expected {value!r}, found {tok[1]!r}", tok[2])
        self.i += 1
        return tok

    def parse(self) -> Expr:
        if not self.tokens:
            raise self.error("empty expression")
        e = self.expr()
        tok = self.peek()
        if tok is not None:
            raise self.error(f"unexpected {tok[1]!r}", tok[2])
        return e

    def expr(self) -> Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nesting deeper than {MAX_DEPTH}")
        e = self.term()
        while (tok := self.peek()) is not None and tok[1] in "+-" and tok[0] == "op":
            self.take()
            e = Binary(tok[1], e, self.term())
        self.depth -= 1
        return e

    def term(self) -> Expr:
        e = self.unary()
        while (tok := self.peek()) is not None and tok[1] in ("*", "/"):
            self.take()
            e = Binary(tok[1], e, self.unary())
        return e

    def unary(self) -> Expr:
        tok = self.peek()
        if tok is not None and tok[1] in ("+", "-"):
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"nesting deeper than {MAX_DEPTH}")
            e = Unary(tok[1], self.unary())
            self.depth -= 1
            return e
        return self.power()

    def power(self) -> Expr:
        base = self.atom()
        tok = self.peek()
        if tok is not None and tok[1] == "**":
            self.take()
            return Binary("**", base, self.unary())
        return base

    def atom(self) -> Expr:
        kind, value, col = self.take()
        if kind == "num":
            return Num(float(value))
        if kind == "name":
            nxt = self.peek()
            if nxt is not None and nxt[1] == "(":
                if value not in FUNCTIONS:
                    raise self.error(f"unknown function {value!r}", col)
                self.take("(")
                args = [self.expr()]
                while (t := self.peek()) is not None and t[1] == ",":
                    self.take()
                    args.append(self.expr())
                self.take(")")
                if len(args) != FUNCTIONS[value]:
                    raise self.error(f"{value} takes {FUNCTIONS[value]} argument(s)", col)
                return Call(value, tuple(args))
            if value in CONSTANTS or value in self.allowed:
                return Var(value)
            raise self.error(f"unknown name {value!r}", col)
        if value == "(":
            e = self.expr()
            self.take(")")
            return e
        raise self.error(f"unexpected {value!r}", col)


def parse(text: str, *, field: str, names: Collection[str]) -> Expr:
    """Parse ``text`` into an expression tree; ExpressionError names ``field`` otherwise."""
    if not isinstance(text, str):
        raise ExpressionError(field, f"must be a string expression, got {text!r}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(field, f"expression longer than {MAX_LENGTH} characters")
    return _Parser(text, field, names).parse()


def to_ufl(expr: Expr, env: Mapping[str, Any]) -> Any:
    """The expression as UFL, with variables from ``env``."""
    return expr.evaluate(env, backends.UFL)


def to_numpy(expr: Expr, env: Mapping[str, Any]) -> Any:
    """The expression evaluated with numpy, with variables from ``env``."""
    return expr.evaluate(env, backends.NUMPY)
