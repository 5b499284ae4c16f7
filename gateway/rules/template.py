"""`${<JMESPath>}` templates: compiled once at load, rendered per event.

A string that is exactly one `${...}` renders to the typed value (object, number, null...);
`${...}` embedded in text interpolates (strings as is, anything else as JSON); `$${` is a
literal `${`. Expressions are JMESPath over `Event.envelope()`: no eval, no Jinja, no
JavaScript, nothing that can run code. Cost is bounded twice: at compile (expression length,
AST node count, pipes and functions, and a static bound on how many copies of the input the
expression can build, so `[@,@] | [@,@] | ...` cannot double its way to an exponential string
before any size check) and at render (rendered size). Every failure is a `TemplateError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import jmespath
from jmespath.exceptions import JMESPathError

from gateway.errors import TemplateError

MAX_EXPRESSION_CHARS = 1_000
MAX_AST_NODES = 200
MAX_PIPES_AND_FUNCTIONS = 16  # chained steps that can each multiply what they are given
MAX_GROWTH = 1_024  # how many times the input one expression may copy, at most (see _growth)
MAX_RENDERED_CHARS = 1_048_576  # one rendered value; a body is capped by limits anyway

Renderer = Callable[[Mapping[str, Any]], Any]
Guard = Callable[[Any, str], str]  # (value, expression) -> text; used by query templates

_SEARCH_ERRORS = (JMESPathError, TypeError, ValueError, KeyError, RecursionError, ArithmeticError)


class TemplateSyntaxError(TemplateError):
    """A template that cannot be compiled; `path` locates it inside the compiled value."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True, slots=True)
class Expression:
    """One compiled `${...}`: a JMESPath expression, with a fast path for plain field paths."""

    source: str
    search: Callable[[Any], Any]
    bounded: bool  # True when the result is a part of the input (no size check needed)

    def evaluate(self, doc: Mapping[str, Any], *, strict: bool) -> Any:
        try:
            value = self.search(doc)
        except _SEARCH_ERRORS as exc:
            raise TemplateError(f"${{{self.source}}}: {_describe(exc)}") from None
        if value is None and strict:
            raise TemplateError(f"${{{self.source}}} is missing or null (strict templates)")
        if not self.bounded:
            _check_size(value, self.source)
        return value


def compile_expression(source: str) -> Expression:
    """Compile one JMESPath expression; TemplateError when it is invalid or too costly."""
    text = source.strip()
    if not text:
        raise TemplateError("'${}' is empty; put a JMESPath expression inside, e.g. ${body.id}")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise TemplateError(
            f"expression is {len(text)} characters, over the limit of {MAX_EXPRESSION_CHARS}"
        )
    try:
        parsed = jmespath.compile(text)
        nodes = _count_nodes(parsed.parsed)
    except JMESPathError as exc:
        raise TemplateError(f"'{text}' is not valid JMESPath: {_describe(exc)}") from None
    except RecursionError:
        raise TemplateError(f"'{text[:60]}...' is nested too deeply") from None
    if nodes > MAX_AST_NODES:
        raise TemplateError(f"'{text}' has {nodes} AST nodes, over the limit of {MAX_AST_NODES}")
    _check_growth(text, parsed.parsed)
    path = _field_path(parsed.parsed)
    if path is not None:
        return Expression(text, _path_getter(path), bounded=True)
    return Expression(text, parsed.search, bounded=False)


def _count_nodes(node: Any) -> int:
    if not isinstance(node, dict):
        return 0
    return 1 + sum(_count_nodes(child) for child in node.get("children", ()))


def _check_growth(text: str, tree: dict[str, Any]) -> None:
    steps = _count_steps(tree)
    if steps > MAX_PIPES_AND_FUNCTIONS:
        raise TemplateError(
            f"'{text[:60]}' has {steps} pipes and function calls, over the limit of "
            f"{MAX_PIPES_AND_FUNCTIONS}; split the work or select less"
        )
    growth = _growth(tree)
    if growth > MAX_GROWTH:
        raise TemplateError(
            f"'{text[:60]}' can copy its input up to {growth} times, over the limit of "
            f"{MAX_GROWTH}; do not chain multi-selects like [@, @] | [@, @]"
        )


