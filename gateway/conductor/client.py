"""`ConductorClient`: every workflow operation the gateway needs, async, typed.

```python
async with ConductorClient("http://127.0.0.1:8080/api") as client:
    workflow_id = await client.start_workflow("order_flow", input={"orderId": 1})
    workflow = await client.get_workflow(workflow_id)
```

It follows the REST contract of Conductor OSS and Orkes (text/plain ids, empty 200 and 204
answers, error bodies) and raises only the `gateway.errors.ConductorError` tree. Which calls are
retried, and when, is explained in `gateway.conductor.session`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr

from gateway.conductor import capabilities as caps
from gateway.conductor.auth import TokenAuth
from gateway.conductor.builder import ConductorWorkflow
from gateway.conductor.models import (
    SIGNAL_SYNC_QUERY,
    BulkResponse,
    IdempotencyStrategy,
    RerunWorkflowRequest,
    SearchResult,
    StartWorkflowRequest,
    Task,
    TaskDef,
    TaskResult,
    Workflow,
    WorkflowDef,
    WorkflowRun,
    WorkflowStatusSummary,
)
from gateway.conductor.query import Query
from gateway.conductor.responses import json_body, read_model, read_models, text_id, validated
from gateway.conductor.session import Session
from gateway.conductor.transport import make_transport
from gateway.conductor.validation import validate_workflow_def
from gateway.errors import BadRequest, InvalidWorkflowDef, NotFound, ServerError
from gateway.keylocks import KeyLocks
from gateway.settings import ConductorSettings
from gateway.statuses import TaskResultStatus

DefT = TypeVar("DefT", bound=BaseModel)
Definition = ConductorWorkflow | WorkflowDef | Mapping[str, Any]

MAX_BULK = 1000  # Conductor's @Size(max=1000) on bulk requests


def _seg(value: str) -> str:
    """One URL path segment, fully escaped (ids and names cannot add path segments)."""
    if not value:
        raise BadRequest("an id or name in the URL path is empty; give a non-empty value")
    return quote(value, safe="")


class ConductorClient:
    """Async client for Conductor's REST API (OSS and Orkes). Use as an async context manager."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080/api",
        *,
        key_id: str | None = None,
        key_secret: SecretStr | str | None = None,
        timeout: float = 10.0,
        max_retries: int = 5,
        flavor: Literal["auto", "oss", "orkes"] = "auto",
        transport: httpx.AsyncBaseTransport | str = "httptools",
        max_connections: int = 64,
        ca_file: str | None = None,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
    ) -> None:
        auth = None
        if key_id and key_secret is not None:
            secret = key_secret if isinstance(key_secret, SecretStr) else SecretStr(key_secret)
            auth = TokenAuth(key_id, secret)
        self._session = Session(
            url,
            make_transport(transport, max_connections, ca_file),
            auth=auth,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
        )
        self._caps_lock = asyncio.Lock()
        self._caps: caps.Capabilities | None = None if flavor == "auto" else caps.assumed(flavor)
        self._signalling = KeyLocks()  # workflow ids with a signal under way

    @classmethod
    def from_settings(cls, settings: ConductorSettings) -> ConductorClient:
        """Build a client from the `conductor` section of the gateway settings."""
        return cls(
            settings.url,
            key_id=settings.key_id,
            key_secret=settings.key_secret,
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
            flavor=settings.flavor,
            transport=settings.transport,
            max_connections=settings.max_connections,
            ca_file=str(settings.ca_file) if settings.ca_file else None,
        )

    async def __aenter__(self) -> Self:
        self._session.start_probe()  # so `ready` turns True as soon as Conductor answers
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._session.aclose()

    # -- readiness and capabilities ---------------------------------------------------------

    @property
    def ready(self) -> bool:
        """False until Conductor has answered, and while it cannot be reached."""
        return self._session.ready

    @property
    def last_error(self) -> str | None:
        """Why Conductor was last found unreachable (None: it never was)."""
        return self._session.last_error

    async def wait_ready(self) -> None:
        """Return once Conductor answers; probes in the background meanwhile."""
        await self._session.wait_ready()

    async def capabilities(self) -> caps.Capabilities:
        """Flavor and optional endpoints, probed once (never when the flavor is configured)."""
        async with self._caps_lock:  # one probe, however many callers ask at once
            if self._caps is None:
                self._caps = await caps.detect(self._session)
        return self._caps

    @property
    def token_refreshes(self) -> int:
        """How many token requests this client made (0 without Orkes keys)."""
        return self._session.auth.refreshes if self._session.auth else 0

    # -- starting ------------------------------------------------------------------------------

    async def start_workflow(
        self,
        name: str | ConductorWorkflow | WorkflowDef,
        version: int | None = None,
        input: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        priority: int | None = None,
        task_to_domain: Mapping[str, str] | None = None,
        workflow_def: WorkflowDef | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        idempotency_strategy: IdempotencyStrategy | None = None,
    ) -> str:
        """Start a workflow; return its id. `name` is a registered workflow's name, or a
        `ConductorWorkflow` / `WorkflowDef` to run without registering it (a dynamic workflow,
        sent inline like `workflow_def`). Retried after an ambiguous failure only when an
        Orkes server enforces the idempotency key with RETURN_EXISTING."""
        wire = _plain_start(name, version, input, correlation_id, priority)
        if (
            wire is None
            or task_to_domain
            or workflow_def is not None
            or idempotency_key
            or (idempotency_strategy is not None)
        ):
            name, version, workflow_def = _target(name, version, workflow_def)
            if idempotency_strategy is not None and idempotency_key is None:
                raise BadRequest("idempotency_strategy needs an idempotency_key; give both")
            wire = _start_request(
                name,
                version,
                input,
                correlation_id,
                priority,
                task_to_domain,
                workflow_def,
                idempotency_key,
                idempotency_strategy,
            ).to_wire()
        safe = await self._start_is_idempotent(idempotency_key, idempotency_strategy)
        response = await self._session.request(
            "POST", "/workflow", json=wire, accept_text=True, idempotent=safe
        )
        workflow_id = text_id(response)
        if workflow_id is None:
            raise BadRequest(f"POST /api/workflow for '{name}' answered without a workflow id")
        return workflow_id

    async def _start_is_idempotent(self, key: str | None, strategy: str | None) -> bool:
        if key is None or strategy != "RETURN_EXISTING":
            return False
        return (await self.capabilities()).idempotency

    async def execute_workflow(
        self,
        name: str | ConductorWorkflow | WorkflowDef,
        version: int | None = None,
        input: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        priority: int | None = None,
        wait_until_task_refs: Sequence[str] | None = None,
        wait_for_seconds: int = 10,
        request_id: str | None = None,
        workflow_def: Definition | None = None,
        task_to_domain: Mapping[str, str] | None = None,
    ) -> WorkflowRun:
        """Start and wait up to `wait_for_seconds` for the end or a blocking task.
        `signal_timeout` on the result says the wait ran out (OSS 200, Orkes 206). `name` (or
        `workflow_def`) may be a `ConductorWorkflow` or a definition: executed inline."""
        name, version, inline = _target(name, version, workflow_def)
        body = _start_request(
            name, version, input, correlation_id, priority, task_to_domain, inline
        )
        params = {
            "requestId": request_id or str(uuid.uuid4()),  # Orkes before v5.0.1 requires one
            "waitUntilTaskRef": ",".join(wait_until_task_refs) if wait_until_task_refs else None,
            "waitForSeconds": max(1, wait_for_seconds),
        }
        response = await self._session.request(
            "POST",
            f"/workflow/execute/{_seg(name)}/{version or 0}",
            params=params,
            json=body.to_wire(),
            idempotent=False,
            timeout=self._session.timeout + max(1, wait_for_seconds),
        )
        run = read_model(response, WorkflowRun, empty={})
        if response.status_code == 206 and not run.signal_timeout:
            run = run.model_copy(update={"signal_timeout": True})
        return run

    # -- reading -------------------------------------------------------------------------------

    async def get_workflow(self, workflow_id: str, include_tasks: bool = True) -> Workflow:
        """The workflow execution, with its tasks unless `include_tasks=False`."""
        response = await self._session.request(
            "GET",
            f"/workflow/{_seg(workflow_id)}",
            params={"includeTasks": include_tasks},
            idempotent=True,
        )
        return read_model(response, Workflow)

    async def get_status(self, workflow_id: str) -> WorkflowStatusSummary:
        """The cheap status read (OSS v3.31.2+); older servers fall back to get_workflow."""
        try:
            response = await self._session.request(
                "GET",
                f"/workflow/{_seg(workflow_id)}/status",
                params={"includeOutput": True, "includeVariables": True},
                idempotent=True,
            )
        except NotFound as exc:
            if not caps.route_missing(exc):
                raise
            wf = await self.get_workflow(workflow_id, include_tasks=False)
            return WorkflowStatusSummary.model_validate(wf.model_dump())
        return read_model(response, WorkflowStatusSummary)

    async def get_by_correlation_id(
        self,
        name: str,
        correlation_id: str,
        include_closed: bool = False,
        include_tasks: bool = False,
    ) -> list[Workflow]:
        """Workflows of `name` with this correlation id. Without `include_closed` Conductor
        returns only RUNNING ones (PAUSED are left out too)."""
        response = await self._session.request(
            "GET",
            f"/workflow/{_seg(name)}/correlated/{_seg(correlation_id)}",
            params={"includeClosed": include_closed, "includeTasks": include_tasks},
            idempotent=True,
        )
        return read_models(response, Workflow)

    async def get_by_correlation_ids(
        self, name: str, correlation_ids: Sequence[str], include_closed: bool = False
    ) -> dict[str, list[str]]:
        """The ids of the workflows of `name` per correlation id, in one request
        (`POST /workflow/{name}/correlated`); an id with no workflow maps to []."""
        response = await self._session.request(
            "POST",
            f"/workflow/{_seg(name)}/correlated",
            params={"includeClosed": include_closed, "includeTasks": False},
            json=list(correlation_ids),
            idempotent=True,
        )
        data = json_body(response) or {}
        if not isinstance(data, dict):
            raise ServerError(
                f"POST /workflow/{name}/correlated: expected a map of correlation id to "
                f"workflows, got {type(data).__name__}; is conductor.url a Conductor server?",
                status=response.status_code,
            )
        return {
            str(cid): [str(wf["workflowId"]) for wf in runs if isinstance(wf, dict)]
            for cid, runs in data.items()
            if isinstance(runs, list)
        }

    async def search(
        self,
        query: Query | str | None = None,
        free_text: str = "*",
        start: int = 0,
        size: int = 100,
        sort: str | None = None,
    ) -> SearchResult:
        """Search workflow executions. Build `query` with `gateway.conductor.query.Query` so
        it uses only the grammar every index backend accepts."""
        if not 0 <= size <= 5000:
            raise BadRequest(f"search size {size} is out of range; use 0..5000 and paginate")
        params = {
            "start": start,
            "size": size,
            "sort": sort,
            "freeText": free_text,
            "query": str(query) if query else None,
        }
        response = await self._session.request(
            "GET", "/workflow/search", params=params, idempotent=True
        )
        return read_model(response, SearchResult, empty={})

    # -- changing one workflow -------------------------------------------------------------

    async def update_variables(self, workflow_id: str, variables: Mapping[str, Any]) -> Workflow:
        """Set or overwrite workflow variables (Orkes only; NotFound on OSS)."""
        try:
            response = await self._session.request(
                "POST",
                f"/workflow/{_seg(workflow_id)}/variables",
                json=dict(variables),
                idempotent=True,
            )
        except NotFound as exc:
            if caps.route_missing(exc):
                raise NotFound(
                    f"{exc.message}: this Conductor has no variables endpoint (it is Orkes "
                    "only); use a SET_VARIABLE task in the workflow instead",
                    status=exc.status,
                    body=exc.body,
                ) from exc
            raise
        return read_model(response, Workflow)

    async def terminate(
        self,
        workflow_id: str,
        reason: str | None = None,
        trigger_failure_workflow: bool = False,
    ) -> None:
        """Terminate. Terminating a TERMINATED workflow is a no-op; a COMPLETED one is 409."""
        params = {"reason": reason, "triggerFailureWorkflow": trigger_failure_workflow or None}
        await self._session.request(
            "DELETE", f"/workflow/{_seg(workflow_id)}", params=params, idempotent=True
        )

    async def pause(self, workflow_id: str) -> None:
        """Pause: no new tasks are scheduled until resume; pausing a paused one is a no-op."""
        await self._session.request("PUT", f"/workflow/{_seg(workflow_id)}/pause", idempotent=True)

    async def resume(self, workflow_id: str) -> None:
        """Resume a PAUSED workflow. OSS answers 500 (ServerError) if it is not paused."""
        await self._session.request("PUT", f"/workflow/{_seg(workflow_id)}/resume", idempotent=True)

    async def decide(self, workflow_id: str) -> None:
        """Run the decider on a workflow now (PUT /workflow/decide/{id}): a due workflow or task
        timeout fires at once instead of at the server's next sweep (about 30 s on OSS)."""
        await self._session.request("PUT", f"/workflow/decide/{_seg(workflow_id)}", idempotent=True)

    async def retry(self, workflow_id: str, resume_subworkflow_tasks: bool = False) -> None:
        """Retry the last failed task(s) of a FAILED/TIMED_OUT/TERMINATED workflow."""
        await self._session.request(
            "POST",
            f"/workflow/{_seg(workflow_id)}/retry",
            params={"resumeSubworkflowTasks": resume_subworkflow_tasks},
            idempotent=False,
        )

    async def restart(self, workflow_id: str, use_latest_definitions: bool = False) -> None:
        """Restart a terminal workflow from the beginning, keeping its id."""
        await self._session.request(
            "POST",
            f"/workflow/{_seg(workflow_id)}/restart",
            params={"useLatestDefinitions": use_latest_definitions},
            idempotent=False,
        )

    async def rerun(
        self,
        workflow_id: str,
        re_run_from_task_id: str | None = None,
        task_input: Mapping[str, Any] | None = None,
        workflow_input: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
    ) -> str:
        """Rerun a terminal workflow, from a task or from scratch; returns the (same) id."""
        body = RerunWorkflowRequest(
            re_run_from_workflow_id=workflow_id,
            re_run_from_task_id=re_run_from_task_id,
            task_input=dict(task_input) if task_input is not None else None,
            workflow_input=dict(workflow_input) if workflow_input is not None else None,
            correlation_id=correlation_id,
        )
        response = await self._session.request(
            "POST",
            f"/workflow/{_seg(workflow_id)}/rerun",
            json=body.to_wire(),
            accept_text=True,
            idempotent=False,
        )
        return text_id(response) or workflow_id

    # -- tasks ---------------------------------------------------------------------------------

    async def signal(
        self,
        workflow_id: str,
        status: TaskResultStatus,
        output: Mapping[str, Any] | None = None,
        task_ref: str | None = None,
        reason_for_incompletion: str | None = None,
    ) -> str | None:
        """Complete or fail a waiting task. With `task_ref`, the first pending task with that
        reference name: returns its task id (None when none was pending, on OSS). Without, the
        first pending WAIT task: raises NotFound when the workflow has none (an unsignalled
        event is never reported as delivered); returns its task id when the server names it.
        On a server without the signal endpoint (OSS before v3.32, as probed), or with a
        reason, the task is looked up and updated by id.

        Signals to one workflow go one at a time from this client: Conductor finds the waiting
        task and then updates it, so a second signal racing the first would find the same task
        and its update would be dropped without an error (OSS's `updateTask` of a finished
        task), where going second it finds the next waiting task or none."""
        async with self._signalling.hold(workflow_id):
            return await self._signal(
                workflow_id, status, output, task_ref, reason_for_incompletion
            )

    async def _signal(
        self,
        workflow_id: str,
        status: TaskResultStatus,
        output: Mapping[str, Any] | None,
        task_ref: str | None,
        reason: str | None,
    ) -> str | None:
        no_signal = self._caps is not None and not self._caps.signal
        if reason is not None or (task_ref is None and no_signal):
            task_id = await self._signal_by_lookup(workflow_id, status, output, task_ref, reason)
            if task_id is None and task_ref is None:
                raise NotFound(f"workflow {workflow_id} has no waiting WAIT task to signal")
            return task_id
        if task_ref is None:
            await self._session.request(
                "POST",
                f"/tasks/{_seg(workflow_id)}/{_seg(status)}/signal/sync",
                params=SIGNAL_SYNC_QUERY,
                json=dict(output or {}),
                idempotent=False,
            )
            return None
        response = await self._session.request(
            "POST",
            f"/tasks/{_seg(workflow_id)}/{_seg(task_ref)}/{_seg(status)}",
            json=dict(output or {}),
            accept_text=True,
            idempotent=False,
        )
        return text_id(response)

    async def _signal_by_lookup(
        self,
        workflow_id: str,
        status: TaskResultStatus,
        output: Mapping[str, Any] | None,
        task_ref: str | None,
        reason: str | None,
    ) -> str | None:
        # The by-ref and signal endpoints take only the output map, so a reason (or a server
        # without the signal endpoint) needs the task id: find the pending task, update by id.
        workflow = await self.get_workflow(workflow_id, include_tasks=True)
        task = _pending_task(workflow.tasks, task_ref)
        if task is None:
            return None
        merged = {**task.output_data, **(output or {})}
        return await self.update_task(
            task.task_id, workflow_id, status, merged, reason_for_incompletion=reason
        )

    async def update_task(
        self,
        task_id: str,
        workflow_id: str,
        status: TaskResultStatus,
        output: Mapping[str, Any] | None = None,
        reason_for_incompletion: str | None = None,
        worker_id: str | None = None,
    ) -> str:
        """Report a task's result by task id (what a worker does); returns the task id."""
        body = _task_result(
            task_id, workflow_id, status, output, reason_for_incompletion, worker_id
        )
        response = await self._session.request(
            "POST", "/tasks", json=body, accept_text=True, idempotent=True
        )
        return text_id(response) or task_id

    async def poll_task(
        self, task_type: str, worker_id: str | None = None, domain: str | None = None
    ) -> Task | None:
        """Take one scheduled task of this type; None when there is nothing to do."""
        response = await self._session.request(
            "GET",
            f"/tasks/poll/{_seg(task_type)}",
            params={"workerid": worker_id, "domain": domain},
            idempotent=False,  # a retry after a timeout could take a second task
        )
        data = json_body(response)
        return validated(response, Task, data) if data else None

    async def batch_poll(
        self,
        task_type: str,
        count: int = 1,
        timeout_ms: int = 100,
        worker_id: str | None = None,
        domain: str | None = None,
    ) -> list[Task]:
        """Take up to `count` scheduled tasks of this type, waiting up to `timeout_ms` for the
        first (a long poll); an empty list when there is nothing to do."""
        response = await self._session.request(
            "GET",
            f"/tasks/poll/batch/{_seg(task_type)}",
            params={"count": count, "timeout": timeout_ms, "workerid": worker_id, "domain": domain},
            idempotent=False,  # a retry after a timeout could take more tasks
            timeout=self._session.timeout + timeout_ms / 1000,
        )
        return read_models(response, Task)

    async def update_task_v2(
        self,
        task_id: str,
        workflow_id: str,
        status: TaskResultStatus,
        output: Mapping[str, Any] | None = None,
        reason_for_incompletion: str | None = None,
        worker_id: str | None = None,
    ) -> Task | None:
        """Report a task's result and take the next task of the same type in one call
        (`POST /tasks/update-v2`, OSS v3.21+); None when there is none. Not repeated after an
        ambiguous failure (a repeat could take a second task): report again with
        `update_task`, which is."""
        body = _task_result(
            task_id, workflow_id, status, output, reason_for_incompletion, worker_id
        )
        response = await self._session.request(
            "POST", "/tasks/update-v2", json=body, idempotent=False
        )
        data = json_body(response)
        return validated(response, Task, data) if data else None

    # -- definitions ---------------------------------------------------------------------------

    async def register_task_defs(self, task_defs: Iterable[TaskDef | Mapping[str, Any]]) -> None:
        """Create or overwrite task definitions (an upsert; validated here first)."""
        body = [_task_def(item).to_wire() for item in task_defs]
        if not body:
            raise BadRequest("register_task_defs needs at least one task definition")
        await self._session.request("POST", "/metadata/taskdefs", json=body, idempotent=True)

    async def update_task_def(self, task_def: TaskDef | Mapping[str, Any]) -> None:
        """Update an existing task definition; NotFound if there is none by that name."""
        body = _task_def(task_def).to_wire()
        await self._session.request("PUT", "/metadata/taskdefs", json=body, idempotent=True)

    async def get_task_def(self, name: str) -> TaskDef:
        response = await self._session.request(
            "GET", f"/metadata/taskdefs/{_seg(name)}", idempotent=True
        )
        return read_model(response, TaskDef)

    async def register_workflow(self, workflow: Definition, overwrite: bool = False) -> None:
        """Register a `ConductorWorkflow` (or a definition); validated before it is sent.
        Conflict if name+version exists and not `overwrite`."""
        await self.register_workflow_def(workflow, overwrite=overwrite)

    async def register_workflow_def(
        self, workflow_def: Definition, overwrite: bool = False
    ) -> None:
        """Register a workflow definition; Conflict if name+version exists and not overwrite."""
        wf = _workflow_def(workflow_def)
        await self._session.request(
            "POST",
            "/metadata/workflow",
            params={"overwrite": overwrite},
            json=wf.to_wire(),
            idempotent=overwrite,
        )

    async def get_workflow_def(self, name: str, version: int | None = None) -> WorkflowDef:
        response = await self._session.request(
            "GET",
            f"/metadata/workflow/{_seg(name)}",
            params={"version": version},
            idempotent=True,
        )
        return read_model(response, WorkflowDef)

    # -- bulk ------------------------------------------------------------------------------

    async def bulk_pause(self, workflow_ids: Sequence[str]) -> BulkResponse:
        return await self._bulk("PUT", "pause", workflow_ids, {}, idempotent=True)

    async def bulk_resume(self, workflow_ids: Sequence[str]) -> BulkResponse:
        # Not idempotent: a repeat reports the already resumed workflows as errors.
        return await self._bulk("PUT", "resume", workflow_ids, {}, idempotent=False)

    async def bulk_terminate(
        self, workflow_ids: Sequence[str], reason: str | None = None
    ) -> BulkResponse:
        return await self._bulk("POST", "terminate", workflow_ids, {"reason": reason}, True)

    async def bulk_retry(self, workflow_ids: Sequence[str]) -> BulkResponse:
        return await self._bulk("POST", "retry", workflow_ids, {}, idempotent=False)

    async def bulk_restart(
        self, workflow_ids: Sequence[str], use_latest_definitions: bool = False
    ) -> BulkResponse:
        params = {"useLatestDefinitions": use_latest_definitions}
        return await self._bulk("POST", "restart", workflow_ids, params, idempotent=False)

    async def _bulk(
        self,
        method: str,
        op: str,
        workflow_ids: Sequence[str],
        params: Mapping[str, Any],
        idempotent: bool,
    ) -> BulkResponse:
        ids = list(workflow_ids)
        if not 1 <= len(ids) <= MAX_BULK:
            raise BadRequest(f"bulk {op} got {len(ids)} workflow ids; give 1..{MAX_BULK} per call")
        response = await self._session.request(
            method, f"/workflow/bulk/{op}", params=params, json=ids, idempotent=idempotent
        )
        return read_model(response, BulkResponse, empty={})


