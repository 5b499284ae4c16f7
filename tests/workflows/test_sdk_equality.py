"""The builder gives the definition conductor-python's ConductorWorkflow gives for the same
workflow: each shape below is one function, run once with our classes and once, through
`as_sdk`, with conductor-python's (same names, same arguments), and the two definitions must
be equal as Conductor stores them (tests/workflows/sdk.py says exactly what that means)."""

from __future__ import annotations

from typing import Any

import pytest

from examples.kitchensink import kitchensink
from gateway.conductor import (
    ConductorEventTask,
    ConductorWorkflow,
    DoWhileTask,
    DynamicForkTask,
    DynamicTask,
    ForkTask,
    HttpInput,
    HttpMethod,
    HttpTask,
    HumanTask,
    InlineSubWorkflowTask,
    InlineTask,
    JavascriptTask,
    JoinTask,
    JsonJQTask,
    LoopTask,
    SetVariableTask,
    SimpleTask,
    StartWorkflowTask,
    SubWorkflowTask,
    SwitchTask,
    TerminateTask,
    TimeoutPolicy,
    WaitForDurationTask,
    WaitTask,
    WaitUntilTask,
    WorkflowStatus,
    simple_task,
)
from gateway.conductor.models import StartWorkflowRequest
from tests.workflows.sdk import as_sdk, numbered_forks, sdk_definition, stored


def chain() -> Any:
    wf = ConductorWorkflow("chain", version=2, description="three workers in a row")
    first = SimpleTask("load", "load").input_parameter("orderId", wf.input("orderId"))
    second = simple_task("price", "price", {"items": first.output("items"), "all": first.output()})
    third = SimpleTask("ship", "ship")
    third.input_parameters.update({"price": second.output(".total"), "raw": wf.input(None)})
    wf >> first >> second >> third
    return wf.output_parameters({"shipped": third.output("id"), "in": third.input("price")})


def switch_value() -> Any:
    wf = ConductorWorkflow("switch_value", version=1)
    kind = SimpleTask("kind", "kind")
    route = SwitchTask("route", kind.output("kind"))
    route.switch_case("a", [SimpleTask("do_a", "a1"), SimpleTask("do_a2", "a2")])
    route.switch_case("b", SimpleTask("do_b", "b1")).default_case([WaitTask("hold")])
    return wf >> kind >> route


def switch_javascript() -> Any:
    wf = ConductorWorkflow("switch_js", version=1)
    route = SwitchTask("route", "$.amount > 100 ? 'big' : 'small'", use_javascript=True)
    route.input_parameter("amount", wf.input("amount"))
    route.switch_case("big", [HumanTask("review", display_name="Review")])
    route.switch_case("small", [SetVariableTask("auto").input_parameter("ok", True)])
    return wf >> route


def fork_by_list() -> Any:
    wf = ConductorWorkflow("fork_list", version=1)
    wf >> SimpleTask("start", "start")
    wf >> [[SimpleTask("a", "a1"), SimpleTask("a", "a2")], SimpleTask("b", "b1")]
    return wf >> SimpleTask("after", "after")


def fork_task_with_join_on() -> Any:
    wf = ConductorWorkflow("fork_join_on", version=1)
    fork = ForkTask("fan", [[SimpleTask("a", "a1")], [SimpleTask("b", "b1")]], join_on=["a1"])
    return wf >> fork >> SimpleTask("after", "after")


def fork_task_then_own_join() -> Any:
    wf = ConductorWorkflow("fork_own_join", version=1)
    fork = ForkTask("fan", [[SimpleTask("a", "a1")], [WaitTask("w1")]])
    return wf >> fork >> JoinTask("gather", join_on=["a1", "w1"]) >> SimpleTask("z", "z")


def loops() -> Any:
    wf = ConductorWorkflow("loops", version=1)
    step = SimpleTask("step", "step").input_parameter("i", "${repeat.output.iteration}")
    until = DoWhileTask(
        "repeat", "if ($.repeat['iteration'] < $.max) { true; } else { false; }", step
    )
    until.input_parameter("max", wf.input("max"))
    thrice = LoopTask("thrice", 3, [SimpleTask("tick", "tick"), WaitForDurationTask("nap", 2)])
    return wf >> until >> thrice


def sub_workflows() -> Any:
    child = ConductorWorkflow("child", version=3)
    child >> SimpleTask("child_step", "child_step").input_parameter("x", child.input("x"))
    child.input_parameters(["x"]).output_parameters({"y": "${child_step.output.y}"})
    wf = ConductorWorkflow("parent", version=1)
    registered = SubWorkflowTask("run_registered", "registered_child", 2, {"child_step": "blue"})
    inline = InlineSubWorkflowTask("run_inline", child).input_parameter("x", wf.input("x"))
    return wf >> registered >> inline >> child


def dynamic_tasks() -> Any:
    wf = ConductorWorkflow("dynamic", version=1)
    pick = DynamicTask(wf.input("taskName"), "pick")
    pick2 = DynamicTask("${pick.output.next}", "pick2", dynamic_task_param="nextTask")
    fan = DynamicForkTask("fan", join_task=JoinTask("fan_join"))
    fan.input_parameters.update({"dynamicTasks": wf.input("tasks"), "dynamicTasksInputs": {}})
    custom = DynamicForkTask("fan2", "forks", "forkInputs", JoinTask("fan2_join"))
    return wf >> pick >> pick2 >> fan >> custom


