"""`/api/workflow/...` routes (§3 rows 1-13, 16)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.devserver.engine import Engine
from gateway.devserver.http import (
    empty,
    json_response,
    no_content,
    parse_model,
    query_bool,
    query_int,
    query_str,
    read_array,
    read_object,
    text_response,
    validation_error,
)
from gateway.devserver.models import RerunRequest, StartWorkflowRequest
from gateway.devserver.runs import run_json, wait_blocked
from gateway.devserver.search import search, search_query, summary
from gateway.devserver.state import WorkflowRecord, new_id
from gateway.errors import BadRequest, ConductorError

MAX_BULK = 1000


def check_priority(priority: int, path: str) -> None:
    """WorkflowService.startWorkflow's @Min/@Max on the `priority` query parameter."""
    if priority > 99:
        raise validation_error(path, "99 is the maximum priority value", priority)
    if priority < 0:
        raise validation_error(path, "0 is the minimum priority value", priority)


def check_start_request(start: StartWorkflowRequest, path: str) -> None:
    """Bean validation of a StartWorkflowRequest body: its own messages, under `path`."""
    if not start.name and start.workflow_def is None:
        raise validation_error(f"{path}.name", "Workflow name cannot be null or empty")
    if start.priority > 99:
        message = f"priority: {start.priority} should be maximum 99"
        raise validation_error(f"{path}.priority", message, start.priority)
    if start.priority < 0:
        message = f"priority: {start.priority} should be minimum 0"
        raise validation_error(f"{path}.priority", message, start.priority)


