"""Workflow search with the grammar of OSS Conductor's SQLite index (§4.13, §2.3).

The query is split on the literal " AND "; each clause must contain
`([a-zA-Z]+)\\s?(=|>|<|IN)\\s?(.*)`; quotes and parentheses are stripped and the value split on
"," without trimming; unknown fields are ignored. freeText is a case-insensitive substring of
the workflow's JSON ("*" = everything).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.devserver.http import validation_error
from gateway.devserver.state import WorkflowRecord
from gateway.errors import BadRequest, ServerError

MAX_SIZE = 5000
_CLAUSE = re.compile(r"([a-zA-Z]+)\s?(=|>|<|IN)\s?(.*)")
_STRIP = re.compile(r"[\"'()]")
_FIELDS: dict[str, Callable[[WorkflowRecord], Any]] = {
    "workflowId": lambda wf: wf.workflow_id,
    "correlationId": lambda wf: wf.correlation_id,
    "workflowType": lambda wf: wf.name,
    "status": lambda wf: wf.status,
    "startTime": lambda wf: wf.create_time,
    "endTime": lambda wf: wf.end_time,
    "updateTime": lambda wf: wf.update_time,
    "parentWorkflowId": lambda wf: "",
}


@dataclass(frozen=True)
class Clause:
    field: str
    op: str
    values: tuple[str, ...]

    def matches(self, wf: WorkflowRecord) -> bool:
        actual = _FIELDS[self.field](wf)
        if self.field.endswith("Time"):
            return _compare(actual, self.op, int(self.values[0]))
        text = "" if actual is None else str(actual)
        if self.op == "IN":
            return text in self.values
        if self.op == "=" and "*" in self.values[0]:
            pattern = re.escape(self.values[0].lower()).replace(r"\*", ".*")
            return re.fullmatch(pattern, text.lower()) is not None
        return _compare(text, self.op, self.values[0])


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op == ">":
        return bool(actual > expected)
    if op == "<":
        return bool(actual < expected)
    return bool(actual == expected)


def parse_query(query: str | None) -> list[Clause]:
    """Clauses on known fields; malformed -> 400, unknown fields silently dropped."""
    clauses: list[Clause] = []
    if not query:
        return clauses
    for text in query.split(" AND "):
        match = _CLAUSE.search(text)
        if match is None:
            raise BadRequest(f"Incorrectly formatted query string: {text}", status=400)
        field, op, raw = match.groups()
        values = [v for v in _STRIP.sub("", raw).split(",")]
        while len(values) > 1 and values[-1] == "":  # Java's split drops trailing empties
            values.pop()
        if field.endswith("Time"):
            _check_millis(values[0])
        if op == "IN" and len(values) == 1:
            op = "="
        if field in _FIELDS:
            clauses.append(Clause(field, op, tuple(values)))
    return clauses


def _check_millis(value: str) -> None:
    if not re.fullmatch(r"-?\d+", value):
        # Long.parseLong's NumberFormatException is not mapped by Conductor: 500.
        raise ServerError(f'For input string: "{value}"', status=500)


def parse_sort(sort: str | None) -> list[tuple[str, bool]]:
    """`field:ASC|field2:DESC` -> [(field, descending)]; unknown fields and orders ignored."""
    keys: list[tuple[str, bool]] = []
    for item in (sort or "").split("|"):
        name, _, order = item.partition(":")
        order = (order or "ASC").upper()
        if name in _FIELDS and order in ("ASC", "DESC"):
            keys.append((name, order == "DESC"))
    return keys


def search(
    workflows: Iterable[WorkflowRecord],
    query: str | None,
    free_text: str | None,
    start: int,
    size: int,
    sort: str | None,
) -> tuple[int, list[WorkflowRecord]]:
    if size > MAX_SIZE:  # @Max on WorkflowService.searchWorkflows' size: a validation error
        message = "Cannot return more than 5000 workflows. Please use pagination."
        raise validation_error("searchWorkflows.arg1", message, size)
    clauses = parse_query(query)
    needle = None if not free_text or free_text == "*" else free_text.lower()
    hits = [
        wf
        for wf in workflows
        if all(c.matches(wf) for c in clauses) and (needle is None or _contains(wf, needle))
    ]
    # Stable sorts from the last key to the first give the multi-key order.
    for name, descending in reversed(parse_sort(sort)):
        field = _FIELDS[name]
        hits.sort(key=lambda wf: _sort_key(field(wf)), reverse=descending)
    return len(hits), hits[max(start, 0) : max(start, 0) + max(size, 0)]


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


def _contains(wf: WorkflowRecord, needle: str) -> bool:
    return needle in orjson.dumps(wf.to_json()).decode().lower()


# --- WorkflowSummary (§2.3) ----------------------------------------------------------


def iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def java_str(value: Any) -> str:
    """Java's toString of the JSON value: `{orderId=1, tags=[a, b]}` (SummaryUtil default)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={java_str(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(java_str(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def summary(wf: WorkflowRecord) -> dict[str, Any]:
    input_text, output_text = java_str(wf.input), java_str(wf.output)
    data: dict[str, Any] = {
        "workflowType": wf.name,
        "version": wf.version,
        "workflowId": wf.workflow_id,
        "correlationId": wf.correlation_id,
        "startTime": iso(wf.create_time),
        "updateTime": iso(wf.update_time or wf.create_time),
        "endTime": iso(wf.end_time) if wf.end_time else None,
        "status": wf.status,
        "input": input_text,
        "output": output_text,
        "reasonForIncompletion": wf.reason_for_incompletion,
        "executionTime": wf.end_time - wf.create_time if wf.end_time else 0,
        "failedReferenceTaskNames": ",".join(wf.failed_reference_task_names),
        "failedTaskNames": list(wf.failed_task_names),
        "priority": wf.priority,
        "createdBy": wf.created_by,
        "taskToDomain": wf.task_to_domain,
        "idempotencyKey": wf.idempotency_key,
        "parentWorkflowId": "",
        "classifier": "workflow",
        "inputSize": len(input_text),
        "outputSize": len(output_text),
    }
    return {k: v for k, v in data.items() if v is not None}
