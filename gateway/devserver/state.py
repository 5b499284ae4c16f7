"""The engine's in-memory records of executions, and their Conductor JSON shapes (§2.1, §2.2)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.devserver.models import TaskDef, WorkflowDef, WorkflowTask
from gateway.statuses import TERMINAL_TASK, TERMINAL_WORKFLOW

if TYPE_CHECKING:
    from gateway.devserver.tasks.tree import Node, Tree

RETRIABLE_TASK = frozenset({"FAILED", "TIMED_OUT"})  # what a task definition's retries re-run


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class TaskRecord:
    task_id: str
    workflow_id: str
    workflow_type: str
    node: Node  # where the task sits in the definition tree
    workflow_task: WorkflowTask
    task_def: TaskDef
    status: str
    seq: int
    input_data: dict[str, Any]
    scheduled_time: int
    output_data: dict[str, Any] = field(default_factory=dict)
    reason_for_incompletion: str | None = None
    retry_count: int = 0
    poll_count: int = 0
    retried: bool = False
    start_time: int = 0
    end_time: int = 0
    update_time: int = 0
    available_at: int = 0
    wait_until: int | None = None
    callback_after_seconds: int = 0
    worker_id: str | None = None
    domain: str | None = None
    retried_task_id: str | None = None
    correlation_id: str | None = None
    workflow_priority: int = 0
    # The reference name as run: `ref__2` in loop iteration 2, `_name_0` in a dynamic fork.
    ref_name: str = ""
    iteration: int = 0
    executed: bool = False
    sub_workflow_id: str | None = None
    # Conductor's `taskType` and `taskDefName` as reported (FORK for FORK_JOIN, ...).
    type_name: str = ""
    def_name: str = ""

    @property
    def ref(self) -> str:
        return self.ref_name or self.workflow_task.task_reference_name

    @property
    def task_type(self) -> str:
        return self.workflow_task.type

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_TASK

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "taskId": self.task_id,
            "taskType": self.type_name or self.workflow_task.name,
            "taskDefName": self.def_name or self.workflow_task.name,
            "referenceTaskName": self.ref,
            "status": self.status,
            "inputData": self.input_data,
            "outputData": self.output_data,
            "reasonForIncompletion": self.reason_for_incompletion,
            "seq": self.seq,
            "retryCount": self.retry_count,
            "pollCount": self.poll_count,
            "retried": self.retried,
            "executed": self.executed,
            "scheduledTime": self.scheduled_time,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "updateTime": self.update_time,
            "workflowInstanceId": self.workflow_id,
            "workflowType": self.workflow_type,
            "correlationId": self.correlation_id,
            "callbackAfterSeconds": self.callback_after_seconds,
            "workerId": self.worker_id,
            "domain": self.domain,
            "iteration": self.iteration,
            "subWorkflowId": self.sub_workflow_id,
            "workflowTask": self.workflow_task.wire(),
            "retriedTaskId": self.retried_task_id,
            "responseTimeoutSeconds": self.task_def.response_timeout_seconds,
            "workflowPriority": self.workflow_priority,
            "taskDefinition": self.task_def.wire(),
        }
        return {k: v for k, v in data.items() if v is not None}


@dataclass
class WorkflowRecord:
    workflow_id: str
    definition: WorkflowDef
    input: dict[str, Any]
    create_time: int
    status: str = "RUNNING"
    output: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    priority: int = 0
    task_to_domain: dict[str, str] = field(default_factory=dict)
    tasks: list[TaskRecord] = field(default_factory=list)
    update_time: int = 0
    end_time: int = 0
    reason_for_incompletion: str | None = None
    failed_reference_task_names: list[str] = field(default_factory=list)
    failed_task_names: list[str] = field(default_factory=list)
    last_retried_time: int = 0
    idempotency_key: str | None = None
    created_by: str | None = None
    dynamic: bool = False
    parent_workflow_id: str | None = None
    parent_workflow_task_id: str | None = None
    tree: Tree | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def version(self) -> int:
        return self.definition.version

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_WORKFLOW

    def to_json(self, include_tasks: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "workflowId": self.workflow_id,
            "workflowName": self.name,
            "workflowVersion": self.version,
            "status": self.status,
            "input": self.input,
            "output": self.output,
            "variables": self.variables,
            "correlationId": self.correlation_id,
            "createTime": self.create_time,
            "startTime": self.create_time,
            "updateTime": self.update_time or None,
            "endTime": self.end_time,
            "reasonForIncompletion": self.reason_for_incompletion,
            "tasks": [t.to_json() for t in self.tasks] if include_tasks else [],
            "failedReferenceTaskNames": self.failed_reference_task_names,
            "failedTaskNames": self.failed_task_names,
            "priority": self.priority,
            "taskToDomain": self.task_to_domain,
            "lastRetriedTime": self.last_retried_time,
            "workflowDefinition": self.definition.wire(),
            "history": [],
            "idempotencyKey": self.idempotency_key,
            "createdBy": self.created_by,
            "parentWorkflowId": self.parent_workflow_id,
            "parentWorkflowTaskId": self.parent_workflow_task_id,
        }
        return {k: v for k, v in data.items() if v is not None}
