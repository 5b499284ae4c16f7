"""Workflow search as OSS Conductor's SQLite index answers it (§4.13, §2.3).

The real server (sqlite-persistence: SqliteIndexQueryBuilder, SqliteIndexDAO) keeps a
`workflow_index` table and turns the query string into SQL: the query is split on " AND ";
each clause must contain `([a-zA-Z]+)\\s?(=|>|<|IN)\\s?(.*)`; the field is snake-cased and
kept only if it is one of VALID_FIELDS (so `version` and other unknown fields are dropped);
quotes and parentheses are stripped and the value split on "," as Java does, without
trimming. freeText is `lower(json_data) LIKE '%text%'` on the stored WorkflowSummary JSON.

Rather than imitate SQLite, each search fills the same table in an in-memory SQLite database
and runs the same SQL, so LIKE, NULLs, the text order of timestamps and the errors of odd
queries (a column the table lacks, more values than placeholders) are SQLite's own.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from gateway.devserver.http import validation_error
from gateway.devserver.state import WorkflowRecord
from gateway.errors import BadRequest, ServerError

MAX_SIZE = 5000
VALID_FIELDS = frozenset(
    {
        "workflow_id",
        "correlation_id",
        "workflow_type",
        "start_time",
        "end_time",
        "status",
        "task_id",
        "task_type",
        "task_def_name",
        "update_time",
        "json_data",
        "parent_workflow_id",
        "classifier",
    }
)
# The workflow_index table after the real server's migrations V1, V2, V5 and V7; task_id,
# task_type and task_def_name are valid fields but not columns of it: SQLite says so (500).
_SCHEMA = """CREATE TABLE workflow_index (
    workflow_id TEXT NOT NULL PRIMARY KEY, correlation_id TEXT, workflow_type TEXT NOT NULL,
    start_time DATETIME NOT NULL, status TEXT NOT NULL, json_data TEXT NOT NULL,
    update_time DATETIME NOT NULL, parent_workflow_id TEXT NOT NULL DEFAULT '',
    classifier TEXT, end_time DATETIME NOT NULL)"""
_INSERT = "INSERT INTO workflow_index VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_EPOCH = "1970-01-01 00:00:00.000"
_CONDITION = re.compile(r"([a-zA-Z]+)\s?(=|>|<|IN)\s?(.*)", re.ASCII)
_STRIP = re.compile(r"[\"'()]")
_UNTAGGED = "workflow"  # WorkflowClassifier.WORKFLOW


def java_split(text: str, separator: str) -> list[str]:
    """String.split: no separator -> [text]; otherwise trailing empty items are dropped."""
    if separator not in text:
        return [text]
    items = text.split(separator)
    while items and items[-1] == "":
        items.pop()
    return items


def camel_to_snake(name: str) -> str:
    return re.sub(r"\B([A-Z])", r"_\1", name).lower()


def sqlite_time(ms: int) -> str:
    """The index's timestamp text: UTC `yyyy-MM-dd HH:mm:ss.SSS`, compared as text."""
    try:
        moment = time.gmtime(ms // 1000)
    except (OverflowError, OSError, ValueError) as exc:
        raise ServerError(f"Invalid value for YearOfEra: {ms}", status=500) from exc
    return f"{moment.tm_year:04d}" + time.strftime("-%m-%d %H:%M:%S.", moment) + f"{ms % 1000:03d}"


def _millis_to_utc(text: str) -> str:
    # Long.parseLong; its NumberFormatException is not mapped by Conductor: 500.
    if not re.fullmatch(r"[-+]?\d{1,19}", text, re.ASCII) or not -(2**63) <= int(text) < 2**63:
        raise ServerError(f'For input string: "{text}"', status=500)
    return sqlite_time(int(text))


@dataclass(frozen=True)
class Condition:
    """One clause of the query, as SqliteIndexQueryBuilder.Condition turns it into SQL."""

    column: str
    op: str
    values: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Condition:
        match = _CONDITION.search(text)
        if match is None:
            raise BadRequest(f"Incorrectly formatted query string: {text}", status=400)
        field, op, raw = match.groups()
        values = java_split(_STRIP.sub("", raw), ",")
        column = camel_to_snake(field)
        if op == "IN" and len(values) == 1:
            op = "="
        if column.endswith("_time"):
            if not values:
                raise ServerError("Index 0 out of bounds for length 0", status=500)
            values[0] = _millis_to_utc(values[0])
        return cls(column, op, tuple(values))

    @property
    def valid(self) -> bool:
        return self.column in VALID_FIELDS

    def fragment(self) -> str:
        col, op, values = self.column, self.op, self.values
        untagged = col == "classifier" and any(v.lower() == _UNTAGGED for v in values)
        if op == "IN":
            clause = f"{col} IN ({','.join('?' * len(values))})"
            return f"({clause} OR {col} IS NULL)" if untagged else clause
        if op == "LIKE":
            return f"lower({col}) LIKE ?"
        if col.endswith("_time"):
            return f"{col} {op} ?"
        if op == "=" and len(values) == 1 and "*" in values[0]:
            return f"lower({col}) LIKE lower(?)"
        if op == "=" and untagged:
            return f"({col} = ? OR {col} IS NULL)"
        return f"{col} {op} ?"

    def parameters(self) -> list[str]:
        if len(self.values) > 1:
            return list(self.values)
        if not self.values:
            raise ServerError("Index 0 out of bounds for length 0", status=500)
        return [self.values[0].replace("*", "%")]


def parse_query(query: str | None, free_text: str | None) -> list[Condition]:
    """The conditions the real builder keeps: valid fields, then freeText; malformed -> 400."""
    conditions = [Condition.parse(text) for text in (query or "").split(" AND ")] if query else []
    if free_text and free_text != "*":
        conditions.append(Condition("json_data", "LIKE", (f"%{free_text.lower()}%",)))
    return [c for c in conditions if c.valid]


def search_query(request: web.Request) -> str | None:
    """The query with WorkflowResource's `classifier` and `topLevelOnly` parameters folded in
    as clauses (withClassifierFilter, withTopLevelFilter)."""
    query = request.query.get("query")
    wanted = ",".join(
        v.strip() for v in request.query.get("classifier", "").split(",") if v.strip()
    )
    if wanted:
        clause = f"classifier IN ({wanted})"
        query = f"{query} AND {clause}" if query and query.strip() else clause
    if request.query.get("topLevelOnly", "false").lower() == "true":
        clause = 'parentWorkflowId=""'
        query = f"{query} AND {clause}" if query and query.strip() else clause
    return query


def parse_sort(sort: str | None) -> list[str]:
    """`field:ASC|field2:DESC` -> ORDER BY terms; items without an order or on an invalid
    field are ignored, as the real builder ignores them."""
    terms: list[str] = []
    for item in sort.split("|") if sort and sort.strip() else []:
        parts = java_split(item, ":")
        if len(parts) == 2:
            column, order = camel_to_snake(parts[0]), parts[1].upper()
            if column in VALID_FIELDS and order in ("ASC", "DESC"):
                terms.append(f"{column} {order}")
    return terms


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
    conditions = parse_query(query, free_text)
    where = " WHERE " + " AND ".join(c.fragment() for c in conditions) if conditions else ""
    terms = parse_sort(sort)
    order = " ORDER BY " + ", ".join(terms) if terms else ""
    params = [p for c in conditions for p in c.parameters()]
    by_id = {wf.workflow_id: wf for wf in workflows}
    # The summary JSON costs most of a row: made only when the query or the sort reads it.
    with_json = any(c.column == "json_data" for c in conditions) or any(
        t.startswith("json_data ") for t in terms
    )
    with contextlib.closing(_index(by_id.values(), with_json)) as db:
        try:
            found = db.execute(
                f"SELECT workflow_id FROM workflow_index{where}{order} LIMIT ? OFFSET ?",
                [*params, size, start],
            ).fetchall()
            (total,) = db.execute(f"SELECT COUNT(*) FROM workflow_index{where}", params).fetchone()
        except sqlite3.Error as exc:
            raise ServerError(f"Cannot prepare statement for query: {exc}", status=500) from exc
    return int(total), [by_id[row[0]] for row in found]


def _index(workflows: Iterable[WorkflowRecord], with_json: bool) -> sqlite3.Connection:
    """A throwaway in-memory workflow_index holding `workflows`."""
    db = sqlite3.connect(":memory:")
    db.execute(_SCHEMA)
    db.executemany(_INSERT, [_row(wf, with_json) for wf in workflows])
    return db


def _row(wf: WorkflowRecord, with_json: bool) -> Sequence[Any]:
    return (
        wf.workflow_id,
        wf.correlation_id,
        wf.name,
        sqlite_time(wf.create_time),
        wf.status,
        orjson.dumps(summary(wf)).decode() if with_json else "",
        sqlite_time(wf.update_time or wf.create_time),
        wf.parent_workflow_id or "",
        classifier(wf),
        sqlite_time(wf.end_time) if wf.end_time else _EPOCH,
    )


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


def classifier(wf: WorkflowRecord) -> str:
    """WorkflowClassifier.classifierOf the definition's metadata: "agent" for agent SDK
    definitions, an explicit `classifier`, otherwise "workflow"."""
    metadata = (wf.definition.model_extra or {}).get("metadata") or {}
    explicit = metadata.get("classifier") if isinstance(metadata, dict) else None
    if isinstance(explicit, str) and explicit.strip():
        return explicit
    if isinstance(metadata, dict) and (
        metadata.get("agent_sdk") is not None or metadata.get("agentDef") is not None
    ):
        return "agent"
    return _UNTAGGED


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
        "parentWorkflowId": wf.parent_workflow_id or "",
        "classifier": classifier(wf),
        "inputSize": len(input_text),
        "outputSize": len(output_text),
    }
    return {k: v for k, v in data.items() if v is not None}
