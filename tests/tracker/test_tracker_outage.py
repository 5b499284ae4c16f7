"""Conductor unreachable: the tracker (with the real client) waits instead of polling, then
resumes and publishes what finished meanwhile."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.conductor.client import ConductorClient
from gateway.devserver.server import DevServer
from gateway.settings import TrackerSettings
from gateway.sinks import Publisher
from gateway.store.base import TrackRequest
from gateway.store.sqlite import SqliteStore
from gateway.tracker import Tracker
from tests.messaging import declare_queue, get_amqp, settings_for

from .conftest import FLOW, TASK, take_task

pytestmark = pytest.mark.brokers


class SwitchableProxy:
    """A loopback TCP proxy that can go down (connections refused and cut) and come back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.update({writer, up_writer})
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(dst)
            dst.close()


async def test_tracker_waits_while_conductor_is_down_then_publishes(
    tmp_path: Path, kafka_bootstrap: str, amqp_url: str
) -> None:
    queue = await declare_queue(amqp_url)
    settings = TrackerSettings(min_interval=0.1, max_interval=0.2, concurrency=4)
    async with DevServer(port=0) as server, ConductorClient(server.url, flavor="oss") as direct:
        await direct.register_task_defs([{"name": TASK, "retryCount": 0}])
        await direct.register_workflow_def(
            {
                "name": FLOW,
                "version": 1,
                "schemaVersion": 2,
                "tasks": [{"name": TASK, "taskReferenceName": "step", "type": "SIMPLE"}],
            },
            overwrite=True,
        )
        proxy = SwitchableProxy(server.port)
        await proxy.up()
        url = f"http://127.0.0.1:{proxy.port}/api"
        wf = await direct.start_workflow(FLOW, 1, {})
        async with (
            ConductorClient(url, flavor="oss", max_retries=1) as client,
            SqliteStore(tmp_path / "g.db", first_poll_delay=0.0) as store,
            Publisher(settings_for(kafka_bootstrap, amqp_url)) as publisher,
            Tracker(store, client, publisher, settings) as tracker,
        ):
            request = TrackRequest(f"amqp:{queue}", frozenset({"COMPLETED"}), "r", "e", "s")
            await store.track(wf, request)
            async with asyncio.timeout(10):
                while tracker.polls < 3:  # it polls while the workflow runs
                    await asyncio.sleep(0.05)
            await proxy.down()
            async with asyncio.timeout(10):
                while client.ready:
                    await asyncio.sleep(0.05)
            polls_when_down = tracker.polls
            task = await take_task(direct, TASK, wf)
            await direct.update_task(task.task_id, wf, "COMPLETED", {"answer": 1})
            await asyncio.sleep(1.5)  # ~15 polls' worth at min_interval 0.1
            assert tracker.polls - polls_when_down <= 1
            await proxy.up()
            [message] = await get_amqp(amqp_url, queue, 1, timeout=15)
            async with asyncio.timeout(5):
                while await store.pending_count():
                    await asyncio.sleep(0.05)
        await proxy.down()
    document = json.loads(message.body)
    assert document["id"] == f"{wf}:COMPLETED:{document['data']['endTime']}"
