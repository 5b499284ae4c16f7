"""Registration on both servers: what the real Conductor OSS refuses with a 400, the dev server
refuses too, naming the task reference and the field. Task types the dev server does not know
are the deliberate difference: the real server registers any type name (as a user-defined
task), the dev server refuses it at once, naming it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.differential.driver import Driver

SIMPLE = {"name": "x", "taskReferenceName": "x", "type": "SIMPLE"}
MALFORMED: dict[str, tuple[dict[str, Any], str]] = {
    "switch without evaluatorType": (
        {"name": "s", "taskReferenceName": "sw", "type": "SWITCH",
         "decisionCases": {"a": [SIMPLE]}}, "evaluatorType"),
    "switch without cases": (
        {"name": "s", "taskReferenceName": "sw", "type": "SWITCH",
         "evaluatorType": "value-param", "expression": "k"}, "decisionCases"),
    "do_while without loopCondition": (
        {"name": "d", "taskReferenceName": "dw", "type": "DO_WHILE", "loopOver": [SIMPLE]},
        "loopCondition"),
    "sub_workflow without subWorkflowParam": (
        {"name": "w", "taskReferenceName": "sub", "type": "SUB_WORKFLOW"}, "subWorkflowParam"),
}  # fmt: skip


async def _register(d: Driver, task: dict[str, Any], *more: dict[str, Any]) -> tuple[int, str]:
    body = {"name": d.name("reg"), "version": 1, "tasks": [task, *more]}
    r = await d.http.post("/metadata/workflow", params={"overwrite": "true"}, json=body)
    return r.status_code, r.text


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_definitions_refused_by_both(case: str, dev: Driver, real: Driver) -> None:
    task, field = MALFORMED[case]
    on_real, _ = await _register(real, task)
    on_dev, text = await _register(dev, task)
    assert on_real == on_dev == 400
    assert field in text and task["taskReferenceName"] in text


async def test_repeated_reference_names_refused_by_both(dev: Driver, real: Driver) -> None:
    for d in (dev, real):
        status, text = await _register(d, SIMPLE, {**SIMPLE, "name": "y"})
        assert status == 400 and "taskReferenceName: x should be unique" in text


async def test_unknown_types_are_the_dev_servers_own_refusal(dev: Driver, real: Driver) -> None:
    odd = {"name": "o", "taskReferenceName": "odd", "type": "NO_SUCH_TYPE"}
    assert (await _register(real, odd))[0] == 200
    status, text = await _register(dev, odd)
    assert status == 400 and "odd" in text and "not supported by the dev server" in text