def _target(
    name: str | ConductorWorkflow | WorkflowDef,
    version: int | None,
    workflow_def: Definition | None,
) -> tuple[str, int | None, WorkflowDef | None]:
    """The workflow name, version and inline definition of a start or execute: a builder or
    a definition given as `name` (or as `workflow_def`) runs inline, validated first."""
    if not isinstance(name, str):
        workflow_def, name = name, ""
    if workflow_def is None:
        return name, version, None
    definition = _workflow_def(workflow_def)
    return name or definition.name, version or definition.version, definition


def _plain_start(
    name: object, version: object, input: object, correlation_id: object, priority: object
) -> dict[str, Any] | None:
    """The body of a start whose values need no model: a name, a JSON object as input, and
    plain version, correlation id and priority (what a routing rule renders, per event). None
    when the model must check or convert something; both give the same body."""
    if not (type(name) is str and name and (input is None or type(input) is dict)):
        return None
    if not (version is None or type(version) is int):
        return None
    if not (priority is None or (type(priority) is int and 0 <= priority <= 99)):
        return None
    if not (correlation_id is None or type(correlation_id) is str):
        return None
    wire: dict[str, Any] = {"name": name}
    if version is not None:
        wire["version"] = version
    wire["input"] = input if input is not None else {}
    if correlation_id is not None:
        wire["correlationId"] = correlation_id
    if priority is not None:
        wire["priority"] = priority
    return wire


