"""A lean HTTP/1.1 client for the Conductor API: a pool of keep-alive connections, one request
at a time on each, answers parsed by httptools (llhttp, the parser uvicorn uses).

Why not aiohttp on this path: its client builds a request object, a payload, header
multidicts, a timer and trace hooks for every call. On the gateway's hot path (one
`POST /api/workflow` per event) that cost about 95 µs of CPU per event, as much as a whole bare
consume-and-call loop (bench/pipeline.py, bench/http_transport.py; issue 18). This client does
what the Conductor client needs and no more: no proxies (the other transports ignore the
environment's too), no redirects (never followed), no cookies, no compression (no
Accept-Encoding is sent), answers sized by Content-Length, chunked, or ended by the close.

Failures are classified like the other transports' (gateway.conductor.transport): a request
that never left (no connection could be opened, none came free in time) is `ConnectFailed`;
one without an answer in time is `ConductorTimeout`; a connection that broke or answered
nonsense after the request left is `ConductorUnavailable`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.conductor.responses import ConnectFailed
from gateway.conductor.transport import (
    Reply,
    Request,
    broken,
    cannot_connect,
    no_answer,
    untrusted,
    where,
)
from gateway.errors import ConductorError

USER_AGENT = "conductor-event-gateway"
_NO_BODY_STATUS = frozenset({204, 304})
_IDEMPOTENT = frozenset({"GET", "HEAD"})  # asked again on a new connection (see send)


class _Broken(Exception):
    """The connection ended or answered something that is not HTTP."""

    def __init__(self, reason: str, silent: bool) -> None:
        super().__init__(reason)
        self.silent = silent  # not a byte of the answer had come


@dataclass(frozen=True, slots=True)
class _Origin:
    key: str  # scheme://netloc as the URL gave it
    host: str
    port: int
    tls: bool
    host_header: str


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `exchange` sends a request and waits for its answer."""

    def __init__(self, pool: HttptoolsTransport, origin: _Origin) -> None:
        self._pool = pool
        self.origin = origin
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._until_close = False  # the answer has no length: it ends when the server closes
        self._heard = False  # some of the current answer came
        self.used = False  # an exchange ran on it before the current one
        self.closed = False
        self.reusable = True

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._heard = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(_Broken(f"not an HTTP answer ({exc})", silent=False))
            self.close()

    def eof_received(self) -> bool:
        self.reusable = False  # the server is done with it: a request sent now would be lost
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._until_close and self._answer is not None:
            self.on_message_complete()  # the close ends an answer without a length
        reason = str(exc) if exc else "Conductor disconnected"
        self._fail(_Broken(reason, silent=not self._heard))
        self._pool.lost(self)

    # -- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        names = {name.lower() for name, _ in self._headers}
        self._until_close = (
            b"content-length" not in names
            and b"transfer-encoding" not in names
            and self._parser.get_status_code() not in _NO_BODY_STATUS
        )

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer, self._answer = self._answer, None
        self.reusable = self._parser.should_keep_alive() and not self._until_close
        headers, body = self._headers, b"".join(self._body)
        self._headers, self._body, self._until_close = [], [], False
        if answer is not None and not answer.done():
            answer.set_result((self._parser.get_status_code(), headers, body))
        elif answer is None:
            self.reusable = False  # an answer nobody asked for: the stream is out of step

    # -- use ---------------------------------------------------------------------------------

    def exchange(self, data: bytes) -> asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]]:
        assert self._transport is not None and self._answer is None
        self._heard = False
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return self._answer

    def _fail(self, exc: Exception) -> None:
        answer, self._answer = self._answer, None
        self.reusable = False
        if answer is not None and not answer.done():
            answer.set_exception(exc)

    @property
    def usable(self) -> bool:
        """Open, in step, and not closing on either side."""
        transport = self._transport
        return (
            self.reusable
            and not self.closed
            and transport is not None
            and not transport.is_closing()
        )

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()


