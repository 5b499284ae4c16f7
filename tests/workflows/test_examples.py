"""Each example in examples/ runs as a user runs it (`python examples/NAME.py`, with
GATEWAY_CONDUCTOR__URL) against the real Conductor OSS and against the dev server, and exits 0,
which each does only when its workflow ended as expected.

On the dev server an example is skipped only while the dev server refuses one of its workflow
definitions (it does not run every task type yet): the test asks it, and the skip names what it
refused, so the skip goes away by itself once the dev server accepts the definition."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from examples import dynamic_workflow, kitchensink, task_configure, workflow_ops
from gateway.conductor import ConductorClient, ConductorWorkflow
from gateway.devserver.server import DevServer
from gateway.errors import BadRequest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

EXAMPLES: dict[str, tuple[Callable[[str], list[ConductorWorkflow]], list[str]]] = {
    # name: (its workflows, given the URL), lines its output must have
    "dynamic_workflow": (
        lambda url: [dynamic_workflow.notification_workflow(dynamic_workflow.CHANNELS)],
        ["executing it inline (not registered)", ": COMPLETED; output"],
    ),
    "kitchensink": (
        lambda url: [kitchensink.kitchensink(url), kitchensink.side_workflow()],
        ["approved as 'ana'", "'approvedBy': 'ana'"],
    ),
    "workflow_ops": (
        lambda url: [workflow_ops.order_workflow()],
        ["ok  rerun from the 'approval' task", "ok  search by free text", "ok  completed"],
    ),
    "task_configure": (
        lambda url: [task_configure.workflow()],
        ["COMPLETED after ['FAILED', 'FAILED', 'COMPLETED']", "as expected"],
    ),
}


async def refused_by(client: ConductorClient, workflows: list[ConductorWorkflow]) -> str | None:
    """Why the server refuses one of the definitions, or None when it takes them all."""
    for wf in workflows:
        try:
            await client.register_workflow(wf, overwrite=True)
        except BadRequest as exc:
            return f"{wf.name}: {exc.message}"
    return None


@pytest.mark.parametrize("name", list(EXAMPLES))
async def test_example_runs_to_the_expected_end(
    name: str, target: str, conductor_url: str, client: ConductorClient
) -> None:
    workflows, expected_lines = EXAMPLES[name]
    if target == "dev":
        refused = await refused_by(client, workflows(conductor_url))
        if refused:
            types = sorted(set(re.findall(r"type '(\w+)' is not supported", refused)))
            missing = f"task types {', '.join(types)}" if types else "its workflow"
            pytest.skip(f"the dev server does not run {missing} yet; it answered: {refused}")
    output = await run_example(name, conductor_url)
    for line in expected_lines:
        assert line in output


async def test_workflow_ops_updates_variables_on_orkes() -> None:
    async with DevServer(port=0, flavor="orkes") as server:
        output = await run_example("workflow_ops", server.url)
    assert "ok  update variables" in output and "ok  completed" in output


async def run_example(name: str, conductor_url: str) -> str:
    """`python examples/NAME.py`; its output, once it exited 0."""
    env = {**os.environ, "GATEWAY_CONDUCTOR__URL": conductor_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        f"examples/{name}.py",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=200)
    output = out.decode()
    print(output)
    assert process.returncode == 0, output
    return output
