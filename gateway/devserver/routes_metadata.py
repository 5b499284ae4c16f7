"""`/api/metadata/...` routes (§4.17, §4.18)."""

from __future__ import annotations

from aiohttp import web

from gateway.devserver.engine import Engine
from gateway.devserver.http import (
    empty,
    json_response,
    parse_model,
    query_bool,
    query_int,
    read_array,
    read_object,
    validation_error,
)
from gateway.devserver.models import TaskDef, WorkflowDef
from gateway.errors import ConductorError


class MetadataRoutes:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.metadata = engine.metadata

    def register(self, router: web.UrlDispatcher) -> None:
        p = "/api/metadata"
        router.add_post(f"{p}/taskdefs", self.register_task_defs)
        router.add_put(f"{p}/taskdefs", self.update_task_def)
        router.add_get(f"{p}/taskdefs", self.list_task_defs)
        router.add_get(p + "/taskdefs/{name}", self.get_task_def)
        router.add_post(f"{p}/workflow", self.register_workflow)
        router.add_put(f"{p}/workflow", self.upsert_workflows)
        router.add_get(p + "/workflow/{name}", self.get_workflow)

    async def register_task_defs(self, request: web.Request) -> web.Response:
        items = await read_array(request)
        if not items:
            raise validation_error("registerTaskDef.arg0", "TaskDefList is empty")
        defs = [
            parse_model(TaskDef, item, f"registerTaskDef.arg0[{i}]") for i, item in enumerate(items)
        ]
        for task_def in defs:
            self.metadata.upsert_task_def(task_def, self.engine.now())
        return empty()

    async def update_task_def(self, request: web.Request) -> web.Response:
        task_def = parse_model(TaskDef, await read_object(request), "updateTaskDef")
        self.metadata.update_task_def(task_def)
        return empty()

    async def list_task_defs(self, _request: web.Request) -> web.Response:
        return json_response([d.wire() for d in self.metadata.task_defs()])

    async def get_task_def(self, request: web.Request) -> web.Response:
        return json_response(self.metadata.get_task_def(request.match_info["name"]).wire())

    async def register_workflow(self, request: web.Request) -> web.Response:
        definition = parse_model(WorkflowDef, await read_object(request), "create")
        overwrite = query_bool(request, "overwrite", False)
        self.metadata.register_workflow(definition, overwrite, self.engine.now())
        return empty()

    async def upsert_workflows(self, request: web.Request) -> web.Response:
        items = await read_array(request)
        ok: list[str] = []
        failed: dict[str, str] = {}
        definitions = [parse_model(WorkflowDef, item, "update") for item in items]
        for definition in definitions:
            try:
                self.metadata.register_workflow(definition, True, self.engine.now())
                ok.append(definition.name)
            except ConductorError as exc:
                failed[definition.name] = exc.message
        return json_response({"bulkSuccessfulResults": ok, "bulkErrorResults": failed})

    async def get_workflow(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        definition = self.metadata.get_workflow(name, query_int(request, "version", None))
        return json_response(definition.wire())
