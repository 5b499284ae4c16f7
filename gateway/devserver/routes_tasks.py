"""`/api/tasks/...` routes (§3 rows 14-15, §4.14, §4.15) and worker polling."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from gateway.devserver.engine import Engine
from gateway.devserver.http import (
    empty,
    json_response,
    no_content,
    parse_model,
    query_int,
    query_str,
    read_object,
    text_response,
)
from gateway.devserver.models import TaskResult
from gateway.devserver.runs import POLL_SECONDS, run_json, wait_blocked
from gateway.devserver.state import new_id
from gateway.devserver.taskops import TaskOps, check_result_status
from gateway.errors import NotFound


class TaskRoutes:
    def __init__(self, engine: Engine, ops: TaskOps) -> None:
        self.engine = engine
        self.ops = ops

    def register(self, router: web.UrlDispatcher) -> None:
        p = "/api/tasks"
        router.add_get(p + "/poll/batch/{type}", self.batch_poll)
        router.add_get(p + "/poll/{type}", self.poll)
        router.add_post(p, self.update)
        router.add_post(f"{p}/update-v2", self.update_v2)
        router.add_post(p + "/{wf}/{status}/signal", self.signal)
        router.add_post(p + "/{wf}/{status}/signal/sync", self.signal_sync)
        router.add_post(p + "/{wf}/{ref}/{status}", self.update_by_ref)
        router.add_post(p + "/{wf}/{ref}/{status}/sync", self.update_by_ref_sync)
        router.add_get(p + "/{id}", self.get_task)

    async def poll(self, request: web.Request) -> web.Response:
        tasks = self.ops.poll(
            request.match_info["type"],
            query_str(request, "workerid"),
            query_str(request, "domain"),
        )
        # 204 when nothing is queued, for 2.x clients (TaskResource.poll).
        return json_response(tasks[0].to_json()) if tasks else no_content()

    async def batch_poll(self, request: web.Request) -> web.Response:
        count = query_int(request, "count", 1) or 1
        deadline = time.monotonic() + (query_int(request, "timeout", 100) or 0) / 1000
        args = (
            request.match_info["type"],
            query_str(request, "workerid"),
            query_str(request, "domain"),
        )
        tasks = self.ops.poll(*args, count=count)
        while not tasks and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            tasks = self.ops.poll(*args, count=count)
        return json_response([t.to_json() for t in tasks])

    async def get_task(self, request: web.Request) -> web.Response:
        task_id = request.match_info["id"]
        task = self.ops.get_task(task_id)
        if task is None:
            raise NotFound(f"Task not found for taskId: {task_id}", status=404)
        return json_response(task.to_json())

    async def update(self, request: web.Request) -> web.Response:
        result = parse_model(TaskResult, await read_object(request), "updateTask")
        return text_response(self.ops.update(result))

    async def update_v2(self, request: web.Request) -> web.Response:
        """TaskResource.updateTaskV2: update, then hand out the next task of the same type."""
        result = parse_model(TaskResult, await read_object(request), "updateTaskV2")
        self.ops.update(result)
        task = self.ops.get_task(result.task_id)
        assert task is not None
        polled = self.ops.poll(task.workflow_task.name, result.worker_id, task.domain)
        return json_response(polled[0].to_json()) if polled else no_content()

    async def update_by_ref(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        task_id = self.ops.update_by_ref(
            request.match_info["wf"],
            request.match_info["ref"],
            request.match_info["status"],
            query_str(request, "workerid"),
            body,
        )
        return text_response(task_id)

    async def update_by_ref_sync(self, request: web.Request) -> web.Response:
        workflow_id, ref = request.match_info["wf"], request.match_info["ref"]
        status = check_result_status(request.match_info["status"])
        body = await read_object(request)
        if self.ops.pending_by_ref(workflow_id, ref) is None:
            raise NotFound(
                f"Found no running task {ref} of workflow {workflow_id} to update", status=404
            )
        self.ops.update_by_ref(workflow_id, ref, status, query_str(request, "workerid"), body)
        return json_response(self.engine.get(workflow_id).to_json())

    async def signal(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        self.ops.signal(request.match_info["wf"], request.match_info["status"], body)
        return empty()

    async def signal_sync(self, request: web.Request) -> web.Response:
        workflow_id = request.match_info["wf"]
        status = check_result_status(request.match_info["status"])
        body = await read_object(request)
        wf = self.engine.get(workflow_id)
        if self.ops.blocking_wait(wf) is None:
            raise NotFound(f"Found no blocked task in workflow {workflow_id} to signal", status=404)
        self.ops.signal(workflow_id, status, body)
        timeout_ms = query_int(request, "timeoutMillis", 5000) or 5000
        timed_out = await wait_blocked(wf, frozenset(), timeout_ms / 1000)
        return json_response(run_json(wf, query_str(request, "requestId") or new_id(), timed_out))
