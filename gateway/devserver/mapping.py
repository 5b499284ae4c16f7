"""Conductor's `${...}` parameter mapping for task inputs and workflow outputs.

`${workflow.input.x}`, `${workflow.variables.z}`, `${ref.output.y}`, `${ref.input}`,
`${workflow.input}` (whole object). A string that is exactly one `${...}` yields the typed value;
embedded ones are interpolated as Java prints them (`{a=1}`, `[x, y]`); `$${x}` is the literal
`${x}`. A missing path gives null, as in Conductor.
Only path lookups exist here: nothing is evaluated.
"""

from __future__ import annotations

import re
from typing import Any

_EXPR = re.compile(r"\$\{([^}]*)\}")
_ESCAPED_OR_EXPR = re.compile(r"(\$?)\$\{([^}]*)\}")
_INDEX = re.compile(r"^([^\[]*)((?:\[\d+\])*)$")


def resolve(template: Any, context: dict[str, Any]) -> Any:
    """Replace every `${path}` inside `template` (maps and lists walked recursively)."""
    if isinstance(template, dict):
        return {k: resolve(v, context) for k, v in template.items()}
    if isinstance(template, list):
        return [resolve(v, context) for v in template]
    if isinstance(template, str):
        return _resolve_string(template, context)
    return template


def _resolve_string(text: str, context: dict[str, Any]) -> Any:
    whole = _EXPR.fullmatch(text)
    if whole:
        return lookup(context, whole.group(1).strip())
    return _ESCAPED_OR_EXPR.sub(lambda m: _replacement(m, context), text)


def _replacement(match: re.Match[str], context: dict[str, Any]) -> str:
    if match.group(1):  # `$${x}` is the literal text `${x}` (ParametersUtils)
        return "${" + match.group(2) + "}"
    # As Java's toString prints them: {a=1}, [x, y], null (ParametersUtils.replaceVariables).
    return java_text(lookup(context, match.group(2).strip()))


def lookup(context: dict[str, Any], path: str) -> Any:
    """Follow a dotted path with optional `[n]` indexes; None when any step is missing."""
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
