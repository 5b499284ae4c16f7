"""`gateway dev` on a terminal (tmux): after the README's first two demo events the live view
shows both, with the one workflow they started and signalled, and Ctrl-C still stops it all."""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.devstack import ROOT

pytestmark = [pytest.mark.brokers, pytest.mark.slow]

EXIT = re.compile(r"^exit (\d+)$", re.MULTILINE)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def test_gateway_dev_shows_both_demo_events_with_their_workflow(tmp_path: Path) -> None:
    socket = f"gw-live-{uuid.uuid4().hex[:8]}"  # a tmux server of its own
    env = f"GATEWAY_DEV_DIR={shlex.quote(str(tmp_path))} GATEWAY_DEV_ANY_PORT=1"
    # The view sizes itself to the terminal: COLUMNS and LINES from pytest would override it.
    env = f"-u COLUMNS -u LINES {env}"
    command = f"cd {shlex.quote(str(ROOT))} && env {env} {sys.executable} -m gateway dev"
    tmux(
        socket,
        "new-session",
        "-d",
        "-s",
        "dev",
        "-x",
        "220",
        "-y",
        "60",
        f'{command}; echo "exit $?"; sleep 600',
    )
    try:
        await until(socket, lambda pane: "Last events" in pane, timeout=120)
        sends = [line.strip() for line in pane_of(socket).splitlines() if " send " in line]
        for send in sends[:2]:  # the order, then its payment
            sent = await asyncio.create_subprocess_exec(*shlex.split(send), cwd=ROOT)
            assert await asyncio.wait_for(sent.wait(), 60) == 0

        def both_shown(pane: str) -> bool:
            return len(event_rows(pane)) == 2

        pane = await until(socket, both_shown, timeout=60)
        rows = event_rows(pane)
        assert {outcome for _, outcome in rows} == {"started", "done"}
        assert len({workflow for workflow, _ in rows}) == 1  # the order's, then signalled
        assert "Conductor ready" in pane
        tmux(socket, "send-keys", "-t", "dev", "C-c")
        pane = await until(socket, lambda pane: EXIT.search(pane) is not None, timeout=60)
        assert EXIT.findall(pane) == ["0"], pane
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], check=False)


def event_rows(pane: str) -> list[tuple[str, str]]:
    """(workflow id, outcome) of each row of the view's last-events table (its last frame)."""
    rows = []
    for line in pane[pane.rfind("Last events") :].splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) == 8 and UUID.fullmatch(cells[4]):
            rows.append((cells[4], cells[5]))
    return rows


def tmux(socket: str, *args: str) -> str:
    done = subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def pane_of(socket: str) -> str:
    return tmux(socket, "capture-pane", "-p", "-J", "-S", "-300", "-t", "dev")


async def until(socket: str, ok: Callable[[str], bool], timeout: float) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        pane = pane_of(socket)
        if ok(pane) or asyncio.get_running_loop().time() > deadline:
            print(pane)  # what the terminal showed, for the failure report
            assert ok(pane)
            return pane
        await asyncio.sleep(0.5)
