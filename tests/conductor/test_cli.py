"""`gateway conductor ...` run as a real process against the dev server: JSON on stdout,
one-line errors on stderr with a non-zero exit code."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.devserver.server import DevServer

from .conftest import KEY_ID, KEY_SECRET, WAIT_FLOW, client_for, dev_server, register_definitions

pytestmark = pytest.mark.timeout(120)


class Cli:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    async def run(self, *args: str) -> tuple[int, Any, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "conductor", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=self.env,
        )  # fmt: skip
        out, err = await proc.communicate()
        code = proc.returncode or 0
        data = json.loads(out) if code == 0 else None
        return code, data, err.decode()

    async def ok(self, *args: str) -> Any:
        code, data, err = await self.run(*args)
        assert code == 0, err
        return data


@pytest.fixture(params=["oss", "orkes"])
async def cli(request: pytest.FixtureRequest) -> AsyncIterator[Cli]:
    server: DevServer
    async with dev_server(request.param) as server, client_for(server) as client:
        await register_definitions(client)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env["GATEWAY_CONDUCTOR__URL"] = server.url
        if server.flavor == "orkes":
            env["GATEWAY_CONDUCTOR__KEY_ID"] = KEY_ID
            env["GATEWAY_CONDUCTOR__KEY_SECRET"] = KEY_SECRET
        yield Cli(env)


async def test_workflow_lifecycle_from_the_shell(cli: Cli) -> None:
    started = await cli.ok("start", WAIT_FLOW, "--input", '{"n": 1}', "--correlation-id", "c1")
    wf_id = started["workflowId"]
    wf = await cli.ok("get", wf_id)
    assert wf["status"] == "RUNNING" and wf["tasks"][0]["referenceTaskName"] == "wait"
    assert (await cli.ok("status", wf_id))["status"] == "RUNNING"
    assert [w["workflowId"] for w in await cli.ok("correlated", WAIT_FLOW, "c1")] == [wf_id]
    await cli.ok("pause", wf_id)
    await cli.ok("resume", wf_id)
    found = await cli.ok("search", "--query", f"workflowType = {WAIT_FLOW}", "--size", "10")
    assert wf_id in [r["workflowId"] for r in found["results"]]
    signalled = await cli.ok("signal", wf_id, "COMPLETED", "--task-ref", "wait", "--output", "{}")
    assert signalled["taskId"]
    assert (await cli.ok("get", wf_id, "--no-tasks"))["status"] == "COMPLETED"
    await cli.ok("restart", wf_id)
    await cli.ok("terminate", wf_id, "--reason", "cli")
    await cli.ok("retry", wf_id)
    await cli.ok("terminate", wf_id)
    assert (await cli.ok("rerun", wf_id, "--workflow-input", '{"n": 2}'))["workflowId"] == wf_id
    run = await cli.ok("execute", WAIT_FLOW, "--wait-seconds", "2")
    assert run["status"] == "RUNNING" and run["signalTimeout"] is False


async def test_definitions_from_files(cli: Cli, tmp_path: Path) -> None:
    taskdef = tmp_path / "task.yaml"
    taskdef.write_text(
        "name: cli_task\nretryCount: 2\ntimeoutSeconds: 60\n"
        "responseTimeoutSeconds: 30\nownerEmail: a@example.com\n"
    )
    assert (await cli.ok("taskdef", "register", str(taskdef)))["registered"] == ["cli_task"]
    taskdef.write_text(taskdef.read_text().replace("retryCount: 2", "retryCount: 5"))
    await cli.ok("taskdef", "update", str(taskdef))
    assert (await cli.ok("taskdef", "get", "cli_task"))["retryCount"] == 5
    wfdef = tmp_path / "wf.json"
    wfdef.write_text(
        json.dumps(
            {"name": "cli_flow", "tasks": [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}]}
        )
    )
    await cli.ok("workflowdef", "register", str(wfdef))
    code, _, err = await cli.run("workflowdef", "register", str(wfdef))
    assert code != 0 and "409" in err and len(err.strip().splitlines()) == 1
    await cli.ok("workflowdef", "register", str(wfdef), "--overwrite")


async def test_errors_are_one_line_on_stderr(cli: Cli) -> None:
    code, _, err = await cli.run("get", "no-such-workflow")
    assert code != 0 and err.startswith("gateway: error:") and "404" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = await cli.run("variables", "no-such-workflow", '{"a": 1}')
    assert code != 0 and "404" in err


async def test_unreachable_conductor_fails_fast(cli: Cli) -> None:
    env = {**cli.env, "GATEWAY_CONDUCTOR__URL": "http://127.0.0.1:9/api",
           "GATEWAY_CONDUCTOR__MAX_RETRIES": "0"}  # fmt: skip
    code, _, err = await Cli(env).run("status", "x")
    assert code != 0 and "cannot connect" in err


async def test_settings_from_a_config_file(cli: Cli, tmp_path: Path) -> None:
    url = cli.env.pop("GATEWAY_CONDUCTOR__URL")
    config = tmp_path / "gateway.yaml"
    config.write_text(f"conductor:\n  url: {url}\n  request_timeout: 5\n")
    caps = await cli.ok("capabilities", "--config", str(config))
    assert caps["flavor"] in ("oss", "orkes") and caps["syncExecute"] is True
