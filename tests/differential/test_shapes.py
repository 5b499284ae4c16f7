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
    """The real server's run with a JOIN listed CANCELED although tasks after it ran, shown as
    COMPLETED. Seen on 3.32.3 in CI runs under load: once in a COMPLETED US run, once in a
    TERMINATED FR run (its TERMINATE task comes after the loop): every task after the JOIN ran,
    so the JOIN had let the workflow go on, yet the finished workflow lists it CANCELED. Not
    traced in Conductor's source yet (a race between the decider and the JOIN's system-task
    worker is the likely cause). Only that exact state is mapped: a CANCELED JOIN with a task
    after it; any other difference still fails."""
    refs = [ref for ref, _ in run["tasks"]]
    tasks = [
        (
            ref,
            "COMPLETED"
            if ref.startswith("join_") and status == "CANCELED" and index < len(refs) - 1
            else status,
        )
        for index, (ref, status) in enumerate(run["tasks"])
    ]
    return {**run, "tasks": tasks}
