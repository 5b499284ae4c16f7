"""Control flow on the dev server alone: the conductor-python SDK's kitchen-sink shape run by
the SDK's own worker runner, what the real server cannot finish (tests/differential covers the
rest side by side), registration refusals, and the script subset behind SWITCH and DO_WHILE."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.devserver.server import DevServer, Flavor
from gateway.devserver.tasks.script import ScriptError, evaluate
from tests.devserver.conftest import Api, simple
from tests.kitchensink import run_kitchen_sink


async def test_sdk_kitchen_sink_completes() -> None:
    async with DevServer(port=0) as server:
        run = await asyncio.to_thread(run_kitchen_sink, server.url, "US")
    assert run["status"] == "COMPLETED"
    assert [ref for ref, _ in run["tasks"]] == [
        "hello_script", "forked_*", "sub0_*", "call_remote_api", "join_forked_*", "loop",
        "count_ref__1", "count_ref__2", "set_wf_var_ref", "decide", "us_routing",
    ]  # fmt: skip
    assert {status for _, status in run["tasks"]} == {"COMPLETED"}
    assert run["output"] == {"greetings": {"text": "hello Orkes"}, "var2": 42}
    assert run["variables"] == {"var1": "value1", "var2": 42}


async def test_sdk_kitchen_sink_terminates_on_unknown_country() -> None:
    async with DevServer(port=0) as server:
        run = await asyncio.to_thread(run_kitchen_sink, server.url, "FR")
    assert run["status"] == "TERMINATED"
    assert run["tasks"][-2:] == [("decide", "COMPLETED"), ("bad_country_ref", "COMPLETED")]


async def test_rerun_inside_fork_joins_and_goes_on(api: Api) -> None:
    """Where Conductor 3.32.3 leaves the reset JOIN unevaluated (see the differential shape
    rerun_inside_fork), the dev server joins and completes."""
    fork = {"name": "fk", "taskReferenceName": "fk", "type": "FORK_JOIN",
            "forkTasks": [[simple("a1"), simple("a2")], [simple("b")]]}  # fmt: skip
    join = {"name": "jn", "taskReferenceName": "jn", "type": "JOIN", "joinOn": ["a2", "b"]}
    await api.task_defs({"name": "a2", "retryCount": 0})
    await api.workflow_def("rif", [fork, join, simple("c")])
    wf_id = await api.start("rif")
    for name in ("a1", "b"):
        task = await api.poll(name)
        assert task is not None
        await api.complete(task)
    task = await api.poll("a2")
    assert task is not None
    await api.complete(task, "FAILED")
    body = {"reRunFromWorkflowId": wf_id, "reRunFromTaskId": task["taskId"]}
    assert (await api.http.post(f"/workflow/{wf_id}/rerun", json=body)).status_code == 200
    for name in ("a2", "c"):
        again = await api.poll(name)
        assert again is not None
        await api.complete(again)
    wf = await api.wf(wf_id)
    assert wf["status"] == "COMPLETED"
    assert [t["referenceTaskName"] for t in wf["tasks"]] == ["fk", "a1", "b", "jn", "a2", "c"]


@pytest.mark.parametrize(
    ("task", "path", "words"),
    [
        ({"name": "h", "taskReferenceName": "h1", "type": "KAFKA_PUBLISH"}, "tasks[0].type",
         ["h1", "KAFKA_PUBLISH", "not supported by the dev server"]),
        ({"name": "h", "taskReferenceName": "h2", "type": "HTTP"}, "tasks[0]",
         ["h2", "inputParameters.http_request or inputParameters.uri"]),
        ({"name": "s", "taskReferenceName": "sw", "type": "SWITCH"}, "tasks[0]",
         ["evaluatorType", "sw"]),
        ({"name": "d", "taskReferenceName": "dw", "type": "DO_WHILE", "loopOver": [simple("x")]},
         "tasks[0]", ["loopCondition", "dw"]),
        ({"name": "w", "taskReferenceName": "sub", "type": "SUB_WORKFLOW"}, "tasks[0]",
         ["subWorkflowParam", "sub"]),
        ({"name": "f", "taskReferenceName": "fk", "type": "FORK_JOIN",
          "forkTasks": [[{"name": "i", "taskReferenceName": "in", "type": "LAMBDA"}]]},
         "tasks[0].forkTasks[0][0].type", ["in", "LAMBDA"]),
        ({"name": "d", "taskReferenceName": "outer", "type": "DO_WHILE", "loopCondition": "false",
          "loopOver": [{"name": "d", "taskReferenceName": "inner", "type": "DO_WHILE",
                        "loopCondition": "false", "loopOver": [simple("x")]}]},
         "tasks[0]", ["inner", "inside a DO_WHILE"]),
        ({"name": "s", "taskReferenceName": "js", "type": "SWITCH", "evaluatorType": "javascript",
          "expression": "Math.max($.a, ", "decisionCases": {"1": [simple("x")]}},
         "tasks[0]", ["expression", "js", "Expression is not well formatted", "SyntaxError"]),
    ],
)  # fmt: skip
async def test_malformed_definitions_are_refused(
    api: Api, task: dict[str, Any], path: str, words: list[str]
) -> None:
    """400 with a validationErrors item whose path and message name the task and field."""
    body = {"name": "bad", "version": 1, "tasks": [task]}
    r = await api.http.post("/metadata/workflow", json=body)
    assert r.status_code == 400
    errors = r.json()["validationErrors"]
    assert errors[0]["path"] == f"registerWorkflowDef.{path}"
    assert all(word in errors[0]["message"] for word in words), errors


async def test_inline_definition_is_checked_at_start(api: Api) -> None:
    bad = {"name": "adhoc", "version": 1, "tasks": [{"name": "j", "taskReferenceName": "j",
                                                      "type": "JSON_JQ_TRANSFORM"}]}  # fmt: skip
    r = await api.http.post("/workflow", json={"name": "adhoc", "workflowDef": bad})
    assert r.status_code == 400 and "JSON_JQ_TRANSFORM" in r.text


@pytest.mark.parametrize(
    ("source", "dollar", "value"),
    [
        ("if ( $.loop.iteration < 2 ) { true; } else { false; }", {"loop": {"iteration": 1}}, True),
        ("if ( $.loop['iteration'] < 2 ) { true; } else { false; }", {"loop": {"iteration": 2}},
         False),
        ("$.n > 2 && $.tag == 'x' ? 'many' : 'few'", {"n": 3, "tag": "x"}, "many"),
        ("$.items.length", {"items": [1, 2, 3]}, 3),
        ("$.a === '1' || $.a == 1", {"a": 1}, True),
        ("$.missing", {}, None),
    ],
)  # fmt: skip
def test_script_subset(source: str, dollar: dict[str, Any], value: Any) -> None:
    assert evaluate(source, dollar) == value


@pytest.mark.parametrize(
    ("source", "value"),
    [("$.a = 2", 2), ("Math.max($.a, 3)", 3), ("[1, 2].map(x => x * $.a)", [1, 2]),
     ("var n = 0; for (var i = 0; i < 4; i++) n += i; n", 6)],
)  # fmt: skip
def test_scripts_outside_the_subset_run_in_the_sandbox(source: str, value: Any) -> None:
    assert evaluate(source, {"a": 1}) == value


@pytest.mark.parametrize("source", ["foo()", "throw new Error('no')", "$.a.b.c"])
def test_script_errors_are_script_errors(source: str) -> None:
    with pytest.raises(ScriptError):
        evaluate(source, {"a": 1})


async def test_a_loop_that_never_ends_does_not_hold_the_server(api: Api) -> None:
    """A DO_WHILE of system tasks whose condition stays true: each decide stops at its round
    limit and the sweeper goes on, so requests are still answered and terminate works."""
    body = {"name": "sv", "taskReferenceName": "sv", "type": "SET_VARIABLE",
            "inputParameters": {"n": "${spin.output.iteration}"}}  # fmt: skip
    spin = {"name": "spin", "taskReferenceName": "spin", "type": "DO_WHILE",
            "loopCondition": "true", "loopOver": [body]}  # fmt: skip
    await api.workflow_def("spin", [spin])
    wf_id = await api.start("spin")
    first = (await api.wf(wf_id))["variables"]["n"]
    assert api.server is not None
    api.server.tasks.sweep()
    assert (await api.wf(wf_id))["variables"]["n"] > first
    assert (await api.http.delete(f"/workflow/{wf_id}")).status_code == 200
    assert await api.status(wf_id) == "TERMINATED"


@pytest.mark.parametrize(("flavor", "started"), [("oss", False), ("orkes", True)])
async def test_terminate_starts_the_failure_workflow_only_when_orkes_is_asked(
    flavor: Flavor, started: bool
) -> None:
    """OSS has no triggerFailureWorkflow (its REST terminate never starts one); Orkes does."""
    async with DevServer(port=0, flavor=flavor) as server:
        engine = server.engine
        async with httpx.AsyncClient(base_url=server.url) as http:
            api = Api(server, http)
            await api.workflow_def("handler", [simple("h")])
            await api.workflow_def("main", [simple("m")], failureWorkflow="handler")
            wf_id = await api.start("main")
            r = await http.delete(f"/workflow/{wf_id}", params={"triggerFailureWorkflow": "true"})
            assert r.status_code == 200
            output = (await api.wf(wf_id))["output"]
    handlers = [w for w in engine.store.workflows.values() if w.name == "handler"]
    assert bool(handlers) is started
    assert ("conductor.failure_workflow" in output) is started
