"""Tasks that wait for the outside world: WAIT (a signal, an update, or a duration) and
HUMAN (only an update ends it)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from gateway.devserver.tasks.base import Runtime, TaskHandler

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: Any) -> int | None:
    """WAIT `duration`: "30s", "5m", "2h", "1d", "250ms" or bare seconds."""
    match = _DURATION.match(str(text))
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_MS[match.group(2) or "s"]


class Wait(TaskHandler):
    type = "WAIT"

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        task.status = "IN_PROGRESS"
        task.start_time = rt.store.now()
        if "duration" in task.input_data:
            duration = parse_duration_ms(task.input_data["duration"])
            if duration is not None:
                task.wait_until = task.start_time + duration
        rt.store.mark_running(task)


class Human(TaskHandler):
    type = "HUMAN"

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        task.status = "IN_PROGRESS"
        task.start_time = rt.store.now()
        rt.store.mark_running(task)