def _start_request(
    name: str,
    version: int | None,
    input: Mapping[str, Any] | None,
    correlation_id: str | None,
    priority: int | None,
    task_to_domain: Mapping[str, str] | None = None,
    workflow_def: Definition | None = None,
    idempotency_key: str | None = None,
    idempotency_strategy: IdempotencyStrategy | None = None,
) -> StartWorkflowRequest:
    if workflow_def is not None and not isinstance(workflow_def, Mapping):
        workflow_def = _workflow_def(workflow_def).to_wire()
    try:
        return StartWorkflowRequest(
            name=name,
            version=version,
            input=dict(input or {}),
            correlation_id=correlation_id,
            priority=priority,
            task_to_domain=dict(task_to_domain) if task_to_domain else None,
            workflow_def=dict(workflow_def) if workflow_def else None,
            idempotency_key=idempotency_key,
            idempotency_strategy=idempotency_strategy,
        )
    except ValueError as exc:
        raise BadRequest(f"start of workflow '{name}': {exc}") from None


def _task_def(item: TaskDef | Mapping[str, Any]) -> TaskDef:
    return _definition(TaskDef, item, "task")


def _workflow_def(item: Definition) -> WorkflowDef:
    """A builder or definition as a validated `WorkflowDef`; BadRequest names the problem."""
    try:
        if isinstance(item, ConductorWorkflow):
            return item.to_workflow_def()
        return validate_workflow_def(item)
    except InvalidWorkflowDef as exc:
        raise BadRequest(f"workflow definition is invalid: {exc}") from None


