"""The httptools transport (gateway.conductor.pool) against a scripted HTTP server: the answers
and failures a Conductor (or what stands in front of it) can give, each classified the way the
client's retry policy needs. The whole suite runs on this transport too (it is the default),
against the dev server and the real Conductor OSS; these are the cases those never produce."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.conductor.pool import HttptoolsTransport
from gateway.conductor.responses import ConnectFailed
from gateway.conductor.transport import Request
from gateway.errors import ConductorError, ConductorTimeout, ConductorUnavailable


class Scripted:
    """A server that reads each request head (and its Content-Length body) and runs `answer`."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.connections = 0
        self.answer: Callable[[bytes, asyncio.StreamWriter], object] = ok
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + (await reader.readexactly(length) if length else b"")
                self.requests.append(request)
                result = self.answer(request, writer)
                if asyncio.iscoroutine(result):
                    await result
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/api"


def ok(request: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nwf-1")


@pytest.fixture
async def server() -> AsyncIterator[Scripted]:
    scripted = Scripted()
    scripted.server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
    async with scripted.server:
        yield scripted


@pytest.fixture
async def pool() -> AsyncIterator[HttptoolsTransport]:
    transport = HttptoolsTransport(max_connections=2)
    yield transport
    await transport.aclose()


def request(url: str, method: str = "POST", timeout: float = 2.0, **kw: object) -> Request:
    body = kw.pop("content", b'{"name": "flow"}' if method == "POST" else None)
    headers = kw.pop("headers", {"Accept": "text/plain"})
    params = kw.pop("params", None)
    return Request(method, url, params, headers, body, timeout)  # type: ignore[arg-type]


async def test_requests_share_kept_alive_connections_and_send_what_was_asked(
    server: Scripted, pool: HttptoolsTransport
) -> None:
    replies = await asyncio.gather(
        *(pool.send(request(server.url + "/workflow")) for _ in range(10)),
        pool.send(request(server.url + "/workflow/x", "GET", params={"q": "a b&c"})),
    )
    assert {r.status_code for r in replies} == {200} and replies[0].content == b"wf-1"
    assert replies[0].headers["content-type"] == "text/plain"  # case-insensitive
    assert replies[-1].path == "/api/workflow/x"  # never the query
    assert server.connections <= 2  # the pool's limit; reused, not one per request
    post = server.requests[0]
    assert post.startswith(b"POST /api/workflow HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 16\r\n" in post and post.endswith(b'\r\n\r\n{"name": "flow"}')
    assert any(r.startswith(b"GET /api/workflow/x?q=a%20b%26c HTTP/1.1") for r in server.requests)


async def test_chunked_and_close_delimited_answers_are_read_whole(
    server: Scripted, pool: HttptoolsTransport
) -> None:
    def chunked(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\n[1,\r\n3\r\n 2]\r\n0\r\n\r\n"
        )

    server.answer = chunked
    assert (await pool.send(request(server.url + "/a", "GET"))).content == b"[1, 2]"

    def until_close(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"ok": true}')
        writer.close()

    server.answer = until_close
    assert (await pool.send(request(server.url + "/b", "GET"))).content == b'{"ok": true}'
    server.answer = ok
    assert (await pool.send(request(server.url + "/c", "GET"))).content == b"wf-1"


async def test_a_kept_alive_connection_closed_under_a_get_is_asked_again_but_not_a_post(
    server: Scripted, pool: HttptoolsTransport
) -> None:
    await pool.send(request(server.url + "/warm", "GET"))  # one connection, kept alive

    def close_silently(request: bytes, writer: asyncio.StreamWriter) -> None:
        server.answer = ok  # the next connection answers
        writer.transport.abort()

    server.answer = close_silently
    reply = await pool.send(request(server.url + "/status", "GET"))
    assert reply.status_code == 200 and len(server.requests) == 3  # asked twice

    await pool.send(request(server.url + "/warm", "GET"))
    server.answer = close_silently
    with pytest.raises(ConductorUnavailable, match="connection failed"):
        await pool.send(request(server.url + "/workflow"))  # a start may have taken effect
    assert server.requests[-1].startswith(b"POST /api/workflow ")


async def test_no_answer_in_time_is_a_timeout_and_the_connection_is_not_reused(
    server: Scripted, pool: HttptoolsTransport
) -> None:
    async def slow(request: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.5)
        ok(request, writer)

    server.answer = slow
    with pytest.raises(ConductorTimeout, match="may or may not have taken effect"):
        await pool.send(request(server.url + "/workflow", timeout=0.1))
    server.answer = ok
    reply = await pool.send(request(server.url + "/workflow"))
    assert reply.content == b"wf-1"  # not the late answer of the request before
    assert server.connections == 2


async def test_a_full_pool_waits_for_a_connection_then_fails_as_never_sent(
    server: Scripted, pool: HttptoolsTransport
) -> None:
    release = asyncio.Event()

    async def held(request: bytes, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        ok(request, writer)

    server.answer = held
    busy = [asyncio.create_task(pool.send(request(server.url + "/w", timeout=5))) for _ in "ab"]
    await asyncio.sleep(0.1)
    with pytest.raises(ConnectFailed, match="no connection to Conductor came free"):
        await pool.send(request(server.url + "/w", timeout=0.2))
    waiting = asyncio.create_task(pool.send(request(server.url + "/w", timeout=5)))
    release.set()
    assert [r.status_code for r in await asyncio.gather(*busy, waiting)] == [200, 200, 200]


async def test_nothing_listening_garbage_and_line_breaks_in_headers(
    server: Scripted, pool: HttptoolsTransport
) -> None:
    with pytest.raises(ConnectFailed, match="cannot connect to Conductor"):
        await pool.send(request("http://127.0.0.1:9/api/workflow"))

    def garbage(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    server.answer = garbage
    with pytest.raises(ConductorUnavailable, match="not an HTTP answer"):
        await pool.send(request(server.url + "/workflow"))
    bad = request(server.url + "/workflow", headers={"X-Token": "a\r\nX-Evil: 1"})
    with pytest.raises(ConductorError, match="X-Token holds a line break"):
        await pool.send(bad)
    assert not any(b"X-Evil" in r for r in server.requests)


async def test_a_full_pool_closes_an_idle_connection_to_another_origin_for_a_new_one(
    server: Scripted,
) -> None:
    other = Scripted()
    other.server = await asyncio.start_server(other.handle, "127.0.0.1", 0)
    pool = HttptoolsTransport(max_connections=1)
    try:
        async with other.server:
            assert (await pool.send(request(server.url + "/a", "GET"))).status_code == 200
            reply = await pool.send(request(other.url + "/b", "GET", timeout=2))
            assert reply.status_code == 200 and other.connections == 1
            assert (await pool.send(request(server.url + "/a", "GET"))).status_code == 200
            assert server.connections == 2  # its idle one was closed to make room
    finally:
        await pool.aclose()


async def test_a_url_with_credentials_or_a_bad_port_is_refused_without_echoing_it(
    pool: HttptoolsTransport,
) -> None:
    with pytest.raises(ConductorError, match="credentials in the URL are not sent") as caught:
        await pool.send(request("http://admin:s3cret@127.0.0.1:9/api/workflow"))
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConductorError, match="invalid URL"):
        await pool.send(request("http://127.0.0.1:port/api/workflow"))
