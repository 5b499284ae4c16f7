"""conductor-python's workflow builder under our names, so one builder function can build the
same workflow with either SDK: `sdk_namespace()` maps each name of `gateway.conductor` the
shapes use to conductor-python's class, and `as_sdk(func)` runs `func`'s code with those."""

from __future__ import annotations

import itertools
import json
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from conductor.client.configuration.configuration import Configuration
from conductor.client.http.api_client import ApiClient
from conductor.client.http.models import StartWorkflowRequest
from conductor.client.workflow import conductor_workflow
from conductor.client.workflow.task import (
    do_while_task,
    dynamic_fork_task,
    dynamic_task,
    event_task,
    fork_task,
    http_task,
    human_task,
    javascript_task,
    join_task,
    json_jq_task,
    set_variable_task,
    simple_task,
    start_workflow_task,
    sub_workflow_task,
    switch_task,
    terminate_task,
    wait_task,
)
from conductor.client.workflow.task.inline import InlineTask
from conductor.client.workflow.task.timeout_policy import TimeoutPolicy

from gateway.conductor import WorkflowDef


def _workflow(name: str, version: int | None = None, description: str | None = None) -> Any:
    return conductor_workflow.ConductorWorkflow(None, name, version, description)


def sdk_namespace() -> dict[str, Any]:
    return {
        "ConductorWorkflow": _workflow,
        "SimpleTask": simple_task.SimpleTask,
        "simple_task": simple_task.simple_task,
        "SwitchTask": switch_task.SwitchTask,
        "ForkTask": fork_task.ForkTask,
        "JoinTask": join_task.JoinTask,
        "DynamicForkTask": dynamic_fork_task.DynamicForkTask,
        "DoWhileTask": do_while_task.DoWhileTask,
        "LoopTask": do_while_task.LoopTask,
        "SubWorkflowTask": sub_workflow_task.SubWorkflowTask,
        "InlineSubWorkflowTask": conductor_workflow.InlineSubWorkflowTask,
        "DynamicTask": dynamic_task.DynamicTask,
        "InlineTask": InlineTask,
        "JavascriptTask": javascript_task.JavascriptTask,
        "JsonJQTask": json_jq_task.JsonJQTask,
        "HttpTask": http_task.HttpTask,
        "HttpInput": http_task.HttpInput,
        "HttpMethod": http_task.HttpMethod,
        "ConductorEventTask": event_task.ConductorEventTask,
        "SqsEventTask": event_task.SqsEventTask,
        "WaitTask": wait_task.WaitTask,
        "WaitForDurationTask": wait_task.WaitForDurationTask,
        "WaitUntilTask": wait_task.WaitUntilTask,
        "HumanTask": human_task.HumanTask,
        "AssignmentCompletionStrategy": human_task.AssignmentCompletionStrategy,
        "SetVariableTask": set_variable_task.SetVariableTask,
        "TerminateTask": terminate_task.TerminateTask,
        "WorkflowStatus": terminate_task.WorkflowStatus,
        "StartWorkflowTask": start_workflow_task.StartWorkflowTask,
        "StartWorkflowRequest": StartWorkflowRequest,
        "TimeoutPolicy": TimeoutPolicy,
    }


def as_sdk(func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` with its global names bound to conductor-python's classes."""
    namespace = {**func.__globals__, **sdk_namespace()}
    return types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__)


@contextmanager
def numbered_forks() -> Iterator[None]:
    """conductor-python names a fork added with `>>` `forked_<random id>` (an inline
    sub-workflow `<name>_<random id>`); the builder uses a counter. Count in the SDK too."""
    counter = itertools.count(1)
    with mock.patch.object(conductor_workflow, "uuid", lambda: str(next(counter))):
        yield


_API = ApiClient(Configuration("http://127.0.0.1/api"))


def sdk_definition(workflow: Any) -> dict[str, Any]:
    """The JSON conductor-python sends for `workflow` (str enums become their values)."""
    body = _API.sanitize_for_serialization(workflow.to_workflow_def())
    return dict(json.loads(json.dumps(body)))


def stored(definition: dict[str, Any]) -> dict[str, Any]:
    """A definition as Conductor stores it: unset fields given their defaults (our
    `WorkflowDef` knows them), inline sub-workflow definitions likewise. Task fields are
    compared exactly as sent."""
    data = WorkflowDef.model_validate(definition).to_wire()
    data["tasks"] = [_stored_task(task) for task in data["tasks"]]
    return data


def _stored_task(task: Any) -> Any:
    if isinstance(task, list):
        return [_stored_task(t) for t in task]
    if not isinstance(task, dict):
        return task
    out = {k: _stored_task(v) if k != "inputParameters" else v for k, v in task.items()}
    child = (task.get("subWorkflowParam") or {}).get("workflowDefinition")
    if child is not None:
        out["subWorkflowParam"] = {**task["subWorkflowParam"], "workflowDefinition": stored(child)}
    return out
