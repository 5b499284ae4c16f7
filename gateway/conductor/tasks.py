"""Typed task classes for workflows as code, named as in conductor-python.

Each class renders one Conductor `WorkflowTask` (`to_workflow_task()`), with exactly the keys
conductor-python's class of the same name renders, so a workflow built with either SDK gives the
same definition. Control-flow operators (SWITCH, FORK_JOIN, DO_WHILE, SUB_WORKFLOW, ...) live in
`gateway.conductor.operators`; the workflow itself in `gateway.conductor.builder`.

```python
order = SimpleTask("load_order", "load")
order.input_parameters["orderId"] = "${workflow.input.orderId}"
order.output("items")  # "${load.output.items}"
```
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Self

from pydantic import Field

from gateway.conductor.models import StartWorkflowRequest, WireModel


class TaskType(StrEnum):
    SIMPLE = "SIMPLE"
    DYNAMIC = "DYNAMIC"
    FORK_JOIN = "FORK_JOIN"
    FORK_JOIN_DYNAMIC = "FORK_JOIN_DYNAMIC"
    SWITCH = "SWITCH"
    JOIN = "JOIN"
    DO_WHILE = "DO_WHILE"
    SUB_WORKFLOW = "SUB_WORKFLOW"
    START_WORKFLOW = "START_WORKFLOW"
    EVENT = "EVENT"
    WAIT = "WAIT"
    HUMAN = "HUMAN"
    HTTP = "HTTP"
    INLINE = "INLINE"
    JSON_JQ_TRANSFORM = "JSON_JQ_TRANSFORM"
    SET_VARIABLE = "SET_VARIABLE"
    TERMINATE = "TERMINATE"


class WorkflowTask(WireModel):
    """One task of a workflow definition, as Conductor stores it (camelCase on the wire)."""

    name: str
    task_reference_name: str
    type: str
    description: str | None = None
    input_parameters: dict[str, Any] = Field(default_factory=dict)
    optional: bool | None = None
    decision_cases: dict[str, list[WorkflowTask]] | None = None
    default_case: list[WorkflowTask] | None = None
    fork_tasks: list[list[WorkflowTask]] | None = None
    join_on: list[str] | None = None
    loop_condition: str | None = None
    loop_over: list[WorkflowTask] | None = None
    sub_workflow_param: dict[str, Any] | None = None
    dynamic_task_name_param: str | None = None
    dynamic_fork_tasks_param: str | None = None
    dynamic_fork_tasks_input_param_name: str | None = None
    sink: str | None = None
    expression: str | None = None
    evaluator_type: str | None = None


class TaskInterface:
    """What every task has: a reference name, a type, a name, input parameters.

    `input_parameters` is a plain dict you may change (`task.input_parameters["x"] = ...` or
    `task.input_parameter("x", ...)`); `output("path")` and `input("path")` render the
    `${ref.output.path}` expressions other tasks use to read this one.
    """

    def __init__(
        self,
        task_reference_name: str,
        task_type: TaskType,
        task_name: str | None = None,
        description: str | None = None,
        optional: bool | None = None,
        input_parameters: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(task_reference_name, str) or not task_reference_name:
            raise ValueError(
                f"task reference name {task_reference_name!r} is not a non-empty string; "
                "give each task a unique reference name such as 'load_order'"
            )
        self.task_reference_name = task_reference_name
        self.task_type = task_type
        self.name = task_name or task_reference_name
        self.description = description
        self.optional = optional
        self.input_parameters: dict[str, Any] = dict(input_parameters or {})
        self.expression: str | None = None
        self.evaluator_type: str | None = None

    def input_parameter(self, key: str, value: Any) -> Self:
        self.input_parameters[key] = copy.deepcopy(value)
        return self

    def output(self, json_path: str | None = None) -> str:
        """`${ref.output}` or `${ref.output.<json_path>}` (a path starting with `.` or `[` is
        appended as is)."""
        return _expression(f"{self.task_reference_name}.output", json_path)

    def input(self, json_path: str | None = None) -> str:
        """`${ref.input}` or `${ref.input.<json_path>}`."""
        return _expression(f"{self.task_reference_name}.input", json_path)

    def to_workflow_task(self) -> WorkflowTask:
        return WorkflowTask(
            name=self.name,
            task_reference_name=self.task_reference_name,
            type=self.task_type.value,
            description=self.description,
            input_parameters=copy.deepcopy(self.input_parameters),
            optional=self.optional,
            expression=self.expression,
            evaluator_type=self.evaluator_type,
        )

    def to_workflow_tasks(self) -> list[WorkflowTask]:
        """The task(s) this renders to in a task list (a dynamic fork adds its JOIN)."""
        return [self.to_workflow_task()]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.task_reference_name!r})"


def _expression(root: str, json_path: str | None) -> str:
    if json_path is None:
        return "${" + root + "}"
    if json_path.startswith((".", "[")):
        return "${" + root + json_path + "}"
    return "${" + f"{root}.{json_path}" + "}"


def tasks_to_workflow_tasks(tasks: list[TaskInterface]) -> list[WorkflowTask]:
    return [rendered for task in tasks for rendered in task.to_workflow_tasks()]


class SimpleTask(TaskInterface):
    """A task run by a worker polling `task_def_name`."""

    def __init__(self, task_def_name: str, task_reference_name: str) -> None:
        super().__init__(task_reference_name, TaskType.SIMPLE, task_name=task_def_name)


def simple_task(task_def_name: str, task_reference_name: str, inputs: dict[str, Any]) -> SimpleTask:
    task = SimpleTask(task_def_name, task_reference_name)
    task.input_parameters.update(inputs)
    return task


class InlineTask(TaskInterface):
    """Run a JavaScript (GraalJS) expression on the server; `bindings` become its `$.` inputs.
    The result is `output("result")`."""

    def __init__(
        self, task_ref_name: str, script: str, bindings: dict[str, Any] | None = None
    ) -> None:
        inputs = {"evaluatorType": "graaljs", "expression": script, **(bindings or {})}
        super().__init__(task_ref_name, TaskType.INLINE, input_parameters=inputs)


class JavascriptTask(InlineTask):
    """An INLINE task whose `output(path)` reads inside its `result`."""

    def output(self, json_path: str | None = None) -> str:
        return _expression(f"{self.task_reference_name}.output.result", json_path)


class JsonJQTask(TaskInterface):
    """Transform JSON with a jq query over the task's input parameters."""

    def __init__(self, task_ref_name: str, script: str) -> None:
        inputs = {"queryExpression": script}
        super().__init__(task_ref_name, TaskType.JSON_JQ_TRANSFORM, input_parameters=inputs)


