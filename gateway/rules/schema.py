"""The rules file as pydantic models: the edge where YAML is validated (unknown keys forbidden).

These models only check shapes; `loader.py` then compiles templates (`template.py`), patterns
(`pattern.py`) and actions (`actions.py`) into frozen values. Strings in action parameters may
hold `${...}` templates.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.statuses import WorkflowStatus

ACTIONS = (
    "start_workflow",
    "execute_workflow",
    "signal",
    "complete_task",
    "fail_task",
    "update_variables",
    "terminate",
    "pause",
    "resume",
    "retry",
    "restart",
    "rerun",
)
TaskStatus = Literal["COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "IN_PROGRESS"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RetryModel(_Model):
    """Retry of retryable failures; keys left out come from `defaults.retry`."""

    max_attempts: int | None = Field(None, ge=1, le=10_000)
    initial_backoff: float | None = Field(None, gt=0, le=3_600)
    max_backoff: float | None = Field(None, gt=0, le=86_400)
    multiplier: float | None = Field(None, ge=1, le=10)
    max_age_seconds: float | None = Field(None, gt=0)


class RateLimitModel(_Model):
    max_concurrent: int | None = Field(None, ge=1, le=100_000)
    max_per_interval: int | None = Field(None, ge=1)
    interval_seconds: float = Field(1.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _something(self) -> RateLimitModel:
        if self.max_concurrent is None and self.max_per_interval is None:
            raise ValueError("give max_concurrent, max_per_interval or both")
        return self


class CompletionModel(_Model):
    destination: str
    statuses: list[WorkflowStatus] | None = Field(None, min_length=1)


class ReplyModel(_Model):
    destination: str | None = None  # None: the message's reply-to
    wait_for_completion: bool = False


class DefaultsModel(_Model):
    retry: RetryModel = Field(default_factory=RetryModel)
    dead_letter: str | None = None
    strict: bool = False


class SourceModel(_Model):
    topic: str | None = Field(None, min_length=1)
    topic_pattern: str | None = Field(None, min_length=1)
    queue: str | None = Field(None, min_length=1)
    exchange: str | None = Field(None, min_length=1)
    routing_key: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_selector(self) -> SourceModel:
        given = [k for k in ("topic", "topic_pattern", "queue") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of topic, topic_pattern (Kafka) or queue (AMQP), "
                f"got {given or 'none'}"
            )
        if self.queue is None and (self.exchange or self.routing_key):
            raise ValueError("exchange and routing_key go with queue (AMQP) only")
        if self.routing_key is not None and self.exchange is None:
            raise ValueError("routing_key needs exchange (the exchange the queue is bound to)")
        return self


# --- actions ----------------------------------------------------------------------------


class StartOnMissingModel(_Model):
    """`on_missing: start`: the workflow to start when the target is not found (signal-with-
    start). Its name and correlation id default to the target's, so later events find it."""

    name: str | None = Field(None, min_length=1)
    version: int | None = Field(None, ge=1)
    input: Any = None
    correlation_id: str | None = None


def started_on_missing(model: Any) -> StartOnMissingModel | None:
    """The `start:` block of an action that has one (signal, complete_task, update_variables)."""
    start: StartOnMissingModel | None = getattr(model, "start", None)
    return start


class _Targeted(_Model):
    """How to find the workflow: exactly one of workflow_id, correlation_id (+ workflow_name),
    or query; plus what to do when none or several are found."""

    workflow_id: str | None = None
    correlation_id: str | None = None
    workflow_name: str | None = None
    query: str | None = None
    on_missing: Literal["dead_letter", "skip", "retry", "start"] = "dead_letter"
    retry_for_seconds: float = Field(0.0, ge=0, le=7 * 86_400)
    on_many: Literal["all", "newest", "oldest", "error"] = "error"

    @model_validator(mode="after")
    def _one_target(self) -> _Targeted:
        self._check_target()
        return self

    def _check_target(self) -> None:
        given = [k for k in ("workflow_id", "correlation_id", "query") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of workflow_id, correlation_id (with workflow_name) or "
                f"query to find the workflow, got {given or 'none'}"
            )
        if (self.correlation_id is None) != (self.workflow_name is None):
            raise ValueError("correlation_id and workflow_name go together")
        if (self.on_missing == "retry") != (self.retry_for_seconds > 0):
            raise ValueError("on_missing: retry needs retry_for_seconds > 0 (and only then)")
        start = started_on_missing(self)
        if (self.on_missing == "start") != (start is not None):
            raise ValueError(
                "on_missing: start needs a start: block (and only then); it is for signal, "
                "complete_task and update_variables"
            )
        if start is not None and self.correlation_id is None:
            raise ValueError(
                "on_missing: start needs the target by correlation_id (with workflow_name): "
                "the started workflow must be found by the next event of the same key"
            )
        if start is not None and start.name not in (None, self.workflow_name):
            raise ValueError(
                f"start.name '{start.name}' differs from workflow_name "
                f"'{self.workflow_name}'; leave start.name out or make them the same"
            )


