"""JSON_JQ_TRANSFORM (json-jq-task/JsonJqTransform) with jq itself (the `jq` package).

The query runs over the whole task input (`queryExpression` included); `result` is the first
value (null when there is none) and `resultList` all of them. A missing query or a query that
does not compile or fails fails the task with jq's message, in `reasonForIncompletion` and
`output.error`. Conductor runs it with jackson-jq, whose error texts differ from jq's.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import jq

from gateway.devserver.models import WorkflowTask
from gateway.devserver.tasks.base import Problem, Runtime, TaskHandler, required

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord


@functools.lru_cache(maxsize=1000)  # as Conductor's queryCache: compile once per text
def _compiled(query: str) -> Any:
    return jq.compile(query)


class JsonJqTransform(TaskHandler):
    type = "JSON_JQ_TRANSFORM"

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
        try:
            results = _compiled(str(query)).input_value(task.input_data).all()
        except ValueError as exc:
            message = str(exc)
            task.output_data["error"] = message
            rt.finish(task, "FAILED", message)
            return
        task.output_data["result"] = results[0] if results else None
        task.output_data["resultList"] = results
        rt.finish(task, "COMPLETED")
