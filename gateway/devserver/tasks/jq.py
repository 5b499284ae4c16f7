"""JSON_JQ_TRANSFORM (json-jq-task/JsonJqTransform) with jq itself (the `jq` package).

The query runs over the whole task input (`queryExpression` included); `result` is the first
value (null when there is none) and `resultList` all of them. A missing query or a query that
does not compile or fails fails the task with jq's message, in `reasonForIncompletion` and
`output.error`. Conductor runs it with jackson-jq, whose error texts differ from jq's.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from gateway.devserver import jqrunner
from gateway.devserver.models import WorkflowTask
from gateway.devserver.tasks.base import Problem, Runtime, TaskHandler, required
from gateway.devserver.tasks.later import end_task

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord

# How long a decide waits for a query before leaving it to finish in the background.
JQ_WAIT_SECONDS = 0.5


class JsonJqTransform(TaskHandler):
    type = "JSON_JQ_TRANSFORM"
    own_task_id = True
    input_template = True

    def validate(self, wt: WorkflowTask, path: str) -> list[Problem]:
        # WorkflowTaskTypeConstraint.isJSONJQTransformTaskValid (or the TaskDef's template).
        template = wt.task_definition.input_template if wt.task_definition else {}
        if "queryExpression" in wt.input_parameters or "queryExpression" in template:
            return []
        return [required(wt, path, "inputParameters.queryExpression")]

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        query = task.input_data.get("queryExpression")
        if query is None:
            rt.finish(task, "FAILED", "Missing 'queryExpression' in input parameters")
            return
        future = jqrunner.submit(str(query), task.input_data)
        try:
            future.result(timeout=JQ_WAIT_SECONDS)
        except FutureTimeout:
            task.status = "IN_PROGRESS"
            task.start_time = task.start_time or rt.store.now()
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a plain Engine, no server: wait
                _settle(rt, wf, task, future, wait=True)
                return
            future.add_done_callback(
                lambda _: loop.call_soon_threadsafe(_settle, rt, wf, task, future)
            )
            return
        except jqrunner.JqFailure:
            pass  # reported by _settle
        _settle(rt, wf, task, future)


def _settle(
    rt: Runtime, wf: WorkflowRecord, task: TaskRecord, future: Future[list[Any]], wait: bool = False
) -> None:
    try:
        results = future.result() if wait or future.done() else None
    except jqrunner.JqFailure as exc:
        end_task(rt, wf, task, "FAILED", {"error": str(exc)}, str(exc))
        return
    if results is None:
        return
    output = {"result": results[0] if results else None, "resultList": results}
    end_task(rt, wf, task, "COMPLETED", output)
