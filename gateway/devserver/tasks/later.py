"""Work that ends outside a decide: system tasks whose work runs off the event loop's turn (an
HTTP call, a jq query) end through `end_task`, applied on the loop and followed by a decide,
as Conductor's system-task worker decides after `execute`; scripts (INLINE, a SWITCH
expression, a loop condition) that outlast a short wait end through `script_value`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from gateway.devserver import scripting

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord
    from gateway.devserver.tasks.base import Runtime


def end_task(
    rt: Runtime,
    wf: WorkflowRecord,
    task: TaskRecord,
    status: str,
    output: dict[str, Any],
    reason: str | None = None,
) -> None:
    """`task` ends with `status`; nothing happens when it already ended (the workflow was
    terminated, or the task canceled, while the work ran)."""
    if task.terminal or task.retried:
        return
    task.output_data.update(output)
    rt.finish(task, status, reason)
    rt.store.touch(wf)
    if not wf.terminal:
        rt.decide(wf)


class Waiting:
    """The script is still running: the task stays as it is until the workflow is decided
    again (when the script ends, or at its time limit)."""


WAITING = Waiting()
# How long a decide waits for a script before leaving it to end in the background: a usual
# script takes about a millisecond, so the task ends inside the decide as in Conductor.
DECIDE_WAIT_SECONDS = 0.2
_running: dict[str, tuple[Future[Any], float]] = {}


def script_value(
    rt: Runtime, wf: WorkflowRecord, key: str, source: str, dollar: Any
) -> Any | Waiting:
    """The value of `source` run in the sandbox for the task named by `key`, or WAITING.

    Conductor evaluates scripts inside the decide and holds it meanwhile; here a script that
    outlasts a short wait goes on in the background and wakes the workflow when it ends, so a
    runaway script never stops the dev server from serving. Raises ScriptFailure."""
    if key in _running:
        return _collect(key)
    future = scripting.submit(source, dollar)
    try:
        return future.result(timeout=DECIDE_WAIT_SECONDS)
    except FutureTimeout:
        pass
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a plain Engine without a server: just wait
        return scripting.wait(future)
    limit = scripting.LIMITS.time_seconds + 1.0
    _forget_stale()
    _running[key] = (future, time.monotonic() + limit)
    workflow_id = wf.workflow_id

    def wake(*_: object) -> None:
        found = rt.workflow(workflow_id)
        if found is not None and not found.terminal:
            rt.decide(found)

    def done(_: Future[Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the server stopped while the script ran
            loop.call_soon_threadsafe(wake)

    future.add_done_callback(done)
    # QuickJS counts its limit in CPU time; on a busy machine the wall clock decides.
    loop.call_later(limit, wake)
    return WAITING


def _collect(key: str) -> Any | Waiting:
    future, deadline = _running[key]
    if future.done():
        del _running[key]
        return future.result()
    if time.monotonic() < deadline:
        return WAITING
    del _running[key]
    raise scripting.ScriptFailure(scripting.timeout_message(scripting.LIMITS), terminal=False)


def _forget_stale() -> None:
    """Drop scripts whose task ended another way (the workflow was terminated) long ago."""
    now = time.monotonic()
    for key in [k for k, (_, deadline) in _running.items() if deadline + 60 < now]:
        del _running[key]
