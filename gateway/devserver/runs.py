"""Waiting for a blocking state (sync execute, sync signal) and WorkflowRun JSON (§2.5)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.devserver.state import WorkflowRecord

POLL_SECONDS = 0.02


def is_blocked(wf: WorkflowRecord, refs: frozenset[str]) -> bool:
    """Terminal, or an untimed WAIT pending, or a listed ref terminal (HUMAN does not count)."""
    if wf.terminal:
        return True
    for task in wf.tasks:
        if task.task_type == "WAIT" and not task.terminal and task.wait_until is None:
            return True
        if task.terminal and task.ref in refs:
            return True
    return False


async def wait_blocked(wf: WorkflowRecord, refs: frozenset[str], timeout_s: float) -> bool:
    """Wait until `wf` is blocked; True when the wait timed out instead."""
    deadline = time.monotonic() + timeout_s
    while not is_blocked(wf, refs):
        if time.monotonic() >= deadline:
            return True
        await asyncio.sleep(POLL_SECONDS)
    return False


def run_json(wf: WorkflowRecord, request_id: str, timed_out: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "responseType": "TARGET_WORKFLOW",
        "targetWorkflowId": wf.workflow_id,
        "targetWorkflowStatus": wf.status,
        "requestId": request_id,
        "workflowId": wf.workflow_id,
        "correlationId": wf.correlation_id,
        "input": wf.input,
        "output": wf.output,
        "signalTimeout": timed_out,
        "priority": wf.priority,
        "variables": wf.variables,
        "tasks": [t.to_json() for t in wf.tasks],
        "createdBy": wf.created_by,
        "createTime": wf.create_time,
        "status": wf.status,
        "updateTime": wf.update_time,
    }
    return {k: v for k, v in data.items() if v is not None}
