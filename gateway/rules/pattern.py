"""EventBridge-style content patterns, compiled once into small matcher objects.

Semantics follow Amazon EventBridge event patterns:

- A pattern is an object whose keys name fields; nested objects walk into the event; all
  fields must match (AND).
- A leaf is a list of alternatives (OR). An alternative is a literal (exact match, typed:
  `5` matches the number 5, not the string "5"; `null` matches a present null) or one
  operator object: `prefix`, `suffix` (both also with `equals-ignore-case`), `equals-ignore-case`,
  `wildcard`, `anything-but`, `numeric`, `exists`.
- When the event holds an array at a field, the field matches if any element matches.
- `$or: [pattern, pattern, ...]` at any level: at least one of the sub-patterns matches.
- A missing field matches only `{"exists": false}`; `anything-but` needs the field present.

One convenience beyond EventBridge: a bare scalar leaf (`type: OrderCreated`) means the
one-element list `[OrderCreated]`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Path = tuple[str, ...]


class PatternError(ValueError):
    """A pattern that cannot be compiled; `path` is where in the pattern (for line numbers)."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- leaves: one alternative each --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exact:
    value: Any

    def test(self, v: Any) -> bool:
        want = self.value
        if want is None or isinstance(want, bool):
            return v is want
        if isinstance(want, str):
            return isinstance(v, str) and v == want
        return _is_number(v) and v == want

    def describe(self) -> str:
        return _show(self.value)


@dataclass(frozen=True, slots=True)
class Prefix:
    text: str
    ignore_case: bool = False

    def test(self, v: Any) -> bool:
        return isinstance(v, str) and _fold(v, self.ignore_case).startswith(self.text)

    def describe(self) -> str:
        return _describe_affix("prefix", self.text, self.ignore_case)


@dataclass(frozen=True, slots=True)
class Suffix:
    text: str
    ignore_case: bool = False

    def test(self, v: Any) -> bool:
        return isinstance(v, str) and _fold(v, self.ignore_case).endswith(self.text)

    def describe(self) -> str:
        return _describe_affix("suffix", self.text, self.ignore_case)


def _fold(v: str, ignore_case: bool) -> str:
    """The text a prefix or suffix is tested on (its `text` is casefolded already)."""
    return v.casefold() if ignore_case else v


def _describe_affix(kind: str, text: str, ignore_case: bool) -> str:
    return f"{kind} {_show(text)}" + (" (ignore case)" if ignore_case else "")


@dataclass(frozen=True, slots=True)
class IgnoreCase:
    text: str  # casefolded

    def test(self, v: Any) -> bool:
        return isinstance(v, str) and v.casefold() == self.text

    def describe(self) -> str:
        return f"equals-ignore-case {_show(self.text)}"


@dataclass(frozen=True, slots=True)
class Wildcard:
    """`*` = any run of characters. Matched by scanning the literal pieces left to right (no
    regex backtracking), so an event cannot make matching slow: linear in the value's length
    per piece."""

    source: str
    pieces: tuple[str, ...]  # the literal text between stars; one piece = no star

    def test(self, v: Any) -> bool:
        if not isinstance(v, str):
            return False
        pieces = self.pieces
        if len(pieces) == 1:
            return v == pieces[0]
        first, last = pieces[0], pieces[-1]
        if len(v) < len(first) + len(last) or not v.startswith(first) or not v.endswith(last):
            return False
        pos, end = len(first), len(v) - len(last)
        for piece in pieces[1:-1]:
            found = v.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True

    def describe(self) -> str:
        return f"wildcard {_show(self.source)}"