def _definition(model: type[DefT], item: DefT | Mapping[str, Any], kind: str) -> DefT:
    """`item` as a `model` (validated when given as a mapping); BadRequest names what is wrong."""
    if not isinstance(item, Mapping):
        return item
    try:
        return model.model_validate(item)
    except ValueError as exc:
        raise BadRequest(f"{kind} definition {item.get('name')!r} is invalid: {exc}") from None


def _pending_task(tasks: Sequence[Task], task_ref: str | None) -> Task | None:
    """The first pending WAIT task, or the pending task named `task_ref`: an exact reference
    name first, then a loop iteration of it (`ref__N`), as OSS looks it up."""
    pending = [task for task in tasks if not task.terminal]
    if task_ref is None:
        return next((task for task in pending if task.task_type == "WAIT"), None)
    exact = (task for task in pending if task.reference_task_name == task_ref)
    iteration = (
        task for task in pending if (task.reference_task_name or "").rsplit("__", 1)[0] == task_ref
    )
    return next(exact, None) or next(iteration, None)


def _task_result(
    task_id: str,
    workflow_id: str,
    status: TaskResultStatus,
    output: Mapping[str, Any] | None,
    reason: str | None,
    worker_id: str | None,
) -> dict[str, Any]:
    """The wire body of a task's result (`POST /tasks` and `/tasks/update-v2`)."""
    return TaskResult(
        workflow_instance_id=workflow_id,
        task_id=task_id,
        status=status,
        output_data=dict(output or {}),
        reason_for_incompletion=reason,
        worker_id=worker_id,
    ).to_wire()
