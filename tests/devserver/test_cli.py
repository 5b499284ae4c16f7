"""`gateway dev conductor`: ready within 2 s, logs its URL, answers, exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time

import httpx

URL = re.compile(rb"ready at (http://\S+/api)")


async def _start(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "dev", "conductor", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


async def _url(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=10)
    match = URL.search(line)
    assert match, line
    return match.group(1).decode()


async def _stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), timeout=10)


async def test_cli_ready_quickly_serves_and_stops_on_sigterm() -> None:
    began = time.monotonic()
    proc = await _start("--flavor", "oss")
    try:
        url = await _url(proc)
        ready_after = time.monotonic() - began
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.get("/metadata/taskdefs")
            assert r.status_code == 200 and r.json() == []
    finally:
        code = await _stop(proc)
    assert code == 0
    # Interpreter start-up included; generous on a shared 2-core machine.
    assert ready_after < 2.0, f"ready after {ready_after:.2f}s"


async def test_cli_orkes_keys_secret_from_env_never_argv() -> None:
    proc = await _start(
        "--flavor", "orkes", "--key-id", "k1", "--key-secret-env", "DEV_SECRET",
        env={"DEV_SECRET": "s3cret"},
    )  # fmt: skip
    try:
        url = await _url(proc)
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/metadata/taskdefs")).status_code == 401
            r = await http.post("/token", json={"keyId": "k1", "keySecret": "s3cret"})
            token = r.json()["token"]
            r = await http.get("/metadata/taskdefs", headers={"X-Authorization": token})
            assert r.status_code == 200
    finally:
        assert await _stop(proc) == 0
    assert proc.stderr is not None
    assert b"s3cret" not in await proc.stderr.read()


async def test_cli_missing_secret_env_is_a_clear_error() -> None:
    proc = await _start("--flavor", "orkes", "--key-id", "k1", "--key-secret-env", "NOPE_UNSET")
    _, err = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 2 and b"NOPE_UNSET" in err