class HttptoolsTransport:
    """`Transport` (gateway.conductor.transport) over a pool of at most `max_connections`
    keep-alive HTTP/1.1 connections, shared by every origin it is asked for."""

    def __init__(self, *, max_connections: int = 64, ssl_context: ssl.SSLContext | None = None):
        self._limit = max_connections
        self._ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._origins: dict[str, _Origin] = {}
        self._idle: dict[str, list[_Connection]] = {}
        self._open = 0  # connections open or being opened
        self._all: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def send(self, request: Request) -> Reply:
        origin, target, path = self._split(request)
        data = _head(request, target, origin.host_header)
        if request.content:
            data += request.content
        deadline = asyncio.get_running_loop().time() + request.timeout
        try:
            status, raw, body = await self._exchange(origin, data, deadline, request)
        except _Broken as exc:
            if not (exc.silent and request.method in _IDEMPOTENT):
                raise broken(request.method, request.url, exc) from None
            # A kept-alive connection the server had just closed (its close crossed the
            # request): asking again on a new connection cannot do anything twice.
            try:
                status, raw, body = await self._exchange(origin, data, deadline, request)
            except _Broken as again:
                raise broken(request.method, request.url, again) from None
        headers = CIMultiDictProxy(
            CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)
        )
        return Reply(status, headers, body, request.method, path)

    async def _exchange(
        self, origin: _Origin, data: bytes, deadline: float, request: Request
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One request and its answer; `_Broken` when the connection failed under it."""
        conn = await self._acquire(origin, deadline, request)
        answer = conn.exchange(data)
        timer = asyncio.get_running_loop().call_at(deadline, _expire, answer)
        try:
            return await answer
        except TimeoutError:
            conn.close()
            raise no_answer(request.method, request.url) from None
        except _Broken as exc:
            exc.silent = exc.silent and conn.used  # a fresh connection's silence is an answer
            raise
        except BaseException:  # cancelled mid-exchange: its answer would come to the next
            conn.close()
            raise
        finally:
            timer.cancel()
            conn.used = True
            self._release(conn)

    def _split(self, request: Request) -> tuple[_Origin, str, str]:
        """The origin, the request target (path and query) and the path alone."""
        scheme, _, rest = request.url.partition("://")
        netloc, _, tail = rest.partition("/")
        key = f"{scheme}://{netloc}"
        origin = self._origins.get(key) or self._origin(key, request)
        target = "/" + tail
        path = target.partition("?")[0]
        if request.params:
            query = urlencode(request.params, quote_via=quote)
            target += ("&" if "?" in target else "?") + query
        return origin, target, path

    def _origin(self, key: str, request: Request) -> _Origin:
        parts = urlsplit(key)
        here = where(request.method, request.url)
        if "@" in parts.netloc:  # never echoed: it may hold a password
            raise ConductorError(f"{here}: credentials in the URL are not sent; use conductor.auth")
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
            raise ConductorError(f"{here}: invalid URL {key!r}; use http(s)://host[:port]/api")
        tls = parts.scheme == "https"
        port = port or (443 if tls else 80)
        origin = _Origin(key, parts.hostname, port, tls, parts.netloc)
        self._origins[key] = origin
        return origin

    # -- the pool ----------------------------------------------------------------------------

    async def _acquire(self, origin: _Origin, deadline: float, request: Request) -> _Connection:
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise ConductorError(f"{where(request.method, request.url)}: the client is closed")
            idle = self._idle.get(origin.key)
            while idle:
                conn = idle.pop()
                if conn.usable:
                    return conn
                conn.close()
            if self._open < self._limit:
                return await self._connect(origin, deadline, request)
            self._close_idle_elsewhere()  # its close frees a place and wakes the first waiter
            waiter = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            except TimeoutError:
                raise ConnectFailed(
                    f"{where(request.method, request.url)}: no connection to Conductor came "
                    f"free within {request.timeout:g}s ({self._limit} in use)"
                ) from None
            finally:
                timer.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _close_idle_elsewhere(self) -> None:
        """Close one idle connection to another origin (this one's have been taken), so that a
        connection to this origin can open once it is gone (`lost`)."""
        for conns in self._idle.values():
            if conns:
                conns.pop().close()
                return

    async def _connect(self, origin: _Origin, deadline: float, request: Request) -> _Connection:
        loop = asyncio.get_running_loop()
        self._open += 1
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=self._ssl if origin.tls else None,
                    server_hostname=origin.host if origin.tls else None,
                )
        except BaseException as exc:
            self._open -= 1
            self._wake()
            if isinstance(exc, OSError | TimeoutError):  # ssl errors are OSErrors
                raise _connect_error(request, exc) from exc
            raise
        self._all.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        if not conn.usable or self._closed:
            conn.close()  # counted down when its connection_lost arrives
            return
        self._idle.setdefault(conn.origin.key, []).append(conn)
        self._wake()

    def lost(self, conn: _Connection) -> None:
        """A connection closed (either side): it no longer counts against the limit."""
        if conn in self._all:
            self._all.discard(conn)
            self._open -= 1
            idle = self._idle.get(conn.origin.key)
            if idle and conn in idle:
                idle.remove(conn)
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._all):
            conn.close()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # wakes to find the client closed
        await asyncio.sleep(0)  # let the transports run their connection_lost


def _head(request: Request, target: str, host: str) -> bytes:
    head = f"{request.method} {target} HTTP/1.1\r\nHost: {host}\r\n" + _fields(request)
    if request.content is not None or request.method in ("POST", "PUT", "PATCH"):
        head += f"Content-Length: {len(request.content or b'')}\r\n"
    return (head + "\r\n").encode("latin-1")


_FIELDS: dict[tuple[tuple[str, str], ...], str] = {}  # header sets seen: a handful per process


def _fields(request: Request) -> str:
    """The header lines of `request` (with the User-Agent), each set checked once."""
    key = tuple(request.headers.items())
    block = _FIELDS.get(key)
    if block is not None:
        return block
    for name, value in key:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ConductorError(
                f"{where(request.method, request.url)}: header {name} holds a line break; "
                "it cannot be sent"
            )
    block = "".join(f"{name}: {value}\r\n" for name, value in (*key, ("User-Agent", USER_AGENT)))
    if len(_FIELDS) >= 256:  # rotating tokens make new sets; keep the cache small
        _FIELDS.clear()
    _FIELDS[key] = block
    return block


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _connect_error(request: Request, exc: OSError | TimeoutError) -> ConductorError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return untrusted(request.method, request.url, exc)
    if isinstance(exc, TimeoutError):
        return ConnectFailed(
            f"{where(request.method, request.url)}: cannot connect to Conductor within "
            f"{request.timeout:g}s"
        )
    return cannot_connect(request.method, request.url, exc)
