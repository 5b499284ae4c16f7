"""A loopback TCP proxy for fault injection.

`cut()` drops every connection and refuses new ones (a server down); `restore()` listens again
on the same port. Setting `frozen` makes every pipe swallow what it reads and never forward
again (a stuck network, not a closed one); connections made after clearing it flow again.

`proxied_tansu()` runs a Tansu broker that advertises a proxy's port, so every Kafka
connection (bootstrap and partition leader) runs through that proxy; `proxied_apache_kafka()`
does the same with Apache Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType

from gateway.devserver.brokers import BrokerError, Tansu, free_port, wait_for_port
from gateway.devserver.realservers import ApacheKafka


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.frozen = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> TcpProxy:
        await self.restore()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.cut()

    async def restore(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._accept, sock=sock)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
        for task in pipes:
            task.add_done_callback(self._tasks.discard)
        await asyncio.gather(*pipes, return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.frozen.is_set():
                    await asyncio.Event().wait()  # swallow: nothing gets through any more
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()


class ProxiedTansu(Tansu):
    """Tansu listening on its own port but advertising another (the proxy's)."""

    def __init__(self, advertised_port: int) -> None:
        super().__init__()
        self.advertised_port = advertised_port

    def start(self) -> None:
        argv = [self.binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}"]
        argv += ["--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}"]
        argv += ["--storage-engine", "memory://tansu/"]
        self._spawn(argv, env={**os.environ, "RUST_LOG": "warn"})
        assert self.process is not None
        if not wait_for_port(self.port, time.monotonic() + 15, self.process):
            self.stop()
            raise BrokerError("proxied Tansu did not start")


@contextlib.asynccontextmanager
async def proxied_tansu() -> AsyncIterator[tuple[TcpProxy, str]]:
    """Tansu reachable only through a proxy: yields the proxy and the bootstrap address."""
    broker_port = free_port()
    async with TcpProxy("127.0.0.1", broker_port) as proxy:
        broker = ProxiedTansu(advertised_port=proxy.port)
        broker.port = broker_port
        broker.start()
        try:
            yield proxy, f"127.0.0.1:{proxy.port}"
        finally:
            broker.stop()


class ProxiedApacheKafka(ApacheKafka):
    """Apache Kafka listening on its own port but advertising another (the proxy's)."""

    def __init__(self, advertised_port: int) -> None:
        super().__init__()
        self.advertised_port = advertised_port

    def _properties(self, base: Path) -> str:
        own = f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}\n"
        proxied = f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.advertised_port}\n"
        properties = super()._properties(base)
        assert own in properties, properties
        return properties.replace(own, proxied)


@contextlib.asynccontextmanager
async def proxied_apache_kafka() -> AsyncIterator[tuple[TcpProxy, str]]:
    """Apache Kafka reachable only through a proxy: yields the proxy and the bootstrap address."""
    broker_port = free_port()
    async with TcpProxy("127.0.0.1", broker_port) as proxy:
        broker = ProxiedApacheKafka(advertised_port=proxy.port)
        broker.port = broker_port
        await asyncio.to_thread(broker.start)
        try:
            yield proxy, f"127.0.0.1:{proxy.port}"
        finally:
            await asyncio.to_thread(broker.stop)
