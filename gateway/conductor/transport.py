"""The transport: send one HTTP request, get `Reply(status, headers, content)` back, or a
`ConductorError` when no answer came. The Conductor client's only module that touches httpx or
aiohttp; what the answer means is read by `gateway.conductor.responses`.

Three implementations with one contract:
- `HttptoolsTransport` (the default, `conductor.transport: httptools`; gateway.conductor.pool)
  keeps its own pool of HTTP/1.1 connections and parses with httptools: the least CPU per
  request, which the gateway's hot path pays once per event.
- `AiohttpTransport` (`conductor.transport: aiohttp`) calls aiohttp directly. The
  benchmark (bench/http_transport.py) showed that httpx's client layer alone costs more per
  request than a whole aiohttp round trip, so no transport *under* httpx can reach aiohttp's
  throughput; this path skips httpx entirely.
- `HttpxTransport` sends through an `httpx.AsyncClient`: httpx's own pool
  (`conductor.transport: httpx`) or any injected `httpx.AsyncBaseTransport`, which is how the
  fault tests plug in `httpx.MockTransport`.

Failures are classified the same way by both, because the retry policy depends on it:
`ConnectFailed` (the connection was never opened, so the request never reached Conductor),
`ConductorTimeout` (no answer in time; it may have taken effect) and `ConductorUnavailable`
(the connection broke mid-request).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx
import yarl

from gateway.conductor.responses import ConnectFailed
from gateway.errors import ConductorError, ConductorTimeout, ConductorUnavailable
from gateway.sinks.tls import tls_problem


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as the transports take it: `url` absolute and already escaped."""

    method: str
    url: str
    params: Mapping[str, str] | None
    headers: Mapping[str, str]
    content: bytes | None
    timeout: float


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, case-insensitive headers, the whole body, and what was asked."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    method: str
    path: str  # the request's path, for messages (never the query: it may carry user text)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class Transport(Protocol):
    async def send(self, request: Request) -> Reply: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """Requests through one aiohttp ClientSession (created on first use, in the running loop)."""

    def __init__(self, *, max_connections: int = 64, ssl_context: ssl.SSLContext | None = None):
        self._limit = max_connections
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0, ssl=self._ssl)
            # trust_env=False: no proxy settings or netrc credentials picked up implicitly.
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def send(self, request: Request) -> Reply:
        session = self._get_session()
        with translate_aiohttp_errors(request.method, request.url):
            async with session.request(
                request.method,
                yarl.URL(request.url, encoded=True),  # path segments are already escaped
                params=request.params,
                data=request.content,
                headers=request.headers,
                allow_redirects=False,
                timeout=self._timeout(request.timeout),
            ) as response:
                body = await response.read()
                path = response.url.path
                return Reply(response.status, response.headers, body, request.method, path)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxTransport:
    """Requests through an httpx.AsyncClient (its own pool, or an injected transport)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(self, request: Request) -> Reply:
        built = self.client.build_request(
            request.method,
            request.url,
            params=request.params,
            content=request.content,
            headers=request.headers,
            timeout=request.timeout,
        )
        with translate_httpx_errors(request.method, request.url):
            response = await self.client.send(built)
        path = built.url.path
        return Reply(response.status_code, response.headers, response.content, request.method, path)

    async def aclose(self) -> None:
        await self.client.aclose()


def make_transport(
    choice: httpx.AsyncBaseTransport | str, max_connections: int, ca_file: str | None
) -> Transport:
    """`httptools` (default), `aiohttp`, `httpx`, or an httpx transport instance (tests inject
    faults)."""
    if isinstance(choice, httpx.AsyncBaseTransport):
        return HttpxTransport(httpx.AsyncClient(transport=choice, follow_redirects=False))
    context = ssl.create_default_context(cafile=ca_file)  # verification always on
    if choice == "httptools":
        from gateway.conductor.pool import HttptoolsTransport  # it builds on this module

        return HttptoolsTransport(max_connections=max_connections, ssl_context=context)
    if choice == "aiohttp":
        return AiohttpTransport(max_connections=max_connections, ssl_context=context)
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    transport = httpx.AsyncHTTPTransport(verify=context, limits=limits)
    return HttpxTransport(httpx.AsyncClient(transport=transport, follow_redirects=False))


def where(method: str, url: str) -> str:
    return f"{method} {yarl.URL(url, encoded=True).path}"


@contextlib.contextmanager
def translate_httpx_errors(method: str, url: str) -> Iterator[None]:
    """httpx's transport exceptions become ConnectFailed / ConductorTimeout / Unavailable."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            raise untrusted(method, url, exc) from exc
        raise cannot_connect(method, url, exc) from exc
    except httpx.TimeoutException as exc:
        raise no_answer(method, url) from exc
    except httpx.TransportError as exc:
        raise broken(method, url, exc) from exc


@contextlib.contextmanager
def translate_aiohttp_errors(method: str, url: str) -> Iterator[None]:
    """aiohttp's exceptions, classified exactly like httpx's above."""
    try:
        yield
    except aiohttp.ClientConnectorCertificateError as exc:
        raise untrusted(method, url, exc) from exc
    except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
        raise cannot_connect(method, url, exc) from exc
    except TimeoutError as exc:
        raise no_answer(method, url) from exc
    except (aiohttp.ClientError, OSError) as exc:
        if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
            raise ConductorError(f"{where(method, url)}: invalid URL: {exc}") from exc
        raise broken(method, url, exc) from exc


def cannot_connect(method: str, url: str, exc: BaseException) -> ConductorError:
    reason = str(exc) or type(exc).__name__
    if "WRONG_VERSION_NUMBER" in reason:  # an https URL, a plain http port
        # Not transient, like an untrusted certificate: a retry meets the same plaintext port.
        return ConductorError(
            f"{where(method, url)}: cannot connect to Conductor: it answered without TLS; use "
            "http:// in conductor.url, or its https port"
        )
    return ConnectFailed(f"{where(method, url)}: cannot connect to Conductor: {reason}")


def untrusted(method: str, url: str, exc: BaseException) -> ConductorError:
    # Not transient: retrying cannot make an untrusted certificate trusted.
    parts = yarl.URL(url, encoded=True)
    problem = tls_problem(str(exc), "conductor", None, f"{parts.host}:{parts.port}", "ca_file")
    return ConductorError(
        f"{where(method, url)}: Conductor's TLS certificate is not trusted: "
        + (problem or f"{exc}; give the CA bundle that signed it as conductor.ca_file")
    )


def no_answer(method: str, url: str) -> ConductorError:
    return ConductorTimeout(
        f"{where(method, url)}: no answer within the request timeout; "
        "it may or may not have taken effect"
    )


def broken(method: str, url: str, exc: BaseException) -> ConductorError:
    reason = str(exc) or type(exc).__name__
    if url.startswith("http://") and "disconnected" in reason:
        reason += " (if it serves https, use https:// in conductor.url)"
    return ConductorUnavailable(f"{where(method, url)}: connection failed: {reason}")
