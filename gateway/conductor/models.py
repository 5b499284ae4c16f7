"""Conductor's JSON shapes as pydantic models: camelCase on the wire, snake_case in Python.

Responses tolerate fields this client does not know (`extra="ignore"`), because Conductor
versions and Orkes add fields freely. Requests omit unset values (`to_wire()` drops None),
matching Conductor's own `NON_NULL` serialization.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from gateway.statuses import TERMINAL_TASK, TERMINAL_WORKFLOW, TaskResultStatus

# The query of `POST /tasks/{workflowId}/{status}/signal/sync` as the client sends it. The
# synchronous signal, not the asynchronous one: it answers 404 when no task was waiting, where
# the other answers 200 and drops the signal. A 1 ms wait, as the answer is not used;
# TARGET_WORKFLOW, as OSS fails (500) to render the other strategies when nothing blocks.
SIGNAL_SYNC_QUERY = {"returnStrategy": "TARGET_WORKFLOW", "timeoutMillis": "1"}

IdempotencyStrategy = Literal["FAIL", "RETURN_EXISTING", "FAIL_ON_RUNNING"]


class WireModel(BaseModel):
    """Base: camelCase aliases, snake_case names accepted too, unknown fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        """The JSON body Conductor expects: camelCase keys, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class _Response(WireModel):
    model_config = ConfigDict(frozen=True)


class Task(_Response):
    """One task of a workflow execution (also what a worker polls)."""

    task_id: str = ""
    task_type: str | None = None
    task_def_name: str | None = None
    reference_task_name: str | None = None
    status: str | None = None
    input_data: dict[str, Any] = Field(default_factory=dict)
    output_data: dict[str, Any] = Field(default_factory=dict)
    reason_for_incompletion: str | None = None
    seq: int | None = None
    retry_count: int | None = None
    poll_count: int | None = None
    scheduled_time: int | None = None
    start_time: int | None = None
    end_time: int | None = None
    update_time: int | None = None
    workflow_instance_id: str | None = None
    workflow_type: str | None = None
    correlation_id: str | None = None
    callback_after_seconds: int | None = None
    worker_id: str | None = None
    domain: str | None = None
    iteration: int | None = None
    sub_workflow_id: str | None = None
    retried_task_id: str | None = None
    response_timeout_seconds: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_TASK


class Workflow(_Response):
    """A workflow execution (GET /workflow/{id}, correlated lookups, variables update)."""

    workflow_id: str
    workflow_name: str | None = None
    workflow_version: int | None = None
    status: str
    input: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] = Field(default_factory=dict)
    variables: dict[str, Any] = Field(default_factory=dict)
    correlation_id: str | None = None
    tasks: list[Task] = Field(default_factory=list)
    reason_for_incompletion: str | None = None
    create_time: int | None = None
    start_time: int | None = None
    update_time: int | None = None
    end_time: int | None = None
    priority: int | None = None
    parent_workflow_id: str | None = None
    failed_reference_task_names: list[str] = Field(default_factory=list)
    event: str | None = None
    task_to_domain: dict[str, str] = Field(default_factory=dict)
    re_run_from_workflow_id: str | None = None
    idempotency_key: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_WORKFLOW


class WorkflowStatusSummary(_Response):
    """GET /workflow/{id}/status: the cheap status read."""

    workflow_id: str
    status: str
    correlation_id: str | None = None
    output: dict[str, Any] | None = None
    variables: dict[str, Any] | None = None


class WorkflowRun(_Response):
    """The answer of a synchronous execute. `signal_timeout` is True when the wait ran out
    before the workflow finished or reached a blocking task (OSS 200, Orkes 206)."""

    workflow_id: str | None = None
    request_id: str | None = None
    correlation_id: str | None = None
    status: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] = Field(default_factory=dict)
    variables: dict[str, Any] = Field(default_factory=dict)
    tasks: list[Task] = Field(default_factory=list)
    priority: int | None = None
    create_time: int | None = None
    update_time: int | None = None
    target_workflow_id: str | None = None
    target_workflow_status: str | None = None
    response_type: str | None = None
    signal_timeout: bool = False


class WorkflowSummary(_Response):
    """One search hit. Times are ISO strings and input/output are strings on OSS."""

    workflow_id: str
    workflow_type: str | None = None
    version: int | None = None
    correlation_id: str | None = None
    status: str | None = None
    start_time: str | int | None = None
    update_time: str | int | None = None
    end_time: str | int | None = None
    input: Any = None
    output: Any = None
    reason_for_incompletion: str | None = None
    execution_time: int | None = None
    failed_reference_task_names: Any = None
    priority: int | None = None
    idempotency_key: str | None = None
    parent_workflow_id: str | None = None


class SearchResult(_Response):
    """GET /workflow/search: the total count and one page of summaries."""

    total_hits: int = 0
    results: list[WorkflowSummary] = Field(default_factory=list)
    query_id: str | None = None


class BulkResponse(_Response):
    """A bulk operation's outcome per workflow id (the HTTP status is always 200)."""

    bulk_successful_results: list[str] = Field(default_factory=list)
    bulk_error_results: dict[str, str] = Field(default_factory=dict)