@dataclass(frozen=True, slots=True)
class Numeric:
    low: float = -math.inf
    low_inclusive: bool = False
    high: float = math.inf
    high_inclusive: bool = False

    def test(self, v: Any) -> bool:
        if not _is_number(v):
            return False
        if v < self.low or (v == self.low and not self.low_inclusive):
            return False
        return not (v > self.high or (v == self.high and not self.high_inclusive))

    def satisfiable(self) -> bool:
        if self.low < self.high:
            return True
        return self.low == self.high and self.low_inclusive and self.high_inclusive

    def describe(self) -> str:
        if self.low == self.high and self.low_inclusive and self.high_inclusive:
            return f"numeric = {self.low:g}"
        parts = []
        if self.low != -math.inf:
            parts.append(f"{'>=' if self.low_inclusive else '>'} {self.low:g}")
        if self.high != math.inf:
            parts.append(f"{'<=' if self.high_inclusive else '<'} {self.high:g}")
        return "numeric " + " and ".join(parts)


@dataclass(frozen=True, slots=True)
class AnythingBut:
    excluded: tuple[Leaf, ...]

    def test(self, v: Any) -> bool:
        return not any(leaf.test(v) for leaf in self.excluded)

    def describe(self) -> str:
        return "anything-but " + " or ".join(leaf.describe() for leaf in self.excluded)


Leaf = Exact | Prefix | Suffix | IgnoreCase | Wildcard | Numeric | AnythingBut


# --- fields and patterns -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldTest:
    """One leaf list: the value at `path` matches one of `leaves`, or presence as asked."""

    path: Path
    leaves: tuple[Leaf, ...]
    if_absent: bool  # an {"exists": false} alternative
    if_present: bool  # an {"exists": true} alternative

    def matches(self, doc: Any) -> bool:
        values = values_at(doc, self.path)
        if not values:
            return self.if_absent
        if self.if_present:
            return True
        leaves = self.leaves
        for value in values:
            for leaf in leaves:
                if leaf.test(value):
                    return True
        return False

    def describe(self) -> str:
        wanted = [leaf.describe() for leaf in self.leaves]
        if self.if_present:
            wanted.append("exists")
        if self.if_absent:
            wanted.append("missing")
        return " or ".join(wanted)

    def mismatch(self, doc: Any) -> str:
        values = values_at(doc, self.path)
        where = ".".join(self.path)
        shown = "missing" if not values else ", ".join(_show(v)[:60] for v in values[:5])
        return f"{where} is {shown}, wanted {self.describe()}"


@dataclass(frozen=True, slots=True)
class Pattern:
    """All `fields` match and, for each `$or`, at least one branch does."""

    fields: tuple[FieldTest, ...] = ()
    ors: tuple[tuple[Pattern, ...], ...] = ()

    def matches(self, doc: Any) -> bool:
        for field in self.fields:
            if not field.matches(doc):
                return False
        if not self.ors:  # most rules: no generator built per event
            return True
        return all(any(branch.matches(doc) for branch in branches) for branches in self.ors)

    def mismatch(self, doc: Any) -> str | None:
        """Why `doc` does not match (the first failing field), or None when it matches."""
        for field in self.fields:
            if not field.matches(doc):
                return field.mismatch(doc)
        for branches in self.ors:
            if not any(branch.matches(doc) for branch in branches):
                reasons = [branch.mismatch(doc) or "" for branch in branches]
                return "no $or branch matches: " + "; ".join(reasons)
        return None

    @property
    def empty(self) -> bool:
        return not self.fields and not self.ors


def values_at(doc: Any, path: Path) -> list[Any]:
    """The values at `path`, arrays flattened (EventBridge semantics); [] when absent."""
    item = doc
    for i, key in enumerate(path):
        if isinstance(item, dict):
            if key not in item:
                return []
            item = item[key]
        elif isinstance(item, list):
            return _values_in_list(item, path[i:])
        else:
            return []
    if isinstance(item, list):
        return _flatten(item)
    return [item]


def _values_in_list(items: list[Any], rest: Path) -> list[Any]:
    out: list[Any] = []
    for element in _flatten(items):
        out.extend(values_at(element, rest))
    return out


def _flatten(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, list):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


# --- compiling ---------------------------------------------------------------------------

MAX_PATTERN_NODES = 1_000


