"""Reference §4.14 (task updates), §4.15 (signals) and worker polling over HTTP."""

from __future__ import annotations

from tests.devserver.conftest import Api, simple, wait


async def test_poll_empty_is_204_then_task_in_progress(api: Api) -> None:
    """§2.2 / TaskResource.poll: 204 when nothing is queued; a polled task is IN_PROGRESS."""
    assert (await api.http.get("/tasks/poll/t")).status_code == 204
    await api.workflow_def("wf", [simple("t")])
    wf_id = await api.start("wf")
    task = await api.poll("t", workerid="w-1")
    assert task is not None
    assert task["status"] == "IN_PROGRESS" and task["workflowInstanceId"] == wf_id
    assert task["workerId"] == "w-1" and task["pollCount"] == 1 and task["taskType"] == "t"
    assert await api.poll("t") is None


async def test_poll_honours_domain(api: Api) -> None:
    """§4.1 taskToDomain: a task in a domain is polled only with that domain."""
    await api.workflow_def("wf", [simple("t")])
    await api.start("wf", taskToDomain={"t": "blue"})
    assert await api.poll("t") is None
    task = await api.poll("t", domain="blue")
    assert task is not None and task["domain"] == "blue"


async def test_batch_poll_returns_list(api: Api) -> None:
    """§2.2 batch poll (`/tasks/poll/batch/{type}?count&timeout`) returns a JSON list."""
    await api.workflow_def("wf", [simple("t")])
    for _ in range(3):
        await api.start("wf")
    r = await api.http.get("/tasks/poll/batch/t", params={"count": 2, "timeout": 10})
    assert r.status_code == 200 and len(r.json()) == 2
    r = await api.http.get("/tasks/poll/batch/t", params={"count": 5, "timeout": 10})
    assert len(r.json()) == 1
    r = await api.http.get("/tasks/poll/batch/t", params={"count": 5, "timeout": 10})
    assert r.json() == []


async def test_section4_14_post_tasks_returns_text_id_and_404_unknown(api: Api) -> None:
    """§4.14 POST /api/tasks: text/plain taskId; unknown task 404."""
    await api.workflow_def("wf", [simple("t")])
    wf_id = await api.start("wf")
    task = await api.poll("t")
    assert task is not None
    body = {"taskId": task["taskId"], "status": "COMPLETED", "outputData": {"r": 1}}
    r = await api.http.post("/tasks", json=body)
    assert r.status_code == 200 and r.text == task["taskId"]
    assert r.headers["content-type"].startswith("text/plain")
    wf = await api.wf(wf_id)
    assert wf["status"] == "COMPLETED" and wf["output"] == {"r": 1}
    r = await api.http.post("/tasks", json={"taskId": "nope", "status": "COMPLETED"})
    assert r.status_code == 404 and r.json()["message"] == "No such task found by id: nope"


async def test_section4_14_in_progress_with_callback_requeues(api: Api) -> None:
    """§4.14: IN_PROGRESS on a SIMPLE task sets it back to SCHEDULED and requeues it."""
    await api.workflow_def("wf", [simple("t")])
    await api.start("wf")
    task = await api.poll("t")
    assert task is not None
    body = {"taskId": task["taskId"], "status": "IN_PROGRESS", "callbackAfterSeconds": 0}
    await api.http.post("/tasks", json=body)
    again = await api.poll("t")
    assert again is not None and again["taskId"] == task["taskId"] and again["pollCount"] == 2


async def test_section4_14_update_by_ref_merges_output(api: Api) -> None:
    """§4.14: update by ref merges the body into outputData."""
    await api.workflow_def("wf", [wait("w"), wait("w2")])
    wf_id = await api.start("wf")
    r = await api.http.post(f"/tasks/{wf_id}/w/IN_PROGRESS", json={"a": 1})
    assert r.status_code == 200 and r.text
    await api.http.post(f"/tasks/{wf_id}/w/COMPLETED", params={"workerid": "x"}, json={"b": 2})
    wf = await api.wf(wf_id)
    assert wf["tasks"][0]["outputData"] == {"a": 1, "b": 2}
    assert wf["tasks"][0]["status"] == "COMPLETED" and wf["tasks"][1]["status"] == "IN_PROGRESS"


