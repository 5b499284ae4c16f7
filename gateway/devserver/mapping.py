"""Conductor's `${...}` parameter mapping for task inputs and workflow outputs.

`${workflow.input.x}`, `${workflow.variables.z}`, `${ref.output.y}`, `${ref.input}`,
`${workflow.input}` (whole object). A string that is exactly one `${...}` yields the typed value;
embedded ones are interpolated as Java prints them (`{a=1}`, `[x, y]`); `$${x}` is the literal
`${x}`. A missing path gives null, as in Conductor.
`${CPEWF_TASK_ID}` is the task's own id where the task type's mapper passes one, else it stays
as written (ParametersUtils, EnvUtils). Other names Conductor would read from its JVM's system
properties and environment (`${HOME}`) resolve to null here: a dev server does not hand its
environment to workflows. Only path lookups exist here: nothing is evaluated.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import orjson
from jsonpath_ng import JSONPath
from jsonpath_ng.ext.parser import parse as parse_jsonpath

_EXPR = re.compile(r"\$\{([^}]*)\}")
_ESCAPED_OR_EXPR = re.compile(r"(\$?)\$\{([^}]*)\}")
_INDEX = re.compile(r"^([^\[]*)((?:\[\d+\])*)$")


TASK_ID = "CPEWF_TASK_ID"


def resolve(template: Any, context: dict[str, Any], task_id: str | None = None) -> Any:
    """Replace every `${path}` inside `template` (maps and lists walked recursively)."""
    if isinstance(template, dict):
        return {k: resolve(v, context, task_id) for k, v in template.items()}
    if isinstance(template, list):
        return [resolve(v, context, task_id) for v in template]
    if isinstance(template, str):
        return _resolve_string(template, context, task_id)
    return template


def _resolve_string(text: str, context: dict[str, Any], task_id: str | None) -> Any:
    whole = _EXPR.fullmatch(text)
    if whole:
        return _value(whole, context, task_id)
    return _ESCAPED_OR_EXPR.sub(lambda m: _replacement(m, context, task_id), text)


def _value(match: re.Match[str], context: dict[str, Any], task_id: str | None) -> Any:
    path = match.group(match.lastindex or 1).strip()
    if not path:
        return ""  # `${}` and `${ }` (ParametersUtils.replaceVariables)
    if path == TASK_ID:
        return match.group(0) if task_id is None else task_id
    return lookup(context, path)


def _replacement(match: re.Match[str], context: dict[str, Any], task_id: str | None) -> str:
    if match.group(1):  # `$${x}` is the literal text `${x}` (ParametersUtils)
        return "${" + match.group(2) + "}"
    path = match.group(2).strip()
    if path == TASK_ID and task_id is None:
        return match.group(0)
    value = _value(match, context, task_id)
    if _indefinite(path) and isinstance(value, list):
        # Jayway gives a JSONArray there, whose toString is JSON: ["a","b"].
        return orjson.dumps(value).decode()
    # As Java's toString prints them: {a=1}, [x, y], null (ParametersUtils.replaceVariables).
    return java_text(value)


def lookup(context: dict[str, Any], path: str) -> Any:
    """The value at a Jayway JsonPath `path` (without its `$.`) in `context`, as Conductor
    reads it with SUPPRESS_EXCEPTIONS: a definite path gives its value or None, an indefinite
    one (`[*]`, `..`, a filter, a slice, a union) the list of what it matched; a trailing
    `length()`, `keys()`, `sum()`, `min()`, `max()` or `avg()` applies to a definite value."""
    if _SIMPLE.match(path):
        return _follow(context, path)
    function = _FUNCTION.search(path)
    if function is not None:
        path = path[: function.start()]
        if _indefinite(path):
            return None  # Jayway 2.4's functions fail on a list of matches (checked)
    expression = _compiled(path.removeprefix("$").removeprefix("."))
    if expression is None:
        return None
    found = [match.value for match in expression.find(context)]
    if _indefinite(path):
        return found
    value = found[0] if found else None
    return _apply(function.group(1), value) if function is not None else value


_SIMPLE = re.compile(r"^[\w-]+(\[\d+\])*(\.[\w-]+(\[\d+\])*)*$")
_FUNCTION = re.compile(r"\.(length|size|keys|sum|min|max|avg)\(\)$")
_INDEFINITE = re.compile(r"\.\.|\*|\[\s*\?|\[[^\]'\"]*[:,][^\]'\"]*\]")


def _indefinite(path: str) -> bool:
    return bool(_INDEFINITE.search(path))


@functools.lru_cache(maxsize=1024)
def _compiled(path: str) -> JSONPath | None:
    try:
        expression: JSONPath = parse_jsonpath("$." + path if path else "$")
    except Exception:  # the parser raises several types; a malformed path reads as null
        return None
    return expression


def _apply(function: str, value: Any) -> Any:
    if function in ("length", "size"):
        return len(value) if isinstance(value, list | dict | str) else None
    if function == "keys":
        return list(value) if isinstance(value, dict) else None
    numbers = [v for v in value if _number(v)] if isinstance(value, list) else []
    if not numbers:
        return None
    totals: dict[str, Callable[[list[Any]], Any]] = {
        "sum": sum,
        "min": min,
        "max": max,
        "avg": lambda n: sum(n) / len(n),
    }
    return float(totals[function](numbers))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _follow(context: dict[str, Any], path: str) -> Any:
    """A dotted path with optional `[n]` indexes, without a JsonPath parser (the common case)."""
    current: Any = context
    for part in path.split("."):
        match = _INDEX.match(part)
        if match is None:
            return None
        current = _step(current, match.group(1))
        for index in re.findall(r"\[(\d+)\]", match.group(2)):
            current = _index(current, int(index))
    return current


def _step(current: Any, key: str) -> Any:
    if key == "":
        return current
    return current.get(key) if isinstance(current, dict) else None


def _index(current: Any, index: int) -> Any:
    if isinstance(current, list) and index < len(current):
        return current[index]
    return None


def java_text(value: Any) -> str:
    """Java's `"" + value` for JSON values: null, true, 2, 2.5, {a=1, b=[1, 2]}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={java_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(java_text(v) for v in value) + "]"
    return str(value)
