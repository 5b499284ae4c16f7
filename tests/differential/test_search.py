"""Workflow search, table-driven: each query string runs on the dev server and on the real
Conductor OSS over the same four workflows, and both must find the same ones (or fail with the
same status). The real server is shared by the test run, so every query is narrowed to this
run's own workflow types; the hit sets compare labels (`a1`, `a2`, ...), not ids.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.differential.driver import Driver

# (query, freeText) -> the labels both servers must find, or the HTTP status of an error.
# {A}/{B} are the workflow types, {c1}/{c2} correlation ids, {a2} a workflow id, {t0} a time
# before the run and {ta1} the start time of a1, in epoch milliseconds.
CASES: list[tuple[str, str, set[str] | int]] = [
    ("workflowType = {A}", "*", {"a1", "a2"}),
    # `version` is not a column of the real index: dropped, like any unknown field.
    ("workflowType = {A} AND version = 2", "*", {"a1", "a2"}),
    ("version > 1", "*", {"a1", "a2", "b1", "b2"}),
    ("colour = red", "*", {"a1", "a2", "b1", "b2"}),
    ("status = RUNNING", "*", {"a1"}),
    ("status=FAILED", "*", {"a2"}),
    ("status = 'COMPLETED'", "*", {"b1"}),
    ('status = "TERMINATED"', "*", {"b2"}),
    ("(status = RUNNING)", "*", {"a1"}),
    ("status IN (RUNNING,FAILED)", "*", {"a1", "a2"}),
    ("status IN (RUNNING, FAILED)", "*", {"a1"}),  # " FAILED" is not trimmed
    ("status IN (COMPLETED)", "*", {"b1"}),
    ("status = RUN*", "*", {"a1"}),
    ("status = running", "*", set()),  # `=` is case-sensitive ...
    ("status = running*", "*", {"a1"}),  # ... a pattern is not
    ("correlationId = {c1}", "*", {"a1"}),
    ("correlationId = {c1} OR correlationId = {c2}", "*", set()),  # no OR: one odd value
    ("correlationId IN ({c1},{c2})", "*", {"a1", "a2"}),
    ("workflowId = {a2}", "*", {"a2"}),
    ("startTime > {t0}", "*", {"a1", "a2", "b1", "b2"}),
    ("startTime < {t0}", "*", set()),
    ("startTime > {ta1}", "*", {"a2", "b1", "b2"}),
    ("endTime > 0", "*", {"a2", "b1", "b2"}),  # an unfinished workflow ends at the epoch
    ('parentWorkflowId = ""', "*", {"a1", "a2", "b1", "b2"}),
    ("classifier = workflow", "*", {"a1", "a2", "b1", "b2"}),
    ("jsonData = *hello world*", "*", {"a1"}),
    ("workflowType = {B}", "HAYSTACK", {"b1"}),
    ("workflowType = {B}", "needle=haystack", {"b1"}),  # the summary's input text
    ("status IN (RUNNING,FAILED)", "hello", {"a1"}),
    ("workflowType = {A}", "x_y", {"a2"}),
    ("workflowType = {A}", "1.5", set()),
    ("workflowType = {A}", '"version":2,', {"a2"}),  # the summary JSON: a version filter
    ("nonsense", "*", 400),
    ("status  =  FAILED", "*", 400),  # one optional space each side, no more
    # ... but the clause is searched for anywhere: "RUNN" IN "G", an unknown field, dropped.
    ("status  =  RUNNING", "*", {"a1", "a2", "b1", "b2"}),
    ("taskId = x", "*", 500),  # a valid field, but not a column of workflow_index
    ("status = RUNNING,FAILED", "*", 500),  # two values for one placeholder
    ("startTime > yesterday", "*", 500),
]


class Scene:
    """The four workflows on one server: a1 RUNNING, a2 FAILED (types A v1/v2), b1 COMPLETED,
    b2 TERMINATED (type B)."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.ids: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    async def build(self) -> None:
        d = self.driver
        self.values["t0"] = int(time.time() * 1000) - 1000
        wait = [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}]
        for name, version in (("A", 1), ("A", 2), ("B", 1)):
            await d.workflow_def(f"search{name}", wait, version=version)
        a, b = d.name("searchA"), d.name("searchB")
        c1, c2 = d.name("c1"), d.name("c2")
        self.values.update(A=a, B=b, c1=c1, c2=c2)
        starts = {
            "a1": {"name": a, "version": 1, "correlationId": c1, "input": {"n": "Hello World"}},
            "a2": {"name": a, "version": 2, "correlationId": c2, "input": {"n": "x_y%z"}},
            "b1": {"name": b, "input": {"Needle": "Haystack"}},
            "b2": {"name": b, "correlationId": d.name("c3"), "input": {"n": "1,5"}},
        }
        for label, body in starts.items():
            r = await d.http.post("/workflow", json=body)
            assert r.status_code == 200, r.text
            self.ids[label] = r.text
            await asyncio.sleep(0.01)  # distinct start times, to the millisecond
        self.values["a2"] = self.ids["a2"]
        self.values["ta1"] = (await d.get(self.ids["a1"]))["startTime"]
        for label, status in (("a2", "FAILED"), ("b1", "COMPLETED")):
            r = await d.http.post(f"/tasks/{self.ids[label]}/w/{status}", json={})
            assert r.status_code == 200, r.text
        r = await d.http.delete(f"/workflow/{self.ids['b2']}", params={"reason": "test"})
        assert r.status_code == 200, r.text
        await self._indexed()

    async def _indexed(self) -> None:
        """The real server indexes asynchronously: wait until the index shows all four."""
        want = {"a1": "RUNNING", "a2": "FAILED", "b1": "COMPLETED", "b2": "TERMINATED"}
        deadline = time.monotonic() + 20
        while True:
            r = await self.search("status = *", "*")
            got = {self.label(s["workflowId"]): s["status"] for s in r.json()["results"]}
            if got == want:
                return
            assert time.monotonic() < deadline, f"not indexed: {got}"
            await asyncio.sleep(0.1)

    def label(self, workflow_id: str) -> str:
        return next(k for k, v in self.ids.items() if v == workflow_id)

    async def search(self, query: str, free_text: str, path: str = "search", **params: Any) -> Any:
        scope = "workflowType IN ({A},{B})".format(**self.values)
        params = {"query": f"{query.format(**self.values)} AND {scope}", **params}
        if free_text != "*":
            params["freeText"] = free_text
        return await self.driver.http.get(f"/workflow/{path}", params=params)

    async def answer(self, query: str, free_text: str) -> set[str] | int:
        r = await self.search(query, free_text)
        if r.status_code != 200:
            return r.status_code
        data = r.json()
        assert data["totalHits"] == len(data["results"]), data
        return {self.label(s["workflowId"]) for s in data["results"]}


