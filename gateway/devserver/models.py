"""Wire models the dev server reads: definitions and request bodies (camelCase on the wire).

Unknown fields are kept (`extra="allow"`) so a definition reads back as it was registered, the
way Conductor echoes fields it does not interpret.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

IdempotencyStrategy = Literal["FAIL", "RETURN_EXISTING", "FAIL_ON_RUNNING"]


class EchoModel(BaseModel):
    """Base: camelCase aliases, snake_case names accepted too, unknown fields kept and echoed
    (unlike the client's `WireModel`, which ignores them)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def wire(self) -> dict[str, Any]:
        """The JSON object Conductor would send: camelCase, nulls omitted."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class TaskDef(EchoModel):
    name: str = Field(min_length=1)
    description: str | None = None
    retry_count: int = Field(default=3, ge=0)
    timeout_seconds: int = 0
    timeout_policy: Literal["RETRY", "TIME_OUT_WF", "ALERT_ONLY"] = "TIME_OUT_WF"
    retry_logic: Literal["FIXED", "EXPONENTIAL_BACKOFF", "LINEAR_BACKOFF"] = "FIXED"
    retry_delay_seconds: int = Field(default=60, ge=0)
    response_timeout_seconds: int = Field(default=3600, ge=1)
    concurrent_exec_limit: int | None = None
    # Conductor answers with these defaults filled in (TaskDef.java), never with nulls.
    rate_limit_per_frequency: int = Field(default=0, ge=0)
    rate_limit_frequency_in_seconds: int = Field(default=1, ge=0)
    poll_timeout_seconds: int | None = None
    backoff_scale_factor: int = Field(default=1, ge=1)
    total_timeout_seconds: int = Field(default=0, ge=0)
    input_keys: list[str] = Field(default_factory=list)
    output_keys: list[str] = Field(default_factory=list)
    input_template: dict[str, Any] = Field(default_factory=dict)
    owner_email: str | None = None
    create_time: int | None = None
    created_by: str | None = None

    @model_validator(mode="after")
    def _check_timeouts(self) -> TaskDef:
        # TaskTimeoutConstraint: the most common registration failure in real Conductor.
        if self.timeout_seconds > 0 and self.response_timeout_seconds > self.timeout_seconds:
            raise ValueError(
                f"TaskDef: {self.name} responseTimeoutSeconds: {self.response_timeout_seconds} "
                f"must be less than timeoutSeconds: {self.timeout_seconds}"
            )
        return self


class WorkflowTask(EchoModel):
    """One task of a definition. Which fields a type needs is checked by its handler
    (gateway/devserver/tasks) when the definition is registered or started inline."""

    name: str = Field(min_length=1)
    task_reference_name: str = Field(min_length=1)
    type: str = "SIMPLE"
    input_parameters: dict[str, Any] = Field(default_factory=dict)
    optional: bool = False
    task_definition: TaskDef | None = None
    # Control flow: the nested task lists, typed so that nested tasks are validated too.
    decision_cases: dict[str, list[WorkflowTask]] | None = None
    default_case: list[WorkflowTask] | None = None
    fork_tasks: list[list[WorkflowTask]] | None = None
    loop_over: list[WorkflowTask] | None = None
    join_on: list[str] | None = None
    loop_condition: str | None = None
    evaluator_type: str | None = None
    expression: str | None = None
    case_value_param: str | None = None
    case_expression: str | None = None
    sub_workflow_param: dict[str, Any] | None = None
    dynamic_task_name_param: str | None = None
    dynamic_fork_tasks_param: str | None = None
    dynamic_fork_tasks_input_param_name: str | None = None


class WorkflowDef(EchoModel):
    name: str = Field(min_length=1)
    description: str | None = None
    version: int = 1
    tasks: list[WorkflowTask] = Field(min_length=1)
    input_parameters: list[str] = Field(default_factory=list)
    output_parameters: dict[str, Any] = Field(default_factory=dict)
    schema_version: int = 2
    restartable: bool = True
    workflow_status_listener_enabled: bool = False
    timeout_policy: Literal["TIME_OUT_WF", "ALERT_ONLY"] = "ALERT_ONLY"
    timeout_seconds: int = 0
    variables: dict[str, Any] = Field(default_factory=dict)
    input_template: dict[str, Any] = Field(default_factory=dict)
    owner_email: str | None = None
    create_time: int | None = None
    failure_workflow: str | None = None


class StartWorkflowRequest(EchoModel):
    name: str | None = None
    version: int | None = None
    correlation_id: str | None = None
    input: dict[str, Any] | None = Field(default_factory=dict)
    task_to_domain: dict[str, str] = Field(default_factory=dict)
    workflow_def: WorkflowDef | None = None
    priority: int = 0
    created_by: str | None = None
    idempotency_key: str | None = None
    idempotency_strategy: IdempotencyStrategy | None = None


class TaskResult(EchoModel):
    task_id: str
    workflow_instance_id: str | None = None
    status: str
    output_data: dict[str, Any] | None = None
    reason_for_incompletion: str | None = None
    callback_after_seconds: int = 0
    worker_id: str | None = None


class RerunRequest(EchoModel):
    re_run_from_workflow_id: str | None = None
    workflow_input: dict[str, Any] | None = None
    re_run_from_task_id: str | None = None
    task_input: dict[str, Any] | None = None
    correlation_id: str | None = None