def server_side() -> Any:
    wf = ConductorWorkflow("server_side", version=1)
    js = InlineTask("js", "(function () { return $.a + 1; })()", {"a": wf.input("a")})
    js2 = JavascriptTask("js2", "$.b * 2", {"b": js.output("result")})
    jq = JsonJQTask("jq", ".x | length").input_parameter("x", js2.output())
    return wf >> js >> js2 >> jq


def http_and_events() -> Any:
    wf = ConductorWorkflow("http_events", version=1)
    get = HttpTask("get", HttpInput(uri="http://example.com/a", headers={"x": ["1"]}))
    body = {"status": get.status_code(), "h": get.headers("x"), "b": get.body("id")}
    post = HttpTask("post", {"uri": "http://example.com/b", "body": body})
    put = HttpTask(
        "put", HttpInput(method=HttpMethod.PUT, uri="http://example.com/c", content_type="a/b")
    )
    event = ConductorEventTask("tell", "orders").input_parameter("id", get.body("id"))
    return wf >> get >> post >> put >> event


def waits_and_ends() -> Any:
    wf = ConductorWorkflow("waits", version=1)
    wf >> WaitTask("signal") >> WaitTask("nap", wait_for_seconds=5)
    wf >> WaitTask("until", wait_until="2030-01-01 00:00 GMT") >> WaitUntilTask("until2", "2031")
    wf >> HumanTask("person", "Check", "form", 2) >> SetVariableTask("vars").input_parameter("v", 1)
    start = StartWorkflowRequest(name="other", input={"id": wf.input("id")}, correlation_id="c")
    wf >> StartWorkflowTask("fire", "other", start, version=4)
    return wf >> TerminateTask("end", WorkflowStatus.COMPLETED, "done")


def settings() -> Any:
    wf = ConductorWorkflow("settings", version=7, description="all workflow settings")
    wf.timeout_policy(TimeoutPolicy.TIME_OUT_WORKFLOW).timeout_seconds(120)
    wf.owner_email("team@example.com").failure_workflow("compensate")
    wf.input_parameters(["orderId", "customer"]).variables({"stage": "new"})
    wf.input_template({"customer": "anonymous"})
    wf.output_parameters({"id": wf.input("orderId")}).output_parameter("who", wf.input("customer"))
    return wf >> SimpleTask("only", "only")


def nested() -> Any:
    wf = ConductorWorkflow("nested", version=1)
    inner_fork = ForkTask("inner", [[SimpleTask("x", "x1")], [SimpleTask("y", "y1")]])
    route = SwitchTask("route", wf.input("kind"))
    route.switch_case("fork", [inner_fork, JoinTask("inner_join", ["x1", "y1"])])
    route.switch_case("loop", [LoopTask("lp", 2, [SimpleTask("z", "z1")])])
    inner = SwitchTask("r2", "x").switch_case("1", WaitTask("w"))
    return wf >> route >> [[inner], [SimpleTask("q", "q1")]] >> SimpleTask("end", "end")


SHAPES = [
    chain,
    switch_value,
    switch_javascript,
    fork_by_list,
    fork_task_with_join_on,
    fork_task_then_own_join,
    loops,
    sub_workflows,
    dynamic_tasks,
    server_side,
    http_and_events,
    waits_and_ends,
    settings,
    nested,
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda f: f.__name__)
def test_same_definition_as_conductor_python(shape: Any) -> None:
    ours = shape().to_workflow_def().to_wire()
    with numbered_forks():
        theirs = sdk_definition(as_sdk(shape)())
    assert stored(ours) == stored(theirs)


def test_kitchen_sink_same_definition_as_conductor_python() -> None:
    ours = kitchensink("http://127.0.0.1:8080/api").to_workflow_def().to_wire()
    with numbered_forks():
        theirs = sdk_definition(as_sdk(kitchensink)("http://127.0.0.1:8080/api"))
    assert stored(ours) == stored(theirs)
    types = {t["type"] for t in _all_tasks(ours["tasks"])}
    assert types >= {
        "SIMPLE", "SWITCH", "FORK_JOIN", "JOIN", "DO_WHILE", "SUB_WORKFLOW", "DYNAMIC",
        "FORK_JOIN_DYNAMIC", "INLINE", "JSON_JQ_TRANSFORM", "HTTP", "EVENT", "WAIT", "HUMAN",
        "SET_VARIABLE", "START_WORKFLOW", "TERMINATE",
    }  # fmt: skip


def test_a_fork_at_the_end_gets_its_join_where_conductor_python_leaves_it_out() -> None:
    def fork_last() -> Any:
        wf = ConductorWorkflow("fork_last", version=1)
        return wf >> [[SimpleTask("a", "a1")], [SimpleTask("b", "b1")]]

    ours = fork_last().to_workflow_def().to_wire()
    with numbered_forks():
        theirs = sdk_definition(as_sdk(fork_last)())
    assert [t["type"] for t in ours["tasks"]] == ["FORK_JOIN", "JOIN"]
    assert [t["type"] for t in theirs["tasks"]] == ["FORK_JOIN"]
    assert ours["tasks"][1]["joinOn"] == ["a1", "b1"]


def _all_tasks(tasks: list[Any]) -> list[Any]:
    found = []
    for task in tasks:
        found.append(task)
        nested = [*(task.get("decisionCases") or {}).values(), task.get("defaultCase") or []]
        nested += [*(task.get("forkTasks") or []), task.get("loopOver") or []]
        for branch in nested:
            found += _all_tasks(branch)
    return found
