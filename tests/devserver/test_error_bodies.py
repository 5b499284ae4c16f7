"""Reference §1.2: error statuses and bodies, word for word, on the dev server and on the real
Conductor OSS (docs/conductor-differences.md lists what was aligned)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.devserver.conftest import Api, wait

VALIDATION = "Validation failed, check below errors for detail."


def _validation(*errors: dict[str, str]) -> dict[str, Any]:
    return {"status": 400, "message": VALIDATION, "retryable": False, "validationErrors": [*errors]}


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    body.pop("instance", None)  # the server's host name
    return body


@pytest.mark.parametrize(
    ("call", "status", "expected"),
    [
        (
            ("POST", "/workflow", {"input": {}}),
            400,
            _validation(
                {
                    "path": "startWorkflow.arg0.name",
                    "message": "Workflow name cannot be null or empty",
                }
            ),
        ),
        (
            ("POST", "/metadata/taskdefs", []),
            400,
            _validation({"path": "registerTaskDef.arg0", "message": "TaskDefList is empty"}),
        ),
        (
            ("POST", "/metadata/taskdefs", [{"name": "td_x", "timeoutSeconds": 10}]),
            400,
            _validation(
                {
                    "path": "registerTaskDef.arg0[0]",
                    "message": "TaskDef: td_x responseTimeoutSeconds: 3600 must be less than "
                    "timeoutSeconds: 10",
                }
            ),
        ),
        (
            ("PUT", "/workflow/bulk/pause", []),
            400,
            _validation(
                {"path": "pauseWorkflow.arg0", "message": "WorkflowIds list cannot be null."}
            ),
        ),
        (
            ("POST", "/workflow/bulk/terminate", []),
            400,
            _validation({"path": "terminate.arg0", "message": "WorkflowIds list cannot be null."}),
        ),
        (
            ("GET", "/tasks/no-such-task", None),
            404,
            {
                "status": 404,
                "message": "Task not found for taskId: no-such-task",
                "retryable": False,
            },
        ),
        (
            ("GET", "/workflow/no-such-id", None),
            404,
            {
                "status": 404,
                "message": "No such workflow found by id: no-such-id",
                "retryable": False,
            },
        ),
    ],
    ids=lambda v: v[1] if isinstance(v, tuple) else None,
)
async def test_section1_2_error_bodies(
    conductor: Api, call: tuple[str, str, Any], status: int, expected: dict[str, Any]
) -> None:
    method, path, body = call
    r = await conductor.http.request(method, path, json=body)
    assert r.status_code == status, r.text
    assert _error(r) == expected


async def test_section1_2_conflict_and_not_found_texts(conductor: Api) -> None:
    api = conductor
    name = api.name("texts")
    await api.workflow_def(name, [wait("w")])
    wf_id = await api.start(name)
    r = await api.http.post(f"/workflow/{wf_id}/restart")
    assert r.status_code == 409 and _error(r)["message"] == (
        f"Workflow: {name}.1/{wf_id}.RUNNING is not in terminal state, unable to restart."
    )
    await api.http.delete(f"/workflow/{wf_id}")
    r = await api.http.put(f"/workflow/{wf_id}/pause")
    assert r.status_code == 409 and _error(r)["message"] == (
        f"Workflow {name}.1/{wf_id} has ended, status cannot be updated."
    )
    missing = "none_" + uuid.uuid4().hex[:8]
    r = await api.http.get(f"/metadata/workflow/{missing}")
    assert r.status_code == 404 and _error(r)["message"] == (
        f"No such workflow found by name: {missing}, version: null"
    )
