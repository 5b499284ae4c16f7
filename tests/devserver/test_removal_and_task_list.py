"""Reference §3 row 4c (`GET /workflow/{id}/tasks`) and §4.7 (`DELETE /workflow/{id}/remove`),
on the dev server and on the real Conductor OSS."""

from __future__ import annotations

from typing import Any

from tests.devserver.conftest import Api, simple, wait


async def test_section3_task_list_pages_and_filters_by_status(conductor: Api) -> None:
    api = conductor
    name, task = api.name("listed"), api.name("listed_task")
    await api.workflow_def(name, [wait("a"), simple(task, "b")])
    wf_id = await api.start(name)
    r = await api.http.post(f"/tasks/{wf_id}/a/COMPLETED", json={})
    assert r.status_code == 200

    async def tasks(**params: Any) -> dict[str, Any]:
        r = await api.http.get(f"/workflow/{wf_id}/tasks", params=params)
        assert r.status_code == 200, r.text
        page: dict[str, Any] = r.json()
        return page

    async def two() -> dict[str, Any] | None:
        page = await tasks()
        return page if page["totalHits"] == 2 else None

    every = await api.until(two, "the second task was not scheduled")
    assert [t["referenceTaskName"] for t in every["results"]] == ["a", "b"]
    done = await tasks(status="completed")  # case-insensitive
    assert done["totalHits"] == 1 and done["results"][0]["referenceTaskName"] == "a"
    both = await tasks(status="COMPLETED,SCHEDULED", start=1, count=1)
    assert both["totalHits"] == 2 and [t["referenceTaskName"] for t in both["results"]] == ["b"]
    r = await api.http.get("/workflow/no-such-id/tasks")
    assert r.status_code == 404


async def test_section4_7_remove_archives_ended_workflows_for_search(conductor: Api) -> None:
    """Removing archives by default: only an ended workflow can be archived, and it stays
    findable by search though the workflow itself is gone; archiveWorkflow=false removes it
    from the index too, whatever its status."""
    api = conductor
    name = api.name("removed")
    await api.workflow_def(name, [wait("w")])
    running, archived, dropped = [await api.start(name) for _ in range(3)]
    for wf_id in (archived, dropped):
        assert (await api.http.delete(f"/workflow/{wf_id}")).status_code == 200

    r = await api.http.delete(f"/workflow/{running}/remove")
    assert r.status_code == 400
    assert r.json()["message"] == f"Cannot archive workflow: {running} with status: RUNNING"
    assert (await api.http.delete(f"/workflow/{archived}/remove")).status_code == 200
    r = await api.http.delete(f"/workflow/{dropped}/remove", params={"archiveWorkflow": "false"})
    assert r.status_code == 200
    for wf_id in (archived, dropped):
        assert (await api.http.get(f"/workflow/{wf_id}")).status_code == 404

    async def found() -> set[str] | None:
        r = await api.http.get("/workflow/search", params={"query": f"workflowType = {name}"})
        ids = {s["workflowId"] for s in r.json()["results"]}
        return ids if ids == {running, archived} else None

    assert await api.until(found, "search did not settle on the running and archived ones")
    r = await api.http.delete(f"/workflow/{running}/remove", params={"archiveWorkflow": "false"})
    assert r.status_code == 200
    assert (await api.http.get(f"/workflow/{running}")).status_code == 404
