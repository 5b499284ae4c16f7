"""Reference §4.1-§4.5, §4.16, §4.20: starting, reading and bulk-operating workflows."""

from __future__ import annotations

import asyncio

from tests.devserver.conftest import Api, simple, wait


async def test_section4_1_start_returns_bare_text_id_and_runs_first_decide(api: Api) -> None:
    await api.workflow_def("wf", [simple("t")], variables={"v0": 1})
    r = await api.http.post("/workflow", json={"name": "wf", "input": {"a": 1}, "priority": 5})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    wf = await api.wf(r.text)
    assert wf["workflowId"] == r.text and wf["status"] == "RUNNING"
    assert wf["workflowName"] == "wf" and wf["workflowVersion"] == 1 and wf["priority"] == 5
    assert wf["variables"] == {"v0": 1} and wf["output"] == {} and wf["endTime"] == 0
    assert wf["startTime"] == wf["createTime"] and "correlationId" not in wf
    assert [t["status"] for t in wf["tasks"]] == ["SCHEDULED"]


async def test_section4_1_unknown_definition_is_404(api: Api) -> None:
    r = await api.http.post("/workflow", json={"name": "nope", "version": 3})
    assert r.status_code == 404
    assert r.json()["message"] == "No such workflow defined. name=nope, version=3"


async def test_section4_1_priority_out_of_range_is_400_validation(api: Api) -> None:
    await api.workflow_def("wf", [simple("t")])
    r = await api.http.post("/workflow", json={"name": "wf", "priority": 100})
    assert r.status_code == 400
    body = r.json()
    assert body["message"] == "Validation failed, check below errors for detail."
    # The body's own constraint (StartWorkflowRequest.priority), as the real server answers.
    assert body["validationErrors"] == [
        {
            "path": "startWorkflow.arg0.priority",
            "message": "priority: 100 should be maximum 99",
            "invalidValue": "100",
        }
    ]
    assert "instance" not in body
    r = await api.http.post("/workflow/wf", params={"priority": -1}, json={})
    assert r.status_code == 400


async def test_section4_1_inline_workflow_def_starts_dynamic_workflow(api: Api) -> None:
    inline = {"name": "dyn", "tasks": [wait("w")]}
    r = await api.http.post("/workflow", json={"name": "dyn", "workflowDef": inline})
    assert r.status_code == 200
    wf = await api.wf(r.text)
    assert wf["workflowName"] == "dyn" and wf["tasks"][0]["taskType"] == "WAIT"


async def test_section4_2_start_by_name_with_query_params(api: Api) -> None:
    await api.workflow_def("wf", [simple("t")])
    params = {"correlationId": "c-1", "priority": "7", "version": "1"}
    r = await api.http.post("/workflow/wf", params=params, json={"x": 1})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    wf = await api.wf(r.text)
    assert wf["input"] == {"x": 1} and wf["correlationId"] == "c-1" and wf["priority"] == 7
    r = await api.http.post("/workflow/nope", json={})
    assert r.status_code == 404
    assert r.json()["message"] == "No such workflow found by name: nope, version: null"


async def test_section4_20_oss_ignores_idempotency_key(api: Api) -> None:
    await api.workflow_def("wf", [simple("t")])
    body = {"name": "wf", "idempotencyKey": "k", "idempotencyStrategy": "RETURN_EXISTING"}
    first = (await api.http.post("/workflow", json=body)).text
    second = (await api.http.post("/workflow", json=body)).text
    assert first != second
    assert "idempotencyKey" not in await api.wf(first)


async def test_section4_20_orkes_return_existing_fail_and_fail_on_running(orkes: Api) -> None:
    await orkes.workflow_def("wf", [wait("w")])
    body = {"name": "wf", "idempotencyKey": "k1", "idempotencyStrategy": "RETURN_EXISTING"}
    first = (await orkes.http.post("/workflow", json=body)).text
    assert (await orkes.http.post("/workflow", json=body)).text == first
    r = await orkes.http.post("/workflow", json={**body, "idempotencyStrategy": "FAIL"})
    assert r.status_code == 409
    r = await orkes.http.post("/workflow", json={**body, "idempotencyStrategy": "FAIL_ON_RUNNING"})
    assert r.status_code == 409
    await orkes.http.post(f"/tasks/{first}/w/COMPLETED", json={})
    r = await orkes.http.post("/workflow", json={**body, "idempotencyStrategy": "FAIL_ON_RUNNING"})
    assert r.status_code == 200 and r.text != first
    assert r.text != first


async def test_section4_2_orkes_idempotency_headers_on_start_by_name(orkes: Api) -> None:
    await orkes.workflow_def("wf", [wait("w")])
    headers = {"X-Idempotency-key": "h1", "X-on-conflict": "RETURN_EXISTING"}
    first = (await orkes.http.post("/workflow/wf", headers=headers, json={})).text
    again = await orkes.http.post("/workflow/wf", headers=headers, json={})
    assert again.text == first
    headers["X-on-conflict"] = "FAIL"
    assert (await orkes.http.post("/workflow/wf", headers=headers, json={})).status_code == 409


