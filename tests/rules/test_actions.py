"""Every action: its YAML schema, the Plan it renders (ConductorClient method + kwargs), and the
REST request that Plan maps to (reference/conductor-api.md)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from gateway.conductor import ConductorClient
from gateway.errors import RuleError
from gateway.plan import Plan, Target
from gateway.rules.request import plan_requests
from gateway.rules.router import Router

from .helpers import kafka_event, one_rule

BODY = {"id": "o-1", "wf": "wf-9", "task": "t-3", "amount": 12, "who": "bob", "n": "7"}


def plan_for(action_yaml: str, body: Any = None) -> Plan:
    ruleset = one_rule(action_yaml)
    result = Router(ruleset).route(kafka_event(BODY if body is None else body))
    assert not result.failures, result.failures
    (plan,) = result.plans
    return plan


def assert_client_accepts(plan: Plan) -> None:
    """Plan.params are exactly keyword arguments of the named ConductorClient method."""
    signature = inspect.signature(getattr(ConductorClient, plan.method))
    args = ["self", "workflow_id"] if plan.target is not None else ["self"]
    signature.bind(*args, **plan.params)


INLINE_DEF = {
    "name": "order-fulfilment",
    "tasks": [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}],
}


def test_start_workflow() -> None:
    plan = plan_for(
        """
        start_workflow:
          name: order-fulfilment
          version: 2
          input: {orderId: "${body.id}", amount: "${body.amount}"}
          correlation_id: ${body.id}
          priority: ${body.n}
          task_to_domain: {reserve: eu}
          workflow_def:
            name: order-fulfilment
            tasks: [{name: w, taskReferenceName: w, type: WAIT}]
        """
    )
    assert plan.method == "start_workflow" and plan.target is None
    assert plan.params == {
        "name": "order-fulfilment",
        "version": 2,
        "input": {"orderId": "o-1", "amount": 12},
        "correlation_id": "o-1",
        "priority": 7,
        "task_to_domain": {"reserve": "eu"},
        "workflow_def": INLINE_DEF,
    }
    assert plan.idempotency_key == "kafka:orders:0:7"  # default: the event's source id
    assert_client_accepts(plan)
    (request,) = plan_requests(plan)
    assert (request.method, request.path) == ("POST", "/api/workflow")
    assert request.body == {
        "name": "order-fulfilment",
        "version": 2,
        "correlationId": "o-1",
        "input": {"orderId": "o-1", "amount": 12},
        "taskToDomain": {"reserve": "eu"},
        "workflowDef": INLINE_DEF,
        "priority": 7,
    }


def test_start_workflow_defaults_input_to_an_empty_object() -> None:
    plan = plan_for("start_workflow: {name: w}")
    assert plan.params["input"] == {}
    assert plan_requests(plan)[0].body == {"name": "w", "input": {}}


def test_execute_workflow_replies_to_reply_to_by_default() -> None:
    plan = plan_for(
        """
        execute_workflow:
          name: price-quote
          input: ${body}
          wait_until_task_refs: [a, b]
          wait_for_seconds: 5
        """
    )
    assert plan.method == "execute_workflow"
    assert plan.params["input"] == BODY
    assert plan.params["wait_until_task_refs"] == ["a", "b"]
    assert plan.params["wait_for_seconds"] == 5
    assert plan.reply is not None and plan.reply.destination is None
    assert_client_accepts(plan)
    (request,) = plan_requests(plan)
    assert request.line() == (
        "POST /api/workflow/execute/price-quote/0?waitUntilTaskRef=a,b&waitForSeconds=5"
    )


def test_signal_by_correlation_id_with_policies() -> None:
    plan = plan_for(
        """
        signal:
          correlation_id: ${body.id}
          workflow_name: order-fulfilment
          task_ref: wait_payment
          status: COMPLETED
          output: {paid: "${body.amount}"}
          on_missing: retry
          retry_for_seconds: 60
          on_many: newest
        """
    )
    assert plan.method == "signal"
    assert plan.params == {
        "status": "COMPLETED",
        "output": {"paid": 12},
        "task_ref": "wait_payment",
    }
    assert plan.target == Target(
        correlation_id="o-1",
        workflow_name="order-fulfilment",
        on_missing="retry",
        retry_for_seconds=60,
        on_many="newest",
    )
    assert_client_accepts(plan)
    lookup, action = plan_requests(plan)
    assert lookup.line() == (
        "GET /api/workflow/order-fulfilment/correlated/o-1?includeClosed=true&includeTasks=false"
    )
    assert action.line() == "POST /api/tasks/{workflowId}/wait_payment/COMPLETED"
    assert action.body == {"paid": 12}


def test_signal_the_first_waiting_task() -> None:
    plan = plan_for("signal: {workflow_id: '${body.wf}', status: FAILED}")
    assert plan.params == {"status": "FAILED", "output": None, "task_ref": None}
    assert plan.target == Target(workflow_id="wf-9")
    (request,) = plan_requests(plan)
    assert request.line() == (
        "POST /api/tasks/wf-9/FAILED/signal/sync?returnStrategy=TARGET_WORKFLOW&timeoutMillis=1"
    )
    assert request.body == {}


def test_complete_task_by_ref_and_by_id() -> None:
    plan = plan_for("complete_task: {workflow_id: '${body.wf}', task_ref: wait, output: {a: 1}}")
    assert (plan.method, plan.params["status"], plan.params["task_ref"]) == (
        "signal",
        "COMPLETED",
        "wait",
    )
    assert_client_accepts(plan)
    plan = plan_for("complete_task: {workflow_id: '${body.wf}', task_id: '${body.task}'}")
    assert plan.method == "update_task" and plan.target is None
    assert plan.params == {
        "task_id": "t-3",
        "workflow_id": "wf-9",
        "status": "COMPLETED",
        "output": None,
    }
    assert_client_accepts(plan)
    (request,) = plan_requests(plan)
    assert request.line() == "POST /api/tasks"
    assert request.body == {
        "workflowInstanceId": "wf-9",
        "taskId": "t-3",
        "status": "COMPLETED",
        "outputData": {},
    }


def test_fail_task_with_reason() -> None:
    plan = plan_for(
        "fail_task: {workflow_id: x, task_ref: wait, reason: 'by ${body.who}', terminal: true}"
    )
    assert plan.params == {
        "status": "FAILED_WITH_TERMINAL_ERROR",
        "output": None,
        "task_ref": "wait",
        "reason_for_incompletion": "by bob",
    }
    assert_client_accepts(plan)
    find, update = plan_requests(plan)
    assert find.line() == "GET /api/workflow/x?includeTasks=true"
    assert update.body["reasonForIncompletion"] == "by bob"


def test_update_variables() -> None:
    plan = plan_for("update_variables: {workflow_id: x, variables: {paid: '${body.amount}'}}")
    assert (plan.method, plan.params) == ("update_variables", {"variables": {"paid": 12}})
    assert_client_accepts(plan)
    (request,) = plan_requests(plan)
    assert request.line() == "POST /api/workflow/x/variables" and request.body == {"paid": 12}


def test_terminate_by_search_query() -> None:
    plan = plan_for(
        """
        terminate:
          query: workflowType = order AND correlationId = ${body.id}
          reason: cancelled by ${body.who}
          trigger_failure_workflow: true
          on_many: all
        """
    )
    assert plan.params == {"reason": "cancelled by bob", "trigger_failure_workflow": True}
    assert plan.target is not None
    assert plan.target.query == "workflowType = order AND correlationId = o-1"
    assert_client_accepts(plan)
    lookup, action = plan_requests(plan)
    assert lookup.path == "/api/workflow/search"
    assert lookup.query["query"] == "workflowType = order AND correlationId = o-1"
    assert action.line() == (
        "DELETE /api/workflow/{workflowId}?reason=cancelled+by+bob&triggerFailureWorkflow=true"
    )


@pytest.mark.parametrize(
    ("yaml_text", "method", "params", "line"),
    [
        ("pause: {workflow_id: x}", "pause", {}, "PUT /api/workflow/x/pause"),
        ("resume: {workflow_id: x}", "resume", {}, "PUT /api/workflow/x/resume"),
        (
            "retry_workflow: {workflow_id: x, resume_subworkflow_tasks: true}",
            "retry",
            {"resume_subworkflow_tasks": True},
            "POST /api/workflow/x/retry?resumeSubworkflowTasks=true",
        ),
        (
            "restart: {workflow_id: x}",
            "restart",
            {"use_latest_definitions": False},
            "POST /api/workflow/x/restart?useLatestDefinitions=false",
        ),
    ],
)
def test_state_actions(yaml_text: str, method: str, params: dict[str, Any], line: str) -> None:
    plan = plan_for(yaml_text)
    assert (plan.method, dict(plan.params)) == (method, params)
    assert_client_accepts(plan)
    assert plan_requests(plan)[-1].line() == line


def test_rerun() -> None:
    plan = plan_for(
        """
        rerun:
          workflow_id: x
          from_task_id: ${body.task}
          task_input: {a: 1}
          workflow_input: ${body}
          new_correlation_id: ${body.id}
        """
    )
    assert plan.params == {
        "re_run_from_task_id": "t-3",
        "task_input": {"a": 1},
        "workflow_input": BODY,
        "correlation_id": "o-1",
    }
    assert_client_accepts(plan)
    (request,) = plan_requests(plan)
    assert request.body == {
        "reRunFromWorkflowId": "x",
        "reRunFromTaskId": "t-3",
        "taskInput": {"a": 1},
        "workflowInput": BODY,
        "correlationId": "o-1",
    }


def test_options_reach_the_plan() -> None:
    plan = plan_for(
        """
        start_workflow: {name: w}
        idempotency_key: order:${body.id}
        ordering_key: ${body.id}
        retry: {max_attempts: 3}
        dead_letter: amqp:dlx/failed.orders
        rate_limit: {max_concurrent: 4, max_per_interval: 100, interval_seconds: 60}
        completion: {destination: kafka:status, statuses: [COMPLETED]}
        reply: {destination: amqp:replies, wait_for_completion: true}
        """
    )
    assert plan.idempotency_key == "order:o-1" and plan.ordering_key == "o-1"
    assert plan.retry.max_attempts == 3 and plan.retry.max_backoff == 60.0
    assert str(plan.dead_letter) == "amqp:dlx/failed.orders"
    assert plan.rate_limit is not None and plan.rate_limit.max_per_interval == 100
    assert plan.completion is not None and plan.completion.statuses == {"COMPLETED"}
    assert plan.reply is not None and str(plan.reply.destination) == "amqp:replies"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("pause: {}", "give exactly one of workflow_id, correlation_id"),
        ("pause: {workflow_id: a, query: b}", "give exactly one of workflow_id"),
        ("pause: {correlation_id: a}", "correlation_id and workflow_name go together"),
        ("pause: {workflow_id: a, on_missing: retry}", "on_missing: retry needs retry_for"),
        ("signal: {workflow_id: a, status: DONE}", "signal.status: Input should be"),
        ("complete_task: {workflow_id: a}", "give exactly one of task_ref"),
        ("complete_task: {correlation_id: a, workflow_name: w, task_id: t}", "task_id needs"),
        ("start_workflow: {name: '${body.name}'}", "start_workflow.name: must be a literal"),
        ("start_workflow: {name: w, verison: 1}", "start_workflow.verison: unknown key"),
        ("terminate: {workflow_id: '${body.id'}", "terminate.workflow_id: template"),
        ("terminate: {workflow_id: x}\npause: {workflow_id: x}", "give exactly one action"),
        ("description: no action", "give exactly one action"),
        ("pause: {workflow_id: x}\ncompletion: {destination: kafka:s}", "completion goes with"),
        ("start_workflow: {name: w}\ndead_letter: nowhere", "dead_letter: destination 'nowhere'"),
        ("start_workflow: {name: w, input: {a: '${x'}}", "start_workflow.input.a: template"),
        ("start_workflow: {name: w, input: 5}", "start_workflow.input: must be a JSON object"),
        ("start_workflow: {name: w, priority: 150}", "priority: must be between 0 and 99"),
        ("signal: {workflow_id: x, output: [1]}", "signal.output: must be a JSON object"),
    ],
)
def test_action_schema_errors(yaml_text: str, message: str) -> None:
    with pytest.raises(RuleError) as info:
        one_rule(yaml_text)
    assert message in str(info.value)
    assert str(info.value).startswith("rules.yaml:")


@pytest.mark.parametrize(
    ("yaml_text", "body", "message"),
    [
        ("start_workflow: {name: w, input: '${body.id}'}", BODY, "input must be a JSON object"),
        ("start_workflow: {name: w, priority: '${body.who}'}", BODY, "priority must be"),
        ("start_workflow: {name: w, priority: '${body.p}'}", {"p": 100}, "between 0 and 99"),
        ("pause: {workflow_id: '${body.missing}'}", BODY, "workflow_id must be a string, got null"),
        ("pause: {workflow_id: '${body.items}'}", {"items": [1]}, "must be a string, got list"),
        ("update_variables: {workflow_id: x, variables: '${body.id}'}", BODY, "variables must"),
        ("start_workflow: {name: w}\nidempotency_key: '${body.nope}'", BODY, "rendered null"),
    ],
)
def test_rendered_types_are_checked(yaml_text: str, body: Any, message: str) -> None:
    result = Router(one_rule(yaml_text)).route(kafka_event(body))
    assert not result.plans
    (failure,) = result.failures
    assert message in str(failure.error)
