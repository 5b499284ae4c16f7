"""The decider: what happens next in one sequential workflow.

Mirrors Conductor's DeciderService for the task types the dev server runs: the newest task
decides. Non-terminal -> wait; successful -> schedule the next one (or complete); failed ->
retry with the task definition's backoff, or end the workflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gateway.devserver.clock import Clock
from gateway.devserver.mapping import resolve
from gateway.devserver.metadata import Metadata
from gateway.devserver.models import TaskDef, WorkflowTask
from gateway.devserver.state import (
    RETRIABLE_TASK,
    SUCCESSFUL_TASK,
    TaskRecord,
    WorkflowRecord,
    new_id,
)

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass
class Store:
    """Everything the engine holds; single-threaded access from the event loop."""

    clock: Clock
    metadata: Metadata
    workflows: dict[str, WorkflowRecord] = field(default_factory=dict)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    # SCHEDULED worker tasks by task type (insertion order = FIFO), and IN_PROGRESS tasks,
    # so poll and the sweeper touch only what can change, not every execution ever started.
    queues: dict[str, dict[str, TaskRecord]] = field(default_factory=dict)
    running: dict[str, TaskRecord] = field(default_factory=dict)
    # Workflows with a TIME_OUT_WF workflow timeout, for the sweeper.
    timed: set[str] = field(default_factory=set)
    changes: int = 0

    def now(self) -> int:
        return self.clock.now_ms()

    def enqueue(self, task: TaskRecord) -> None:
        self.running.pop(task.task_id, None)
        self.queues.setdefault(task.workflow_task.name, {})[task.task_id] = task

    def mark_running(self, task: TaskRecord) -> None:
        self.queues.get(task.workflow_task.name, {}).pop(task.task_id, None)
        self.running[task.task_id] = task

    def forget(self, task: TaskRecord) -> None:
        """Stop tracking `task` as queued or running (it ended or was removed)."""
        self.queues.get(task.workflow_task.name, {}).pop(task.task_id, None)
        self.running.pop(task.task_id, None)

    def touch(self, wf: WorkflowRecord) -> None:
        wf.update_time = self.now()
        self.changes += 1


def retry_delay_seconds(task_def: TaskDef, retry_count: int) -> int:
    """Conductor's delay before retry number `retry_count + 1` (DeciderService.retry)."""
    base = task_def.retry_delay_seconds
    if task_def.retry_logic == "LINEAR_BACKOFF":
        return base * task_def.backoff_scale_factor * (retry_count + 1)
    if task_def.retry_logic == "EXPONENTIAL_BACKOFF":
        return int(base * 2**retry_count)
    return base


def parse_duration_ms(text: Any) -> int | None:
    """WAIT `duration`: "30s", "5m", "2h", "1d", "250ms" or bare seconds."""
    match = _DURATION.match(str(text))
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_MS[match.group(2) or "s"]