class TaskDef(WireModel):
    """A task definition with its retry, timeout and rate-limit policy.

    Validated here so a bad definition fails before it reaches Conductor, with the same rule
    Conductor applies: `responseTimeoutSeconds <= timeoutSeconds` when `timeoutSeconds > 0`.
    """

    name: str = Field(min_length=1)
    description: str | None = None
    retry_count: int = Field(3, ge=0)
    retry_logic: Literal["FIXED", "EXPONENTIAL_BACKOFF", "LINEAR_BACKOFF"] = "FIXED"
    retry_delay_seconds: int = Field(60, ge=0)
    backoff_scale_factor: int = Field(1, ge=1)
    timeout_seconds: int = Field(0, ge=0)
    total_timeout_seconds: int | None = Field(None, ge=0)
    response_timeout_seconds: int = Field(3600, ge=1)
    poll_timeout_seconds: int | None = Field(None, ge=0)
    timeout_policy: Literal["RETRY", "TIME_OUT_WF", "ALERT_ONLY"] = "TIME_OUT_WF"
    concurrent_exec_limit: int | None = Field(None, ge=0)
    rate_limit_per_frequency: int | None = Field(None, ge=0)
    rate_limit_frequency_in_seconds: int | None = Field(None, ge=0)
    owner_email: str | None = None
    input_keys: list[str] | None = None
    output_keys: list[str] | None = None
    input_template: dict[str, Any] | None = None
    create_time: int | None = None
    update_time: int | None = None

    @model_validator(mode="after")
    def _timeouts_fit(self) -> TaskDef:
        if 0 < self.timeout_seconds < self.response_timeout_seconds:
            raise ValueError(
                f"task '{self.name}': responseTimeoutSeconds ({self.response_timeout_seconds}) "
                f"must be <= timeoutSeconds ({self.timeout_seconds}); lower "
                "responseTimeoutSeconds or raise timeoutSeconds (0 = no overall timeout)"
            )
        return self


class WorkflowDef(WireModel):
    """A workflow definition. Tasks stay plain mappings: their shape depends on the type."""

    name: str = Field(min_length=1)
    description: str | None = None
    version: int = Field(1, ge=1)
    tasks: list[dict[str, Any]] = Field(min_length=1)
    input_parameters: list[str] | None = None
    output_parameters: dict[str, Any] | None = None
    failure_workflow: str | None = None
    schema_version: int = 2
    restartable: bool = True
    workflow_status_listener_enabled: bool = False
    workflow_status_listener_sink: str | None = None
    owner_email: str | None = None
    timeout_policy: Literal["TIME_OUT_WF", "ALERT_ONLY"] = "ALERT_ONLY"
    timeout_seconds: int = Field(0, ge=0)
    variables: dict[str, Any] | None = None
    input_template: dict[str, Any] | None = None


class StartWorkflowRequest(WireModel):
    """Body of POST /workflow and of the synchronous execute."""

    name: str = Field(min_length=1)
    version: int | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    correlation_id: str | None = None
    priority: int | None = Field(None, ge=0, le=99)
    task_to_domain: dict[str, str] | None = None
    workflow_def: dict[str, Any] | None = None
    idempotency_key: str | None = None
    idempotency_strategy: IdempotencyStrategy | None = None


class RerunWorkflowRequest(WireModel):
    """Body of POST /workflow/{id}/rerun."""

    re_run_from_workflow_id: str | None = None
    re_run_from_task_id: str | None = None
    task_input: dict[str, Any] | None = None
    workflow_input: dict[str, Any] | None = None
    correlation_id: str | None = None


class TaskResult(WireModel):
    """Body of POST /tasks: the result of one task, by task id."""

    workflow_instance_id: str
    task_id: str
    status: TaskResultStatus
    output_data: dict[str, Any] = Field(default_factory=dict)
    reason_for_incompletion: str | None = None
    worker_id: str | None = None
