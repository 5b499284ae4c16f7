"""Conductor's workflow and task statuses, and the sets of them the gateway reasons about.

These are facts about Conductor (its `Workflow.WorkflowStatus` and `Task.Status` enums), so
the client, the daemon, the completion tracker and the dev server all read them from here.
"""

from __future__ import annotations

from typing import Literal, get_args

WorkflowStatus = Literal["COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED", "PAUSED", "RUNNING"]
# The statuses a worker or the task-update API may set on a task.
TaskResultStatus = Literal[
    "IN_PROGRESS", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "COMPLETED", "CANCELED"
]

TERMINAL_WORKFLOW: frozenset[str] = frozenset({"COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"})
# Ended without completing: what `retry` may act on.
UNSUCCESSFUL_WORKFLOW: frozenset[str] = TERMINAL_WORKFLOW - {"COMPLETED"}
TERMINAL_TASK: frozenset[str] = frozenset(
    {
        "CANCELED",
        "FAILED",
        "FAILED_WITH_TERMINAL_ERROR",
        "COMPLETED",
        "COMPLETED_WITH_ERRORS",
        "TIMED_OUT",
        "SKIPPED",
    }
)
# Ended in a way that lets the workflow go on.
SUCCESSFUL_TASK: frozenset[str] = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS", "SKIPPED"})
TASK_RESULT: frozenset[str] = frozenset(get_args(TaskResultStatus))