async def test_section4_3_execute_returns_workflow_run_when_completed(api: Api) -> None:
    await api.workflow_def(
        "sync",
        [{"name": "sv", "taskReferenceName": "sv", "type": "SET_VARIABLE",
          "inputParameters": {"x": "${workflow.input.x}"}}],
        outputParameters={"x": "${workflow.variables.x}"},
    )  # fmt: skip
    r = await api.http.post(
        "/workflow/execute/sync/0", params={"requestId": "req-1"}, json={"input": {"x": 3}}
    )
    assert r.status_code == 200
    run = r.json()
    assert run["status"] == "COMPLETED" and run["output"] == {"x": 3}
    assert run["signalTimeout"] is False and run["requestId"] == "req-1"
    assert run["targetWorkflowId"] == run["workflowId"] and run["variables"] == {"x": 3}


async def test_section4_3_execute_stops_at_untimed_wait_not_at_human(api: Api) -> None:
    await api.workflow_def("w", [wait("w1")])
    run = (await api.http.post("/workflow/execute/w/1", json={})).json()
    assert run["status"] == "RUNNING" and run["signalTimeout"] is False
    await api.workflow_def("h", [{"name": "h", "taskReferenceName": "h", "type": "HUMAN"}])
    r = await api.http.post("/workflow/execute/h/1", params={"waitForSeconds": 1}, json={})
    run = r.json()
    assert r.status_code == 200 and run["signalTimeout"] is True and run["status"] == "RUNNING"


async def test_section4_3_execute_wait_until_task_ref(api: Api) -> None:
    await api.workflow_def("two", [simple("a"), simple("b")])

    async def worker() -> None:
        for _ in range(200):
            task = await api.poll("a")
            if task:
                await api.complete(task, ok=1)
                return
            await asyncio.sleep(0.02)

    job = asyncio.create_task(worker())
    r = await api.http.post(
        "/workflow/execute/two/1",
        params={"waitUntilTaskRef": "x,a", "waitForSeconds": 5},
        json={},
    )
    await job
    run = r.json()
    assert run["signalTimeout"] is False and run["status"] == "RUNNING"
    assert [t["referenceTaskName"] for t in run["tasks"]] == ["a", "b"]


async def test_section4_3_execute_unknown_definition_404(api: Api) -> None:
    assert (await api.http.post("/workflow/execute/nope/1", json={})).status_code == 404


async def test_section4_4_get_include_tasks_false_and_404(api: Api) -> None:
    await api.workflow_def("wf", [simple("t")])
    wf_id = await api.start("wf")
    r = await api.http.get(f"/workflow/{wf_id}", params={"includeTasks": "false"})
    assert r.json()["tasks"] == []
    r = await api.http.get("/workflow/nope")
    assert r.status_code == 404 and r.json()["message"] == "No such workflow found by id: nope"


async def test_section2_6_status_summary(api: Api) -> None:
    await api.workflow_def("wf", [simple("t")], variables={"a": 1})
    wf_id = await api.start("wf", correlationId="c")
    r = await api.http.get(f"/workflow/{wf_id}/status")
    assert r.json() == {"workflowId": wf_id, "status": "RUNNING", "correlationId": "c"}
    params = {"includeOutput": "true", "includeVariables": "true"}
    r = await api.http.get(f"/workflow/{wf_id}/status", params=params)
    assert r.json()["variables"] == {"a": 1} and r.json()["output"] == {}


async def test_section4_5_correlated_only_running_without_include_closed(api: Api) -> None:
    await api.workflow_def("wf", [wait("w")])
    running = await api.start("wf", correlationId="c")
    paused = await api.start("wf", correlationId="c")
    done = await api.start("wf", correlationId="c")
    await api.start("wf", correlationId="other")
    await api.http.put(f"/workflow/{paused}/pause")
    await api.http.delete(f"/workflow/{done}")
    r = await api.http.get("/workflow/wf/correlated/c")
    assert [w["workflowId"] for w in r.json()] == [running]
    assert r.json()[0]["tasks"] == []
    r = await api.http.get(
        "/workflow/wf/correlated/c", params={"includeClosed": "true", "includeTasks": "true"}
    )
    assert {w["workflowId"] for w in r.json()} == {running, paused, done}
    assert all(w["tasks"] for w in r.json())
    assert (await api.http.get("/workflow/wf/correlated/none")).json() == []


