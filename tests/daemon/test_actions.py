"""Every workflow operation driven by events, checked on the workflow's state: on the dev server
(OSS and Orkes flavours) and on the real Conductor OSS."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.conductor.client import ConductorClient
from gateway.conductor.worker import work_once
from gateway.devserver.server import DevServer
from tests.daemon.conftest import (
    ConductorServer,
    conductor_server,
    create_topic,
    eventually,
    make_settings,
    producer,
    running,
    unique,
    wait_workflow,
)

pytestmark = pytest.mark.brokers


def action_rules(topic: str, workflow: str) -> str:
    def rule(op: str, body: str, target: str = "correlation") -> str:
        if target == "correlation":
            where = f'workflow_name: {workflow}\n      correlation_id: "${{body.cid}}"'
        else:
            where = 'workflow_id: "${body.wid}"'
        return f"""
  - name: {op}
    source: {{topic: {topic}}}
    match: {{body: {{op: [{op}]}}}}
    {op if op != "retry" else "retry_workflow"}:
      {where}
      {body}"""

    return (
        "version: 1\nrules:"
        + rule("pause", "")
        + rule("resume", "", target="id")
        + rule("update_variables", 'variables: "${body.vars}"')
        + rule("terminate", 'reason: "${body.reason}"')
        + rule("retry", "")
        + rule("restart", "")
        + rule("rerun", "")
    )


@pytest.fixture(params=["oss", "orkes", "real"])
async def flavored(request: pytest.FixtureRequest) -> AsyncIterator[ConductorServer]:
    """The dev server in both flavours, and the real Conductor OSS."""
    async with conductor_server(request.param, request) as server:
        yield server


async def test_operations_driven_by_events(
    kafka_bootstrap: str, flavored: ConductorServer, tmp_path: Path
) -> None:
    server, conductor = flavored, flavored.client
    topic, workflow = unique("ops"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(kafka_bootstrap, topic, 1)
    wid = await conductor.start_workflow(workflow, correlation_id="c-1")
    settings = make_settings(
        tmp_path,
        conductor_url=server.url,
        kafka_bootstrap=kafka_bootstrap,
        conductor={"flavor": server.flavor},
    )
    steps: list[tuple[dict[str, Any], str]] = [
        ({"op": "pause"}, "PAUSED"),
        ({"op": "pause"}, "PAUSED"),  # pausing a paused workflow is a no-op
        ({"op": "resume"}, "RUNNING"),
        ({"op": "resume"}, "RUNNING"),  # OSS answers 500 here; the gateway counts it done
        ({"op": "terminate", "reason": "by event"}, "TERMINATED"),
        ({"op": "terminate", "reason": "again"}, "TERMINATED"),  # no-op
        ({"op": "retry"}, "RUNNING"),
        ({"op": "terminate", "reason": "before restart"}, "TERMINATED"),
        ({"op": "restart"}, "RUNNING"),
        ({"op": "terminate", "reason": "before rerun"}, "TERMINATED"),
        ({"op": "rerun"}, "RUNNING"),
    ]
    if server.flavor == "orkes":
        steps.insert(0, ({"op": "update_variables", "vars": {"stage": "paid"}}, "RUNNING"))
    async with running(settings, action_rules(topic, workflow)) as gateway:
        async with producer(kafka_bootstrap) as p:
            for n, (body, status) in enumerate(steps):
                payload = json.dumps({**body, "cid": "c-1", "wid": wid}).encode()
                await p.send_and_wait(topic, payload, key=b"c-1")

                async def reached(status: str = status, n: int = n) -> bool:
                    settled = gateway.metrics.total("gateway_events_settled_total")
                    wf = await conductor.get_workflow(wid)
                    return settled >= n + 1 and wf.status == status

                await eventually(reached, timeout=20)
                if body["op"] == "update_variables":
                    variables = (await conductor.get_workflow(wid)).variables
                    assert variables.get("stage") == "paid"
        assert gateway.metrics.total("gateway_dead_letters_total") == 0
    assert (await conductor.get_workflow(wid)).status == "RUNNING"


async def test_terminate_by_search_query_reaches_every_match_with_on_many_all(
    kafka_bootstrap: str, oss_conductor: ConductorServer, tmp_path: Path
) -> None:
    conductor = oss_conductor.client
    topic, workflow = unique("ops"), unique("order_flow")
    await conductor.register_workflow_def(wait_workflow(workflow))
    await create_topic(kafka_bootstrap, topic, 1)
    batch = [await conductor.start_workflow(workflow, correlation_id="batch-1") for _ in range(2)]
    other = await conductor.start_workflow(workflow, correlation_id="batch-2")
    rules = f"""
version: 1
rules:
  - name: cancel-batch
    source: {{topic: {topic}}}
    terminate:
      query: "workflowType = {workflow} AND correlationId = ${{body.batch}}"
      on_many: all
      reason: batch cancelled
"""
    settings = make_settings(
        tmp_path, conductor_url=oss_conductor.url, kafka_bootstrap=kafka_bootstrap
    )
    async with running(settings, rules):
        async with producer(kafka_bootstrap) as p:
            await p.send_and_wait(topic, json.dumps({"batch": "batch-1"}).encode())

        async def terminated() -> bool:
            states = [(await conductor.get_workflow(w)).status for w in batch]
            return states == ["TERMINATED", "TERMINATED"]

        await eventually(terminated, timeout=30)
    assert (await conductor.get_workflow(other)).status == "RUNNING"


async def test_orkes_starts_carry_the_idempotency_key(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic, workflow = unique("orders"), unique("order_flow")
    await create_topic(kafka_bootstrap, topic, 1)
    rules = f"""
