"""`on_missing: start` (signal-with-start) in rules: what it compiles to, what `gateway explain`
shows, and the mistakes it refuses."""

from __future__ import annotations

import pytest

from gateway.errors import RuleError
from gateway.rules.request import plan_requests

from .helpers import one_rule
from .test_actions import assert_client_accepts, plan_for

SIGNAL = """signal:
  workflow_name: order_saga
  correlation_id: "${body.id}"
  output: {amount: "${body.amount}"}
  on_missing: start
  start: {version: 2, input: {orderId: "${body.id}", who: "${body.who}"}}"""


def test_the_start_is_rendered_per_event_with_the_target_s_name_and_correlation_id() -> None:
    plan = plan_for(SIGNAL)
    assert plan.target is not None and plan.target.on_missing == "start"
    assert plan.target.start == {
        "name": "order_saga",
        "version": 2,
        "input": {"orderId": "o-1", "who": "bob"},
        "correlation_id": "o-1",
    }
    assert_client_accepts(plan)


def test_explain_shows_the_lookup_the_start_when_none_is_found_and_the_signal() -> None:
    lookup, start, signal = plan_requests(plan_for(SIGNAL))
    assert lookup.line().startswith("GET /api/workflow/order_saga/correlated/o-1")
    assert (start.method, start.path) == ("POST", "/api/workflow")
    assert start.body == {
        "name": "order_saga",
        "version": 2,
        "correlationId": "o-1",
        "input": {"orderId": "o-1", "who": "bob"},
    }
    assert "only when none is found" in start.note
    assert signal.line() == (
        "POST /api/tasks/{workflowId}/COMPLETED/signal/sync"
        "?returnStrategy=TARGET_WORKFLOW&timeoutMillis=1"
    )


@pytest.mark.parametrize(
    "action", ["complete_task: {task_ref: approve, ", "update_variables: {variables: {a: 1}, "]
)
def test_complete_task_and_update_variables_start_too(action: str) -> None:
    plan = plan_for(
        action + "workflow_name: w, correlation_id: '${body.id}', on_missing: start, start: {}}"
    )
    assert plan.target is not None and plan.target.start is not None
    assert plan.target.start["correlation_id"] == "o-1" and plan.target.start["name"] == "w"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("signal: {workflow_id: a, on_missing: start}", "on_missing: start needs a start: block"),
        (
            "signal: {workflow_name: w, correlation_id: a, start: {}}",
            "on_missing: start needs a start: block",
        ),
        (
            "signal: {workflow_id: a, on_missing: start, start: {}}",
            "needs the target by correlation_id",
        ),
        (
            "signal: {workflow_name: w, correlation_id: a, on_missing: start, start: {name: v}}",
            "start.name 'v' differs from workflow_name 'w'",
        ),
        ("pause: {workflow_name: w, correlation_id: a, start: {}}", "pause.start: unknown key"),
        (
            "complete_task: {workflow_id: a, task_id: t, on_missing: start, start: {}}",
            "not complete_task by task_id",
        ),
    ],
)
def test_mistakes_are_named(yaml_text: str, message: str) -> None:
    with pytest.raises(RuleError) as info:
        one_rule(yaml_text)
    assert message in str(info.value)