def _count_steps(node: Any) -> int:
    if not isinstance(node, dict):
        return 0
    own = 1 if node["type"] in ("pipe", "function_expression") else 0
    return own + sum(_count_steps(child) for child in node.get("children", ()))


_SUMMED = frozenset({"multi_select_list", "multi_select_dict", "or_expression", "and_expression"})
_SINGLE = frozenset({"comparator", "not_expression", "literal", "field", "current", "index"})
_MULTIPLYING_FUNCTIONS = frozenset({"map", "join"})  # output per input element, or separator


def _growth(node: Any) -> int:
    """A static upper bound on how many copies of its input an expression can produce.

    Multi-selects add their parts; chained steps (pipes, subexpressions, projections) and
    `map`/`join` multiply; other functions return at most what they are given.
    """
    if not isinstance(node, dict) or node["type"] in _SINGLE:
        return 1
    parts = [_growth(child) for child in node.get("children", ()) if isinstance(child, dict)]
    if not parts:
        return 1
    kind = node["type"]
    if kind in _SUMMED or (
        kind == "function_expression" and node.get("value") not in _MULTIPLYING_FUNCTIONS
    ):
        return min(sum(parts), MAX_GROWTH + 1)
    product = 1
    for part in parts:
        product = min(product * part, MAX_GROWTH + 1)  # capped: no huge ints on hostile input
    return product


def _field_path(node: dict[str, Any]) -> tuple[str, ...] | None:
    """`a.b."c-d"` as ('a', 'b', 'c-d'); None for anything else (that goes through jmespath)."""
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] != "subexpression":
        return None
    path: tuple[str, ...] = ()
    for child in node["children"]:
        part = _field_path(child)
        if part is None:
            return None
        path += part
    return path


def _path_getter(path: tuple[str, ...]) -> Callable[[Any], Any]:
    """Plain dict lookups with JMESPath's semantics: a step into a non-object yields null."""
    if len(path) == 1:
        (only,) = path

        def get1(doc: Any) -> Any:
            return doc.get(only) if isinstance(doc, dict) else None

        return get1

    def get(doc: Any) -> Any:
        for key in path:
            if not isinstance(doc, dict):
                return None
            doc = doc.get(key)
        return doc

    return get


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text or type(exc).__name__


def _check_size(value: Any, source: str) -> None:
    """Refuse results that grew beyond the limit (projections can multiply the input)."""
    budget = [MAX_RENDERED_CHARS]

    def walk(item: Any) -> None:
        budget[0] -= len(item) + 2 if isinstance(item, str) else 8
        if budget[0] < 0:
            raise TemplateError(
                f"${{{source}}} rendered more than {MAX_RENDERED_CHARS} characters; "
                "select less of the event"
            )
        if isinstance(item, dict):
            for key, child in item.items():
                budget[0] -= len(key)
                walk(child)
        elif isinstance(item, list):
            for child in item:
                walk(child)

    walk(value)


# --- string templates -------------------------------------------------------------------


def split_template(text: str) -> list[str | str_expr]:
    """Split text into literal parts and `${...}` expression sources (as `str_expr`)."""
    parts: list[str | str_expr] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("$${", i):
            literal.append("${")
            i += 3
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(str_expr(text[i + 2 : end]))
            i = end + 1
        else:
            literal.append(text[i])
            i += 1
    if literal:
        parts.append("".join(literal))
    return parts


