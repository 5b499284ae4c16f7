"""The command line for workflows as code, run as processes against the dev server:
`gateway conductor workflowdef register FILE|MODULE:ATTR`, `start`/`execute --workflow-def`,
and `gateway worker`'s errors."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.conductor import ConductorClient, ConductorWorkflow, SetVariableTask
from gateway.devserver.server import DevServer

ROOT = Path(__file__).resolve().parents[2]

# What `gateway conductor ... tests.workflows.test_cli:GREETING` loads.
GREETING = ConductorWorkflow("cli_greeting", version=3)
GREETING >> SetVariableTask("greet").input_parameter("hello", GREETING.input("name"))
GREETING.output_parameters({"hello": GREETING.variable("hello")})


def bad_greeting() -> ConductorWorkflow:
    wf = ConductorWorkflow("cli_bad")
    return wf >> SetVariableTask("greet").input_parameter("x", "${nobody.output.x}")


class Shell:
    def __init__(self, url: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        self.env["GATEWAY_CONDUCTOR__URL"] = url

    async def run(self, *args: str) -> tuple[int, Any, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", *args, cwd=ROOT, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        code = proc.returncode or 0
        return code, json.loads(out) if code == 0 and out.strip() else None, err.decode()


@pytest.fixture
async def shell() -> AsyncIterator[tuple[Shell, ConductorClient]]:
    async with DevServer(port=0) as server, ConductorClient(server.url) as client:
        yield Shell(server.url), client


async def test_register_a_workflow_written_in_python(shell: tuple[Shell, ConductorClient]) -> None:
    cli, client = shell
    code, out, err = await cli.run(
        "conductor", "workflowdef", "register", "tests.workflows.test_cli:GREETING"
    )
    assert code == 0, err
    assert out == {"registered": "cli_greeting", "version": 3}
    stored = await client.get_workflow_def("cli_greeting", 3)
    assert stored.tasks[0]["taskReferenceName"] == "greet"
    run = await client.execute_workflow("cli_greeting", 3, {"name": "ada"})
    assert run.output == {"hello": "ada"}


async def test_an_invalid_workflow_is_refused_before_sending(
    shell: tuple[Shell, ConductorClient],
) -> None:
    cli, _ = shell
    code, _, err = await cli.run(
        "conductor", "workflowdef", "register", "tests.workflows.test_cli:bad_greeting"
    )
    assert code == 2
    assert err.strip() == (
        "gateway: error: workflow 'cli_bad': task 'greet' inputParameters: expression names "
        "task 'nobody', which is not in the workflow (tasks: greet); fix the reference name "
        "or add the task"
    )
    code, _, err = await cli.run("conductor", "workflowdef", "register", "tests.workflows:NOPE")
    assert code == 2 and "module 'tests.workflows' has no 'NOPE'" in err


async def test_start_and_execute_an_inline_definition(
    shell: tuple[Shell, ConductorClient], tmp_path: Path
) -> None:
    cli, client = shell
    definition = tmp_path / "greeting.json"
    definition.write_text(json.dumps(GREETING.to_workflow_def().to_wire()))
    code, out, err = await cli.run(
        "conductor", "execute", "--workflow-def", f"@{definition}", "--input", '{"name": "ada"}'
    )
    assert code == 0, err
    assert out["status"] == "COMPLETED" and out["output"] == {"hello": "ada"}
    code, out, err = await cli.run(
        "conductor", "start", "--workflow-def", "tests.workflows.test_cli:GREETING"
    )
    assert code == 0, err
    started = await client.get_workflow(out["workflowId"])
    assert started.workflow_name == "cli_greeting"
    code, _, err = await cli.run("conductor", "start")
    assert code == 2 and "give the workflow NAME, or its definition with --workflow-def" in err


async def test_worker_names_what_it_cannot_run(shell: tuple[Shell, ConductorClient]) -> None:
    cli, _ = shell
    code, _, err = await cli.run("worker", "tests.workflows.test_cli:GREETING")
    assert code == 2
    assert "is not a @worker_task function; decorate a function with @worker_task(" in err
    code, _, err = await cli.run("worker", "no_such_module_here")
    assert code == 2 and "cannot import 'no_such_module_here'" in err
