"""SUB_WORKFLOW and START_WORKFLOW (mapper/SubWorkflowTaskMapper, tasks/SubWorkflow,
tasks/StartWorkflow).

A SUB_WORKFLOW task starts a child (by name and version, or an inline `workflowDefinition`)
and follows it: RUNNING/PAUSED -> IN_PROGRESS, COMPLETED -> COMPLETED, FAILED -> FAILED,
TERMINATED -> CANCELED, TIMED_OUT -> TIMED_OUT; on the end the child's output is merged into the
task's. Ending the parent terminates a running child. START_WORKFLOW fires and forgets."""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gateway.devserver.mapping import resolve
from gateway.devserver.models import WorkflowDef, WorkflowTask
from gateway.devserver.tasks.base import Problem, Runtime, TaskHandler, required

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord

CHILD_TO_TASK = {
    "COMPLETED": "COMPLETED",
    "FAILED": "FAILED",
    "TERMINATED": "CANCELED",
    "TIMED_OUT": "TIMED_OUT",
}


def child_id(parent_id: str, task_id: str, retry_count: int) -> str:
    """IDGenerator.generateSubWorkflowId: a name-based (MD5) UUID, so a relaunch of the same
    attempt finds the same child."""
    digest = hashlib.md5(f"subworkflow:{parent_id}:{task_id}:{retry_count}".encode()).digest()
    return str(uuid.UUID(bytes=digest, version=3))


class SubWorkflow(TaskHandler):
    type = "SUB_WORKFLOW"
    is_async = True

    def validate(self, wt: WorkflowTask, path: str) -> list[Problem]:
        param = wt.sub_workflow_param
        if param is None:
            return [required(wt, path, "subWorkflowParam")]
        if not param.get("name") and not param.get("workflowDefinition"):
            return [required(wt, path, "subWorkflowParam.name")]
        return []

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        raw = task.workflow_task.sub_workflow_param or {}
        param = resolve(raw, rt.context(wf))
        if isinstance(raw.get("workflowDefinition"), dict):
            # An inline child keeps its own expressions (its outputParameters' ${workflow...}
            # are the child's, not the parent's), as on the real server.
            param["workflowDefinition"] = raw["workflowDefinition"]
        try:
            definition = self._definition(rt, param)
        except LookupError as exc:
            rt.finish(task, "FAILED", str(exc))
            return
        params = {k: v for k, v in task.input_data.items() if k != "workflowInput"}
        task.input_data = {
            **params,
            "subWorkflowName": definition.name,
            "subWorkflowVersion": definition.version,
            "workflowInput": params,
        }
        workflow_id: str | None = child_id(wf.workflow_id, task.task_id, task.retry_count)
        if rt.workflow(workflow_id) is not None:
            workflow_id = None  # a rerun of this attempt: Conductor starts a random-id child
        child = rt.launch(
            definition,
            params or task.input_data,
            parent=task,
            workflow_id=workflow_id,
            correlation_id=wf.correlation_id,
            priority=wf.priority,
            task_to_domain=wf.task_to_domain,  # the parent's domains, as SubWorkflow.start
        )
        self._attach(rt, task, child.workflow_id)

    @staticmethod
    def _attach(rt: Runtime, task: TaskRecord, workflow_id: str) -> None:
        task.sub_workflow_id = workflow_id
        task.output_data = {**task.output_data, "subWorkflowId": workflow_id}
        task.status = "IN_PROGRESS"
        task.start_time = task.update_time = rt.store.now()

    @staticmethod
    def _definition(rt: Runtime, param: dict[str, Any]) -> WorkflowDef:
        inline = param.get("workflowDefinition")
        if isinstance(inline, dict):
            try:
                return WorkflowDef.model_validate(inline)
            except ValidationError as exc:
                raise LookupError(f"Invalid inline workflowDefinition: {exc}") from exc
        name, version = param.get("name"), param.get("version") or None
        found = rt.store.metadata.find_workflow(str(name), int(version) if version else None)
        if found is None:
            raise LookupError(f"The Task {name} defined as a sub-workflow has no workflow "
                              f"definition available ")  # fmt: skip
        return found

    def execute(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> bool:
        child = rt.workflow(task.sub_workflow_id)
        if child is None or not child.terminal:
            return False
        task.output_data = {**task.output_data, **child.output}
        reason = None
        if child.status != "COMPLETED":
            reason = (
                f"Sub workflow {child.name}.{child.version}/{child.workflow_id} failure "
                f"reason: {child.reason_for_incompletion}"
            )
        rt.finish(task, CHILD_TO_TASK[child.status], reason)
        return True

    def cancel(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        child = rt.workflow(task.sub_workflow_id)
        if child is None or child.terminal:
            return
        reason = (
            f"Parent workflow has been terminated with reason: {wf.reason_for_incompletion}"
            if wf.reason_for_incompletion
            else f"Parent workflow has been terminated with status {wf.status}"
        )
        rt.terminate(child, reason)


class StartWorkflow(TaskHandler):
    type = "START_WORKFLOW"
    is_async = True

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        request = task.input_data.get("startWorkflow")
        if not isinstance(request, dict):
            rt.finish(task, "FAILED", "Missing 'startWorkflow' in input data.")
            return
        name, version = request.get("name"), request.get("version")
        definition = rt.store.metadata.find_workflow(str(name), int(version) if version else None)
        if definition is None:
            rt.finish(task, "FAILED", f"No such workflow found by name: {name}, version: {version}")
            return
        child = rt.launch(
            definition,
            dict(request.get("input") or {}),
            correlation_id=request.get("correlationId") or wf.correlation_id,
        )
        task.output_data = {"workflowId": child.workflow_id}
        rt.finish(task, "COMPLETED")
