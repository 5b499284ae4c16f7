"""Each test here runs against the Conductor dev server (a fresh one per test, in-process)
and against the real Conductor OSS 3.32.3 (one per test run); `conductor_url` is the API base
URL of one of them, `target` says which."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.conductor import ConductorClient
from gateway.devserver.server import DevServer


@pytest.fixture(params=["dev", "real"])
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def conductor_url(target: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    if target == "real":
        yield request.getfixturevalue("conductor_oss_url")
        return
    async with DevServer(port=0, flavor="oss") as server:
        yield server.url


@pytest.fixture
async def client(conductor_url: str) -> AsyncIterator[ConductorClient]:
    async with ConductorClient(conductor_url, max_retries=2, backoff_base=0.01) as client:
        yield client


@pytest.fixture
def suffix() -> str:
    """Unique per test: the real server is shared by the whole run."""
    return "_" + uuid.uuid4().hex[:8]
