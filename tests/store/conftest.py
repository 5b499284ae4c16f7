"""A throwaway PostgreSQL server for the shared-store tests (initdb in a temp dir, free port).

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN_DIRS = [Path("/usr/lib/postgresql") / v / "bin" for v in ("17", "16", "15", "14")]


def _pg_bin(name: str) -> str:
    for directory in PG_BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"PostgreSQL's {name} is not installed; apt-get install postgresql", pytrace=False
        )
    return found


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """DSN of a fresh server (trust auth on loopback only); stopped and removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
    data, port = tmp / "data", _free_port()
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
    run = [_pg_bin("initdb"), "-D", str(data), "-U", "gateway", "--auth=trust", "-E", "UTF8"]
    subprocess.run(_as_owner(run), check=True, capture_output=True)
    options = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1"
    ctl = _pg_bin("pg_ctl")
    start = [ctl, "-D", str(data), "-o", options, "-l", str(tmp / "log"), "-w", "start"]
    result = subprocess.run(_as_owner(start), capture_output=True, text=True)
    if result.returncode != 0:
        log = (tmp / "log").read_text() if (tmp / "log").exists() else ""
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {result.stderr}\n{log}", pytrace=False)
    try:
        yield f"postgresql://gateway@127.0.0.1:{port}/postgres"
    finally:
        stop = [ctl, "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_owner(stop), capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def postgres_dsn(postgres_server: str) -> str:
    """A new empty database per test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    port = postgres_server.rsplit(":", 1)[1].split("/")[0]
    createdb = [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", port, "-U", "gateway", name]
    subprocess.run(createdb, check=True, capture_output=True)
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"
