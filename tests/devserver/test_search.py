"""Reference §4.13 (search grammar of the OSS SQLite index) and §2.3 (WorkflowSummary), on the
dev server and on the real Conductor OSS: the same queries, the same answers.

The real server is shared by the test run, so every query is narrowed to this test's own
workflow types, and results are awaited until its asynchronous index has them.
"""

from __future__ import annotations

from typing import Any

from tests.devserver.conftest import Api, wait


async def _setup(api: Api) -> dict[str, str]:
    alpha, beta = api.name("alpha"), api.name("beta")
    await api.workflow_def(alpha, [wait("w")])
    await api.workflow_def(beta, [wait("w")])
    ids = {
        "run": await api.start(alpha, {"orderId": 1}, correlationId=api.name("c1")),
        "failed": await api.start(alpha, {"orderId": 2}, correlationId=api.name("c2")),
        "beta": await api.start(beta, {"Needle": api.name("Haystack")}),
    }
    r = await api.http.post(f"/tasks/{ids['failed']}/w/FAILED", json={})
    assert r.status_code == 200, r.text

    async def indexed() -> bool:
        got = await _search(api, query=_mine(api, f"workflowId = {ids['failed']}"))
        return [s["status"] for s in got["results"]] == ["FAILED"] and (
            await _search(api, query=_mine(api))
        )["totalHits"] == 3

    await api.until(indexed, "the three workflows were not indexed")
    return ids


def _mine(api: Api, clause: str | None = None) -> str:
    """`clause` narrowed to this test's workflow types."""
    types = f"workflowType IN ({api.name('alpha')},{api.name('beta')})"
    return f"{clause} AND {types}" if clause else types


async def _search(api: Api, **params: Any) -> dict[str, Any]:
    r = await api.http.get("/workflow/search", params=params)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _ids(result: dict[str, Any]) -> set[str]:
    return {w["workflowId"] for w in result["results"]}


async def test_section4_13_equality_and_and(conductor: Api) -> None:
    api = conductor
    ids = await _setup(api)
    got = await _search(api, query=f"workflowType = {api.name('alpha')} AND status = RUNNING")
    assert _ids(got) == {ids["run"]} and got["totalHits"] == 1
    got = await _search(api, query=f"correlationId={api.name('c2')}")
    assert _ids(got) == {ids["failed"]}
    # Quotes around a value are stripped.
    got = await _search(api, query=f"workflowType = '{api.name('beta')}'")
    assert _ids(got) == {ids["beta"]}


async def test_section4_13_in_items_are_not_trimmed(conductor: Api) -> None:
    api = conductor
    ids = await _setup(api)
    got = await _search(api, query=_mine(api, "status IN (RUNNING,FAILED)"))
    assert _ids(got) == set(ids.values())
    got = await _search(api, query=_mine(api, "status IN (RUNNING, FAILED)"))  # " FAILED"
    assert _ids(got) == {ids["run"], ids["beta"]}


async def test_section4_13_unknown_fields_ignored_malformed_400(conductor: Api) -> None:
    api = conductor
    ids = await _setup(api)
    got = await _search(api, query=f"colour = red AND workflowType = {api.name('beta')}")
    assert _ids(got) == {ids["beta"]}
    r = await api.http.get("/workflow/search", params={"query": "nonsense"})
    assert r.status_code == 400
    assert r.json()["message"] == "Incorrectly formatted query string: nonsense"
    r = await api.http.get("/workflow/search", params={"query": "startTime > soon"})
    assert r.status_code == 500 and r.json()["message"] == 'For input string: "soon"'


async def test_section4_13_or_and_lowercase_and_are_not_separators(conductor: Api) -> None:
    api = conductor
    await _setup(api)
    alpha = api.name("alpha")
    # "OR" and "and" do not split: the rest of the text is part of one clause's value.
    for query in (f"status = RUNNING OR workflowType = {alpha}", f"workflowType = {alpha} and x"):
        got = await _search(api, query=query)
        assert got["totalHits"] == 0, query


