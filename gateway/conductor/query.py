"""A small builder for Conductor search queries that every index backend reads the same way.

The portable grammar (what OSS's SQLite/Postgres index, Elasticsearch and Orkes all accept):
clauses joined by ` AND ` (uppercase, single spaces; no OR, no parentheses), each
`field = value`, `field > value`, `field < value` or `field IN (a,b)` with no spaces inside the
list (SQLite does not trim list items). Values are checked against a strict character set, so a
value taken from an event cannot smuggle in another clause, a wildcard or a quote.

```python
Query().eq("workflowType", "order_flow").in_("status", ["RUNNING", "PAUSED"]).gt("startTime", t)
# -> "workflowType = order_flow AND status IN (RUNNING,PAUSED) AND startTime > 1726655978410"
```
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.errors import BadRequest

FIELDS = frozenset(
    {
        "workflowId",
        "correlationId",
        "workflowType",
        "status",
        "startTime",
        "endTime",
        "updateTime",
        "parentWorkflowId",
        "classifier",
    }
)
TIME_FIELDS = frozenset({"startTime", "endTime", "updateTime"})
# Orkes documents modifiedTime, but OSS's index ignores unknown fields: the clause would match
# every workflow there. updateTime is the portable spelling.
NOT_PORTABLE = {"modifiedTime": "updateTime"}
_VALUE = re.compile(r"[A-Za-z0-9_.:@/+\-]+")


@dataclass(frozen=True, slots=True)
class Query:
    """An immutable AND of clauses; each method returns a new Query. `str()` renders it."""

    clauses: tuple[str, ...] = ()

    def eq(self, field: str, value: str | int) -> Query:
        return self._add(f"{_field(field)} = {_value(field, value)}")

    def gt(self, field: str, value: int) -> Query:
        return self._add(f"{_field(field)} > {_number(field, value)}")

    def lt(self, field: str, value: int) -> Query:
        return self._add(f"{_field(field)} < {_number(field, value)}")

    def in_(self, field: str, values: Iterable[str | int]) -> Query:
        items = [_value(field, v) for v in values]
        if not items:
            raise BadRequest(f"search field '{field}': IN needs at least one value")
        return self._add(f"{_field(field)} IN ({','.join(items)})")

    def _add(self, clause: str) -> Query:
        return Query((*self.clauses, clause))

    def __str__(self) -> str:
        return " AND ".join(self.clauses)

    def __bool__(self) -> bool:
        return bool(self.clauses)


def _field(name: str) -> str:
    if name in NOT_PORTABLE:
        raise BadRequest(
            f"search field '{name}' is ignored by OSS's index (the clause would match every "
            f"workflow there); use '{NOT_PORTABLE[name]}' instead"
        )
    if name not in FIELDS:
        raise BadRequest(
            f"search field '{name}' is not searchable everywhere; use one of {sorted(FIELDS)}"
        )
    return name


def _value(field: str, value: str | int) -> str:
    if isinstance(value, bool):
        raise BadRequest(f"search field '{field}': {value!r} is not a valid value")
    if isinstance(value, int):
        return str(value)
    if field in TIME_FIELDS:
        return _number(field, value)
    if not _VALUE.fullmatch(value):
        raise BadRequest(
            f"search field '{field}': value {value!r} may only contain letters, digits and "
            "_ . : @ / + - (no spaces, quotes, commas, parentheses or wildcards)"
        )
    return value


def _number(field: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise BadRequest(
            f"search field '{field}': {value!r} must be a non-negative integer (epoch ms)"
        )
    return str(int(value))