def compile_pattern(spec: Any, *, roots: frozenset[str] | None = None) -> Pattern:
    """Compile a pattern object. `roots` restricts the top-level keys (envelope fields)."""
    if spec is None:
        return Pattern()
    if not isinstance(spec, Mapping):
        raise PatternError("must be an object of fields, e.g. {body: {type: [OrderCreated]}}")
    budget = [MAX_PATTERN_NODES]
    return _compile_object(spec, (), roots, budget)


def _compile_object(
    spec: Mapping[str, Any], prefix: Path, roots: frozenset[str] | None, budget: list[int]
) -> Pattern:
    fields: list[FieldTest] = []
    ors: list[tuple[Pattern, ...]] = []
    for key, value in spec.items():
        budget[0] -= 1
        if budget[0] < 0:
            raise PatternError(f"has more than {MAX_PATTERN_NODES} nodes", prefix)
        where = (*prefix, key)
        if key == "$or":
            ors.append(_compile_or(value, prefix, roots, budget))
            continue
        if not isinstance(key, str):
            raise PatternError(f"field name {key!r} must be a string", where)
        if roots is not None and not prefix and key not in roots:
            raise PatternError(
                f"unknown field '{key}'; match on one of: {', '.join(sorted(roots))}", where
            )
        if isinstance(value, Mapping):
            _refuse_bare_operator(key, value, where)
            nested = _compile_object(value, where, None, budget)
            fields.extend(nested.fields)
            ors.extend(nested.ors)
        else:
            fields.append(_compile_leaf_list(value, where))
    return Pattern(tuple(fields), tuple(ors))


# Names a nested object may not use as a field: `type: {prefix: x}` would otherwise compile as
# the field `type.prefix` and silently never match.
_OPERATOR_NAMES = frozenset(
    {"prefix", "suffix", "anything-but", "numeric", "exists", "wildcard", "equals-ignore-case"}
    | {"cidr"}
)


def _refuse_bare_operator(field: str, value: Mapping[str, Any], where: Path) -> None:
    for op, arg in value.items():
        if op in _OPERATOR_NAMES:
            raise PatternError(
                f"'{op}' is an operator, not a field: put it in a value list, "
                f"{field}: [{{{op}: {_show(arg)}}}]",
                (*where, op),
            )


def _compile_or(
    value: Any, prefix: Path, roots: frozenset[str] | None, budget: list[int]
) -> tuple[Pattern, ...]:
    where = (*prefix, "$or")
    if not isinstance(value, list) or len(value) < 2:
        raise PatternError("$or must be a list of at least two patterns", where)
    branches = []
    for i, branch in enumerate(value):
        if not isinstance(branch, Mapping) or not branch:
            raise PatternError("each $or branch must be a non-empty object", (*where, i))
        branches.append(_compile_object(branch, prefix, roots, budget))
    return tuple(branches)


def _compile_leaf_list(value: Any, where: Path) -> FieldTest:
    alternatives = value if isinstance(value, list) else [value]
    if not alternatives:
        raise PatternError("an empty list matches nothing; give at least one value", where)
    leaves: list[Leaf] = []
    if_absent = if_present = False
    for i, alt in enumerate(alternatives):
        at: tuple[str | int, ...] = (*where, i) if isinstance(value, list) else where
        if isinstance(alt, Mapping):
            op, arg = _single_operator(alt, at)
            if op == "exists":
                if not isinstance(arg, bool):
                    raise PatternError("exists takes true or false", at)
                if_present, if_absent = if_present or arg, if_absent or not arg
                continue
            leaves.append(_compile_operator(op, arg, at))
        elif isinstance(alt, list):
            raise PatternError("a list inside a value list is not allowed; flatten it", at)
        else:
            leaves.append(_exact(alt, at))
    return FieldTest(where, tuple(leaves), if_absent, if_present)


def _exact(value: Any, at: tuple[str | int, ...]) -> Exact:
    if value is None or isinstance(value, str | bool) or _is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise PatternError("numbers must be finite", at)
        return Exact(value)
    raise PatternError(f"{value!r} is not a JSON scalar", at)


