"""INLINE (tasks/Inline): evaluate `expression` with `evaluatorType` (javascript by default,
graaljs, value-param) and `$` bound to the whole task input; the value is `output.result`.

Conductor runs INLINE inside the decide. Here a script gets a short wait inside the decide
(a usual script takes about a millisecond, so the task ends there as in Conductor); a script
still running after that ends its task later, from the event loop, so a runaway script never
stops the dev server from serving. Errors follow Inline.execute: a script error or a bad input
is FAILED_WITH_TERMINAL_ERROR, a script over its time or memory limit is FAILED; the message is
both `reasonForIncompletion` and `output.error`.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from gateway.devserver import scripting
from gateway.devserver.tasks.base import Runtime, TaskHandler
from gateway.devserver.tasks.later import end_task

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord

JAVASCRIPT = ("javascript", "graaljs")
EVALUATORS = ("value-param", *JAVASCRIPT)
# How long a decide waits for a script before leaving it to finish in the background.
INLINE_WAIT_SECONDS = 0.2


class Inline(TaskHandler):
    # No check at registration: Conductor compiles an INLINE script only when it runs.
    type = "INLINE"

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        data = task.input_data
        evaluator = data.get("evaluatorType", "javascript")
        expression = data.get("expression")
        problem = _input_problem(evaluator, expression)
        if problem is not None:
            _fail(rt, task, problem, "FAILED_WITH_TERMINAL_ERROR")
            return
        if evaluator == "value-param":
            task.output_data["result"] = data.get(str(expression))
            rt.finish(task, "COMPLETED")
            return
        future = scripting.submit(str(expression), data)
        try:
            outcome = future.result(timeout=INLINE_WAIT_SECONDS)
        except FutureTimeout:
            self._finish_later(rt, wf, task, future)
            return
        except scripting.ScriptFailure as exc:
            _fail(rt, task, str(exc), exc.status)
            return
        task.output_data["result"] = outcome
        rt.finish(task, "COMPLETED")

    def _finish_later(
        self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord, future: Future[Any]
    ) -> None:
        task.status = "IN_PROGRESS"
        task.start_time = task.start_time or rt.store.now()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # used without a server (a plain Engine): just wait
            with contextlib.suppress(scripting.ScriptFailure):
                scripting.wait(future)
            _settle(rt, wf, task, future)
            return

        def done(_: Future[Any]) -> None:
            loop.call_soon_threadsafe(_settle, rt, wf, task, future)

        future.add_done_callback(done)
        # QuickJS counts its limit in CPU time; on a busy machine the wall clock decides.
        limit = scripting.LIMITS.time_seconds + 1.0
        loop.call_later(limit, _settle, rt, wf, task, future)


def _input_problem(evaluator: Any, expression: Any) -> str | None:
    """Inline.checkEvaluatorType / checkExpression, in Conductor's words."""
    if not isinstance(evaluator, str) or not evaluator.strip():
        return (
            "Empty 'evaluatorType' in INLINE task's input parameters. A non-empty String value "
            "must be provided."
        )
    if evaluator not in EVALUATORS:
        return f"Unknown evaluator '{evaluator}' in INLINE task."
    if not isinstance(expression, str) or not expression.strip():
        return (
            "Empty 'expression' in Inline task's input parameters. A non-empty String value "
            "must be provided."
        )
    return None


def _fail(rt: Runtime, task: TaskRecord, message: str, status: str) -> None:
    task.output_data["error"] = message
    rt.finish(task, status, message)


def _settle(rt: Runtime, wf: WorkflowRecord, task: TaskRecord, future: Future[Any]) -> None:
    if not future.done():
        message = scripting.timeout_message(scripting.LIMITS)
        end_task(rt, wf, task, "FAILED", {"error": message}, message)
        return
    try:
        outcome = future.result()
    except scripting.ScriptFailure as exc:
        end_task(rt, wf, task, exc.status, {"error": str(exc)}, str(exc))
        return
    end_task(rt, wf, task, "COMPLETED", {"result": outcome})