class WorkflowRoutes:
    def __init__(self, engine: Engine, sweep: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self._sweep = sweep

    def register(self, router: web.UrlDispatcher) -> None:
        p = "/api/workflow"
        router.add_post(p, self.start)
        router.add_get(f"{p}/search", self.search)
        router.add_get(f"{p}/search-v2", self.search_v2)
        router.add_post(p + "/execute/{name}/{version}", self.execute)
        router.add_put(f"{p}/bulk/pause", self.bulk(self.engine.pause, "pauseWorkflow"))
        router.add_put(f"{p}/bulk/resume", self.bulk(self.engine.resume, "resumeWorkflow"))
        router.add_post(f"{p}/bulk/terminate", self.bulk_terminate)
        router.add_post(f"{p}/bulk/retry", self.bulk(self.engine.retry, "retry"))
        router.add_post(f"{p}/bulk/restart", self.bulk_restart)
        router.add_put(p + "/decide/{id}", self.decide)
        router.add_post(p + "/{name}", self.start_by_name)
        router.add_get(p + "/{id}", self.get)
        router.add_delete(p + "/{id}", self.terminate)
        router.add_delete(p + "/{id}/remove", self.remove)
        router.add_get(p + "/{id}/status", self.status)
        router.add_get(p + "/{id}/tasks", self.task_list)
        router.add_get(p + "/{name}/correlated/{cid}", self.correlated)
        router.add_post(p + "/{name}/correlated", self.correlated_many)
        router.add_put(p + "/{id}/pause", self.pause)
        router.add_put(p + "/{id}/resume", self.resume)
        router.add_post(p + "/{id}/retry", self.retry)
        router.add_post(p + "/{id}/restart", self.restart)
        router.add_post(p + "/{id}/rerun", self.rerun)
        if self.engine.orkes:
            router.add_post(p + "/{id}/variables", self.variables)

    # --- start -------------------------------------------------------------------------

    async def start(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        start = parse_model(StartWorkflowRequest, body, "startWorkflow")
        check_start_request(start, "startWorkflow.arg0")
        return text_response(self.engine.start(start))

    async def start_by_name(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        priority = query_int(request, "priority", 0) or 0
        check_priority(priority, "startWorkflow.priority")
        start = StartWorkflowRequest(
            name=request.match_info["name"],
            version=query_int(request, "version", None),
            correlation_id=query_str(request, "correlationId"),
            input=body,
            priority=priority,
            idempotency_key=request.headers.get("X-Idempotency-key") or None,
            idempotency_strategy=self._strategy(request.headers.get("X-on-conflict")),
        )
        return text_response(self.engine.start(start, by_name=True))

    @staticmethod
    def _strategy(value: str | None) -> Any:
        if value in (None, ""):
            return None
        if value not in ("FAIL", "RETURN_EXISTING", "FAIL_ON_RUNNING"):
            raise validation_error(
                "X-on-conflict", "use FAIL, RETURN_EXISTING or FAIL_ON_RUNNING", value
            )
        return value

    async def execute(self, request: web.Request) -> web.Response:
        body = await read_object(request, required=False)
        body["name"] = request.match_info["name"]
        version = int(request.match_info["version"])
        body["version"] = version or None  # 0 means latest
        start = parse_model(StartWorkflowRequest, body, "executeWorkflow")
        check_priority(start.priority, "executeWorkflow.priority")
        workflow_id = self.engine.start(start)
        refs = frozenset(r for r in (query_str(request, "waitUntilTaskRef") or "").split(",") if r)
        wait = query_int(request, "waitForSeconds", 10) or 10
        wf = self.engine.get(workflow_id)
        timed_out = await wait_blocked(wf, refs, float(wait))
        request_id = query_str(request, "requestId") or new_id()
        # OSS answers 200 with signalTimeout=true; Orkes documents 206 for an incomplete run.
        status = 206 if timed_out and self.engine.orkes else 200
        return json_response(run_json(wf, request_id, timed_out), status)

    # --- reads -------------------------------------------------------------------------

    async def get(self, request: web.Request) -> web.Response:
        wf = self.engine.get(request.match_info["id"])
        return json_response(wf.to_json(query_bool(request, "includeTasks", True)))

    async def status(self, request: web.Request) -> web.Response:
        wf = self.engine.get(request.match_info["id"])
        data: dict[str, Any] = {"workflowId": wf.workflow_id, "status": wf.status}
        if wf.correlation_id is not None:
            data["correlationId"] = wf.correlation_id
        if query_bool(request, "includeOutput", False):
            data["output"] = wf.output
        if query_bool(request, "includeVariables", False):
            data["variables"] = wf.variables
        return json_response(data)

    def _correlated(self, request: web.Request, cid: str) -> list[dict[str, Any]]:
        found = self.engine.by_correlation_id(
            request.match_info["name"], cid, query_bool(request, "includeClosed", False)
        )
        include_tasks = query_bool(request, "includeTasks", False)
        return [wf.to_json(include_tasks) for wf in found]

    async def correlated(self, request: web.Request) -> web.Response:
        return json_response(self._correlated(request, request.match_info["cid"]))

    async def correlated_many(self, request: web.Request) -> web.Response:
        ids = await read_array(request)
        return json_response({str(cid): self._correlated(request, str(cid)) for cid in ids})

    def _search(self, request: web.Request) -> tuple[int, list[WorkflowRecord]]:
        return search(
            [*self.engine.store.workflows.values(), *self.engine.archived.values()],
            search_query(request),
            request.query.get("freeText", "*"),
            query_int(request, "start", 0) or 0,
            query_int(request, "size", 100) or 0,
            query_str(request, "sort"),
        )

    async def search(self, request: web.Request) -> web.Response:
        total, hits = self._search(request)
        return json_response({"totalHits": total, "results": [summary(wf) for wf in hits]})

    async def search_v2(self, request: web.Request) -> web.Response:
        """Whole workflows without tasks; archived ones cannot be read back, so they leave the
        page and the total (ExecutionService.searchV2)."""
        total, hits = self._search(request)
        live = [wf for wf in hits if wf.workflow_id not in self.engine.archived]
        results = [wf.to_json(include_tasks=False) for wf in live]
        return json_response({"totalHits": total - (len(hits) - len(live)), "results": results})

    # --- lifecycle ---------------------------------------------------------------------

    async def terminate(self, request: web.Request) -> web.Response:
        trigger = query_bool(request, "triggerFailureWorkflow", False)
        self.engine.terminate(request.match_info["id"], query_str(request, "reason"), trigger)
        return empty()

    async def decide(self, request: web.Request) -> web.Response:
        """WorkflowResource.decide: evaluate the workflow now, its due timeouts included."""
        wf = self.engine.get(request.match_info["id"])
        if self._sweep is not None:
            self._sweep()
        if wf.status == "RUNNING":
            self.engine.decider.decide(wf)
        return empty()

    async def task_list(self, request: web.Request) -> web.Response:
        """GET /workflow/{id}/tasks (OSS 3.22+): the tasks, filtered by status, one page."""
        wf = self.engine.get(request.match_info["id"])
        wanted = {s.upper() for v in request.query.getall("status", []) for s in v.split(",") if s}
        tasks = [t for t in wf.tasks if not wanted or t.status in wanted]
        start = max(query_int(request, "start", 0) or 0, 0)
        count = query_int(request, "count", 15) or 0
        page = tasks[min(start, len(tasks)) : min(start + count, len(tasks))]
        return json_response({"totalHits": len(tasks), "results": [t.to_json() for t in page]})

    async def remove(self, request: web.Request) -> web.Response:
        """Remove an execution; archiving (the default) needs a terminal workflow and keeps it
        findable by search, as the real server's index does."""
        workflow_id = request.match_info["id"]
        archive = query_bool(request, "archiveWorkflow", True)
        wf = self.engine.get(workflow_id)
        if archive and not wf.terminal:
            raise BadRequest(
                f"Cannot archive workflow: {workflow_id} with status: {wf.status}", status=400
            )
        self.engine.remove(workflow_id)
        if archive:
            self.engine.archived[workflow_id] = wf
        return empty()

    async def pause(self, request: web.Request) -> web.Response:
        self.engine.pause(request.match_info["id"])
        return empty()

    async def resume(self, request: web.Request) -> web.Response:
        self.engine.resume(request.match_info["id"])
        return empty()

    async def retry(self, request: web.Request) -> web.Response:
        resume = query_bool(request, "resumeSubworkflowTasks", False)
        self.engine.retry(request.match_info["id"], resume)
        return no_content()

    async def restart(self, request: web.Request) -> web.Response:
        use_latest = query_bool(request, "useLatestDefinitions", False)
        self.engine.restart(request.match_info["id"], use_latest)
        return no_content()

    async def rerun(self, request: web.Request) -> web.Response:
        body = parse_model(RerunRequest, await read_object(request), "rerun")
        return text_response(self.engine.rerun(request.match_info["id"], body))

    async def variables(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        wf = self.engine.update_variables(request.match_info["id"], body)
        return json_response(wf.to_json())

    # --- bulk (§4.16) ------------------------------------------------------------------

    def bulk(self, op: Callable[[str], None], method: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            ids = await self._bulk_ids(request, method)
            return json_response(self._run_bulk(ids, op))

        return handler

    async def bulk_terminate(self, request: web.Request) -> web.Response:
        reason = query_str(request, "reason")
        ids = await self._bulk_ids(request, "terminate")
        return json_response(self._run_bulk(ids, lambda i: self.engine.terminate(i, reason)))

    async def bulk_restart(self, request: web.Request) -> web.Response:
        use_latest = query_bool(request, "useLatestDefinitions", False)
        ids = await self._bulk_ids(request, "restart")
        return json_response(self._run_bulk(ids, lambda i: self.engine.restart(i, use_latest)))

    @staticmethod
    async def _bulk_ids(request: web.Request, method: str) -> list[str]:
        """WorkflowBulkService's @NotEmpty / @Size(max=1000) on the id list of `method`."""
        ids = await read_array(request)
        if not ids:
            raise validation_error(f"{method}.arg0", "WorkflowIds list cannot be null.")
        if len(ids) > MAX_BULK:
            raise validation_error(
                f"{method}.arg0",
                f"Cannot process more than {MAX_BULK} workflows. Please use multiple requests.",
            )
        return [str(i) for i in ids]

    @staticmethod
    def _run_bulk(ids: list[str], op: Callable[[str], None]) -> dict[str, Any]:
        ok: list[str] = []
        failed: dict[str, str] = {}
        for workflow_id in ids:
            try:
                op(workflow_id)
                ok.append(workflow_id)
            except ConductorError as exc:
                failed[workflow_id] = exc.message
        return {"bulkSuccessfulResults": ok, "bulkErrorResults": failed}
