"""Reference §4.13 (search grammar of the OSS SQLite index) and §2.3 (WorkflowSummary)."""

from __future__ import annotations

from typing import Any

from tests.devserver.conftest import Api, wait


async def _setup(api: Api) -> dict[str, str]:
    await api.workflow_def("alpha", [wait("w")])
    await api.workflow_def("beta", [wait("w")])
    ids = {
        "run": await api.start("alpha", {"orderId": 1}, correlationId="c1"),
        "failed": await api.start("alpha", {"orderId": 2}, correlationId="c2"),
        "beta": await api.start("beta", {"Needle": "Haystack"}),
    }
    await api.http.post(f"/tasks/{ids['failed']}/w/FAILED", json={})
    return ids


async def _search(api: Api, **params: Any) -> dict[str, Any]:
    r = await api.http.get("/workflow/search", params=params)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _ids(result: dict[str, Any]) -> set[str]:
    return {w["workflowId"] for w in result["results"]}


async def test_section4_13_equality_and_and(api: Api) -> None:
    ids = await _setup(api)
    got = await _search(api, query="workflowType = alpha AND status = RUNNING")
    assert _ids(got) == {ids["run"]} and got["totalHits"] == 1
    got = await _search(api, query="correlationId=c2")
    assert _ids(got) == {ids["failed"]}


async def test_section4_13_in_items_are_not_trimmed(api: Api) -> None:
    ids = await _setup(api)
    got = await _search(api, query="status IN (RUNNING,FAILED)")
    assert _ids(got) == set(ids.values())
    got = await _search(api, query="status IN (RUNNING, FAILED)")  # " FAILED" never matches
    assert _ids(got) == {ids["run"], ids["beta"]}


async def test_section4_13_unknown_fields_ignored_malformed_400(api: Api) -> None:
    ids = await _setup(api)
    got = await _search(api, query="colour = red AND workflowType = beta")
    assert _ids(got) == {ids["beta"]}
    r = await api.http.get("/workflow/search", params={"query": "nonsense"})
    assert r.status_code == 400
    assert r.json()["message"] == "Incorrectly formatted query string: nonsense"


async def test_section4_13_or_is_not_supported(api: Api) -> None:
    await _setup(api)
    # "OR" is not a separator: the whole text is one clause whose value never matches.
    got = await _search(api, query="status = RUNNING OR status = FAILED")
    assert got["totalHits"] == 0


async def test_section4_13_time_comparisons(api: Api) -> None:
    ids = await _setup(api)
    start = (await api.wf(ids["run"]))["startTime"]
    got = await _search(api, query=f"startTime > {start - 1} AND workflowType = alpha")
    assert ids["run"] in _ids(got)
    got = await _search(api, query=f"startTime < {start - 1}")
    assert got["totalHits"] == 0
    got = await _search(api, query="endTime > 0")
    assert _ids(got) == {ids["failed"]}


async def test_section4_13_free_text_case_insensitive_and_star(api: Api) -> None:
    ids = await _setup(api)
    assert _ids(await _search(api, freeText="haystack")) == {ids["beta"]}
    assert (await _search(api, freeText="*"))["totalHits"] == 3


async def test_section4_13_size_limit_paging_and_sort(api: Api) -> None:
    ids = await _setup(api)
    r = await api.http.get("/workflow/search", params={"size": 5001})
    assert r.status_code == 400
    got = await _search(api, sort="workflowType:DESC|startTime:ASC", size=2)
    assert got["totalHits"] == 3 and got["results"][0]["workflowId"] == ids["beta"]
    got = await _search(api, sort="workflowType:ASC", start=2, size=1)
    assert [w["workflowId"] for w in got["results"]] == [ids["beta"]]


async def test_section2_3_workflow_summary_shape(api: Api) -> None:
    ids = await _setup(api)
    got = await _search(api, query=f"workflowId = {ids['failed']}")
    s = got["results"][0]
    assert s["workflowType"] == "alpha" and s["version"] == 1 and s["status"] == "FAILED"
    assert s["input"] == "{orderId=2}" and isinstance(s["output"], str)
    assert s["startTime"].endswith("Z") and "T" in s["startTime"] and len(s["startTime"]) == 24
    assert s["endTime"].endswith("Z") and s["executionTime"] >= 0
    assert s["failedReferenceTaskNames"] == "w" and s["failedTaskNames"] == ["w"]
    assert s["parentWorkflowId"] == "" and s["correlationId"] == "c2"
    running = (await _search(api, query=f"workflowId = {ids['run']}"))["results"][0]
    assert "endTime" not in running and running["executionTime"] == 0
