"""The action registry is whole: every rule action of the schema has one entry, and that entry's
call makes the client call its plan names (what `gateway explain` shows), so an action cannot be
half-added."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from gateway.conductor import ConductorClient
from gateway.rules import schema
from gateway.rules.actions import ACTIONS, ActionStates
from gateway.rules.request import plan_requests

from .test_actions import assert_client_accepts, plan_for

TARGET = 'workflow_id: "${body.wf}"'

# One rule per way an action compiles (complete_task and fail_task: by task_ref or by task_id).
EXAMPLES = {
    "start_workflow": "start_workflow: {name: w}",
    "execute_workflow": "execute_workflow: {name: w}",
    "signal": f"signal: {{{TARGET}, task_ref: t}}",
    "complete_task": f"complete_task: {{{TARGET}, task_ref: t}}",
    "complete_task by id": f'complete_task: {{{TARGET}, task_id: "${{body.task}}"}}',
    "fail_task": f"fail_task: {{{TARGET}, task_ref: t, reason: broken}}",
    "fail_task by id": f'fail_task: {{{TARGET}, task_id: "${{body.task}}"}}',
    "update_variables": f"update_variables: {{{TARGET}, variables: {{a: 1}}}}",
    "terminate": f"terminate: {{{TARGET}, reason: done}}",
    "pause": f"pause: {{{TARGET}}}",
    "resume": f"resume: {{{TARGET}}}",
    "retry": f"retry_workflow: {{{TARGET}}}",
    "restart": f"restart: {{{TARGET}}}",
    "rerun": f"rerun: {{{TARGET}}}",
}


class Recorder:
    """Stands for the client: records each call as (method, positional args, keyword args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> str:
            self.calls.append((method, args, kwargs))
            return "task-1"

        return call


def test_every_schema_action_has_one_registry_entry_with_its_model() -> None:
    assert sorted(ACTIONS) == sorted(schema.ACTIONS)
    for name, action in ACTIONS.items():
        assert action.name == name
        field = schema.RuleModel.model_fields[schema.ACTION_KEYS[name]]
        assert action.model in typing.get_args(field.annotation), name
        assert isinstance(action.states, ActionStates), name


def test_the_examples_cover_every_action() -> None:
    assert {plan_for(rule).action for rule in EXAMPLES.values()} == set(ACTIONS)


@pytest.mark.parametrize("rule", EXAMPLES.values(), ids=list(EXAMPLES))
async def test_an_action_s_call_is_the_client_call_its_plan_names(rule: str) -> None:
    plan = plan_for(rule)
    action = ACTIONS[plan.action]
    assert plan_requests(plan), "explain shows no request"
    assert_client_accepts(plan)
    if action.starts:  # run by the executor's start path, with its dedupe
        assert plan.method in ("start_workflow", "execute_workflow")
        return
    assert action.call is not None
    client = Recorder()
    workflow_id = "wf-9" if plan.target is not None else None
    await action.call(client, workflow_id, plan.params)
    expected = (workflow_id,) if workflow_id else ()
    assert client.calls == [(plan.method, expected, dict(plan.params))]
    assert hasattr(ConductorClient, plan.method)
