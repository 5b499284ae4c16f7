"""Readiness causes and the shrinking of a dead letter refused for size, one class each."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.deadletters import BODY_REF, ORIGINAL_BYTES, PREFIX, KeptBodies, without_body
from gateway.errors import ConductorUnavailable
from gateway.readiness import Readiness, keep_trying


def test_a_cause_is_logged_when_it_appears_or_changes_not_at_every_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    readiness = Readiness()
    with caplog.at_level(logging.INFO, logger="gateway.readiness"):
        readiness.note("store", "not open")  # expected: shown, not logged
        for _ in range(3):
            readiness.fail("kafka", "cannot connect to k:9092 (refused)")
        readiness.fail("kafka", "cannot connect to k:9092 (timed out)")
        assert readiness.reasons() == [
            "store: not open",
            "kafka: cannot connect to k:9092 (timed out)",
        ]
        readiness.clear("kafka")
        readiness.clear("store")
    assert readiness.reasons() == []
    assert [r.getMessage() for r in caplog.records] == [
        "not ready: kafka: cannot connect to k:9092 (refused)",
        "not ready: kafka: cannot connect to k:9092 (timed out)",
        "kafka: ok again",
    ]


async def test_keep_trying_shows_each_cause_until_the_step_succeeds() -> None:
    readiness = Readiness()
    seen: list[list[str]] = []
    failures = ["refused\nsecond line", "timed out"]

    async def step() -> str:
        seen.append(readiness.reasons())
        if failures:
            raise ConductorUnavailable(failures.pop(0))
        return "open"

    assert await keep_trying(readiness, "conductor", "not reachable", step) == "open"
    assert seen == [
        ["conductor: not reachable"],
        ["conductor: refused"],  # one line of the cause
        ["conductor: timed out"],
    ]
    assert readiness.reasons() == [] and not readiness.opening


async def test_keep_trying_raises_what_is_not_a_dependency_failure() -> None:
    async def step() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await keep_trying(Readiness(), "store", "not open", step)


async def test_a_dead_letter_refused_for_size_loses_its_body_then_its_headers(
    tmp_path: Path,
) -> None:
    headers = {"trace": "t-1", PREFIX + "reason": "too big"}
    kept = KeptBodies(tmp_path)
    smaller = await without_body(b"x" * 10, headers, kept, "refused")
    assert smaller is not None
    body, fitted = smaller
    assert body == b"" and fitted[ORIGINAL_BYTES] == "10" and fitted["trace"] == "t-1"
    assert await kept.read(fitted[BODY_REF]) == b"x" * 10

    _, unkept = await without_body(b"x" * 10, headers, None, "refused") or (b"", {})
    assert unkept[PREFIX + "truncated"] == "body removed: refused" and BODY_REF not in unkept

    smallest = await without_body(b"", fitted, kept, "refused again")
    assert smallest is not None and "trace" not in smallest[1]
    assert smallest[1][BODY_REF] == fitted[BODY_REF]  # replay can still restore the body
    assert await without_body(b"", smallest[1], kept, "refused") is None