async def test_section4_14_update_by_ref_sync_returns_workflow_or_404(api: Api) -> None:
    """§4.14 sync variant: the Workflow JSON, or 404 with nothing pending."""
    await api.workflow_def("wf", [wait("w")])
    wf_id = await api.start("wf")
    r = await api.http.post(f"/tasks/{wf_id}/w/COMPLETED/sync", json={"x": 1})
    assert r.status_code == 200 and r.json()["status"] == "COMPLETED"
    r = await api.http.post(f"/tasks/{wf_id}/w/COMPLETED/sync", json={})
    assert r.status_code == 404
    assert r.json()["message"] == f"Found no running task w of workflow {wf_id} to update"


async def test_section4_15_signal_targets_first_pending_wait(api: Api) -> None:
    """§4.15: the signal targets the first pending WAIT, never HUMAN."""
    human = {"name": "h", "taskReferenceName": "h", "type": "HUMAN"}
    await api.workflow_def("wf", [wait("w"), human])
    wf_id = await api.start("wf")
    r = await api.http.post(f"/tasks/{wf_id}/COMPLETED/signal", json={"ok": True})
    assert r.status_code == 200 and r.content == b""
    wf = await api.wf(wf_id)
    assert wf["tasks"][0]["outputData"] == {"ok": True}
    assert wf["tasks"][1]["taskType"] == "HUMAN" and wf["tasks"][1]["status"] == "IN_PROGRESS"
    # Only HUMAN pending: async signal is a silent 200, sync signal is 404 (HUMAN never counts).
    r = await api.http.post(f"/tasks/{wf_id}/COMPLETED/signal", json={})
    assert r.status_code == 200
    assert (await api.wf(wf_id))["tasks"][1]["status"] == "IN_PROGRESS"
    r = await api.http.post(f"/tasks/{wf_id}/COMPLETED/signal/sync", json={})
    assert r.status_code == 404
    r = await api.http.post("/tasks/nope/COMPLETED/signal", json={})
    assert r.status_code == 404


async def test_section4_15_sync_signal_returns_next_blocking_state(api: Api) -> None:
    """§4.15 sync signal returns the next blocking (or terminal) state."""
    await api.workflow_def("wf", [wait("a"), wait("b")])
    wf_id = await api.start("wf")
    r = await api.http.post(f"/tasks/{wf_id}/COMPLETED/signal/sync", json={"x": 1})
    run = r.json()
    assert r.status_code == 200 and run["status"] == "RUNNING"
    assert run["signalTimeout"] is False and run["responseType"] == "TARGET_WORKFLOW"
    assert [t["status"] for t in run["tasks"]] == ["COMPLETED", "IN_PROGRESS"]
    run = (await api.http.post(f"/tasks/{wf_id}/COMPLETED/signal/sync", json={})).json()
    assert run["status"] == "COMPLETED"


async def test_update_v2_returns_next_task_or_204(api: Api) -> None:
    """TaskResource.updateTaskV2: update, then the next task of the same type (204 if none)."""
    await api.workflow_def("wf", [simple("t")])
    await api.start("wf")
    await api.start("wf")
    first = await api.poll("t", workerid="w")
    assert first is not None
    body = {"taskId": first["taskId"], "status": "COMPLETED", "workerId": "w"}
    r = await api.http.post("/tasks/update-v2", json=body)
    assert r.status_code == 200 and r.json()["taskId"] != first["taskId"]
    second = r.json()
    assert second["status"] == "IN_PROGRESS" and second["workerId"] == "w"
    body = {"taskId": second["taskId"], "status": "COMPLETED", "workerId": "w"}
    r = await api.http.post("/tasks/update-v2", json=body)
    assert r.status_code == 204
