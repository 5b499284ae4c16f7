"""Models (wire names, unknown fields, nulls, task-definition rules) and the query builder."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.conductor import Query, TaskDef, Workflow
from gateway.conductor.models import StartWorkflowRequest
from gateway.errors import BadRequest


def test_wire_names_are_camel_case_and_nulls_are_left_out() -> None:
    body = StartWorkflowRequest(name="flow", correlation_id="c1", input={"a": None}).to_wire()
    assert body == {"name": "flow", "correlationId": "c1", "input": {"a": None}}


def test_unknown_response_fields_are_ignored() -> None:
    wf = Workflow.model_validate(
        {"workflowId": "w", "status": "RUNNING", "brandNewField": 1, "tasks": [{"taskId": "t",
         "referenceTaskName": "r", "status": "SCHEDULED", "somethingElse": []}]}
    )  # fmt: skip
    assert wf.workflow_id == "w" and wf.tasks[0].reference_task_name == "r"
    assert not wf.terminal and not wf.tasks[0].terminal


def test_task_def_carries_every_policy_field_on_the_wire() -> None:
    wire = TaskDef(
        name="t", retry_count=2, retry_logic="LINEAR_BACKOFF", retry_delay_seconds=3,
        backoff_scale_factor=2, timeout_seconds=100, response_timeout_seconds=50,
        poll_timeout_seconds=10, timeout_policy="ALERT_ONLY", concurrent_exec_limit=4,
        rate_limit_per_frequency=5, rate_limit_frequency_in_seconds=6,
    ).to_wire()  # fmt: skip
    assert wire == {
        "name": "t", "retryCount": 2, "retryLogic": "LINEAR_BACKOFF", "retryDelaySeconds": 3,
        "backoffScaleFactor": 2, "timeoutSeconds": 100, "responseTimeoutSeconds": 50,
        "pollTimeoutSeconds": 10, "timeoutPolicy": "ALERT_ONLY", "concurrentExecLimit": 4,
        "rateLimitPerFrequency": 5, "rateLimitFrequencyInSeconds": 6,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"timeout_seconds": 60, "response_timeout_seconds": 3600}, "must be <= timeoutSeconds"),
        ({"retry_count": -1}, "retry_count"),
        ({"retry_logic": "RANDOM"}, "retry_logic"),
        ({"response_timeout_seconds": 0}, "response_timeout_seconds"),
        ({"timeout_policy": "NEVER"}, "timeout_policy"),
    ],
)
def test_task_def_rejects_what_conductor_would(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        TaskDef(name="t", **fields)  # type: ignore[arg-type]


def test_task_def_without_overall_timeout_accepts_any_response_timeout() -> None:
    assert TaskDef(name="t", timeout_seconds=0, response_timeout_seconds=7200).timeout_seconds == 0


def test_query_uses_the_portable_grammar() -> None:
    query = (
        Query()
        .eq("workflowType", "order_flow")
        .in_("status", ["RUNNING", "PAUSED"])
        .gt("startTime", 1726655978410)
        .lt("endTime", 1726655978999)
    )
    assert str(query) == (
        "workflowType = order_flow AND status IN (RUNNING,PAUSED) AND "
        "startTime > 1726655978410 AND endTime < 1726655978999"
    )
    assert not Query() and str(Query()) == ""


@pytest.mark.parametrize(
    "value",
    [
        "x AND status = RUNNING",  # a second clause
        "a,b",  # a list inside a value
        "abc*",  # a wildcard (LIKE on SQLite)
        "o'brien",
        '"quoted"',
        "(x)",
        "",
        "tab\there",
    ],
)
def test_query_rejects_values_that_could_change_the_query(value: str) -> None:
    with pytest.raises(BadRequest, match="may only contain"):
        Query().eq("correlationId", value)
    with pytest.raises(BadRequest):
        Query().in_("status", ["RUNNING", value])


def test_query_rejects_unknown_fields_and_non_numeric_times() -> None:
    with pytest.raises(BadRequest, match="not searchable"):
        Query().eq("input.orderId", "1")
    with pytest.raises(BadRequest, match="epoch ms"):
        Query().gt("startTime", "yesterday")  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="at least one"):
        Query().in_("status", [])


def test_query_refuses_modified_time_which_oss_ignores() -> None:
    # OSS's index drops unknown fields silently: `modifiedTime > t` would match everything.
    with pytest.raises(BadRequest, match=r"modifiedTime.*updateTime"):
        Query().gt("modifiedTime", 1726655978410)
    assert str(Query().gt("updateTime", 1)) == "updateTime > 1"
