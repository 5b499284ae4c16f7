"""Ending a task from outside a decide: for system tasks whose work runs off the event loop's
turn (an HTTP call, a script that runs long). The result is applied on the loop, then the
workflow is decided, as Conductor's system-task worker decides after `execute`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord
    from gateway.devserver.tasks.base import Runtime


def end_task(
    rt: Runtime,
    wf: WorkflowRecord,
    task: TaskRecord,
    status: str,
    output: dict[str, Any],
    reason: str | None = None,
) -> None:
    """`task` ends with `status`; nothing happens when it already ended (the workflow was
    terminated, or the task canceled, while the work ran)."""
    if task.terminal or task.retried:
        return
    task.output_data.update(output)
    rt.finish(task, status, reason)
    rt.store.touch(wf)
    if not wf.terminal:
        rt.decide(wf)
