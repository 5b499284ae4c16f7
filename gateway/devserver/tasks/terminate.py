"""TERMINATE: end the workflow with `terminationStatus`; `workflowOutput` is its output.

Other branches still running are canceled; FAILED and TERMINATED start the failure workflow
(tasks/Terminate, WEO.endExecution)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.devserver.tasks.base import Runtime, TaskHandler

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord

STATUSES = ("COMPLETED", "FAILED", "TERMINATED")


class Terminate(TaskHandler):
    type = "TERMINATE"
    own_task_id = True

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        status = str(task.input_data.get("terminationStatus", "")).upper()
        if status not in STATUSES:
            # Conductor fails the task itself; the decider then fails the workflow.
            rt.finish(task, "FAILED", "given termination status is not valid")
            return
        output = task.input_data.get("workflowOutput")
        if output is not None:
            task.output_data = output if isinstance(output, dict) else {"output": output}
        rt.finish(task, "COMPLETED")
        reason = task.input_data.get("terminationReason") or (
            f"Workflow is {status} by TERMINATE task: {task.task_id}"
        )
        rt.end(wf, status, str(reason))