async def test_section4_5_correlated_many(api: Api) -> None:
    await api.workflow_def("wf", [wait("w")])
    a = await api.start("wf", correlationId="a")
    r = await api.http.post("/workflow/wf/correlated", json=["a", "b"])
    got = r.json()
    assert [w["workflowId"] for w in got["a"]] == [a] and got["b"] == []


async def test_section4_7_terminate_sets_reason_and_cancels_tasks(api: Api) -> None:
    await api.workflow_def("wf", [wait("w")])
    wf_id = await api.start("wf")
    r = await api.http.delete(f"/workflow/{wf_id}", params={"reason": "stop it"})
    assert r.status_code == 200 and r.content == b""
    wf = await api.wf(wf_id)
    assert wf["status"] == "TERMINATED" and wf["reasonForIncompletion"] == "stop it"
    assert wf["tasks"][0]["status"] == "CANCELED" and wf["endTime"] > 0


async def test_section4_12_rerun_from_task_and_unknown_task(api: Api) -> None:
    await api.workflow_def("wf", [wait("a"), wait("b")])
    wf_id = await api.start("wf", input={"i": 1})
    await api.http.post(f"/tasks/{wf_id}/a/COMPLETED", json={})
    await api.http.post(f"/tasks/{wf_id}/b/FAILED", json={})
    tasks = (await api.wf(wf_id))["tasks"]
    r = await api.http.post(f"/workflow/{wf_id}/rerun", json={"reRunFromTaskId": "nope"})
    assert r.status_code == 400 and r.json()["message"] == "Task nope not found"
    body = {"reRunFromTaskId": tasks[1]["taskId"], "workflowInput": {"i": 2}}
    r = await api.http.post(f"/workflow/{wf_id}/rerun", json=body)
    assert r.status_code == 200 and r.text == wf_id
    wf = await api.wf(wf_id)
    assert wf["status"] == "RUNNING" and wf["input"] == {"i": 2}
    assert [(t["referenceTaskName"], t["status"]) for t in wf["tasks"]] == [
        ("a", "COMPLETED"),
        ("b", "IN_PROGRESS"),
    ]


async def test_section4_16_bulk_operations_report_per_id(api: Api) -> None:
    await api.workflow_def("wf", [wait("w")])
    a, b = await api.start("wf"), await api.start("wf")
    r = await api.http.put("/workflow/bulk/pause", json=[a, b, "nope"])
    assert r.status_code == 200
    assert r.json()["bulkSuccessfulResults"] == [a, b]
    assert "nope" in r.json()["bulkErrorResults"]
    r = await api.http.put("/workflow/bulk/resume", json=[a])
    assert r.json() == {"bulkSuccessfulResults": [a], "bulkErrorResults": {}}
    r = await api.http.put("/workflow/bulk/resume", json=[a])  # RUNNING: an error per id
    assert a in r.json()["bulkErrorResults"]
    r = await api.http.post("/workflow/bulk/terminate", params={"reason": "bulk"}, json=[a, b])
    assert r.json()["bulkSuccessfulResults"] == [a, b]
    assert (await api.wf(a))["reasonForIncompletion"] == "bulk"
    r = await api.http.post("/workflow/bulk/retry", json=[a])
    assert r.json()["bulkSuccessfulResults"] == [a]
    await api.http.delete(f"/workflow/{a}")
    r = await api.http.post("/workflow/bulk/restart", json=[a, b])
    assert r.json()["bulkSuccessfulResults"] == [a, b]
    assert await api.status(b) == "RUNNING"


async def test_section4_16_bulk_empty_or_too_many_is_400(api: Api) -> None:
    assert (await api.http.put("/workflow/bulk/pause", json=[])).status_code == 400
    ids = [str(i) for i in range(1001)]
    assert (await api.http.post("/workflow/bulk/terminate", json=ids)).status_code == 400


async def test_section4_3_execute_timeout_is_206_in_orkes(orkes: Api) -> None:
    """§4.3: on timeout OSS still answers 200; Orkes documents 206 Partial Content."""
    await orkes.workflow_def("h", [{"name": "h", "taskReferenceName": "h", "type": "HUMAN"}])
    r = await orkes.http.post("/workflow/execute/h/1", params={"waitForSeconds": 1}, json={})
    assert r.status_code == 206 and r.json()["signalTimeout"] is True


async def test_section4_7_remove_deletes_the_execution(api: Api) -> None:
    """§4.7 (also in OSS): DELETE /workflow/{id}/remove; the id is then unknown (404)."""
    await api.workflow_def("wf", [simple("t")])
    wf_id = await api.start("wf")
    r = await api.http.delete(f"/workflow/{wf_id}/remove", params={"archiveWorkflow": "false"})
    assert r.status_code == 200 and r.content == b""
    assert (await api.http.get(f"/workflow/{wf_id}")).status_code == 404
    assert await api.poll("t") is None
    assert (await api.http.delete(f"/workflow/{wf_id}/remove")).status_code == 404
