"""`gateway run` as a user runs it: a subprocess with a config file, its log in a file, and
its admin endpoint polled over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.devserver.brokers import free_port


@dataclass
class GatewayProcess:
    process: asyncio.subprocess.Process
    log: Path  # stderr, in a file so it can never block on a full pipe
    admin_port: int
    started: float  # time.monotonic() at spawn

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def get(self, path: str) -> httpx.Response | None:
        """The admin endpoint's answer, or None while nothing listens."""
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return await http.get(f"http://127.0.0.1:{self.admin_port}{path}")
        except httpx.HTTPError:
            return None

    async def reasons(self) -> list[str] | None:
        answer = await self.get("/readyz")
        return None if answer is None else list(answer.json()["reasons"])

    async def wait_reason(self, prefix: str, timeout: float) -> list[str]:
        """Poll /readyz until one reason starts with `prefix`; return the reasons."""
        deadline = time.monotonic() + timeout
        seen: list[str] | None = None
        while time.monotonic() < deadline:
            self.assert_running()
            seen = await self.reasons()
            if seen is not None and any(r.startswith(prefix) for r in seen):
                return seen
            await asyncio.sleep(0.1)
        raise AssertionError(
            f"no reason {prefix!r} within {timeout}s (last: {seen})\n{self.tail()}"
        )

    async def wait_ready(self, timeout: float) -> float:
        """Poll /readyz until 200; return the seconds since spawn."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_running()
            answer = await self.get("/readyz")
            if answer is not None and answer.status_code == 200:
                return time.monotonic() - self.started
            await asyncio.sleep(0.1)
        raise AssertionError(f"not ready within {timeout}s: {await self.reasons()}\n{self.tail()}")

    async def stop(self, signum: int, timeout: float = 60) -> int:
        self.process.send_signal(signum)
        return await asyncio.wait_for(self.process.wait(), timeout)

    def assert_running(self) -> None:
        assert self.process.returncode is None, (
            f"gateway exited with {self.process.returncode}:\n{self.tail()}"
        )

    def tail(self) -> str:
        return self.text()[-3000:]


def write_config(tmp_path: Path, rules: str, config: dict[str, Any], name: str = "gw") -> Path:
    (tmp_path / f"{name}-rules.yaml").write_text(rules)
    config = {
        "store": {"sqlite_path": str(tmp_path / f"{name}.db")},
        "logging": {"format": "text"},
        **config,
        "rules_file": str(tmp_path / f"{name}-rules.yaml"),
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(config))
    return path


@contextlib.asynccontextmanager
async def gateway_run(
    tmp_path: Path, rules: str, config: dict[str, Any], name: str = "gw"
) -> AsyncIterator[GatewayProcess]:
    """`python -m gateway run --config <file>`; killed if still running when the block ends."""
    port = free_port()
    path = write_config(tmp_path, rules, {**config, "admin": {"port": port}}, name)
    log = tmp_path / f"{name}.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "run", "--config", str(path), stderr=stderr
        )
    running = GatewayProcess(process, log, port, time.monotonic())
    try:
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
