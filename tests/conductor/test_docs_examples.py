"""The client examples of docs/client.md run, in order, against a dev server, so the docs cannot
rot.

Every ```python block of the page's `client` section is executed in one namespace (top-level
`await` allowed). The harness provides `client` and sets GATEWAY_CONDUCTOR__URL, as the page
says. The error line of docs/cli.md's example is checked against the real CLI output too.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.conductor import ConductorClient
from gateway.devserver.server import DevServer

DOCS = Path(__file__).resolve().parents[2] / "docs"
pytestmark = pytest.mark.timeout(60)


def section(page: str, name: str) -> str:
    text = (DOCS / page).read_text(encoding="utf-8")
    match = re.search(rf"<!-- section: {name} -->(.*?)<!-- /section: {name} -->", text, re.S)
    assert match, f"docs/{page} has no '{name}' section"
    return match.group(1)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


async def run_block(code: str, namespace: dict[str, Any]) -> None:
    compiled = compile(code, "docs/client.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)  # the page's own example code, nothing else
    if asyncio.iscoroutine(result):
        await result


async def test_client_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(section("client.md", "client"))
    assert len(blocks) >= 12, "the client section lost examples"
    async with DevServer(port=0, flavor="orkes") as server:
        for key in [k for k in os.environ if k.startswith("GATEWAY_")]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("GATEWAY_CONDUCTOR__URL", server.url)
        async with ConductorClient(server.url) as client:
            namespace: dict[str, Any] = {"client": client, "__name__": "readme"}
            for number, block in enumerate(blocks, 1):
                try:
                    await run_block(block, namespace)
                except Exception as exc:
                    pytest.fail(f"docs/client.md example #{number} failed: {exc!r}\n{block}")
            wf = await client.get_workflow(namespace["workflow_id"])
            assert wf.status == "RUNNING"  # the last example reran it from the approval task


async def test_cli_example_error_line_is_real() -> None:
    expected = next(
        line for line in section("cli.md", "cli").splitlines() if line.startswith("gateway: error:")
    )
    async with DevServer(port=0) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env["GATEWAY_CONDUCTOR__URL"] = server.url
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "conductor", "pause", "no-such-id",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        _, err = await proc.communicate()
    assert proc.returncode != 0
    assert err.decode().strip() == expected
