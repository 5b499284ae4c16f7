"""Workflow operations with Conductor's state rules (§4.1-§4.12, table §7).

All methods are synchronous and run on the event loop, so each request sees and leaves a
consistent state without locks. Orkes-flavour differences are switched by `flavor`.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.devserver.clock import Clock
from gateway.devserver.decider import Decider, Store
from gateway.devserver.mapping import resolve
from gateway.devserver.metadata import Metadata
from gateway.devserver.models import RerunRequest, StartWorkflowRequest, WorkflowDef
from gateway.devserver.state import WorkflowRecord, new_id
from gateway.errors import BadRequest, Conflict, NotFound, ServerError

RETRYABLE_ON_RETRY = frozenset({"FAILED", "FAILED_WITH_TERMINAL_ERROR", "TIMED_OUT", "CANCELED"})


class Engine:
    def __init__(self, clock: Clock, flavor: str = "oss") -> None:
        self.flavor = flavor
        self.metadata = Metadata()
        self.store = Store(clock=clock, metadata=self.metadata)
        self.decider = Decider(self.store)
        self._idempotency: dict[tuple[str, str], str] = {}

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
        wf = WorkflowRecord(
            workflow_id=new_id(),
            definition=definition,
            input=request.input,
            create_time=self.now(),
            variables=copy.deepcopy(definition.variables),
            correlation_id=request.correlation_id,
            priority=request.priority,
            task_to_domain=dict(request.task_to_domain),
            created_by=request.created_by,
            dynamic=request.workflow_def is not None,
        )
        if self.orkes and request.idempotency_key:
            wf.idempotency_key = request.idempotency_key
            self._idempotency[(definition.name, request.idempotency_key)] = wf.workflow_id
        self.store.workflows[wf.workflow_id] = wf
        self._track_timeout(wf)
        self.store.touch(wf)
        self.decider.decide(wf)
        return wf.workflow_id

    def _definition_for(self, request: StartWorkflowRequest, by_name: bool) -> WorkflowDef:
        if request.workflow_def is not None:
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

    def terminate(self, workflow_id: str, reason: str | None) -> None:
        wf = self.get(workflow_id)
        if wf.status == "COMPLETED":
            raise Conflict(f"Cannot terminate a {wf.status} workflow.", status=409)
        if wf.status == "TERMINATED":
            return
        self.decider.end(wf, "TERMINATED", reason)

    def pause(self, workflow_id: str) -> None:
        wf = self.get(workflow_id)
        if wf.terminal:
            raise Conflict(
                f"Workflow {workflow_id} has ended, status cannot be updated.", status=409
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

    def retry(self, workflow_id: str) -> None:
        wf = self.get(workflow_id)
        if not wf.terminal:
            raise NotFound(f"Workflow is still running.  status={wf.status}", status=404)
        if not wf.tasks:
            raise Conflict("Workflow has not started yet", status=409)
        to_retry = self._tasks_to_retry(wf)
        if not to_retry and wf.status != "TIMED_OUT":
            raise Conflict(
                "There are no retryable tasks! Use restart if you want to attempt entire "
                "workflow execution again.",
                status=409,
            )
        self._reopen(wf)
        wf.last_retried_time = self.now()
        for failed in to_retry:
            # Conductor copies the failed task and re-applies its parameter mapping.
            fresh = resolve(failed.workflow_task.input_parameters, self.decider.context(wf))
            task = self.decider.new_task(wf, failed.position, {**failed.input_data, **fresh})
            task.retry_count = failed.retry_count + 1
            task.retried_task_id = failed.task_id
            failed.retried = True
            self.decider.start_task(wf, task)
        self.decider.decide(wf)

    def _tasks_to_retry(self, wf: WorkflowRecord) -> list[Any]:
        last_by_ref = {t.ref: t for t in wf.tasks}
        return [t for t in last_by_ref.values() if t.status in RETRYABLE_ON_RETRY]

    def _track_timeout(self, wf: WorkflowRecord) -> None:
        definition = wf.definition
        if definition.timeout_seconds > 0 and definition.timeout_policy == "TIME_OUT_WF":
            self.store.timed.add(wf.workflow_id)

    def _reopen(self, wf: WorkflowRecord) -> None:
        self._track_timeout(wf)
        wf.status = "RUNNING"
        wf.reason_for_incompletion = None
        wf.end_time = 0
        wf.failed_reference_task_names = []
        wf.failed_task_names = []
        self.store.touch(wf)

    def restart(self, workflow_id: str, use_latest: bool) -> None:
        wf = self.get(workflow_id)
        if not wf.terminal:
            raise Conflict(
                f"Workflow: {workflow_id} is not in terminal state, unable to restart.",
                status=409,
            )
        if wf.status == "COMPLETED" and not wf.definition.restartable:
            raise NotFound(f"Workflow: {workflow_id} is non-restartable", status=404)
        if use_latest and not wf.dynamic:
            wf.definition = self.metadata.get_workflow(wf.name, None)
        self._start_over(wf)

    def _start_over(self, wf: WorkflowRecord) -> None:
        for task in wf.tasks:
            self.store.tasks.pop(task.task_id, None)
            self.store.forget(task)
        wf.tasks = []
        wf.output = {}
        wf.variables = copy.deepcopy(wf.definition.variables)
        wf.create_time = self.now()
        self._reopen(wf)
        self.decider.decide(wf)

    def rerun(self, workflow_id: str, request: RerunRequest) -> str:
        wf = self.get(workflow_id)
        if not wf.terminal:
            raise Conflict(
                f"Workflow: {workflow_id} is not in terminal state, unable to rerun.",
                status=409,
            )
        if request.workflow_input is not None:
            wf.input = request.workflow_input
        if request.correlation_id is not None:
            wf.correlation_id = request.correlation_id
        if request.re_run_from_task_id is None:
            self._start_over(wf)
        else:
            self._rerun_from(wf, request.re_run_from_task_id, request.task_input)
        return workflow_id

    def _rerun_from(
        self, wf: WorkflowRecord, task_id: str, task_input: dict[str, Any] | None
    ) -> None:
        index = next((i for i, t in enumerate(wf.tasks) if t.task_id == task_id), None)
        if index is None:
            raise BadRequest(f"Task {task_id} not found", status=400)
        old = wf.tasks[index]
        for task in wf.tasks[index:]:
            self.store.tasks.pop(task.task_id, None)
            self.store.forget(task)
        wf.tasks = wf.tasks[:index]
        wf.output = {}
        self._reopen(wf)
        input_data = task_input if task_input is not None else dict(old.input_data)
        self.decider.start_task(wf, self.decider.new_task(wf, old.position, input_data))
        self.decider.decide(wf)

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