class HttpMethod(StrEnum):
    GET = "GET"
    PUT = "PUT"
    POST = "POST"
    DELETE = "DELETE"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"


class HttpInput(WireModel):
    """The `http_request` of an HTTP task."""

    method: HttpMethod = HttpMethod.GET
    uri: str | None = None
    headers: dict[str, list[str]] | None = None
    accept: str | None = None
    content_type: str | None = None
    connection_time_out: int | None = None
    read_timeout: int | None = Field(None, alias="readTimeOut")
    body: Any = None


class HttpTask(TaskInterface):
    """Call an HTTP endpoint from the server; the answer is `output("response")`."""

    def __init__(self, task_ref_name: str, http_input: HttpInput | dict[str, Any]) -> None:
        request: Any
        if isinstance(http_input, HttpInput):
            request = http_input.to_wire()
        else:
            request = {"method": "GET", **http_input}
        super().__init__(task_ref_name, TaskType.HTTP, input_parameters={"http_request": request})

    def status_code(self) -> str:
        return self.output("response.statusCode")

    def headers(self, json_path: str | None = None) -> str:
        return _expression(f"{self.task_reference_name}.output.response.headers", json_path)

    def body(self, json_path: str | None = None) -> str:
        return _expression(f"{self.task_reference_name}.output.response.body", json_path)


class EventTask(TaskInterface):
    """Publish the task's input to an event sink: `<prefix>:<name>`, e.g. `conductor:orders`."""

    def __init__(self, task_ref_name: str, event_prefix: str, event_suffix: str) -> None:
        super().__init__(task_ref_name, TaskType.EVENT)
        self.sink = f"{event_prefix}:{event_suffix}"

    def to_workflow_task(self) -> WorkflowTask:
        task = super().to_workflow_task()
        task.sink = self.sink
        return task


class ConductorEventTask(EventTask):
    def __init__(self, task_ref_name: str, event_name: str) -> None:
        super().__init__(task_ref_name, "conductor", event_name)


class SqsEventTask(EventTask):
    def __init__(self, task_ref_name: str, queue_name: str) -> None:
        super().__init__(task_ref_name, "sqs", queue_name)


