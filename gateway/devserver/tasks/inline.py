"""INLINE (tasks/Inline): evaluate `expression` with `evaluatorType` (javascript by default,
graaljs, value-param) and `$` bound to the whole task input; the value is `output.result`.

Conductor runs INLINE inside the decide. Here a script gets a short wait inside the decide
(a usual script takes about a millisecond, so the task ends there as in Conductor); a script
still running after that ends its task at a later decide (tasks/later.py), so a runaway script
never stops the dev server from serving. Errors follow Inline.execute: a script error or a bad input
is FAILED_WITH_TERMINAL_ERROR, a script over its time or memory limit is FAILED; the message is
both `reasonForIncompletion` and `output.error`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.devserver import scripting
from gateway.devserver.tasks.base import Runtime, TaskHandler
from gateway.devserver.tasks.later import Waiting, script_value

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord

JAVASCRIPT = ("javascript", "graaljs")
EVALUATORS = ("value-param", *JAVASCRIPT)


class Inline(TaskHandler):
    # No check at registration: Conductor compiles an INLINE script only when it runs.
    type = "INLINE"
    own_task_id = True
    input_template = True

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        data = task.input_data
        evaluator = data.get("evaluatorType", "javascript")
        expression = data.get("expression")
        problem = _input_problem(evaluator, expression)
        if problem is not None:
            _fail(rt, task, problem, "FAILED_WITH_TERMINAL_ERROR")
        elif evaluator == "value-param":
            task.output_data["result"] = data.get(str(expression))
            rt.finish(task, "COMPLETED")
        else:
            self.execute(rt, wf, task)

    def execute(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> bool:
        """Run the script, or look again while it runs long (the task waits IN_PROGRESS)."""
        source = str(task.input_data.get("expression"))
        try:
            outcome = script_value(rt, wf, task.task_id, source, task.input_data)
        except scripting.ScriptFailure as exc:
            _fail(rt, task, str(exc), exc.status)
            return True
        if isinstance(outcome, Waiting):
            task.status = "IN_PROGRESS"
            task.start_time = task.start_time or rt.store.now()
            return False
        task.output_data["result"] = outcome
        rt.finish(task, "COMPLETED")
        return True


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
