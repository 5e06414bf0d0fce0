"""R expressions as data: a tokenizer and parser into a small AST, and R's deparse of it.

Formula text is never executed: every expression a formula holds (``log(y)``, ``I(x^2)``,
``poly(x, 2)``, ``offset(log(t))``) is parsed here and evaluated by ``formula.evaluate``
over the data columns and an allow-listed function table.  Precedence is R's (``?Syntax``),
so ``-2^2`` is -4 and ``y ~ x | g`` is ``y ~ (x | g)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from ..errors import FormulaError

__all__ = ["Node", "parse_expr", "deparse", "names_in", "calls_in"]

# token kinds: num, str, name, op, end
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<bq>`[^`]+`)
  | (?P<name>(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*|\.)
  | (?P<op>%[^%\s]*%|::|==|!=|<=|>=|&&|\|\||[-+*/^:~<>!&|(),=\[\]])
""",
    re.X,
)

# binary operators: (left binding power, right binding power); right-assoc ^ has rbp < lbp
_BINARY = {
    "~": (10, 11),
    "||": (20, 21),
    "|": (20, 21),
    "&&": (30, 31),
    "&": (30, 31),
    "==": (50, 51),
    "!=": (50, 51),
    "<": (50, 51),
    ">": (50, 51),
    "<=": (50, 51),
    ">=": (50, 51),
    "+": (60, 61),
    "-": (60, 61),
    "*": (70, 71),
    "/": (70, 71),
    "%": (80, 81),
    ":": (90, 91),
    "^": (110, 109),
}
_UNARY_BP = {"-": 100, "+": 100, "!": 40, "~": 10}
_SPACED = {"~", "||", "|", "&&", "&", "==", "!=", "<", ">", "<=", ">=", "+", "-", "*"}
_SYNTACTIC = re.compile(r"(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*|\.")
_RESERVED = {
    "if",
    "else",
    "repeat",
    "while",
    "function",
    "for",
    "next",
    "break",
    "TRUE",
    "FALSE",
    "NULL",
    "Inf",
    "NaN",
    "NA",
    "in",
}
_LITERALS = {"TRUE", "FALSE", "NULL", "Inf", "NaN", "NA", "NA_real_"}


@dataclass(frozen=True)
class Node:
    """One AST node: ``num`` (value float), ``str``, ``name``, ``paren`` (args[0]),
    ``unary``/``binary`` (value = operator), ``call`` (value = function name, maybe
    ``pkg::fn``; kwargs = (name, Node) pairs)."""

    kind: str
    value: object = None
    args: tuple = ()
    kwargs: tuple = field(default=())

    def __str__(self) -> str:
        return deparse(self)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FormulaError(f"unexpected character {text[pos]!r} at position {pos} in {text!r}")
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group(), pos))
        pos = m.end()
    out.append(("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i]

    def take(self):
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, msg: str, tok=None):
        tok = tok or self.peek()
        where = "at the end" if tok[0] == "end" else f"at position {tok[2]} ({tok[1]!r})"
        return FormulaError(f"cannot parse {self.text!r}: {msg} {where}")

    def expect(self, op: str):
        tok = self.take()
        if tok[:2] != ("op", op):
            raise self.error(f"expected {op!r}", tok)

    def expr(self, rbp: int = 0) -> Node:
        left = self.prefix()
        while True:
            kind, val, _ = self.peek()
            if kind != "op":
                if kind == "end":
                    return left
                raise self.error("missing operator")
            key = "%" if val.startswith("%") else val
            if key not in _BINARY or _BINARY[key][0] <= rbp:
                return left
            self.take()
            left = Node("binary", val, (left, self.expr(_BINARY[key][1])))

    def prefix(self) -> Node:
        kind, val, pos = self.take()
        if kind == "num":
            return Node("num", float(val.rstrip("L")))
        if kind == "str":
            return Node("str", bytes(val[1:-1], "utf-8").decode("unicode_escape"))
        if kind in ("name", "bq"):
            name = val[1:-1] if kind == "bq" else val
            if self.peek()[:2] == ("op", "::"):
                self.take()
                k2, fn, _ = self.take()
                if k2 not in ("name", "bq"):
                    raise self.error("expected a function name after '::'")
                name = f"{name}::{fn.strip('`')}"
                if self.peek()[:2] != ("op", "("):
                    raise self.error(f"'{name}' must be called")
            if self.peek()[:2] == ("op", "("):
                return self.call(name)
            return Node("name", name)
        if kind == "op" and val == "(":
            inner = self.expr()
            self.expect(")")
            return Node("paren", None, (inner,))
        if kind == "op" and val in _UNARY_BP:
            return Node("unary", val, (self.expr(_UNARY_BP[val]),))
        self.i -= 1
        raise self.error("unexpected token")

    def call(self, name: str) -> Node:
        self.expect("(")
        args, kwargs = [], []
        if self.peek()[:2] == ("op", ")"):
            self.take()
            return Node("call", name)
        while True:
            kind, val, _ = self.peek()
            nxt = self.toks[self.i + 1]
            if kind in ("name", "bq", "str") and nxt[:2] == ("op", "="):
                self.i += 2
                kwargs.append((val.strip("`\"'"), self.expr()))
            else:
                args.append(self.expr())
            tok = self.take()
            if tok[:2] == ("op", ")"):
                return Node("call", name, tuple(args), tuple(kwargs))
            if tok[:2] != ("op", ","):
                raise self.error("expected ',' or ')' in the arguments of " + name, tok)


@lru_cache(maxsize=1024)
def parse_expr(text: str) -> Node:
    """The AST of one R expression (cached: nodes are immutable)."""
    if not isinstance(text, str) or not text.strip():
        raise FormulaError(f"empty expression {text!r}")
    p = _Parser(text)
    try:
        node = p.expr()
    except RecursionError:
        raise FormulaError(f"expression too deeply nested: {text[:60]!r}...") from None
    if p.peek()[0] != "end":
        raise p.error("unexpected token")
    return node


def _num(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.15g}"


def _name(n: str) -> str:
    if "::" in n:
        pkg, fn = n.split("::", 1)
        return f"{_name(pkg)}::{_name(fn)}"
    return n if _SYNTACTIC.fullmatch(n) and n not in _RESERVED else f"`{n}`"


def deparse(node: Node) -> str:
    """R's deparse of an expression: ``I(x^2)``, ``log(Days + 1)``, ``ns(x, df = 3)``."""
    k = node.kind
    if k == "num":
        return _num(node.value)
    if k == "str":
        return '"' + node.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if k == "name":
        return node.value if node.value in _LITERALS else _name(node.value)
    if k == "paren":
        return f"({deparse(node.args[0])})"
    if k == "unary":
        return f"{node.value}{deparse(node.args[0])}"
    if k == "binary":
        a, b = (deparse(x) for x in node.args)
        return f"{a} {node.value} {b}" if node.value in _SPACED else f"{a}{node.value}{b}"
    parts = [deparse(a) for a in node.args] + [f"{_name(n)} = {deparse(v)}" for n, v in node.kwargs]
    return f"{_name(node.value)}({', '.join(parts)})"


def _walk(node: Node):
    yield node
    for a in node.args:
        yield from _walk(a)
    for _, v in node.kwargs:
        yield from _walk(v)


def names_in(node: Node) -> list[str]:
    """Variable names an expression reads, in order of appearance (no duplicates)."""
    return list(dict.fromkeys(n.value for n in _walk(node) if n.kind == "name"))


def calls_in(node: Node) -> list[str]:
    """Function names an expression calls."""
    return list(dict.fromkeys(n.value for n in _walk(node) if n.kind == "call"))
