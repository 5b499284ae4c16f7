"""A Plan: what one matched rule asks of Conductor for one event, fully rendered.

The router (rules/) builds Plans; dispatch (pipeline.py) executes them. A Plan names its rule
action, which is its entry in the action registry (`gateway.rules.actions.ACTIONS`), and a method
of `gateway.conductor.ConductorClient` with its keyword arguments, so executing it is one call:

    workflow_ids = resolve(plan.target)                    # only when plan.target is set
    await ACTIONS[plan.action].call(client, workflow_id, plan.params)  # once per resolved id
    await ACTIONS[plan.action].call(client, None, plan.params)  # complete/fail_task by task id

Starts (start_workflow, execute_workflow) go through the executor's start dedupe instead.

Rule action -> method (params are that method's keyword arguments):

- start_workflow -> start_workflow(name, version, input, correlation_id, priority,
  task_to_domain, workflow_def)
- execute_workflow -> execute_workflow(name, version, input, correlation_id, priority,
  wait_until_task_refs, wait_for_seconds)
- signal -> signal(status, output, task_ref)  (task_ref None = the first waiting task)
- complete_task -> signal(status="COMPLETED", output, task_ref)
  or, by task id and without a target: update_task(task_id, workflow_id, status, output)
- fail_task -> signal(status="FAILED", output, task_ref, reason_for_incompletion)
- update_variables -> update_variables(variables)
- terminate -> terminate(reason, trigger_failure_workflow)
- pause -> pause(); resume -> resume()
- retry -> retry(resume_subworkflow_tasks)
- restart -> restart(use_latest_definitions)
- rerun -> rerun(re_run_from_task_id, task_input, workflow_input, correlation_id)

The idempotency key of a start is applied by dispatch (gateway store, plus `idempotency_key`
for Orkes), never by the router.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.backoff import capped, jittered
from gateway.errors import ConfigError
from gateway.statuses import TERMINAL_WORKFLOW

OnMissing = Literal["dead_letter", "skip", "retry", "start"]
OnMany = Literal["all", "newest", "oldest", "error"]


@dataclass(frozen=True, slots=True)
class Destination:
    """Where to publish: `kafka:<topic>`, `amqp:<queue>` (default exchange) or
    `amqp:<exchange>/<routing key>`."""

    kind: Literal["kafka", "amqp"]
    name: str  # Kafka topic, AMQP exchange ("" = default exchange)
    routing_key: str = ""  # AMQP only

    @classmethod
    def parse(cls, spec: str) -> Destination:
        kind, sep, rest = spec.partition(":")
        if not sep or not rest or kind not in ("kafka", "amqp"):
            raise ConfigError(
                f"destination '{spec}' must be kafka:<topic>, amqp:<queue> or "
                "amqp:<exchange>/<routing key>"
            )
        if kind == "kafka":
            return cls("kafka", rest)
        exchange, slash, routing_key = rest.partition("/")
        if not slash:
            return cls("amqp", "", rest)
        return cls("amqp", exchange, routing_key)

    def __str__(self) -> str:
        if self.kind == "kafka":
            return f"kafka:{self.name}"
        if not self.name:
            return f"amqp:{self.routing_key}"
        return f"amqp:{self.name}/{self.routing_key}"


@dataclass(frozen=True, slots=True)
class Target:
    """How to find the workflow(s) an action acts on. Exactly one way is set."""

    workflow_id: str | None = None
    correlation_id: str | None = None
    workflow_name: str | None = None  # required with correlation_id
    query: str | None = None  # search query in the portable grammar
    on_missing: OnMissing = "dead_letter"
    retry_for_seconds: float = 0.0  # with on_missing="retry": how long to keep trying
    on_many: OnMany = "error"
    # with on_missing="start": start_workflow's arguments (name, version, input, correlation_id)
    start: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter for retryable failures."""

    max_attempts: int = 10
    initial_backoff: float = 0.5
    max_backoff: float = 60.0
    multiplier: float = 2.0
    max_age_seconds: float = 3600.0  # give up (dead-letter) once the event is this old

    def backoff(self, attempt: int) -> float:
        """Upper bound of the delay before `attempt` (1-based); `delay` adds the jitter."""
        return capped(
            attempt - 1,
            initial=self.initial_backoff,
            cap=self.max_backoff,
            multiplier=self.multiplier,
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (1-based), with full jitter."""
        return jittered(self.backoff(attempt))


@dataclass(frozen=True, slots=True)
class RateLimit:
    max_concurrent: int | None = None
    max_per_interval: int | None = None
    interval_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class CompletionSpec:
    """Publish what became of a started workflow."""

    destination: Destination
    statuses: frozenset[str] = TERMINAL_WORKFLOW


@dataclass(frozen=True, slots=True)
class ReplySpec:
    """Answer a request: to the message's reply-to (destination None) or a fixed destination."""

    destination: Destination | None = None
    wait_for_completion: bool = False  # start rules: reply with the completion event


@dataclass(frozen=True, slots=True)
class Plan:
    rule: str
    action: str
    method: str
    params: Mapping[str, Any]
    target: Target | None = None
    idempotency_key: str | None = None
    ordering_key: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    dead_letter: Destination | None = None
    rate_limit: RateLimit | None = None
    completion: CompletionSpec | None = None
    reply: ReplySpec | None = None
