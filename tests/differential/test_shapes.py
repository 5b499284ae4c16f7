"""Differential tests: each shape runs on the dev server and on the real Conductor OSS 3.32.3
in the same test run; the task reference names and statuses in order, and the workflows'
status and output, must be the same."""

from __future__ import annotations

import asyncio
from typing import Any

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
    assert on_dev == _join_race_settled(on_real)


def _join_race_settled(run: dict[str, Any]) -> dict[str, Any]:
    """The real server's run with a JOIN that ended CANCELED in a workflow that COMPLETED shown
    as COMPLETED. Seen once on 3.32.3 (a CI run on a quiet machine; dozens of runs without
    it): every task after the JOIN ran and completed, so the JOIN had let the workflow go on,
    yet the finished workflow lists it CANCELED. Not traced in Conductor's source yet (a race
    between the decider and the JOIN's system-task worker is the likely cause). Only that exact
    state is mapped; any other difference still fails."""
    if run["status"] != "COMPLETED":
        return run
    tasks = [
        (ref, "COMPLETED" if ref.startswith("join_") and status == "CANCELED" else status)
        for ref, status in run["tasks"]
    ]
    return {**run, "tasks": tasks}