async def test_section4_13_time_comparisons_and_wildcards(conductor: Api) -> None:
    api = conductor
    ids = await _setup(api)
    start = (await api.wf(ids["run"]))["startTime"]
    got = await _search(api, query=_mine(api, f"startTime > {start - 1}"))
    assert ids["run"] in _ids(got)
    got = await _search(api, query=_mine(api, f"startTime < {start - 1}"))
    assert got["totalHits"] == 0
    got = await _search(api, query=_mine(api, "endTime > 0"))
    assert _ids(got) == {ids["failed"]}
    # "=" with "*" is a LIKE pattern.
    got = await _search(api, query=f"workflowType = {api.name('alpha')[:-3]}*")
    assert _ids(got) == {ids["run"], ids["failed"]}


async def test_section4_13_free_text_case_insensitive_and_star(conductor: Api) -> None:
    api = conductor
    ids = await _setup(api)
    needle = api.name("Haystack")
    assert _ids(await _search(api, freeText=needle.lower())) == {ids["beta"]}
    assert _ids(await _search(api, freeText=needle)) == {ids["beta"]}
    # Ids, correlation ids and names are in the text too.
    assert _ids(await _search(api, freeText=ids["run"])) == {ids["run"]}
    assert _ids(await _search(api, freeText=api.name("c1"))) == {ids["run"]}
    assert _ids(await _search(api, freeText=api.name("alpha"))) == {ids["run"], ids["failed"]}
    assert (await _search(api, freeText="*", query=_mine(api)))["totalHits"] == 3
    got = await _search(api, freeText=needle, query=f"workflowType = {api.name('alpha')}")
    assert got["totalHits"] == 0  # free text and query both apply


async def test_section4_13_size_limit_paging_and_sort(conductor: Api) -> None:
    api = conductor
    ids = await _setup(api)
    r = await api.http.get("/workflow/search", params={"size": 5001})
    assert r.status_code == 400
    assert r.json()["validationErrors"][0]["message"] == (
        "Cannot return more than 5000 workflows. Please use pagination."
    )
    got = await _search(api, query=_mine(api), sort="workflowType:DESC|startTime:ASC", size=2)
    assert got["totalHits"] == 3
    assert [w["workflowId"] for w in got["results"]] == [ids["beta"], ids["run"]]
    got = await _search(api, query=_mine(api), sort="workflowType:ASC", start=2, size=1)
    assert [w["workflowId"] for w in got["results"]] == [ids["beta"]]
    got = await _search(api, query=_mine(api), size=0)
    assert got["totalHits"] == 3 and got["results"] == []


async def test_section2_3_workflow_summary_shape(conductor: Api) -> None:
    api = conductor
    ids = await _setup(api)
    got = await _search(api, query=f"workflowId = {ids['failed']}")
    s = got["results"][0]
    assert s["workflowType"] == api.name("alpha") and s["version"] == 1
    assert s["status"] == "FAILED" and s["correlationId"] == api.name("c2")
    assert s["input"] == "{orderId=2}" and s["output"] == "{}"
    assert (s["inputSize"], s["outputSize"]) == (11, 2)
    assert s["startTime"].endswith("Z") and "T" in s["startTime"] and len(s["startTime"]) == 24
    assert s["endTime"].endswith("Z") and s["executionTime"] >= 0
    assert s["failedReferenceTaskNames"] == "w" and s["failedTaskNames"] == ["w"]
    assert s["reasonForIncompletion"].endswith("failed with status: FAILED and reason: 'null'")
    assert s["parentWorkflowId"] == "" and s["classifier"] == "workflow"
    running = (await _search(api, query=f"workflowId = {ids['run']}"))["results"][0]
    assert "endTime" not in running and running["executionTime"] == 0
    assert running["failedReferenceTaskNames"] == "" and running["failedTaskNames"] == []