class WaitTask(TaskInterface):
    """Wait for a signal, for `wait_for_seconds`, or until `wait_until` (`2026-12-25 05:25 PST`)."""

    def __init__(
        self,
        task_ref_name: str,
        wait_until: str | None = None,
        wait_for_seconds: int | None = None,
    ) -> None:
        super().__init__(task_ref_name, TaskType.WAIT)
        if wait_until is not None and wait_for_seconds is not None:
            raise ValueError(
                f"wait task '{task_ref_name}': both wait_until and wait_for_seconds are given; "
                "give one of them (or neither, to wait for a signal)"
            )
        if wait_until:
            self.input_parameters = {"wait_until": wait_until}
        if wait_for_seconds:
            self.input_parameters = {"duration": f"{wait_for_seconds}s"}


class WaitForDurationTask(WaitTask):
    def __init__(self, task_ref_name: str, duration_time_seconds: int) -> None:
        super().__init__(task_ref_name)
        self.input_parameters = {"duration": f"{duration_time_seconds}s"}


class WaitUntilTask(WaitTask):
    def __init__(self, task_ref_name: str, date_time: str) -> None:
        super().__init__(task_ref_name)
        self.input_parameters = {"until": date_time}


class AssignmentCompletionStrategy(StrEnum):
    LEAVE_OPEN = "LEAVE_OPEN"
    TERMINATE = "TERMINATE"


class HumanTask(TaskInterface):
    """A task completed by a person (or any caller of the task update API)."""

    def __init__(
        self,
        task_ref_name: str,
        display_name: str | None = None,
        form_template: str | None = None,
        form_version: int = 0,
        assignment_completion_strategy: AssignmentCompletionStrategy = (
            AssignmentCompletionStrategy.LEAVE_OPEN
        ),
    ) -> None:
        super().__init__(task_ref_name, TaskType.HUMAN)
        self.input_parameters["__humanTaskDefinition"] = {
            "assignmentCompletionStrategy": AssignmentCompletionStrategy(
                assignment_completion_strategy
            ).value,
            "displayName": display_name,
            "userFormTemplate": {"name": form_template, "version": form_version},
        }


class SetVariableTask(TaskInterface):
    """Set workflow variables from the task's input parameters."""

    def __init__(self, task_ref_name: str) -> None:
        super().__init__(task_ref_name, TaskType.SET_VARIABLE)


class WorkflowStatus(StrEnum):
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    PAUSED = "PAUSED"
    RUNNING = "RUNNING"
    TERMINATED = "TERMINATED"
    TIMEOUT_OUT = "TIMED_OUT"


class TerminateTask(TaskInterface):
    """End the workflow with `status` (COMPLETED or FAILED) and a reason."""

    def __init__(
        self, task_ref_name: str, status: WorkflowStatus | str, termination_reason: str
    ) -> None:
        inputs = {
            "terminationStatus": WorkflowStatus(status).value,
            "terminationReason": termination_reason,
        }
        super().__init__(task_ref_name, TaskType.TERMINATE, input_parameters=inputs)


class StartWorkflowTask(TaskInterface):
    """Start another workflow and go on without waiting for it (fire and forget).

    As in conductor-python the request's `input` and `correlation_id` are used; a mapping in
    Conductor's camelCase works too."""

    def __init__(
        self,
        task_ref_name: str,
        workflow_name: str,
        start_workflow_request: StartWorkflowRequest | Mapping[str, Any] | None = None,
        version: int | None = None,
    ) -> None:
        request = start_workflow_request
        if request is None or isinstance(request, Mapping):
            fields = {"name": workflow_name, **(request or {})}
            request = StartWorkflowRequest.model_validate(fields)
        start = {
            "name": workflow_name,
            "version": version,
            "input": request.input,
            "correlationId": request.correlation_id,
        }
        inputs = {"startWorkflow": start}
        super().__init__(task_ref_name, TaskType.START_WORKFLOW, input_parameters=inputs)


class DynamicTask(TaskInterface):
    """Run the task whose name the input `dynamic_task_param` holds at run time."""

    def __init__(
        self,
        dynamic_task: str,
        task_reference_name: str,
        dynamic_task_param: str = "taskToExecute",
    ) -> None:
        super().__init__(task_reference_name, TaskType.DYNAMIC, task_name="dynamic_task")
        self.input_parameters[dynamic_task_param] = dynamic_task
        self.dynamic_task_param = dynamic_task_param

    def to_workflow_task(self) -> WorkflowTask:
        task = super().to_workflow_task()
        task.dynamic_task_name_param = self.dynamic_task_param
        return task