def _single_operator(alt: Mapping[str, Any], at: tuple[str | int, ...]) -> tuple[str, Any]:
    if len(alt) != 1:
        raise PatternError(
            f"an operator object has exactly one key, got {sorted(map(str, alt))}; "
            "nested fields go outside the value list",
            at,
        )
    ((op, arg),) = alt.items()
    return str(op), arg


_OPERATORS = "prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, exists"


def _compile_operator(op: str, arg: Any, at: tuple[str | int, ...]) -> Leaf:
    where = (*at, op)
    if op in ("prefix", "suffix"):
        return _prefix_suffix(op, arg, where)
    if op == "equals-ignore-case":
        return IgnoreCase(_string(arg, op, where).casefold())
    if op == "wildcard":
        return _wildcard(_string(arg, op, where))
    if op == "numeric":
        return _numeric(arg, where)
    if op == "anything-but":
        return _anything_but(arg, where)
    if op == "cidr":
        raise PatternError("cidr is not supported; match addresses with prefix", where)
    raise PatternError(f"unknown operator '{op}'; use one of: {_OPERATORS}", where)


def _string(arg: Any, op: str, where: tuple[str | int, ...]) -> str:
    if not isinstance(arg, str):
        raise PatternError(f"{op} takes a string, got {_show(arg)}", where)
    return arg


def _prefix_suffix(op: str, arg: Any, where: tuple[str | int, ...]) -> Leaf:
    ignore_case = False
    if isinstance(arg, Mapping):
        inner_op, inner = _single_operator(arg, where)
        if inner_op != "equals-ignore-case":
            raise PatternError(f"{op} takes a string or {{equals-ignore-case: text}}", where)
        arg, ignore_case = inner, True
    text = _string(arg, op, where)
    if ignore_case:
        text = text.casefold()
    return Prefix(text, ignore_case) if op == "prefix" else Suffix(text, ignore_case)


def _wildcard(source: str) -> Wildcard:
    pieces, current, i = [], [], 0
    while i < len(source):
        ch = source[i]
        if ch == "\\" and i + 1 < len(source) and source[i + 1] in "*\\":
            current.append(source[i + 1])  # an escaped star or backslash is literal
            i += 2
            continue
        if ch == "*":
            pieces.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    pieces.append("".join(current))
    return Wildcard(source, tuple(pieces))


_LOWER = {">": False, ">=": True}
_UPPER = {"<": False, "<=": True}


def _numeric(arg: Any, where: tuple[str | int, ...]) -> Numeric:
    usage = 'numeric takes [op, number] or [op, number, op, number], e.g. [">", 0, "<=", 5]'
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise PatternError(usage, where)
    bounds: dict[str, Any] = {}
    for op, number in zip(arg[::2], arg[1::2], strict=True):
        if not _is_number(number) or not math.isfinite(number):
            raise PatternError(f"{usage}; {_show(number)} is not a finite number", where)
        if op == "=" and len(arg) == 2:
            return Numeric(number, True, number, True)
        if op in _LOWER and "low" not in bounds:
            bounds.update(low=number, low_inclusive=_LOWER[op])
        elif op in _UPPER and "high" not in bounds:
            bounds.update(high=number, high_inclusive=_UPPER[op])
        else:
            raise PatternError(f"{usage}; {_show(op)} is not allowed here", where)
    return Numeric(**bounds)


def _anything_but(arg: Any, where: tuple[str | int, ...]) -> AnythingBut:
    if isinstance(arg, Mapping):
        op, inner = _single_operator(arg, where)
        if op not in ("prefix", "suffix", "wildcard", "equals-ignore-case"):
            raise PatternError(
                "anything-but takes a value, a list of values, or one of prefix, suffix, "
                "wildcard, equals-ignore-case",
                where,
            )
        items = inner if isinstance(inner, list) and op != "prefix" else [inner]
        if not items:
            raise PatternError(f"anything-but {op} needs at least one value", where)
        return AnythingBut(tuple(_compile_operator(op, item, where) for item in items))
    items = arg if isinstance(arg, list) else [arg]
    if not items:
        raise PatternError("anything-but needs at least one value", where)
    return AnythingBut(tuple(_exact(item, where) for item in items))