version: 1
rules:
  - name: start
    source: {{topic: {topic}}}
    idempotency_key: "order:${{body.id}}"
    start_workflow: {{name: {workflow}, correlation_id: "${{body.id}}"}}
"""
    async with (
        DevServer(port=0, flavor="orkes") as server,
        ConductorClient(server.url, flavor="orkes", transport="httpx") as conductor,
    ):
        await conductor.register_workflow_def(wait_workflow(workflow))
        settings = make_settings(
            tmp_path,
            conductor_url=server.url,
            kafka_bootstrap=kafka_bootstrap,
            conductor={"flavor": "orkes"},
        )
        async with running(settings, rules):
            async with producer(kafka_bootstrap) as p:
                await p.send_and_wait(topic, json.dumps({"id": "o-1"}).encode())

            async def started() -> bool:
                return bool(await conductor.get_by_correlation_id(workflow, "o-1"))

            await eventually(started, timeout=30)
        [wf] = await conductor.get_by_correlation_id(workflow, "o-1")
        assert (await conductor.get_workflow(wf.workflow_id)).idempotency_key == "order:o-1"


def _child_and_parent(task_type: str, child: str, parent: str) -> list[dict[str, Any]]:
    """A child of one SIMPLE task (no retries) and a parent that runs it as a SUB_WORKFLOW."""
    child_def = {
        "name": child,
        "version": 1,
        "tasks": [{"name": task_type, "taskReferenceName": "work", "type": "SIMPLE"}],
    }
    parent_def = {
        "name": parent,
        "version": 1,
        "tasks": [
            {
                "name": "child",
                "taskReferenceName": "child",
                "type": "SUB_WORKFLOW",
                "subWorkflowParam": {"name": child, "version": 1},
            }
        ],
    }
    return [child_def, parent_def]


async def test_retry_restart_rerun_events_on_a_failed_sub_workflow(
    kafka_bootstrap: str, oss_conductor: ConductorServer, tmp_path: Path
) -> None:
    """retry (resume_subworkflow_tasks: the same child resumes), restart and rerun (a new child
    each), driven by events on a parent whose SUB_WORKFLOW child failed."""
    conductor = oss_conductor.client
    task_type, topic = unique("sub_work"), unique("ops")
    child, parent = unique("child_flow"), unique("parent_flow")
    await conductor.register_task_defs([{"name": task_type, "retryCount": 0}])
    for definition in _child_and_parent(task_type, child, parent):
        await conductor.register_workflow_def(definition, overwrite=True)
    await create_topic(kafka_bootstrap, topic, 1)
    wid = await conductor.start_workflow(parent)

    async def child_id() -> str:
        wf = await conductor.get_workflow(wid)
        found = [t.sub_workflow_id for t in wf.tasks if t.reference_task_name == "child"]
        return (found[-1] or "") if found else ""

    async def work(outcome: str) -> str:
        """Let a worker end the child's task; return the parent's status once it settles."""

        def handler(_task: Any) -> dict[str, Any]:
            if outcome == "FAILED":
                raise RuntimeError("child task failed")
            return {"done": True}

        async def handled() -> bool:
            return await work_once(conductor, task_type, handler) is not None

        await eventually(handled, timeout=30)
        expected = "FAILED" if outcome == "FAILED" else "COMPLETED"

        async def parent_settled() -> bool:
            return (await conductor.get_workflow(wid, include_tasks=False)).status == expected

        await eventually(parent_settled, timeout=60)
        return expected

    rules = f"""
version: 1
rules:
  - name: retry
    source: {{topic: {topic}}}
    match: {{body: {{op: [retry]}}}}
    retry_workflow: {{workflow_id: "${{body.wid}}", resume_subworkflow_tasks: true}}
  - name: restart
    source: {{topic: {topic}}}
    match: {{body: {{op: [restart]}}}}
    restart: {{workflow_id: "${{body.wid}}"}}
  - name: rerun
    source: {{topic: {topic}}}
    match: {{body: {{op: [rerun]}}}}
    rerun: {{workflow_id: "${{body.wid}}"}}
"""
    settings = make_settings(
        tmp_path, conductor_url=oss_conductor.url, kafka_bootstrap=kafka_bootstrap
    )
    async with running(settings, rules) as gateway, producer(kafka_bootstrap) as p:

        async def send(op: str) -> None:
            await p.send_and_wait(topic, json.dumps({"op": op, "wid": wid}).encode())

            async def running_again() -> bool:
                wf = await conductor.get_workflow(wid, include_tasks=False)
                return wf.status == "RUNNING"

            await eventually(running_again, timeout=30)

        await work("FAILED")
        first_child = await child_id()
        await send("retry")
        assert await work("COMPLETED") == "COMPLETED"
        assert await child_id() == first_child, "retry with resume started a new child"
        child_wf = await conductor.get_workflow(first_child)
        assert child_wf.status == "COMPLETED" and child_wf.parent_workflow_id == wid
        assert [t.status for t in child_wf.tasks] == ["FAILED", "COMPLETED"]

        await send("restart")
        await work("FAILED")
        restarted_child = await child_id()
        assert restarted_child not in ("", first_child)
        await send("rerun")
        assert await work("COMPLETED") == "COMPLETED"
        assert await child_id() not in ("", first_child, restarted_child)
        assert gateway.metrics.total("gateway_dead_letters_total") == 0