class Decider:
    def __init__(self, store: Store) -> None:
        self.store = store

    def context(self, wf: WorkflowRecord) -> dict[str, Any]:
        ctx: dict[str, Any] = {
            "workflow": {
                "input": wf.input,
                "output": wf.output,
                "variables": wf.variables,
                "workflowId": wf.workflow_id,
                "correlationId": wf.correlation_id,
                "workflowType": wf.name,
                "version": wf.version,
                "status": wf.status,
            }
        }
        for task in wf.tasks:  # later tasks of a ref (retries) win
            ctx[task.ref] = {"input": task.input_data, "output": task.output_data}
        return ctx

    def decide(self, wf: WorkflowRecord) -> None:
        """Advance `wf` as far as it can go without outside input."""
        while wf.status == "RUNNING":
            last = wf.tasks[-1] if wf.tasks else None
            if last is None:
                self._advance(wf, 0)
            elif not last.terminal:
                return
            elif last.status in SUCCESSFUL_TASK:
                self._advance(wf, last.position + 1)
            else:
                self._on_failure(wf, last)

    def _advance(self, wf: WorkflowRecord, position: int) -> None:
        if position >= len(wf.definition.tasks):
            self.end(wf, "COMPLETED", None)
        else:
            self.schedule(wf, position)

    def _on_failure(self, wf: WorkflowRecord, task: TaskRecord) -> None:
        if self._can_retry(task):
            self.schedule_retry(wf, task)
        elif task.workflow_task.optional:
            task.status = "COMPLETED_WITH_ERRORS"
        else:
            self._fail_with(wf, task)

    def _can_retry(self, task: TaskRecord) -> bool:
        return (
            task.task_type == "SIMPLE"
            and task.status in RETRIABLE_TASK
            and task.retry_count < task.task_def.retry_count
        )

    def _fail_with(self, wf: WorkflowRecord, task: TaskRecord) -> None:
        status = {"CANCELED": "TERMINATED", "TIMED_OUT": "TIMED_OUT"}.get(task.status, "FAILED")
        self._note_failed(wf, task)
        reason = (
            f"Task {task.task_id} failed with status: {task.status} and reason: "
            f"'{task.reason_for_incompletion}'"
        )
        self.end(wf, status, reason)

    def task_def_for(self, wt: WorkflowTask) -> TaskDef:
        if wt.task_definition is not None:
            return wt.task_definition
        registered = self.store.metadata.find_task_def(wt.name)
        # OSS HEAD gives an unregistered SIMPLE task an ad-hoc default definition (§4.18).
        return registered or TaskDef(name=wt.name)

    def schedule(self, wf: WorkflowRecord, position: int) -> TaskRecord:
        wt = wf.definition.tasks[position]
        task = self.new_task(wf, position, resolve(wt.input_parameters, self.context(wf)))
        self.start_task(wf, task)
        return task

    def new_task(self, wf: WorkflowRecord, position: int, input_data: dict[str, Any]) -> TaskRecord:
        wt = wf.definition.tasks[position]
        now = self.store.now()
        return TaskRecord(
            task_id=new_id(),
            workflow_id=wf.workflow_id,
            workflow_type=wf.name,
            position=position,
            workflow_task=wt,
            task_def=self.task_def_for(wt),
            status="SCHEDULED",
            seq=len(wf.tasks) + 1,
            input_data=input_data,
            scheduled_time=now,
            update_time=now,
            available_at=now,
            correlation_id=wf.correlation_id,
            workflow_priority=wf.priority,
            domain=wf.task_to_domain.get(wt.name, wf.task_to_domain.get("*")),
        )

    def schedule_retry(self, wf: WorkflowRecord, failed: TaskRecord) -> TaskRecord:
        delay = retry_delay_seconds(failed.task_def, failed.retry_count)
        failed.retried = True
        task = self.new_task(wf, failed.position, dict(failed.input_data))
        task.retry_count = failed.retry_count + 1
        task.retried_task_id = failed.task_id
        task.callback_after_seconds = delay
        task.available_at = task.scheduled_time + delay * 1000
        self.start_task(wf, task)
        return task

    def start_task(self, wf: WorkflowRecord, task: TaskRecord) -> None:
        """Append `task` and run it if it is a system task that finishes at once."""
        wf.tasks.append(task)
        self.store.tasks[task.task_id] = task
        self.store.touch(wf)
        kind = task.task_type
        if kind == "SIMPLE":
            self.store.enqueue(task)
        elif kind in ("WAIT", "HUMAN"):
            self._start_waiting(task)
        elif kind == "SET_VARIABLE":
            wf.variables.update(task.input_data)
            self.finish(task, "COMPLETED")
        else:
            self._terminate_task(wf, task)

    def _start_waiting(self, task: TaskRecord) -> None:
        task.status = "IN_PROGRESS"
        task.start_time = self.store.now()
        if task.task_type == "WAIT" and "duration" in task.input_data:
            duration = parse_duration_ms(task.input_data["duration"])
            if duration is not None:
                task.wait_until = task.start_time + duration
        self.store.mark_running(task)

    def _terminate_task(self, wf: WorkflowRecord, task: TaskRecord) -> None:
        """TERMINATE: end the workflow with terminationStatus; workflowOutput is its output."""
        status = str(task.input_data.get("terminationStatus", "")).upper()
        if status not in ("COMPLETED", "FAILED", "TERMINATED"):
            # Conductor fails the task itself; the decider then fails the workflow.
            self.finish(task, "FAILED", "given termination status is not valid")
            return
        output = task.input_data.get("workflowOutput")
        if output is not None:
            task.output_data = output if isinstance(output, dict) else {"output": output}
        self.finish(task, "COMPLETED")
        reason = task.input_data.get("terminationReason") or (
            f"Workflow is {status} by TERMINATE task: {task.task_id}"
        )
        self.end(wf, status, str(reason))

    def finish(self, task: TaskRecord, status: str, reason: str | None = None) -> None:
        now = self.store.now()
        task.status = status
        task.end_time = task.update_time = now
        task.start_time = task.start_time or now
        if reason is not None:
            task.reason_for_incompletion = reason
        self.store.forget(task)

    def end(self, wf: WorkflowRecord, status: str, reason: str | None) -> None:
        """Put `wf` in a terminal state, cancelling what is still running (WEO.terminate)."""
        wf.output = self._workflow_output(wf)
        for task in wf.tasks:
            if task.status in ("FAILED", "FAILED_WITH_TERMINAL_ERROR"):
                self._note_failed(wf, task)
            if not task.terminal:
                self.finish(task, "CANCELED")
        wf.status = status
        wf.reason_for_incompletion = reason
        wf.end_time = self.store.now()
        self.store.touch(wf)

    @staticmethod
    def _note_failed(wf: WorkflowRecord, task: TaskRecord) -> None:
        if task.ref not in wf.failed_reference_task_names:
            wf.failed_reference_task_names.append(task.ref)
        if task.workflow_task.name not in wf.failed_task_names:
            wf.failed_task_names.append(task.workflow_task.name)

    def _workflow_output(self, wf: WorkflowRecord) -> dict[str, Any]:
        """DeciderService.updateWorkflowOutput: a TERMINATE task's output, else the
        definition's outputParameters, else the last task's output."""
        if not wf.tasks:
            return wf.output
        terminate = next(
            (t for t in wf.tasks if t.task_type == "TERMINATE" and t.status == "COMPLETED"), None
        )
        if terminate is not None:
            return dict(terminate.output_data)
        if wf.definition.output_parameters:
            result = resolve(wf.definition.output_parameters, self.context(wf))
            return result if isinstance(result, dict) else {}
        return dict(wf.tasks[-1].output_data)
