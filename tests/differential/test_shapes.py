"""Differential tests: each shape runs on the dev server and on the real Conductor OSS 3.32.3
in the same test run; the task reference names and statuses in order, and the workflows'
status and output, must be the same."""

from __future__ import annotations

import asyncio

import pytest

import tests.differential.system_shapes  # noqa: F401  (registers its shapes in SHAPES)
from tests.differential.driver import Driver
from tests.differential.shapes import SHAPES
from tests.kitchensink import run_kitchen_sink


@pytest.mark.parametrize("name", sorted(SHAPES))
async def test_same_as_real_conductor(name: str, dev: Driver, real: Driver) -> None:
    on_dev = await SHAPES[name](dev)
    on_real = await SHAPES[name](real)
    assert on_dev == on_real


@pytest.mark.parametrize("country", ["US", "FR"])
async def test_sdk_kitchen_sink_same_as_real_conductor(
    country: str, dev: Driver, real: Driver
) -> None:
    """The conductor-python kitchen-sink shape, registered and worked by the SDK itself."""
    urls = [str(d.http.base_url).rstrip("/") for d in (dev, real)]
    on_dev, on_real = [await asyncio.to_thread(run_kitchen_sink, u, country) for u in urls]
    assert on_dev == on_real
