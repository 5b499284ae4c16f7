"""A safe subset of JavaScript for SWITCH `javascript` expressions and DO_WHILE
`loopCondition`: literals, `$` paths (`$.a.b`, `$['a']`, `.length`), arithmetic, comparison,
`!`, `&&`, `||`, `?:`, and `if (...) { ... } else { ... }` blocks whose value is the last
expression statement (as GraalJS returns it). A script in the subset is evaluated here, in
microseconds and without starting an engine (it cannot loop, call or allocate); any other
script runs in the JavaScript sandbox (gateway/devserver/scripting.py, QuickJS with time and
memory limits).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.devserver import scripting
from gateway.devserver.tasks.later import Waiting, script_value

if TYPE_CHECKING:
    from gateway.devserver.state import WorkflowRecord
    from gateway.devserver.tasks.base import Runtime

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<name>[A-Za-z_$][A-Za-z0-9_$]*)"
    r"|(?P<op>===|!==|==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,;()\[\]{}]))"
)
_UNDEFINED = object()
_BINARY: list[tuple[str, ...]] = [
    ("||",),
    ("&&",),
    ("===", "!==", "==", "!="),
    ("<", "<=", ">", ">="),
    ("+", "-"),
    ("*", "/", "%"),
]


class ScriptError(ValueError):
    pass


@functools.lru_cache(maxsize=512)
def _tokens(source: str) -> tuple[str, ...]:
    """The tokens of `source`; cached, since a loop condition is read once per iteration."""
    tokens: list[str] = []
    pos = 0
    source = source.rstrip()
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            raise ScriptError(f"unsupported syntax at {source[pos : pos + 20]!r}")
        tokens.append(match.group(match.lastgroup or "op"))
        pos = match.end()
    return tuple(tokens)


def truthy(value: Any) -> bool:
    if value is None or value is _UNDEFINED:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value != ""
    return True


def _loose_equal(a: Any, b: Any) -> bool:
    if (a is None or a is _UNDEFINED) and (b is None or b is _UNDEFINED):
        return True
    if (isinstance(a, int | float) and isinstance(b, str)) or (
        isinstance(a, str) and isinstance(b, int | float)
    ):
        try:
            return float(a) == float(b)
        except ValueError:
            return False
    return bool(a == b)


def _binary(op: str, a: Any, b: Any) -> Any:
    if op == "===":
        return (type(a) is type(b) and a == b) or (_num(a) and _num(b) and a == b)
    if op == "!==":
        return not _binary("===", a, b)
    if op == "==":
        return _loose_equal(a, b)
    if op == "!=":
        return not _loose_equal(a, b)
    if op == "+" and (isinstance(a, str) or isinstance(b, str)):
        return _text(a) + _text(b)
    try:
        return _ARITH[op](a, b)
    except (TypeError, ZeroDivisionError) as exc:
        raise ScriptError(f"cannot apply {op} to {a!r} and {b!r}") from exc


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if value is _UNDEFINED:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "-": lambda a, b: a - b,
    "+": lambda a, b: a + b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
}


class _Parser:
    """Recursive descent that evaluates as it parses; `live` is False in untaken branches,
    which are parsed (so syntax errors show) but not evaluated."""

    def __init__(self, source: str, dollar: Any) -> None:
        self.tokens = _tokens(source)
        self.pos = 0
        self.dollar = dollar

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ScriptError(f"expected {expected or 'more input'}, found {token!r}")
        self.pos += 1
        return token

    def program(self, live: bool = True) -> Any:
        value: Any = None
        while self.peek() is not None:
            value = self.statement(live, value)
        return value

    def statement(self, live: bool, value: Any) -> Any:
        if self.peek() == "if":
            return self.if_statement(live, value)
        if self.peek() == "{":
            return self.block(live, value)
        if self.peek() == "return":
            self.take()
        result = self.expression(live)
        if self.peek() == ";":
            self.take()
        return result if live else value

    def if_statement(self, live: bool, value: Any) -> Any:
        self.take("if")
        self.take("(")
        condition = truthy(self.expression(live))
        self.take(")")
        value = self.statement(live and condition, value)
        if self.peek() == "else":
            self.take()
            value = self.statement(live and not condition, value)
        return value

    def block(self, live: bool, value: Any) -> Any:
        self.take("{")
        while self.peek() != "}":
            value = self.statement(live, value)
        self.take("}")
        return value

    def expression(self, live: bool) -> Any:
        condition = self.binary(0, live)
        if self.peek() != "?":
            return condition
        self.take()
        yes = self.expression(live and truthy(condition))
        self.take(":")
        no = self.expression(live and not truthy(condition))
        return yes if truthy(condition) else no

    def binary(self, level: int, live: bool) -> Any:
        if level == len(_BINARY):
            return self.unary(live)
        left = self.binary(level + 1, live)
        while self.peek() in _BINARY[level]:
            op = self.take()
            # && and || short-circuit as in JavaScript: the right side may not be evaluated.
            right_live = live and (
                (op == "&&" and truthy(left))
                or (op == "||" and not truthy(left))
                or op not in ("&&", "||")
            )
            right = self.binary(level + 1, right_live)
            if not live:
                continue
            if op == "&&":
                left = right if truthy(left) else left
            elif op == "||":
                left = left if truthy(left) else right
            else:
                left = _binary(op, left, right)
        return left

    def unary(self, live: bool) -> Any:
        if self.peek() == "!":
            self.take()
            return not truthy(self.unary(live))
        if self.peek() == "-":
            self.take()
            value = self.unary(live)
            return -value if live and _num(value) else value
        return self.postfix(live)

    def postfix(self, live: bool) -> Any:
        value = self.primary(live)
        while self.peek() in (".", "["):
            if self.take() == ".":
                key: Any = self.take()
            else:
                key = self.expression(live)
                self.take("]")
            value = _member(value, key) if live else None
        return value

    def primary(self, live: bool) -> Any:
        token = self.take()
        if token == "(":
            value = self.expression(live)
            self.take(")")
            return value
        if token == "$":
            return self.dollar
        literals = {"true": True, "false": False, "null": None, "undefined": _UNDEFINED}
        if token in literals:
            return literals[token]
        if token[0].isdigit():
            return float(token) if "." in token else int(token)
        if token[0] in "'\"":
            return bytes(token[1:-1], "utf-8").decode("unicode_escape")
        raise ScriptError(f"unsupported name {token!r} (only $ and literals are available)")


def _member(value: Any, key: Any) -> Any:
    if key == "length" and isinstance(value, list | str):
        return len(value)
    if isinstance(value, dict):
        return value.get(str(key), _UNDEFINED)
    if isinstance(value, list) and _num(key) and 0 <= int(key) < len(value):
        return value[int(key)]
    if value is None or value is _UNDEFINED:
        raise ScriptError(f"cannot read property {key!r} of {_text(value)}")
    return _UNDEFINED


def _in_subset(source: str) -> bool:
    try:
        _Parser(source, None).program(live=False)
    except ScriptError:
        return False
    return True


def check(source: str) -> str | None:
    """The JavaScript syntax error of `source`, or None; compiled, never run."""
    return None if _in_subset(source) else scripting.compile_error(source)


def value_in_decide(
    rt: Runtime, wf: WorkflowRecord, key: str, source: str, dollar: Any
) -> Any | Waiting:
    """As `evaluate`, for a decide: a sandboxed script that runs long gives WAITING and wakes
    the workflow when it ends (tasks/later.py)."""
    if _in_subset(source):
        return evaluate(source, dollar)
    try:
        return script_value(rt, wf, key, source, dollar)
    except scripting.ScriptFailure as exc:
        raise ScriptError(str(exc)) from None


def evaluate(source: str, dollar: Any) -> Any:
    """The script's value with `$` bound to `dollar`; undefined becomes None. Scripts outside
    the subset run in the sandbox, whose failures (a throw, a limit) are ScriptErrors here."""
    if not _in_subset(source):
        try:
            return scripting.evaluate(source, dollar)
        except scripting.ScriptFailure as exc:
            raise ScriptError(str(exc)) from None
    value = _Parser(source, dollar).program()
    return None if value is _UNDEFINED else value
