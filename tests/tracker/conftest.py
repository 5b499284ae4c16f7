"""A dev server with the task and workflow definitions the tracker tests use, and a client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.conductor.client import ConductorClient
from gateway.conductor.models import Task
from gateway.devserver.server import DevServer

TASK = "tracker_task"  # fails for good on the first failure
SLOW_TASK = "tracker_slow_task"  # times out the workflow 1 s after a worker took it
FLOW = "tracker_flow"
TIMEOUT_FLOW = "tracker_timeout_flow"


def _flow(name: str, task: str) -> dict[str, object]:
    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "ownerEmail": "tests@example.com",
        "tasks": [{"name": task, "taskReferenceName": "step", "type": "SIMPLE"}],
        "outputParameters": {"answer": "${step.output.answer}"},
    }


@pytest.fixture(scope="module")
async def conductor() -> AsyncIterator[ConductorClient]:
    async with DevServer(port=0) as server, ConductorClient(server.url, flavor="oss") as client:
        await client.register_task_defs(
            [
                {"name": TASK, "retryCount": 0, "ownerEmail": "tests@example.com"},
                {
                    "name": SLOW_TASK,
                    "retryCount": 0,
                    "timeoutSeconds": 1,
                    "responseTimeoutSeconds": 1,
                    "timeoutPolicy": "TIME_OUT_WF",
                    "ownerEmail": "tests@example.com",
                },
            ]
        )
        await client.register_workflow_def(_flow(FLOW, TASK), overwrite=True)
        await client.register_workflow_def(_flow(TIMEOUT_FLOW, SLOW_TASK), overwrite=True)
        yield client


async def take_task(client: ConductorClient, task_type: str, workflow_id: str) -> Task:
    """Poll until the task of `workflow_id` is handed out (tests run one workflow at a time
    per task type, or put back nothing: the dev server queues per type)."""
    async with asyncio.timeout(10):
        while True:
            task = await client.poll_task(task_type, worker_id="test-worker")
            if task is not None:
                assert task.workflow_instance_id == workflow_id, "another workflow's task"
                return task
            await asyncio.sleep(0.05)
