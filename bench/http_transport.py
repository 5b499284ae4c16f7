"""Which HTTP transport should carry the Conductor client? Requests/s at 1, 16 and 64 in flight.

Clients, each sending a 171-byte JSON POST and reading a small JSON answer over keep-alive:
- httpx 0.28 with its default transport (httpcore pool), limits sized to the concurrency
- httpx over the `httpx-aiohttp` package's AiohttpTransport
- gateway.conductor.pool.HttptoolsTransport: the client's default, a keep-alive pool parsed by
  httptools (issue 18)
- gateway.conductor.transport.AiohttpTransport: aiohttp without httpx
- raw aiohttp ClientSession: the ceiling the transports are compared against
- ConductorClient.start_workflow: the whole client (pydantic request model, auth hook, error
  mapping, retry wrapper) over its default transport, sending the same JSON document

Machines here are shared, so each level runs every client in several interleaved rounds and
reports each client's best round: interference only ever slows a round down.

The server is a minimal HTTP/1.1 keep-alive server on a raw asyncio protocol, in a separate
process pinned to another core when there is one, so the server is not the bottleneck and
the client has a core of its own.

Run: .venv/bin/python bench/http_transport.py [--seconds 1] [--rounds 3] [--levels 1,16,64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

BODY = (
    b'{"name":"order_fulfilment","version":1,"correlationId":"order-000123",'
    b'"input":{"orderId":"000123","customer":"c-42","amount":129.5,"currency":"EUR",'
    b'"items":[1,2,3]},"priority":0}'
)
ANSWER = b'{"workflowId":"3f1c2a8e-1111-4c4c-9d9d-000000000001","status":"RUNNING"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(ANSWER)).encode()
    + b"\r\n\r\n"
    + ANSWER
)


# -- server (subprocess) -----------------------------------------------------------------------


class _Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                length = int(head[marker + 15 :].split(b"\r\n", 1)[0])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.transport.write(RESPONSE)


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Http, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    server.close()


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})


# -- clients -----------------------------------------------------------------------------------

Request = Callable[[], Awaitable[None]]
Factory = Callable[[str, int], Awaitable[tuple[Request, Callable[[], Awaitable[None]]]]]


async def httpx_default(url: str, n: int) -> tuple[Request, Callable[[], Awaitable[None]]]:
    import httpx

    limits = httpx.Limits(max_connections=max(n, 1), max_keepalive_connections=max(n, 1))
    client = httpx.AsyncClient(limits=limits, timeout=30)
    return _httpx_post(client, url), client.aclose


async def httpx_aiohttp_pkg(url: str, n: int) -> tuple[Request, Callable[[], Awaitable[None]]]:
    import httpx
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=max(n, 1), max_keepalive_connections=max(n, 1))
    client = httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=30)
    return _httpx_post(client, url), client.aclose


async def gateway_wire(url: str, n: int) -> tuple[Request, Callable[[], Awaitable[None]]]:
    from gateway.conductor import transport

    return _wire(transport.AiohttpTransport(max_connections=max(n, 1)), url)


async def gateway_pool(url: str, n: int) -> tuple[Request, Callable[[], Awaitable[None]]]:
    from gateway.conductor.pool import HttptoolsTransport

    return _wire(HttptoolsTransport(max_connections=max(n, 1)), url)


def _wire(wire: Any, url: str) -> tuple[Request, Callable[[], Awaitable[None]]]:
    from gateway.conductor import transport

    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    async def send() -> None:
        reply = await wire.send(transport.Request("POST", url, None, headers, BODY, 30.0))
        assert reply.status_code == 200 and reply.content

    return send, wire.aclose


def _httpx_post(client: object, url: str) -> Request:
    headers = {"Content-Type": "application/json"}

    async def send() -> None:
        response = await client.post(url, content=BODY, headers=headers)  # type: ignore[attr-defined]
        assert response.status_code == 200 and response.content

    return send


async def raw_aiohttp(url: str, n: int) -> tuple[Request, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max(n, 1)))
    headers = {"Content-Type": "application/json"}

    async def send() -> None:
        async with session.post(url, data=BODY, headers=headers) as response:
            body = await response.read()
            assert response.status == 200 and body

    return send, session.close


async def conductor_client(url: str, n: int) -> tuple[Request, Callable[[], Awaitable[None]]]:
    from gateway.conductor import ConductorClient

    client = ConductorClient(url.rsplit("/workflow", 1)[0], max_connections=max(n, 1))
    doc = orjson.loads(BODY)

    async def send() -> None:
        assert await client.start_workflow(
            doc["name"], doc["version"], doc["input"], doc["correlationId"], doc["priority"]
        )

    return send, client.aclose


CLIENTS: dict[str, Factory] = {
    "httpx default pool": httpx_default,
    "httpx + httpx-aiohttp pkg": httpx_aiohttp_pkg,
    "gateway AiohttpTransport": gateway_wire,
    "gateway HttptoolsTransport": gateway_pool,
    "raw aiohttp (ceiling)": raw_aiohttp,
    "ConductorClient.start": conductor_client,
}


async def measure(factory: Factory, url: str, level: int, seconds: float) -> float:
    send, close = await factory(url, level)
    try:
        for _ in range(max(level, 8)):  # warm up: open the connections
            await send()
        await asyncio.gather(*(send() for _ in range(level)))
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await send()
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(level)))
        return done / (time.perf_counter() - start)
    finally:
        await close()


async def run(seconds: float, levels: list[int], rounds: int) -> dict[str, dict[int, float]]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/api/workflow"
        results: dict[str, dict[int, float]] = {name: {} for name in CLIENTS}
        for level in levels:
            for _ in range(rounds):
                for name, factory in CLIENTS.items():
                    rate = await measure(factory, url, level, seconds)
                    results[name][level] = max(rate, results[name].get(level, 0.0))
            for name in CLIENTS:
                print(f"  {name:28s} c={level:<3d} {results[name][level]:9.0f} req/s", flush=True)
        return results
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)


def report(results: dict[str, dict[int, float]], levels: list[int]) -> None:
    ceiling = results["raw aiohttp (ceiling)"]
    head = "".join(f"{'c=' + str(c):>16s}" for c in levels)
    print(f"\n{'client':28s}{head}   (requests/s, ratio to raw aiohttp)")
    for name, row in results.items():
        cells = "".join(f"{row[c]:9.0f} ({row[c] / ceiling[c]:4.2f})" for c in levels)
        print(f"{name:28s}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per level")
    parser.add_argument("--levels", default="1,16,64", help="requests in flight")
    args = parser.parse_args()
    if args.serve:
        _pin(1)
        asyncio.run(_serve())
        return
    _pin(0)
    levels = [int(x) for x in args.levels.split(",")]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
        f"best of {args.rounds} rounds of {args.seconds}s per client and level"
    )
    report(asyncio.run(run(args.seconds, levels, args.rounds)), levels)


if __name__ == "__main__":
    main()