@pytest.fixture
async def scenes(dev: Driver, real: Driver) -> tuple[Scene, Scene]:
    mine, theirs = Scene(dev), Scene(real)
    await asyncio.gather(mine.build(), theirs.build())
    return mine, theirs


@pytest.mark.slow
async def test_query_table_gives_the_same_hits_on_both_servers(scenes: tuple[Scene, Scene]) -> None:
    mine, theirs = scenes
    differences = []
    for query, free_text, expected in CASES:
        got_real = await theirs.answer(query, free_text)
        got_dev = await mine.answer(query, free_text)
        if not got_dev == got_real == expected:
            differences.append(f"{query!r} freeText={free_text!r}: dev {got_dev}, real {got_real}")
    assert not differences, "\n".join(differences)


@pytest.mark.slow
async def test_sorting_paging_and_search_v2_agree(scenes: tuple[Scene, Scene]) -> None:
    async def order(scene: Scene, **params: Any) -> tuple[int, list[str]]:
        r = await scene.search("status = *", "*", **params)
        assert r.status_code == 200, r.text
        data = r.json()
        return data["totalHits"], [scene.label(s["workflowId"]) for s in data["results"]]

    for scene in scenes:
        assert await order(scene, sort="startTime:DESC") == (4, ["b2", "b1", "a2", "a1"])
        # NULL first; an item without an order is ignored.
        assert await order(scene, sort="correlationId:ASC|status") == (4, ["b1", "a1", "a2", "b2"])
        assert await order(scene, sort="startTime:ASC", start=1, size=2) == (4, ["a2", "b1"])
        # WorkflowResource folds `classifier` and `topLevelOnly` into the query.
        assert await order(scene, classifier="agent") == (0, [])
        assert (await order(scene, classifier="workflow", topLevelOnly="true"))[0] == 4
        r = await scene.search("status IN (RUNNING,FAILED)", "*", path="search-v2")
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["totalHits"] == 2
        assert {scene.label(w["workflowId"]) for w in data["results"]} == {"a1", "a2"}
        assert all(w["tasks"] == [] and "workflowDefinition" in w for w in data["results"])
