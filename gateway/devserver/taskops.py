"""Worker-facing operations: poll, task updates, signals (§4.14, §4.15), and the timers.

Rate limits and concurrentExecLimit are applied at poll, as Conductor's queue does: a task
that would exceed them stays SCHEDULED for a later poll.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from gateway.devserver.decider import Decider, EngineState
from gateway.devserver.models import TaskResult
from gateway.devserver.state import TaskRecord, WorkflowRecord
from gateway.errors import NotFound, ServerError
from gateway.statuses import TASK_RESULT

log = logging.getLogger(__name__)


def check_result_status(status: str) -> str:
    """An invalid TaskResult.Status fails enum conversion, which OSS maps to 500 (§1.3)."""
    if status not in TASK_RESULT:
        raise ServerError(
            f"Failed to convert value '{status}' to TaskResult.Status; use one of "
            f"{', '.join(sorted(TASK_RESULT))}",
            status=500,
        )
    return status


class TaskOps:
    def __init__(self, store: EngineState, decider: Decider, orkes: bool) -> None:
        self.store = store
        self.decider = decider
        self.orkes = orkes
        self._polls: dict[str, deque[int]] = {}

    # --- poll --------------------------------------------------------------------------

    def poll(
        self, task_type: str, worker_id: str | None, domain: str | None, count: int = 1
    ) -> list[TaskRecord]:
        now = self.store.now()
        picked: list[TaskRecord] = []
        for task in list(self.store.queues.get(task_type, {}).values()):
            if len(picked) >= count:
                break
            if self._pollable(task, domain, now) and self._within_limits(task, now):
                self._hand_out(task, worker_id, now)
                picked.append(task)
        return picked

    @staticmethod
    def _pollable(task: TaskRecord, domain: str | None, now: int) -> bool:
        return task.status == "SCHEDULED" and task.domain == domain and task.available_at <= now

    def _within_limits(self, task: TaskRecord, now: int) -> bool:
        task_def = task.task_def
        limit = task_def.concurrent_exec_limit
        if limit is not None and limit > 0:
            running = sum(
                1 for t in self.store.running.values() if t.workflow_task.name == task_def.name
            )
            if running >= limit:
                return False
        per, seconds = task_def.rate_limit_per_frequency, task_def.rate_limit_frequency_in_seconds
        return self._within_rate(task_def.name, per, seconds, now)

    def _within_rate(self, name: str, per: int | None, seconds: int | None, now: int) -> bool:
        if not per or per <= 0:
            return True
        window = (seconds or 1) * 1000
        history = self._polls.setdefault(name, deque())
        while history and history[0] <= now - window:
            history.popleft()
        if len(history) >= per:
            return False
        history.append(now)
        return True

    def _hand_out(self, task: TaskRecord, worker_id: str | None, now: int) -> None:
        task.status = "IN_PROGRESS"
        task.start_time = task.start_time or now
        task.update_time = now
        task.poll_count += 1
        task.worker_id = worker_id
        task.callback_after_seconds = 0  # ExecutionService.poll resets it for the worker
        self.store.mark_running(task)
        self.store.changes += 1

    def get_task(self, task_id: str) -> TaskRecord | None:
        return self.store.tasks.get(task_id)

    # --- updates -----------------------------------------------------------------------

    def update(self, result: TaskResult) -> str:
        """POST /api/tasks: 404 for an unknown task; a terminal task or workflow is a no-op."""
        task = self.store.tasks.get(result.task_id)
        if task is None:
            raise NotFound(f"No such task found by id: {result.task_id}", status=404)
        output = result.output_data if result.output_data is not None else task.output_data
        self.apply(task, check_result_status(result.status), output, result)
        return task.task_id

    def apply(
        self, task: TaskRecord, status: str, output: dict[str, Any], result: TaskResult | None
    ) -> None:
        wf = self.store.workflows[task.workflow_id]
        if wf.terminal or task.terminal:
            return
        task.output_data = dict(output)
        if result is not None:
            task.worker_id = result.worker_id or task.worker_id
            if result.reason_for_incompletion is not None:
                task.reason_for_incompletion = result.reason_for_incompletion
        if status == "IN_PROGRESS":
            self._keep_running(task, result.callback_after_seconds if result else 0)
        else:
            self.decider.finish(task, status)
        self.store.touch(wf)
        # A PAUSED workflow's decide only lets async system tasks (a JOIN) look (§2.7).
        self.decider.decide(wf)

    def _keep_running(self, task: TaskRecord, callback_after_seconds: int) -> None:
        now = self.store.now()
        task.update_time = now
        if task.task_type == "SIMPLE":
            # A worker's IN_PROGRESS puts the task back in the queue after the callback delay.
            task.status = "SCHEDULED"
            task.callback_after_seconds = callback_after_seconds
            task.available_at = now + callback_after_seconds * 1000
            self.store.enqueue(task)

    def pending_by_ref(self, workflow_id: str, ref: str) -> TaskRecord | None:
        wf = self.store.workflows.get(workflow_id)
        if wf is None:
            return None
        pending = [t for t in wf.tasks if not t.terminal]
        exact = next((t for t in pending if t.ref == ref), None)
        if exact is not None:
            return exact
        return next((t for t in pending if t.ref.split("__")[0] == ref), None)

    def update_by_ref(
        self, workflow_id: str, ref: str, status: str, worker_id: str | None, body: dict[str, Any]
    ) -> str | None:
        """OSS: None (200 empty) when nothing is pending; Orkes: 404 (§4.14, §7)."""
        check_result_status(status)
        task = self.pending_by_ref(workflow_id, ref)
        if task is None:
            if self.orkes:
                raise NotFound(
                    f"Found no running task {ref} of workflow {workflow_id} to update", status=404
                )
            return None
        result = TaskResult(task_id=task.task_id, status=status, worker_id=worker_id)
        self.apply(task, status, {**task.output_data, **body}, result)
        return task.task_id

    def blocking_wait(self, wf: WorkflowRecord) -> TaskRecord | None:
        return next((t for t in wf.tasks if t.task_type == "WAIT" and not t.terminal), None)

    def signal(self, workflow_id: str, status: str, body: dict[str, Any]) -> TaskRecord | None:
        """Complete the first pending WAIT task; None when nothing is blocked."""
        check_result_status(status)
        wf = self.store.workflows.get(workflow_id)
        if wf is None:
            raise NotFound(f"No such workflow found by id: {workflow_id}", status=404)
        task = self.blocking_wait(wf)
        if task is not None:
            self.apply(task, status, {**task.output_data, **body}, None)
        return task

    # --- timers ------------------------------------------------------------------------

    def sweep(self) -> None:
        """Fire due timers: WAIT durations, task timeouts, workflow timeouts; go on with
        workflows whose last decide stopped at its round limit."""
        for workflow_id in list(self.store.unsettled):
            self.store.unsettled.discard(workflow_id)
            found = self.store.workflows.get(workflow_id)
            if found is not None:
                self.decider.decide(found)
        now = self.store.now()
        for task in list(self.store.running.values()):
            self._check_task(task, now)
        for workflow_id in list(self.store.timed):
            wf = self.store.workflows.get(workflow_id)
            if wf is None or wf.terminal:
                self.store.timed.discard(workflow_id)
            else:
                self._check_workflow(wf, now)

    def _check_task(self, task: TaskRecord, now: int) -> None:
        wf = self.store.workflows[task.workflow_id]
        if task.terminal or wf.terminal:
            return
        if task.wait_until is not None and now >= task.wait_until:
            self._time_step(wf, task, "COMPLETED", None)
        elif task.task_type == "SIMPLE" and task.status == "IN_PROGRESS":
            self._check_simple(wf, task, now)

    def _check_simple(self, wf: WorkflowRecord, task: TaskRecord, now: int) -> None:
        task_def = task.task_def
        if (
            task_def.timeout_seconds > 0
            and now - task.start_time >= task_def.timeout_seconds * 1000
        ):
            self._on_timeout(wf, task)
        elif now - task.update_time >= task_def.response_timeout_seconds * 1000:
            reason = (  # DeciderService.checkTaskResponseTimeout's words
                f"responseTimeout: {task_def.response_timeout_seconds} exceeded for the taskId: "
                f"{task.task_id} with Task Definition: {task_def.name}"
            )
            self._time_step(wf, task, "TIMED_OUT", reason)

    def _on_timeout(self, wf: WorkflowRecord, task: TaskRecord) -> None:
        policy = task.task_def.timeout_policy
        seconds = task.task_def.timeout_seconds
        elapsed = (self.store.now() - task.start_time) // 1000
        reason = (  # DeciderService.checkTaskTimeout's words
            f"Task timed out after {elapsed} seconds. Timeout configured as {seconds} seconds. "
            f"Timeout policy configured to {policy}"
        )
        if policy == "ALERT_ONLY":
            if task.reason_for_incompletion != reason:
                log.warning("task %s: %s", task.task_id, reason)
                task.reason_for_incompletion = reason
            return
        if policy == "RETRY":
            self._time_step(wf, task, "TIMED_OUT", reason)
            return
        self.decider.finish(task, "TIMED_OUT", reason)
        self.decider.end(wf, "TIMED_OUT", reason)

    def _time_step(
        self, wf: WorkflowRecord, task: TaskRecord, status: str, reason: str | None
    ) -> None:
        self.decider.finish(task, status, reason)
        self.store.touch(wf)
        if wf.status == "RUNNING":
            self.decider.decide(wf)

    def _check_workflow(self, wf: WorkflowRecord, now: int) -> None:
        self.decider.check_workflow_timeout(wf)
