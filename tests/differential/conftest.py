"""Fixtures: a driver on a fresh dev server, and one on the session's real Conductor OSS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.devserver.server import DevServer
from tests.differential.driver import Driver


@pytest.fixture
async def dev() -> AsyncIterator[Driver]:
    async with DevServer(port=0) as server:
        driver = Driver(server.url)
        yield driver
        await driver.close()


@pytest.fixture
async def real(conductor_oss_url: str) -> AsyncIterator[Driver]:
    driver = Driver(conductor_oss_url)
    yield driver
    await driver.close()
