"""Tasks that wait for the outside world: WAIT (a signal, an update, or a duration) and
HUMAN (only an update ends it)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from gateway.devserver.models import WorkflowTask
from gateway.devserver.tasks.base import Problem, Runtime, TaskHandler
from gateway.devserver.waits import WaitError, duration_ms, until_ms, wait_until

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
    own_task_id = True

    def validate(self, wt: WorkflowTask, path: str) -> list[Problem]:
        """WorkflowTaskTypeConstraint.isWaitTaskValid: literal (not ${...}) inputs are read
        at registration, with Conductor's messages."""
        duration = str(wt.input_parameters.get("duration") or "").strip()
        until = str(wt.input_parameters.get("until") or "").strip()
        if duration and until:
            return [
                Problem(
                    path, "Both 'duration' and 'until' specified. Please provide only one input"
                )
            ]
        try:
            if duration and not duration.startswith("${"):
                duration_ms(duration)
            elif until and not until.startswith("${"):
                until_ms(until)
        except WaitError:
            message = (
                "Either date or duration is passed as null "
                if duration
                else "Unable to parse date "
            )
            return [Problem(path, message)]
        return []

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        task.status = "IN_PROGRESS"
        task.start_time = rt.store.now()
        try:  # `duration` and `until` in Conductor's grammar (gateway/devserver/waits.py)
            task.wait_until = wait_until(task.input_data, task.start_time)
        except WaitError as exc:
            rt.finish(task, "FAILED_WITH_TERMINAL_ERROR", str(exc))
            return
        rt.store.mark_running(task)


class Human(TaskHandler):
    type = "HUMAN"
    own_task_id = True

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        task.status = "IN_PROGRESS"
        task.start_time = rt.store.now()
        rt.store.mark_running(task)
