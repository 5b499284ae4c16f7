"""The conductor-python SDK's kitchen-sink workflow (examples/kitchensink.py), built with the
SDK's own builder and worked by its TaskRunner; run against any Conductor URL (the dev server
in tests/devserver, both servers in tests/differential)."""

from __future__ import annotations

import re
import time
from typing import Any

from conductor.client.automator.task_runner import TaskRunner
from conductor.client.configuration.configuration import Configuration
from conductor.client.orkes_clients import OrkesClients
from conductor.client.worker.worker import Worker
from conductor.client.workflow.conductor_workflow import ConductorWorkflow
from conductor.client.workflow.task.do_while_task import LoopTask
from conductor.client.workflow.task.set_variable_task import SetVariableTask
from conductor.client.workflow.task.simple_task import SimpleTask
from conductor.client.workflow.task.switch_task import SwitchTask
from conductor.client.workflow.task.terminate_task import TerminateTask, WorkflowStatus

WORKERS = {
    "greet": lambda task: {"text": f"hello {task.input_data['name']}"},
    "fetch": lambda task: {"fetched": task.input_data["uri"]},
    "call_api": lambda task: {"status": 200},
    "count": lambda task: {"seen": task.input_data["i"]},
    "route": lambda task: {"route": f"routing the packages to {task.input_data['country']}"},
}


def _simple(task_name: str, ref: str, **inputs: Any) -> SimpleTask:
    task = SimpleTask(task_name, ref)
    task.input_parameters.update(inputs)
    return task


def _kitchen_sink(url: str) -> ConductorWorkflow:
    """The SDK's examples/kitchensink.py, with SIMPLE workers where it uses JavaScript, HTTP
    and jq (issue 12), and a DO_WHILE added: SIMPLE -> FORK [inline SUB_WORKFLOW, SIMPLE] ->
    JOIN -> DO_WHILE x2 -> SET_VARIABLE -> SWITCH (US/CA: SIMPLE, default: TERMINATE)."""
    executor = OrkesClients(Configuration(server_api_url=url)).get_workflow_executor()
    wf = ConductorWorkflow(name="kitchensink", version=1, executor=executor)
    greet = _simple("greet", "hello_script", name=wf.input("name"))
    sub = ConductorWorkflow(name="sub0", executor=executor)
    sub >> _simple("fetch", "fetch_ref", uri="${workflow.input.uri}")
    sub.input_parameters({"uri": "${hello_script.output.text}"})
    call = _simple("call_api", "call_remote_api")
    loop = LoopTask("loop", 2, [_simple("count", "count_ref", i="${loop.output.iteration}")])
    set_var = SetVariableTask("set_wf_var_ref")
    set_var.input_parameters.update({"var1": "value1", "var2": 42})
    switch = SwitchTask("decide", wf.input("country"))
    switch.switch_case("US", _simple("route", "us_routing", country=wf.input("country")))
    switch.switch_case("CA", _simple("route", "ca_routing", country=wf.input("country")))
    switch.default_case(
        TerminateTask("bad_country_ref", WorkflowStatus.TERMINATED, "unsupported country")
    )
    wf >> greet >> [[sub], [call]] >> loop >> set_var >> switch
    wf.output_parameters(
        {"greetings": "${hello_script.output}", "var2": "${workflow.variables.var2}"}
    )
    return wf


def _run(url: str, country: str) -> dict[str, Any]:
    config = Configuration(server_api_url=url)
    wf = _kitchen_sink(url)
    wf.register(overwrite=True)
    clients = OrkesClients(config)
    workflow_id = wf.start_workflow_with_input(workflow_input={"name": "Orkes", "country": country})
    runners = [TaskRunner(Worker(n, fn, poll_interval=0.01), config) for n, fn in WORKERS.items()]
    workflows = clients.get_workflow_client()
    deadline = time.monotonic() + 20
    while workflows.get_workflow(workflow_id, include_tasks=False).status == "RUNNING":
        assert time.monotonic() < deadline, "the kitchen sink did not finish"
        for runner in runners:
            runner.run_once()
    done = workflows.get_workflow(workflow_id, include_tasks=True)
    return {
        "status": done.status,
        "output": done.output,
        "tasks": [(t.reference_task_name, t.status) for t in done.tasks],
        "variables": done.variables,
    }


def run_kitchen_sink(url: str, country: str) -> dict[str, Any]:
    """One kitchen-sink execution, its generated refs (`forked_<random>`) made stable."""
    run = _run(url, country)
    run["tasks"] = [(re.sub(r"_[A-Za-z0-9]{22}$", "_*", ref), s) for ref, s in run["tasks"]]
    return run
