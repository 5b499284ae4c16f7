"""The official conductor-python SDK (2.0.0) against the dev server, over real HTTP.

The SDK is synchronous, so each scenario runs in a worker thread while the server runs in the
event loop. This is the evidence that the wire contract (§1-§4) is what real clients expect.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from conductor.client.automator.task_runner import TaskRunner
from conductor.client.configuration.configuration import Configuration
from conductor.client.configuration.settings.authentication_settings import (
    AuthenticationSettings,
)
from conductor.client.http.models import (
    RerunWorkflowRequest,
    StartWorkflowRequest,
    TaskDef,
    TaskResult,
    WorkflowDef,
    WorkflowTask,
)
from conductor.client.orkes_clients import OrkesClients
from conductor.client.worker.worker import Worker

from gateway.devserver.clock import ManualClock
from gateway.devserver.server import DevServer


def _clients(url: str, auth: AuthenticationSettings | None = None) -> OrkesClients:
    return OrkesClients(Configuration(server_api_url=url, authentication_settings=auth))


def _register(clients: OrkesClients) -> None:
    metadata = clients.get_metadata_client()
    metadata.register_task_def(
        TaskDef(name="sdk_task", retry_count=0, timeout_seconds=60, response_timeout_seconds=30)
    )
    task = WorkflowTask(
        name="sdk_task",
        task_reference_name="t1",
        type="SIMPLE",
        input_parameters={"x": "${workflow.input.x}"},
    )
    wf_def = WorkflowDef(name="sdk_wf", version=1, tasks=[task], timeout_seconds=0)
    wf_def.output_parameters = {"result": "${t1.output.result}"}
    metadata.register_workflow_def(wf_def, overwrite=True)
    assert metadata.get_task_def("sdk_task").retry_count == 0


def _start(clients: OrkesClients, x: int = 1) -> str:
    request = StartWorkflowRequest(name="sdk_wf", version=1, input={"x": x}, correlation_id="c")
    workflow_id: str = clients.get_workflow_client().start_workflow(request)
    return workflow_id


def _work_one(clients: OrkesClients, status: str = "COMPLETED") -> str:
    tasks = clients.get_task_client()
    task = tasks.poll_task("sdk_task", worker_id="sdk-worker")
    assert task is not None and task.input_data == {"x": 1}
    result = TaskResult(
        workflow_instance_id=task.workflow_instance_id,
        task_id=task.task_id,
        status=status,
        output_data={"result": 42},
        worker_id="sdk-worker",
    )
    task_id: str = tasks.update_task(result)
    assert task_id == task.task_id
    return task_id


def _lifecycle(url: str) -> dict[str, Any]:
    clients = _clients(url)
    _register(clients)
    wf = clients.get_workflow_client()
    workflow_id = _start(clients)
    got = wf.get_workflow(workflow_id, include_tasks=True)
    assert got.status == "RUNNING" and got.tasks[0].reference_task_name == "t1"
    # A 204 empty poll: this SDK turns it into an empty Task, as it does against Conductor.
    empty = clients.get_task_client().poll_task("nothing_here")
    assert empty is None or empty.task_id is None
    _work_one(clients)
    done = wf.get_workflow(workflow_id, include_tasks=True)
    assert done.status == "COMPLETED" and done.output == {"result": 42}

    second = _start(clients)
    wf.pause_workflow(second)
    assert wf.get_workflow(second).status == "PAUSED"
    wf.resume_workflow(second)
    wf.terminate_workflow(second, reason="sdk says stop")
    stopped = wf.get_workflow(second)
    assert stopped.status == "TERMINATED" and stopped.reason_for_incompletion == "sdk says stop"
    wf.retry_workflow(second)
    assert wf.get_workflow(second).status == "RUNNING"
    wf.terminate_workflow(second)
    wf.restart_workflow(second)
    assert wf.get_workflow(second).status == "RUNNING"
    wf.terminate_workflow(second)
    rerun_id = wf.rerun_workflow(second, RerunWorkflowRequest(workflow_input={"x": 1}))
    assert rerun_id == second and wf.get_workflow(second).status == "RUNNING"

    found = wf.search(query="workflowType = sdk_wf AND status = COMPLETED")
    assert [s.workflow_id for s in found.results] == [workflow_id]
    assert found.results[0].workflow_type == "sdk_wf"
    return {"completed": workflow_id, "running": second}


async def test_official_sdk_lifecycle_against_oss_flavour() -> None:
    """§4.1-§4.14 through conductor-python: register, start, get, poll+complete, terminate,
    pause/resume, retry, restart, rerun, search."""
    async with DevServer(port=0) as server:
        ids = await asyncio.to_thread(_lifecycle, server.url)
        assert server.engine.get(ids["running"]).status == "RUNNING"


def _run_worker(url: str, workflow_ids: list[str]) -> list[str]:
    """The SDK's own worker loop (batch poll, execute, update-v2) until the workflows finish."""
    config = Configuration(server_api_url=url)
    worker = Worker(
        "sdk_task", lambda task: {"result": task.input_data["x"] * 10}, poll_interval=0.01
    )
    runner = TaskRunner(worker, config)
    wf = OrkesClients(config).get_workflow_client()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        runner.run_once()
        statuses = [wf.get_workflow(i, include_tasks=False).status for i in workflow_ids]
        if all(s == "COMPLETED" for s in statuses):
            break
    return [str(wf.get_workflow(i).output["result"]) for i in workflow_ids]