class str_expr(str):  # a marker type; lower case reads like a keyword in split_template
    """The source of one `${...}` (a str subclass so it stays cheap)."""


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` that closes the `${` before `start`; skips JMESPath quotes and braces."""
    depth, i, n = 0, start, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"`":
            i = _end_of_quote(text, i)
        elif ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    raise TemplateError(f"template '{text}' is missing '}}'")


def _end_of_quote(text: str, start: int) -> int:
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return len(text)  # unterminated: let the brace search fail with a clear message


def compile_string(text: str, *, strict: bool = False, guard: Guard | None = None) -> Renderer:
    """Compile one string. Without `${` it is a constant; exactly one `${...}` is typed."""
    if "${" not in text:
        return _constant(text)
    parts = split_template(text)
    exprs = [compile_expression(p) if isinstance(p, str_expr) else p for p in parts]
    if len(exprs) == 1 and isinstance(exprs[0], Expression) and guard is None:
        return _typed(exprs[0], strict)
    if all(isinstance(e, str) for e in exprs):
        return _constant("".join(e for e in exprs if isinstance(e, str)))
    return _interpolation(text, exprs, strict, guard)


def _typed(expr: Expression, strict: bool) -> Renderer:
    if expr.bounded and not strict:
        return expr.search  # a plain field path: dict lookups that cannot raise
    evaluate = expr.evaluate

    def typed(doc: Mapping[str, Any]) -> Any:
        return evaluate(doc, strict=strict)

    return typed


def _interpolation(
    text: str, exprs: list[str | Expression], strict: bool, guard: Guard | None
) -> Renderer:
    to_text = guard or _as_text
    pieces = [_piece(e, strict, to_text) for e in exprs]

    def render(doc: Mapping[str, Any]) -> str:
        out = "".join([piece(doc) for piece in pieces])
        if len(out) > MAX_RENDERED_CHARS:
            raise TemplateError(
                f"template '{text[:60]}' rendered more than {MAX_RENDERED_CHARS} characters"
            )
        return out

    return render


def _piece(part: str | Expression, strict: bool, to_text: Guard) -> Callable[[Any], str]:
    if isinstance(part, str):
        return _constant(part)
    value = _typed(part, strict)
    source = part.source

    def piece(doc: Mapping[str, Any]) -> str:
        return to_text(value(doc), source)

    return piece


def _as_text(value: Any, _source: str) -> str:
    kind = type(value)
    if kind is str:
        return cast(str, value)
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _constant(value: Any) -> Renderer:
    def const(_doc: Mapping[str, Any]) -> Any:
        return value

    return const


# --- value trees ------------------------------------------------------------------------


def compile_value(
    value: Any, *, strict: bool = False, path: tuple[str | int, ...] = ()
) -> Renderer:
    """Compile a YAML value: strings anywhere inside (not keys) may hold templates.

    Errors are TemplateSyntaxError, whose `.path` says where inside `value` they are.
    """
    if isinstance(value, str):
        try:
            return compile_string(value, strict=strict)
        except TemplateError as exc:
            raise TemplateSyntaxError(str(exc), path) from None
    if isinstance(value, dict):
        items = [(k, compile_value(v, strict=strict, path=(*path, k))) for k, v in value.items()]

        def render_dict(doc: Mapping[str, Any]) -> dict[str, Any]:
            return {k: r(doc) for k, r in items}

        return render_dict
    if isinstance(value, list):
        elems = [compile_value(v, strict=strict, path=(*path, i)) for i, v in enumerate(value)]

        def render_list(doc: Mapping[str, Any]) -> list[Any]:
            return [r(doc) for r in elems]

        return render_list
    return _constant(value)


# --- search queries ----------------------------------------------------------------------

_QUERY_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:@/+-#")


def query_value(value: Any, source: str) -> str:
    """A value spliced into a search query: plain tokens only, so it cannot add a clause.

    Conductor's query grammar has no escaping (values are split on " AND " and ",", quotes
    and parentheses are stripped, `*` turns into LIKE), so anything else is refused.
    """
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise TemplateError(
            f"${{{source}}} in a search query must be a string or number, got "
            f"{_as_text(value, source)[:80]}"
        )
    text = value if isinstance(value, str) else _as_text(value, source)
    bad = sorted({ch for ch in text if ch not in _QUERY_SAFE})
    if bad or not text:
        shown = "".join(bad) if bad else "an empty string"
        raise TemplateError(
            f"${{{source}}} = {text[:80]!r} is not safe in a search query ({shown!r}); only "
            "letters, digits and _ . : @ / + - # are allowed"
        )
    return text


def compile_query(text: str, *, strict: bool = False) -> Renderer:
    """A search query template whose `${...}` values are checked by `query_value`."""
    return compile_string(text, strict=strict, guard=query_value)
