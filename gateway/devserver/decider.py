"""The decider: what happens next in a workflow (Conductor's DeciderService).

Executions are flat task lists, as Conductor keeps them; where a task sits in the definition
(a fork branch, a switch case, a loop body) is its tree node. Each decide repeats two phases
until nothing changes: settle the tasks that ended (retry or fail the unsuccessful ones,
schedule the successors of the others), then re-evaluate running system tasks (JOIN,
DO_WHILE, SUB_WORKFLOW). What each task type does is its handler's business
(gateway/devserver/tasks). Decides are queued and run one at a time, so a child workflow
that ends inside its parent's decide wakes the parent afterwards, never re-entrantly.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.devserver.clock import Clock
from gateway.devserver.mapping import resolve
from gateway.devserver.metadata import Metadata
from gateway.devserver.models import TaskDef, WorkflowDef, WorkflowTask
from gateway.devserver.state import RETRIABLE_TASK, TaskRecord, WorkflowRecord, new_id
from gateway.devserver.tasks import HANDLERS
from gateway.devserver.tasks.base import Slot, TaskHandler
from gateway.devserver.tasks.tree import Node, Tree
from gateway.devserver.tasks.waiting import parse_duration_ms
from gateway.statuses import SUCCESSFUL_TASK

# A loop whose body is all system tasks and whose condition never turns false would spin
# forever inside one decide and hold the event loop; like Conductor, which re-queues a workflow
# whose decide runs too long, a decide stops after this many rounds and the sweeper goes on.
MAX_ROUNDS = 200

__all__ = ["Decider", "EngineState", "parse_duration_ms", "retry_delay_seconds"]


@dataclass
class EngineState:
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
    # Workflows whose decide stopped at MAX_ROUNDS, for the sweeper to decide again.
    unsettled: set[str] = field(default_factory=set)
    changes: int = 0
    # EVENT sinks kafka:/amqp:... go here (sink, JSON payload); `gateway dev` gives its brokers.
    publish: Callable[[str, bytes], Awaitable[None]] | None = None

    def now(self) -> int:
        return self.clock.now_ms()

    def enqueue(self, task: TaskRecord) -> None:
        self.running.pop(task.task_id, None)
        if task.terminal:
            return
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


class Decider:
    def __init__(self, store: EngineState) -> None:
        self.store = store
        self._waiting: dict[str, None] = {}  # workflow ids to decide, in order
        self._deciding = False

    # --- what handlers use (tasks.base.Runtime) ------------------------------------------

    def handler(self, task: TaskRecord) -> TaskHandler:
        return HANDLERS[task.task_type]

    def tree(self, wf: WorkflowRecord) -> Tree:
        if wf.tree is None:
            wf.tree = Tree(wf.definition, HANDLERS)
        return wf.tree

    def workflow(self, workflow_id: str | None) -> WorkflowRecord | None:
        return self.store.workflows.get(workflow_id) if workflow_id else None

    def context(self, wf: WorkflowRecord) -> dict[str, Any]:
        ctx: dict[str, Any] = {
            "workflow": {
                "input": wf.input,
                "output": wf.output,
                "variables": wf.variables,
                "workflowId": wf.workflow_id,
                "parentWorkflowId": wf.parent_workflow_id,
                "parentWorkflowTaskId": wf.parent_workflow_task_id,
                "correlationId": wf.correlation_id,
                "workflowType": wf.name,
                "version": wf.version,
                "status": wf.status,
                "reasonForIncompletion": wf.reason_for_incompletion,
                "schemaVersion": wf.definition.schema_version,
            }
        }
        # Later tasks of a ref (retries, later loop iterations) win; loop tasks are found
        # under their ref without the __N suffix, as in Conductor.
        for task in wf.tasks:
            ctx[task.node.ref] = {
                "input": task.input_data,
                "output": task.output_data,
                "taskId": task.task_id,
                "status": task.status,
                "referenceTaskName": task.ref,
                "retryCount": task.retry_count,
                "iteration": task.iteration,
            }
        return ctx

    def task_input(
        self, wf: WorkflowRecord, wt: WorkflowTask, task_id: str | None = None
    ) -> dict[str, Any]:
        """`wt.inputParameters` mapped against the workflow now (PU.getTaskInputV2): the task
        definition's inputTemplate fills missing keys and keys that map to null, and
        `${CPEWF_TASK_ID}` is `task_id`, for the task types whose mapper passes them."""
        handler = HANDLERS[wt.type]
        template = self.task_def_for(wt).input_template if handler.input_template else {}
        params = {**copy.deepcopy(template), **wt.input_parameters}
        result = resolve(params, self.context(wf), task_id if handler.own_task_id else None)
        assert isinstance(result, dict)
        for key, value in result.items():
            if value is None and key in template:
                result[key] = copy.deepcopy(template[key])
        return result

    def task_def_for(self, wt: WorkflowTask) -> TaskDef:
        if wt.task_definition is not None:
            return wt.task_definition
        registered = self.store.metadata.find_task_def(wt.name)
        return registered or HANDLERS[wt.type].default_task_def(wt)

    def new_task(
        self,
        wf: WorkflowRecord,
        node: Node,
        iteration: int,
        input_data: dict[str, Any],
        task_id: str | None = None,
    ) -> TaskRecord:
        wt = node.task
        handler = HANDLERS[wt.type]
        now = self.store.now()
        return TaskRecord(
            task_id=task_id or new_id(),
            workflow_id=wf.workflow_id,
            workflow_type=wf.name,
            node=node,
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
            ref_name=self.ref_for(node, iteration),
            iteration=iteration,
            type_name=handler.type_name(wt),
            def_name=handler.def_name(wt),
        )

    @staticmethod
    def ref_for(node: Node, iteration: int) -> str:
        return f"{node.ref}__{iteration}" if iteration and node.loop() is not None else node.ref

    def add(self, wf: WorkflowRecord, task: TaskRecord) -> None:
        if wf.terminal:
            # Scheduled together with a task that just ended the workflow (a TERMINATE in
            # another fork branch): Conductor creates it, then cancels it.
            task.status = "CANCELED"
            task.end_time = self.store.now()
        wf.tasks.append(task)
        self.store.tasks[task.task_id] = task
        self.store.touch(wf)

    def schedule(
        self,
        wf: WorkflowRecord,
        node: Node,
        iteration: int,
        input_data: dict[str, Any] | None = None,
    ) -> None:
        HANDLERS[node.task.type].schedule(self, Slot(wf, node, iteration, input_data))

    def finish(self, task: TaskRecord, status: str, reason: str | None = None) -> None:
        now = self.store.now()
        task.status = status
        task.end_time = task.update_time = now
        task.start_time = task.start_time or now
        if reason is not None:
            task.reason_for_incompletion = reason
        self.store.forget(task)

    def fail(self, wf: WorkflowRecord, reason: str) -> None:
        """A mapping error (TerminateWorkflowException): the workflow FAILS."""
        self.end(wf, "FAILED", reason)

    def terminate(self, wf: WorkflowRecord, reason: str) -> None:
        self.end(wf, "TERMINATED", reason, failure_workflow=False)

    def launch(
        self,
        definition: WorkflowDef,
        input_data: dict[str, Any],
        *,
        parent: TaskRecord | None = None,
        workflow_id: str | None = None,
        correlation_id: str | None = None,
        priority: int = 0,
        task_to_domain: dict[str, str] | None = None,
        created_by: str | None = None,
        dynamic: bool = False,
    ) -> WorkflowRecord:
        """Create an execution and decide it (queued when inside another decide)."""
        if input_data:  # PU.getWorkflowInput: only a non-empty input gets the template
            input_data = {**copy.deepcopy(definition.input_template), **input_data}
        wf = WorkflowRecord(
            workflow_id=workflow_id or new_id(),
            definition=definition,
            input=input_data,
            create_time=self.store.now(),
            variables=copy.deepcopy(definition.variables),
            correlation_id=correlation_id,
            priority=priority,
            task_to_domain=dict(task_to_domain or {}),
            created_by=created_by,
            dynamic=dynamic,
            parent_workflow_id=parent.workflow_id if parent else None,
            parent_workflow_task_id=parent.task_id if parent else None,
        )
        self.store.workflows[wf.workflow_id] = wf
        self.track_timeout(wf)
        self.store.touch(wf)
        self.decide(wf)
        return wf

    def track_timeout(self, wf: WorkflowRecord) -> None:
        definition = wf.definition
        if definition.timeout_seconds > 0 and definition.timeout_policy == "TIME_OUT_WF":
            self.store.timed.add(wf.workflow_id)

    def check_workflow_timeout(self, wf: WorkflowRecord) -> bool:
        """DeciderService.checkWorkflowTimeout, which every decide runs first: a RUNNING
        workflow past its TIME_OUT_WF timeout, counted from the last retry or resume if any
        (a rerun keeps createTime), ends TIMED_OUT. True when it did."""
        definition = wf.definition
        if wf.status != "RUNNING" or definition.timeout_seconds <= 0:
            return False
        if definition.timeout_policy != "TIME_OUT_WF":
            return False
        elapsed = self.store.now() - (wf.last_retried_time or wf.create_time)
        if elapsed < definition.timeout_seconds * 1000:
            return False
        reason = (
            f"Workflow timed out after {elapsed // 1000} seconds. Timeout configured as "
            f"{definition.timeout_seconds} seconds. Timeout policy configured to TIME_OUT_WF"
        )
        self.end(wf, "TIMED_OUT", reason)
        return True

    # --- deciding ----------------------------------------------------------------------

    def decide(self, wf: WorkflowRecord) -> None:
        """Advance `wf` (and every workflow it wakes) as far as it goes without outside
        input. Inside another decide this only queues `wf`."""
        self._waiting[wf.workflow_id] = None
        if self._deciding:
            return
        self._deciding = True
        try:
            while self._waiting:
                workflow_id = next(iter(self._waiting))
                del self._waiting[workflow_id]
                found = self.store.workflows.get(workflow_id)
                if found is not None:
                    self._decide(found)
        finally:
            self._deciding = False

    def _decide(self, wf: WorkflowRecord) -> None:
        if self.check_workflow_timeout(wf):
            return
        if wf.status == "PAUSED":
            # Only async system tasks (JOIN, SUB_WORKFLOW) go on while paused (§2.7).
            self._run_system_tasks(wf, async_only=True)
            return
        for _ in range(MAX_ROUNDS):
            if wf.status != "RUNNING":
                return
            if not wf.tasks:
                self.schedule(wf, self.tree(wf).first, 0)
                continue
            changed = self._settle(wf)
            if wf.status != "RUNNING":
                return
            changed = self._run_system_tasks(wf, async_only=False) or changed
            if not changed:
                break
        else:
            self.store.unsettled.add(wf.workflow_id)
            return
        if wf.status == "RUNNING" and all(t.terminal for t in wf.tasks):
            self.end(wf, "COMPLETED", None)

    def _settle(self, wf: WorkflowRecord) -> bool:
        """Phase 1: tasks that ended are retried, or failed over, or lead on."""
        changed = False
        for task in list(wf.tasks):
            if task.retried or task.executed or not task.terminal:
                continue
            changed = True
            if task.status not in SUCCESSFUL_TASK:
                if not self._recover(wf, task):
                    return True
                if task.retried:
                    continue
            task.executed = True
            successor = self.handler(task).successor(self, wf, task)
            if successor is not None:
                iteration = self.iteration_of(wf, successor)
                ref = self.ref_for(successor, iteration)
                if not any(t.ref == ref for t in wf.tasks):
                    self.schedule(wf, successor, iteration)
            if wf.status != "RUNNING":
                return True
        return changed

    def _run_system_tasks(self, wf: WorkflowRecord, async_only: bool) -> bool:
        """Phase 2: running system tasks look again (a JOIN at its branches...)."""
        changed = False
        for task in list(wf.tasks):
            if task.terminal or task.retried:
                continue
            handler = self.handler(task)
            if async_only and not handler.is_async:
                continue
            if handler.execute(self, wf, task):
                changed = True
                self.store.touch(wf)
            if wf.terminal:
                return True
        return changed

    def iteration_of(self, wf: WorkflowRecord, node: Node) -> int:
        """The iteration a task at `node` belongs to: its loop's current one, else 0."""
        loop = node.loop()
        if loop is None:
            return 0
        task = next((t for t in reversed(wf.tasks) if t.ref == loop.ref), None)
        return task.iteration if task is not None else 0

    def _recover(self, wf: WorkflowRecord, task: TaskRecord) -> bool:
        """A task ended unsuccessfully: retry it, or let an optional one pass; otherwise
        the workflow fails. False when the workflow ended."""
        if self._can_retry(task):
            self.schedule_retry(wf, task)
        elif task.workflow_task.optional:
            task.status = "COMPLETED_WITH_ERRORS"
        else:
            self._fail_with(wf, task)
            return False
        return True

    def _can_retry(self, task: TaskRecord) -> bool:
        return (
            not self.handler(task).built_in
            and task.status in RETRIABLE_TASK
            and task.retry_count < task.task_def.retry_count
        )

    def _fail_with(self, wf: WorkflowRecord, task: TaskRecord) -> None:
        status = {"CANCELED": "TERMINATED", "TIMED_OUT": "TIMED_OUT"}.get(task.status, "FAILED")
        self._note_failed(wf, task)
        reason = (
            f"Task {task.task_id} failed with status: {status} and reason: "
            f"'{_java(task.reason_for_incompletion)}'"
        )
        self.end(wf, status, reason)

    def schedule_retry(self, wf: WorkflowRecord, failed: TaskRecord) -> TaskRecord:
        """The next attempt exists at once; only its queue delay waits (DS.retry)."""
        delay = retry_delay_seconds(failed.task_def, failed.retry_count)
        failed.retried = True
        task = self.copy_task(wf, failed)
        task.reason_for_incompletion = failed.reason_for_incompletion
        task.callback_after_seconds = delay
        task.available_at = task.scheduled_time + delay * 1000
        self.add(wf, task)
        self.handler(task).start(self, wf, task)
        return task

    def copy_task(self, wf: WorkflowRecord, old: TaskRecord) -> TaskRecord:
        """A new attempt of `old`: new id, same place and reference name, its input mapped
        again over the old one (DS.retry, WEO.retry)."""
        task_id = new_id()
        fresh = self.task_input(wf, old.workflow_task, task_id)
        task = self.new_task(wf, old.node, old.iteration, {**old.input_data, **fresh}, task_id)
        task.workflow_task, task.task_def = old.workflow_task, old.task_def
        task.type_name, task.def_name = old.type_name, old.def_name
        task.retry_count = old.retry_count + 1
        task.retried_task_id = old.task_id
        return task

    # --- ending ------------------------------------------------------------------------

    def end(
        self, wf: WorkflowRecord, status: str, reason: str | None, *, failure_workflow: bool = True
    ) -> None:
        """Put `wf` in a terminal state, cancelling what still runs (WEO.terminate)."""
        wf.output = self._workflow_output(wf)
        wf.status = status
        wf.reason_for_incompletion = reason
        for task in wf.tasks:
            if task.status in ("FAILED", "FAILED_WITH_TERMINAL_ERROR"):
                self._note_failed(wf, task)
            if not task.terminal:
                self.handler(task).cancel(self, wf, task)
                self.finish(task, "CANCELED")
        wf.end_time = self.store.now()
        self.store.touch(wf)
        parent = self.workflow(wf.parent_workflow_id)
        if parent is not None:
            self.decide(parent)
        if failure_workflow and status != "COMPLETED" and wf.definition.failure_workflow:
            self._start_failure_workflow(wf)

    def _start_failure_workflow(self, wf: WorkflowRecord) -> None:
        """WEO.terminate: the definition's failureWorkflow (`$workflow.input.x` reads the
        name from the input) gets the input plus workflowId, reason, failureStatus and the
        failed workflow; its id lands in the failed workflow's output."""
        name = wf.definition.failure_workflow or ""
        if name.startswith("$"):
            parts = name.split(".")
            name = str(wf.input.get(parts[2])) if len(parts) > 2 else ""
        definition = self.store.metadata.find_workflow(name, None)
        if definition is None:
            wf.output["conductor.failure_workflow"] = (
                f"Error starting failure workflow {name}: no such workflow"
            )
            return
        failed = [t for t in wf.tasks if t.status in ("FAILED", "FAILED_WITH_TERMINAL_ERROR")]
        input_data = {
            **wf.input,
            "workflowId": wf.workflow_id,
            "reason": wf.reason_for_incompletion,
            "failureStatus": wf.status,
            "failedWorkflow": wf.to_json(),
        }
        if failed:
            input_data["failureTaskId"] = failed[-1].task_id
        child = self.launch(definition, input_data, correlation_id=wf.correlation_id)
        wf.output["conductor.failure_workflow"] = child.workflow_id

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
        if terminate is not None:  # even an empty one: outputParameters are not used
            return dict(terminate.output_data)
        if wf.definition.output_parameters:
            result = resolve(wf.definition.output_parameters, self.context(wf))
            return result if isinstance(result, dict) else {}
        return dict(wf.tasks[-1].output_data)


def _java(value: str | None) -> str:
    """A string as Java's String.format prints it: null for None."""
    return "null" if value is None else value