async def test_official_sdk_worker_runner_completes_tasks() -> None:
    """§4.14 worker protocol via the SDK's TaskRunner: batch poll, POST /tasks/update-v2."""
    async with DevServer(port=0) as server:
        clients = _clients(server.url)
        await asyncio.to_thread(_register, clients)
        ids = [await asyncio.to_thread(_start, clients, x) for x in (1, 2, 3)]
        results = await asyncio.to_thread(_run_worker, server.url, ids)
        assert results == ["10", "20", "30"]


def _orkes_flow(url: str, auth: AuthenticationSettings) -> None:
    clients = _clients(url, auth)
    _register(clients)
    wf = clients.get_workflow_client()
    workflow_id = _start(clients)
    wf.update_variables(workflow_id, {"approved": True})
    assert wf.get_workflow(workflow_id).variables == {"approved": True}
    wf.resume_workflow(workflow_id)  # Orkes: a 200 no-op on a RUNNING workflow
    _work_one(clients)
    assert wf.get_workflow(workflow_id).status == "COMPLETED"


async def test_official_sdk_orkes_variables_and_token_auth() -> None:
    """§1.1 token auth and §4.6 variables through conductor-python."""
    auth = AuthenticationSettings(key_id="sdk-key", key_secret="sdk-secret")
    async with DevServer(port=0, flavor="orkes", key_id="sdk-key", key_secret="sdk-secret") as s:
        await asyncio.to_thread(_orkes_flow, s.url, auth)


def _expired_then_refreshed(url: str, auth: AuthenticationSettings, clock: ManualClock) -> None:
    clients = _clients(url, auth)
    _register(clients)
    clock.advance(120)  # the token outlives token_ttl_seconds: the server says EXPIRED_TOKEN
    workflow_id = _start(clients)  # the SDK refreshes its token and retries
    assert clients.get_workflow_client().get_workflow(workflow_id).status == "RUNNING"


async def test_official_sdk_refreshes_an_expired_token() -> None:
    """§1.1: 401 {"error":"EXPIRED_TOKEN"} makes the SDK fetch a new token and retry."""
    clock = ManualClock()
    auth = AuthenticationSettings(key_id="k", key_secret="s")
    async with DevServer(
        port=0, flavor="orkes", key_id="k", key_secret="s", token_ttl_seconds=60, clock=clock
    ) as server:
        await asyncio.to_thread(_expired_then_refreshed, server.url, auth, clock)
        assert server.auth is not None and server.auth.issued == 2
