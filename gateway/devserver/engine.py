"""Workflow operations with Conductor's state rules (§4.1-§4.12, table §7).

All methods are synchronous and run on the event loop, so each request sees and leaves a
consistent state without locks. Orkes-flavour differences are switched by `flavor`.
"""

from __future__ import annotations

from typing import Any

from gateway.devserver.clock import Clock
from gateway.devserver.decider import Decider, EngineState
from gateway.devserver.metadata import Metadata
from gateway.devserver.models import RerunRequest, StartWorkflowRequest, WorkflowDef
from gateway.devserver.state import TaskRecord, WorkflowRecord
from gateway.devserver.tasks import check_definition
from gateway.errors import BadRequest, Conflict, NotFound, ServerError
from gateway.statuses import SUCCESSFUL_TASK

RETRYABLE_ON_RETRY = frozenset({"FAILED", "FAILED_WITH_TERMINAL_ERROR", "TIMED_OUT", "CANCELED"})


class Engine:
    def __init__(self, clock: Clock, flavor: str = "oss") -> None:
        self.flavor = flavor
        self.metadata = Metadata()
        self.store = EngineState(clock=clock, metadata=self.metadata)
        self.decider = Decider(self.store)
        self._idempotency: dict[tuple[str, str], str] = {}
        # Removed with archiveWorkflow=true: gone from the execution store, still in the
        # search index (ExecutionDAOFacade.removeWorkflowIndex).
        self.archived: dict[str, WorkflowRecord] = {}

    @property
    def idempotency(self) -> dict[tuple[str, str], str]:
        """Orkes idempotency keys: (workflow name, key) -> workflow id."""
        return self._idempotency

    @property
    def orkes(self) -> bool:
        return self.flavor == "orkes"

    def now(self) -> int:
        return self.store.now()

    def get(self, workflow_id: str) -> WorkflowRecord:
        wf = self.store.workflows.get(workflow_id)
        if wf is None:
            raise NotFound(f"No such workflow found by id: {workflow_id}", status=404)
        return wf

    # --- start -------------------------------------------------------------------------

    def start(self, request: StartWorkflowRequest, by_name: bool = False) -> str:
        definition = self._definition_for(request, by_name)
        if request.input is None:
            raise BadRequest("NULL input passed when starting workflow", status=400)
        existing = self._idempotent_existing(definition.name, request)
        if existing is not None:
            return existing
        wf = self.decider.launch(
            definition,
            request.input,
            correlation_id=request.correlation_id,
            priority=request.priority,
            task_to_domain=request.task_to_domain,
            created_by=request.created_by,
            dynamic=request.workflow_def is not None,
        )
        if self.orkes and request.idempotency_key:
            wf.idempotency_key = request.idempotency_key
            self._idempotency[(definition.name, request.idempotency_key)] = wf.workflow_id
        return wf.workflow_id

    def _definition_for(self, request: StartWorkflowRequest, by_name: bool) -> WorkflowDef:
        if request.workflow_def is not None:
            check_definition(request.workflow_def, "startWorkflow.workflowDef")
            return request.workflow_def
        if not request.name:
            raise BadRequest("Workflow name cannot be null or empty", status=400)
        found = self.metadata.find_workflow(request.name, request.version)
        if found is None:
            version = "null" if request.version is None else request.version
            message = (
                f"No such workflow found by name: {request.name}, version: {version}"
                if by_name
                else f"No such workflow defined. name={request.name}, version={version}"
            )
            raise NotFound(message, status=404)
        return found

    def _idempotent_existing(self, name: str, request: StartWorkflowRequest) -> str | None:
        """Orkes only (§4.20); OSS ignores the key and always starts a new execution."""
        if not self.orkes or not request.idempotency_key:
            return None
        old_id = self._idempotency.get((name, request.idempotency_key))
        if old_id is None:
            return None
        strategy = request.idempotency_strategy or "FAIL"
        old = self.store.workflows[old_id]
        if strategy == "RETURN_EXISTING":
            return old_id
        if strategy == "FAIL_ON_RUNNING" and old.terminal:
            return None
        raise Conflict(
            f"Workflow {name} with idempotencyKey {request.idempotency_key} already exists "
            f"(workflowId {old_id}, status {old.status}); strategy {strategy}",
            status=409,
        )

    # --- lifecycle ---------------------------------------------------------------------

    def terminate(
        self, workflow_id: str, reason: str | None, trigger_failure_workflow: bool = False
    ) -> None:
        wf = self.get(workflow_id)
        if wf.status == "COMPLETED":
            raise Conflict(f"Cannot terminate a {wf.status} workflow.", status=409)
        if wf.status == "TERMINATED":
            return
        # OSS has no triggerFailureWorkflow: its REST terminate never starts the failure
        # workflow (only the decider's path does); Orkes starts it when asked.
        trigger = trigger_failure_workflow and self.orkes
        self.decider.end(wf, "TERMINATED", reason, failure_workflow=trigger)

    def pause(self, workflow_id: str) -> None:
        wf = self.get(workflow_id)
        if wf.terminal:
            raise Conflict(  # WorkflowModel.toShortString: name.version/id
                f"Workflow {wf.name}.{wf.version}/{workflow_id} has ended, status cannot be "
                "updated.",
                status=409,
            )
        if wf.status == "RUNNING":
            wf.status = "PAUSED"
            self.store.touch(wf)

    def resume(self, workflow_id: str) -> None:
        wf = self.get(workflow_id)
        if wf.status != "PAUSED":
            if self.orkes:
                return
            raise ServerError(
                f"The workflow {workflow_id} is not PAUSED so cannot resume. "
                f"Current status is {wf.status}",
                status=500,
            )
        wf.status = "RUNNING"
        wf.last_retried_time = self.now()
        self.store.touch(wf)
        self.decider.decide(wf)

    def retry(self, workflow_id: str, resume_subworkflow_tasks: bool = False) -> None:
        wf = self.get(workflow_id)
        if not wf.terminal:
            raise NotFound(f"Workflow is still running.  status={wf.status}", status=404)
        if not wf.tasks:
            raise Conflict("Workflow has not started yet", status=409)
        if resume_subworkflow_tasks:
            failed = next((t for t in wf.tasks if self._unsuccessful(t)), None)
            if failed is None:
                return  # Conductor: silently nothing to do (§6.1)
            child = self.decider.workflow(failed.sub_workflow_id)
            if child is not None and child.terminal and child.status != "COMPLETED":
                self._resume_child(wf, failed, child)
                return
        to_retry = self._tasks_to_retry(wf)
        if not to_retry and wf.status != "TIMED_OUT":
            raise Conflict(
                "There are no retryable tasks! Use restart if you want to attempt entire "
                "workflow execution again.",
                status=409,
            )
        self._reopen_for_retry(wf)
        self._retry_tasks(wf, to_retry)
        self.decider.decide(wf)

    @staticmethod
    def _unsuccessful(task: TaskRecord) -> bool:
        return task.terminal and not task.retried and task.status not in SUCCESSFUL_TASK

    def _retry_tasks(self, wf: WorkflowRecord, to_retry: list[TaskRecord]) -> None:
        """WEO.retry: loops and joins reopen in place; other tasks get a new attempt, their
        input mapped again (a SUB_WORKFLOW's new attempt starts a new child)."""
        for failed in sorted(to_retry, key=lambda t: t.seq):
            handler = self.decider.handler(failed)
            if handler.retry_in_place:
                handler.reopen(self.decider, wf, failed)
                failed.retry_count += 1
                failed.executed = False
                continue
            task = self.decider.copy_task(wf, failed)
            failed.retried = failed.executed = True
            self.decider.add(wf, task)
            handler.start(self.decider, wf, task)

    def _resume_child(self, wf: WorkflowRecord, task: TaskRecord, child: WorkflowRecord) -> None:
        """resumeSubworkflowTasks: the failed child is retried in place (same id, its failed
        task retried), and the parent's task follows it again (updateAndPushParents)."""
        self.retry(child.workflow_id, resume_subworkflow_tasks=True)
        self._reopen_for_retry(wf)
        self.decider.handler(task).reopen(self.decider, wf, task)
        others = [t for t in self._tasks_to_retry(wf) if t is not task]
        self._retry_tasks(wf, others)
        self.decider.decide(wf)

    def _tasks_to_retry(self, wf: WorkflowRecord) -> list[TaskRecord]:
        last_by_ref = {t.ref: t for t in wf.tasks}
        return [t for t in last_by_ref.values() if t.status in RETRYABLE_ON_RETRY]

    def _reopen_for_retry(self, wf: WorkflowRecord) -> None:
        """WEO.retry changes only the status, lastRetriedTime and the reason: the failed task
        names and the (now stale) endTime of the failed run stay, as on the real server."""
        end_time, failed = wf.end_time, (wf.failed_reference_task_names, wf.failed_task_names)
        self._reopen(wf)
        wf.end_time = end_time
        wf.failed_reference_task_names, wf.failed_task_names = failed
        wf.last_retried_time = self.now()

    def _reopen(self, wf: WorkflowRecord) -> None:
        self.decider.track_timeout(wf)
        wf.status = "RUNNING"
        wf.reason_for_incompletion = None
        wf.end_time = 0
        wf.failed_reference_task_names = []
        wf.failed_task_names = []
        self.store.touch(wf)

    def restart(self, workflow_id: str, use_latest: bool) -> None:
        wf = self.get(workflow_id)
        if not wf.terminal:
            raise Conflict(  # WorkflowModel.toString: name.version/id.status
                f"Workflow: {wf.name}.{wf.version}/{workflow_id}.{wf.status} is not in terminal "
                "state, unable to restart.",
                status=409,
            )
        if wf.status == "COMPLETED" and not wf.definition.restartable:
            raise NotFound(f"Workflow: {workflow_id} is non-restartable", status=404)
        if use_latest and not wf.dynamic:
            wf.definition = self.metadata.get_workflow(wf.name, None)
            wf.tree = None
        self._start_over(wf)

    def _start_over(self, wf: WorkflowRecord, restart: bool = True) -> None:
        """Restart (WEO.restart): a fresh run (createTime now, no output, endTime 0) that keeps
        the variables and the failed task names of the last run. A rerun from scratch
        (WEO.rerunWF) removes the tasks and the failed names only: createTime (so a workflow
        timeout still counts from the first start), output and endTime are kept. Both as the
        real server does."""
        for task in wf.tasks:
            self.store.tasks.pop(task.task_id, None)
            self.store.forget(task)
        wf.tasks = []
        end_time = wf.end_time
        failed = (wf.failed_reference_task_names, wf.failed_task_names)
        if restart:
            wf.output = {}
            wf.create_time = self.now()
            wf.last_retried_time = 0
        self._reopen(wf)
        if restart:
            wf.failed_reference_task_names, wf.failed_task_names = failed
        else:
            wf.end_time = end_time
        self.decider.decide(wf)

    def rerun(self, workflow_id: str, request: RerunRequest) -> str:
        wf = self.get(workflow_id)
        if not wf.terminal:
            raise Conflict(
                f"Workflow: {wf.name}.{wf.version}/{workflow_id}.{wf.status} is not in terminal "
                "state, unable to rerun.",
                status=409,
            )
        if request.workflow_input is not None:
            wf.input = request.workflow_input
        if request.correlation_id is not None:
            wf.correlation_id = request.correlation_id
        if request.re_run_from_task_id is None:
            self._start_over(wf, restart=False)
        else:
            self._rerun_from(wf, request.re_run_from_task_id, request.task_input)
        return workflow_id

    def _rerun_from(
        self, wf: WorkflowRecord, task_id: str, task_input: dict[str, Any] | None
    ) -> None:
        if not self._rerun_in(wf, task_id, task_input):
            raise BadRequest(f"Task {task_id} not found", status=400)

    def _rerun_in(
        self, wf: WorkflowRecord, task_id: str, task_input: dict[str, Any] | None
    ) -> bool:
        """WEO.rerunWF: the task in this workflow, else in a child (which reruns first;
        then its SUB_WORKFLOW task runs again). False when it is nowhere."""
        target = next((t for t in wf.tasks if t.task_id == task_id), None)
        if target is None:
            for task in wf.tasks:
                child = self.decider.workflow(task.sub_workflow_id)
                if (
                    child is not None
                    and child.terminal
                    and self._rerun_in(child, task_id, task_input)
                ):
                    self._reopen(wf)
                    self.decider.handler(task).reopen(self.decider, wf, task)
                    task.executed = task.retried = False
                    self.decider.decide(wf)
                    return True
            return False
        self._reopen(wf)  # the output stays until the workflow ends again, as in Conductor
        if target.task_type != "SUB_WORKFLOW":
            self._drop(wf, [t for t in wf.tasks if t.seq > target.seq])
        self._rerun_task(wf, target, task_input)
        self._reset_unsuccessful(wf, target)
        self.decider.decide(wf)
        return True

    def _drop(self, wf: WorkflowRecord, tasks: list[TaskRecord]) -> None:
        for task in tasks:
            self.store.tasks.pop(task.task_id, None)
            self.store.forget(task)
        gone = {t.task_id for t in tasks}
        wf.tasks = [t for t in wf.tasks if t.task_id not in gone]

    def _rerun_task(
        self, wf: WorkflowRecord, target: TaskRecord, task_input: dict[str, Any] | None
    ) -> None:
        """The target runs again: control flow is scheduled anew from its place (a fork
        re-creates its branches); other tasks are reset in place and started."""
        handler = self.decider.handler(target)
        input_data = task_input if task_input is not None else dict(target.input_data)
        if handler.rebuilt_on_rerun:
            self._drop(wf, [target])
            self.decider.schedule(wf, target.node, target.iteration, input_data)
            return
        now = self.now()
        target.status, target.input_data, target.output_data = "SCHEDULED", input_data, {}
        target.scheduled_time = target.update_time = target.available_at = now
        target.start_time = target.end_time = target.poll_count = 0
        target.retried = target.executed = False
        target.reason_for_incompletion = target.sub_workflow_id = None
        handler.start(self.decider, wf, target)

    def _reset_unsuccessful(self, wf: WorkflowRecord, target: TaskRecord) -> None:
        """WEO.finalizeRerun: other tasks that ended unsuccessfully run again in place."""
        for task in wf.tasks:
            if task.ref == target.ref or not self._unsuccessful(task):
                continue
            handler = self.decider.handler(task)
            task.executed = False
            task.end_time = 0
            task.reason_for_incompletion = None
            task.sub_workflow_id = None
            task.output_data.pop("subWorkflowId", None)
            if task.task_type in ("SIMPLE", "SUB_WORKFLOW"):
                task.status = "SCHEDULED"
                handler.start(self.decider, wf, task)
            else:
                task.status = "IN_PROGRESS"

    def remove(self, workflow_id: str) -> None:
        """DELETE /workflow/{id}/remove: forget the execution entirely (404 when unknown)."""
        wf = self.get(workflow_id)
        for task in wf.tasks:
            self.store.forget(task)
            self.store.tasks.pop(task.task_id, None)
        self.store.timed.discard(workflow_id)
        del self.store.workflows[workflow_id]
        if wf.idempotency_key is not None:
            key = (wf.name, wf.idempotency_key)
            if self._idempotency.get(key) == workflow_id:
                del self._idempotency[key]

    def update_variables(self, workflow_id: str, variables: dict[str, Any]) -> WorkflowRecord:
        wf = self.get(workflow_id)
        wf.variables.update(variables)
        self.store.touch(wf)
        return wf

    # --- queries -----------------------------------------------------------------------

    def by_correlation_id(
        self, name: str, correlation_id: str, include_closed: bool
    ) -> list[WorkflowRecord]:
        return [
            wf
            for wf in self.store.workflows.values()
            if wf.name == name
            and wf.correlation_id == correlation_id
            and (include_closed or wf.status == "RUNNING")
        ]
