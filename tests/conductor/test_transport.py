"""The default aiohttp transport against real sockets that misbehave: a server that hangs up after
reading the request, one that never answers, and a closed port. The classification must match
the httpx transport's (test_faults.py), because the retry policy depends on it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.conductor import ConductorClient
from gateway.conductor.responses import ConnectFailed
from gateway.errors import ConductorTimeout, ConductorUnavailable

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class BadServer:
    """Counts requests (not readiness probes); `behaviour` decides what happens to each."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests += b"readiness_probe" not in head.split(b"\r\n", 1)[0]
            await self.behaviour(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def hang_up(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()  # RST: "connection reset by peer"


async def never_answer(reader: asyncio.StreamReader, _w: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Behaviour], Awaitable[tuple[BadServer, str]]]]:
    servers: list[asyncio.Server] = []

    async def start(behaviour: Behaviour) -> tuple[BadServer, str]:
        bad = BadServer(behaviour)
        server = await asyncio.start_server(bad.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return bad, f"http://127.0.0.1:{port}/api"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def client(url: str, **kw: object) -> ConductorClient:
    return ConductorClient(url, flavor="oss", max_retries=2, backoff_base=0.001, **kw)  # type: ignore[arg-type]


async def test_reset_is_unavailable_and_retried_only_when_idempotent(serve) -> None:  # type: ignore[no-untyped-def]
    bad, url = await serve(hang_up)
    async with client(url) as c:
        with pytest.raises(ConductorUnavailable, match="connection failed"):
            await c.start_workflow("flow")
        assert bad.requests == 1  # a start that may have happened is not repeated
        with pytest.raises(ConductorUnavailable):
            await c.pause("wf-1")
        # pause is idempotent: the first try and two retries, each of which aiohttp itself
        # repeats once for PUT/DELETE/GET when a connection drops (it never does for POST)
        assert bad.requests in (1 + 3, 1 + 6)


async def test_no_answer_is_a_timeout(serve) -> None:  # type: ignore[no-untyped-def]
    bad, url = await serve(never_answer)
    async with client(url, timeout=0.3) as c:
        with pytest.raises(ConductorTimeout, match="may or may not have taken effect"):
            await c.start_workflow("flow")
        assert bad.requests == 1
        with pytest.raises(ConductorTimeout):
            await c.get_workflow("wf-1")
        assert bad.requests == 1 + 3


async def test_closed_port_is_connect_failed_and_retried_even_for_a_start() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    async with client(f"http://127.0.0.1:{port}/api") as c:
        with pytest.raises(ConnectFailed, match="cannot connect"):
            await c.start_workflow("flow")
        assert not c.ready