class NewWorkflowModel(_Model):
    """What start_workflow and execute_workflow share: which workflow, with what; optionally
    its definition, inline or from a file, to run without registering it."""

    name: str = Field(min_length=1)
    version: int | None = Field(None, ge=1)
    input: Any = None
    correlation_id: str | None = None
    priority: Any = None  # 0-99, or a template
    workflow_def: dict[str, Any] | None = None
    workflow_def_file: str | None = Field(None, min_length=1)  # relative to the rules file

    @model_validator(mode="after")
    def _one_definition(self) -> NewWorkflowModel:
        if self.workflow_def is not None and self.workflow_def_file is not None:
            raise ValueError("give workflow_def or workflow_def_file, not both")
        return self


class StartWorkflowModel(NewWorkflowModel):
    task_to_domain: dict[str, str] | None = None


class ExecuteWorkflowModel(NewWorkflowModel):
    wait_until_task_refs: list[str] | None = Field(None, min_length=1)
    wait_for_seconds: int = Field(10, ge=1, le=3_600)


class _StartsOnMissing(_Targeted):
    """signal, complete_task, update_variables: may start the workflow they find none of."""

    start: StartOnMissingModel | None = None


class SignalModel(_StartsOnMissing):
    status: TaskStatus = "COMPLETED"
    output: Any = None
    task_ref: str | None = None  # None: the first waiting (WAIT) task
    reason: str | None = None


class _TaskModel(_Targeted):
    """complete_task / fail_task: by task_ref on a found workflow, or by task_id + workflow_id."""

    task_ref: str | None = None
    task_id: str | None = None
    output: Any = None

    def _check_target(self) -> None:
        if (self.task_ref is None) == (self.task_id is None):
            raise ValueError("give exactly one of task_ref (with a workflow target) or task_id")
        if self.task_id is not None:
            if self.workflow_id is None or self.correlation_id or self.query:
                raise ValueError("task_id needs workflow_id (and no correlation_id or query)")
            return
        super()._check_target()


class CompleteTaskModel(_TaskModel, _StartsOnMissing):
    pass


class FailTaskModel(_TaskModel):
    reason: str | None = None
    terminal: bool = False  # FAILED_WITH_TERMINAL_ERROR: no task retries


class UpdateVariablesModel(_StartsOnMissing):
    variables: Any  # an object, or a template that renders to one


class TerminateModel(_Targeted):
    reason: str | None = None
    trigger_failure_workflow: bool = False


class PauseModel(_Targeted):
    pass


class ResumeModel(_Targeted):
    pass


class RetryActionModel(_Targeted):
    resume_subworkflow_tasks: bool = False


class RestartModel(_Targeted):
    use_latest_definitions: bool = False


class RerunModel(_Targeted):
    from_task_id: str | None = None
    task_input: Any = None
    workflow_input: Any = None
    new_correlation_id: str | None = None


class RuleModel(_Model):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    description: str | None = None
    source: SourceModel
    match: dict[str, Any] | None = None
    condition: str | None = None
    accept_raw_text: bool = False
    strict: bool | None = None
    idempotency_key: str | None = None
    ordering_key: str | None = None
    retry: RetryModel | None = None
    dead_letter: str | None = None
    rate_limit: RateLimitModel | None = None
    completion: CompletionModel | None = None
    reply: ReplyModel | None = None

    start_workflow: StartWorkflowModel | None = None
    execute_workflow: ExecuteWorkflowModel | None = None
    signal: SignalModel | None = None
    complete_task: CompleteTaskModel | None = None
    fail_task: FailTaskModel | None = None
    update_variables: UpdateVariablesModel | None = None
    terminate: TerminateModel | None = None
    pause: PauseModel | None = None
    resume: ResumeModel | None = None
    retry_workflow: RetryActionModel | None = None
    restart: RestartModel | None = None
    rerun: RerunModel | None = None

    @model_validator(mode="after")
    def _one_action(self) -> RuleModel:
        given = [name for name in ACTION_KEYS if getattr(self, ACTION_KEYS[name]) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one action ({', '.join(ACTION_KEYS)}), got {given or 'none'}"
            )
        action = given[0]
        if self.completion is not None and action not in ("start_workflow", "execute_workflow"):
            raise ValueError("completion goes with start_workflow or execute_workflow only")
        if self.reply is not None and action not in ("start_workflow", "execute_workflow"):
            raise ValueError("reply goes with start_workflow or execute_workflow only")
        return self

    @property
    def action(self) -> str:
        return next(name for name, attr in ACTION_KEYS.items() if getattr(self, attr) is not None)

    @property
    def action_model(self) -> _Model:
        value = getattr(self, ACTION_KEYS[self.action])
        assert isinstance(value, _Model)
        return value


# The rule key of each action. `retry` is taken by the retry policy, so the retry *action*
# is spelled `retry_workflow` in YAML.
ACTION_KEYS: dict[str, str] = {name: name for name in ACTIONS} | {"retry": "retry_workflow"}


class RuleSetModel(_Model):
    version: Literal[1] = 1
    defaults: DefaultsModel = Field(default_factory=DefaultsModel)
    on_unmatched: Literal["ack", "dead_letter"] = "ack"
    match_mode: Literal["first", "all"] = "first"
    rules: list[Any] = Field(default_factory=list)  # each validated on its own (RuleModel)
