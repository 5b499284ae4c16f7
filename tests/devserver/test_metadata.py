"""Reference §4.17 (task definitions) and §4.18 (workflow definitions) over HTTP."""

from __future__ import annotations

from tests.devserver.conftest import Api, simple


async def test_section4_17_taskdefs_post_is_array_upsert_without_409(api: Api) -> None:
    r = await api.http.post("/metadata/taskdefs", json=[{"name": "t", "retryCount": 1}])
    assert r.status_code == 200 and r.content == b""
    r = await api.http.post("/metadata/taskdefs", json=[{"name": "t", "retryCount": 5}])
    assert r.status_code == 200
    got = (await api.http.get("/metadata/taskdefs/t")).json()
    assert got["retryCount"] == 5 and got["name"] == "t"
    # defaults of TaskDef.java
    assert got["timeoutPolicy"] == "TIME_OUT_WF" and got["retryLogic"] == "FIXED"
    assert got["retryDelaySeconds"] == 60 and got["responseTimeoutSeconds"] == 3600


async def test_section4_17_put_taskdef_single_object_404_when_missing(api: Api) -> None:
    r = await api.http.put("/metadata/taskdefs", json={"name": "missing"})
    assert r.status_code == 404 and r.json()["message"] == "No such task by name missing"
    await api.task_defs({"name": "t"})
    r = await api.http.put("/metadata/taskdefs", json={"name": "t", "retryCount": 0})
    assert r.status_code == 200 and r.content == b""
    assert (await api.http.get("/metadata/taskdefs/t")).json()["retryCount"] == 0


async def test_section4_17_response_timeout_must_not_exceed_timeout(api: Api) -> None:
    bad = {"name": "t", "timeoutSeconds": 60, "responseTimeoutSeconds": 3600}
    r = await api.http.post("/metadata/taskdefs", json=[bad])
    assert r.status_code == 400
    body = r.json()
    assert body["validationErrors"] and "instance" not in body
    assert "responseTimeoutSeconds: 3600 must be less than timeoutSeconds: 60" in r.text


async def test_section4_17_get_unknown_taskdef_404_and_list(api: Api) -> None:
    r = await api.http.get("/metadata/taskdefs/nope")
    assert r.status_code == 404
    assert r.json()["message"] == "No such taskType found by name: nope"
    await api.task_defs({"name": "a"}, {"name": "b"})
    names = {d["name"] for d in (await api.http.get("/metadata/taskdefs")).json()}
    assert names == {"a", "b"}


async def test_section4_18_register_workflow_409_unless_overwrite(api: Api) -> None:
    await api.workflow_def("wf", [simple("t")])
    body = {"name": "wf", "version": 1, "tasks": [simple("t")]}
    r = await api.http.post("/metadata/workflow", json=body)
    assert r.status_code == 409 and r.json()["message"] == "Workflow with wf.1 already exists!"
    body["description"] = "new"
    r = await api.http.post("/metadata/workflow", params={"overwrite": "true"}, json=body)
    assert r.status_code == 200
    assert (await api.http.get("/metadata/workflow/wf")).json()["description"] == "new"


async def test_section4_18_put_workflow_array_returns_bulk_response(api: Api) -> None:
    defs = [
        {"name": "a", "version": 1, "tasks": [simple("t")]},
        {"name": "b", "version": 2, "tasks": [simple("t")]},
    ]
    r = await api.http.put("/metadata/workflow", json=defs)
    assert r.status_code == 200
    assert r.json() == {"bulkSuccessfulResults": ["a", "b"], "bulkErrorResults": {}}


async def test_section4_18_get_workflow_latest_or_version_404_absent(api: Api) -> None:
    await api.workflow_def("wf", [simple("t")])
    body = {"name": "wf", "version": 2, "tasks": [simple("t2")]}
    await api.http.post("/metadata/workflow", json=body)
    assert (await api.http.get("/metadata/workflow/wf")).json()["version"] == 2
    r = await api.http.get("/metadata/workflow/wf", params={"version": 1})
    assert r.json()["tasks"][0]["name"] == "t"
    assert (await api.http.get("/metadata/workflow/nope")).status_code == 404
    r = await api.http.get("/metadata/workflow/wf", params={"version": 9})
    assert r.status_code == 404


async def test_section4_18_workflow_def_needs_tasks_and_known_types(api: Api) -> None:
    r = await api.http.post("/metadata/workflow", json={"name": "x", "tasks": []})
    assert r.status_code == 400 and r.json()["validationErrors"]
    bad = {"name": "x", "tasks": [{"name": "h", "taskReferenceName": "h", "type": "KAFKA_PUBLISH"}]}
    r = await api.http.post("/metadata/workflow", json=bad)
    assert r.status_code == 400 and "not supported by the dev server" in r.text
