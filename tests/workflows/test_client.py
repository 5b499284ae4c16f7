"""The client takes a `ConductorWorkflow` (or a definition) wherever a workflow goes: register
it, start it or execute it inline without registering (a dynamic workflow). Against the dev
server and the real Conductor OSS."""

from __future__ import annotations

import pytest

from gateway.conductor import (
    ConductorClient,
    ConductorWorkflow,
    SetVariableTask,
    SwitchTask,
    TerminateTask,
    WaitTask,
)
from gateway.errors import BadRequest, NotFound


def greeting(suffix: str) -> ConductorWorkflow:
    wf = ConductorWorkflow(f"greeting{suffix}", version=2)
    greet = SetVariableTask("greet").input_parameter("hello", wf.input("name"))
    route = SwitchTask("route", wf.input("name"))
    route.switch_case("nobody", [TerminateTask("stop", "FAILED", "no name")])
    wf >> greet >> route
    return wf.output_parameters({"hello": wf.variable("hello")})


async def test_register_a_builder(client: ConductorClient, suffix: str) -> None:
    wf = greeting(suffix)
    await client.register_workflow(wf, overwrite=True)
    stored = await client.get_workflow_def(wf.name, 2)
    assert [t["taskReferenceName"] for t in stored.tasks] == ["greet", "route"]
    assert stored.output_parameters == {"hello": "${workflow.variables.hello}"}
    run = await client.execute_workflow(wf.name, 2, {"name": "ada"})
    assert (run.status, run.output) == ("COMPLETED", {"hello": "ada"})


async def test_execute_a_builder_inline_without_registering(
    client: ConductorClient, suffix: str
) -> None:
    wf = greeting(suffix)
    run = await client.execute_workflow(wf, input={"name": "bob"}, wait_for_seconds=5)
    assert (run.status, run.output) == ("COMPLETED", {"hello": "bob"})
    failed = await client.execute_workflow(wf, input={"name": "nobody"}, wait_for_seconds=5)
    assert failed.status == "FAILED"
    with pytest.raises(NotFound):
        await client.get_workflow_def(wf.name)  # never registered


async def test_start_a_definition_inline(client: ConductorClient, suffix: str) -> None:
    wf = ConductorWorkflow(f"held{suffix}") >> WaitTask("hold")
    workflow_id = await client.start_workflow(wf, input={"n": 1}, correlation_id="c-1")
    started = await client.get_workflow(workflow_id)
    assert (started.workflow_name, started.status) == (f"held{suffix}", "RUNNING")
    assert started.tasks[0].reference_task_name == "hold"
    again = await client.start_workflow(
        f"held{suffix}", workflow_def=wf.to_workflow_def().to_wire()
    )
    assert (await client.get_workflow(again)).tasks[0].reference_task_name == "hold"


async def test_an_invalid_builder_is_refused_before_anything_is_sent(
    client: ConductorClient, suffix: str
) -> None:
    wf = ConductorWorkflow(f"bad{suffix}") >> SwitchTask("route", "x")
    with pytest.raises(BadRequest) as caught:
        await client.start_workflow(wf)
    assert str(caught.value) == (
        f"workflow definition is invalid: workflow 'bad{suffix}': task 'route': SWITCH has no "
        "cases; add at least one with switch_case(name, tasks)"
    )
