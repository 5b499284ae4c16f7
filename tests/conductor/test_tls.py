"""TLS verification is on: a self-signed Conductor is refused (once, not retried) until its
certificate is given as `ca_file`, after which the same call succeeds."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.conductor import ConductorClient
from gateway.errors import ConductorError, TransientError

ANSWER = b'{"workflowId":"w1","status":"RUNNING"}'


def self_signed(directory: Path) -> tuple[Path, Path]:
    # A missing openssl fails the test: skipping would hide that TLS verification is untested.
    if shutil.which("openssl") is None:
        pytest.fail("test_tls needs the openssl CLI to make a self-signed certificate; install it")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def https_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path, list[int]]]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    served: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if b"readiness_probe" not in head.split(b"\r\n", 1)[0]:
                served.append(1)
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(ANSWER)}\r\nConnection: close\r\n\r\n"  # noqa: E501
            writer.write(head.encode() + ANSWER)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}/api", cert, served
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("transport", ["httptools", "aiohttp", "httpx"])
async def test_untrusted_certificate_is_refused_until_ca_file_is_given(
    https_server: tuple[str, Path, list[int]], transport: str
) -> None:
    url, cert, served = https_server
    async with ConductorClient(url, flavor="oss", transport=transport, max_retries=3) as c:
        with pytest.raises(ConductorError, match=r"not trusted.*ca_file") as info:
            await c.get_status("w1")
    assert not isinstance(info.value, TransientError) and served == []
    async with ConductorClient(url, flavor="oss", transport=transport, ca_file=str(cert)) as c:
        assert (await c.get_status("w1")).status == "RUNNING"
    assert served == [1]
