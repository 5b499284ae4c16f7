"""A loopback proxy in front of PostgreSQL that counts the round trips its clients wait for.

The server ends every answer a client waits for with one ReadyForQuery ('Z') message: one per
simple query, one per Sync of the extended protocol (a pipelined executemany is one).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit


class RoundTrips:
    """`async with RoundTrips(dsn).serving() as trips:` connect to `trips.dsn`; read `count`."""

    def __init__(self, dsn: str, delay: float = 0.0) -> None:
        self._url = urlsplit(dsn)
        self.target = (self._url.hostname or "127.0.0.1", self._url.port or 5432)
        self.delay = delay  # seconds added to every answer: a network's round-trip time
        self.count = 0  # ReadyForQuery messages so far, over every connection
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[RoundTrips]:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            server.close()
            await server.wait_closed()

    @property
    def dsn(self) -> str:
        """The DSN through the proxy, without TLS (whose negotiation is no typed message)."""
        user = f"{self._url.username}@" if self._url.username else ""
        proxied = self._url._replace(netloc=f"{user}127.0.0.1:{self.port}", query="")
        return urlunsplit(proxied) + "?sslmode=disable"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        for pipe in (self._forward(reader, up_writer), self._count(up_reader, writer)):
            task = asyncio.create_task(pipe)
            self._tasks.add(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def _count(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward the server's messages (type byte, 4-byte length) and count 'Z' among them."""
        buffer = bytearray()
        try:
            while data := await reader.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                buffer += data
                at = 0
                while len(buffer) - at >= 5:
                    size = int.from_bytes(buffer[at + 1 : at + 5], "big")
                    if len(buffer) - at < 1 + size:
                        break
                    self.count += buffer[at] == ord("Z")
                    at += 1 + size
                del buffer[:at]
                await writer.drain()
        finally:
            writer.close()
