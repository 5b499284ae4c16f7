"""What a `@worker_task` function makes of a task: its arguments, its output, its failures."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.conductor import Task
from gateway.conductor.worker import NonRetryableError, Outcome, worker_task

TASK = Task(task_id="t-1", input_data={"orderId": "A-1", "count": 2, "extra": True})


async def test_inputs_are_passed_by_name_and_missing_ones_are_none() -> None:
    @worker_task("w")
    def work(orderId: str, count: int, coupon: str | None, note: str = "none") -> dict[str, Any]:
        return {"seen": [orderId, count, coupon, note]}

    assert await work.execute(TASK) == Outcome("COMPLETED", {"seen": ["A-1", 2, None, "none"]})


async def test_a_task_parameter_gets_the_whole_task() -> None:
    @worker_task("w")
    async def whole(task: Task) -> dict[str, Any]:
        return {"id": task.task_id}

    @worker_task("w")
    def keywords(orderId: str, **rest: Any) -> dict[str, Any]:
        return {"rest": sorted(rest)}

    assert await whole.execute(TASK) == Outcome("COMPLETED", {"id": "t-1"})
    assert await keywords.execute(TASK) == Outcome("COMPLETED", {"rest": ["count", "extra"]})


@pytest.mark.parametrize(("returned", "output"), [(None, {}), (42, {"result": 42})])
async def test_other_return_values(returned: Any, output: dict[str, Any]) -> None:
    @worker_task("w")
    def work() -> Any:
        return returned

    assert await work.execute(TASK) == Outcome("COMPLETED", output)


async def test_failures_carry_the_exception_as_the_reason() -> None:
    @worker_task("w")
    def retryable() -> None:
        raise KeyError("sku-9")

    @worker_task("w")
    async def terminal() -> None:
        raise NonRetryableError("card declined")

    assert await retryable.execute(TASK) == Outcome("FAILED", reason="KeyError: 'sku-9'")
    assert await terminal.execute(TASK) == Outcome(
        "FAILED_WITH_TERMINAL_ERROR", reason="NonRetryableError: card declined"
    )


def test_the_decorated_function_still_works_and_bad_options_are_named() -> None:
    @worker_task("w", concurrency=3, domain="blue")
    def double(n: int) -> int:
        return 2 * n

    assert double(4) == 8
    assert (double.task_definition_name, double.concurrency, double.domain) == ("w", 3, "blue")
    with pytest.raises(ValueError, match="worker 'w': concurrency 0 < 1"):
        worker_task("w", concurrency=0)(double.func)
