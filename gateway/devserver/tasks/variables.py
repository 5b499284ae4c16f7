"""SET_VARIABLE: merge the task input into `workflow.variables`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.devserver.tasks.base import Runtime, TaskHandler

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord


class SetVariable(TaskHandler):
    type = "SET_VARIABLE"

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        wf.variables.update(task.input_data)
        rt.finish(task, "COMPLETED")
