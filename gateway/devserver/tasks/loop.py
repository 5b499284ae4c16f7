"""DO_WHILE (tasks/DoWhile, mapper/DoWhileTaskMapper).

The loop task stays IN_PROGRESS while its body runs; body tasks are named `ref__<iteration>`.
Once every body task of an iteration is done, the iteration's outputs go into the loop's
output under its number, and `loopCondition` (JavaScript, truthy = true or a number > 0) decides
whether the next iteration starts. So the body always runs at least once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.devserver.models import WorkflowTask
from gateway.devserver.tasks.base import (
    Problem,
    Runtime,
    Slot,
    TaskHandler,
    required,
    script_problem,
)
from gateway.devserver.tasks.later import Waiting
from gateway.devserver.tasks.script import ScriptError, value_in_decide
from gateway.statuses import SUCCESSFUL_TASK

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord


def _nested_loops(tasks: list[WorkflowTask]) -> list[str]:
    found: list[str] = []
    for wt in tasks:
        if wt.type == "DO_WHILE":
            found.append(wt.task_reference_name)
        nested = [
            *(wt.decision_cases or {}).values(),
            wt.default_case or [],
            *(wt.fork_tasks or []),
        ]
        for branch in nested:
            found += _nested_loops(branch)
    return found


class DoWhile(TaskHandler):
    type = "DO_WHILE"
    own_task_id = True
    input_template = True
    built_in = True
    rebuilt_on_rerun = True
    retry_in_place = True
    loops = True

    def validate(self, wt: WorkflowTask, path: str) -> list[Problem]:
        problems: list[Problem] = []
        if not wt.loop_condition:
            problems.append(required(wt, path, "loopCondition"))
        problems += script_problem(wt, path, "loopCondition", wt.loop_condition)
        if not wt.loop_over:
            problems.append(required(wt, path, "loopOver"))
        for ref in _nested_loops(wt.loop_over or []):
            problems.append(
                Problem(
                    path,
                    f"loopOver of taskReferenceName {wt.task_reference_name}: DO_WHILE {ref} "
                    f"inside a DO_WHILE is not supported by the dev server",
                )
            )
        return problems

    def branches(self, wt: WorkflowTask) -> list[tuple[str, list[WorkflowTask]]]:
        return [("loopOver", wt.loop_over or [])]

    def schedule(self, rt: Runtime, at: Slot) -> None:
        task = self.new_task(rt, at)
        task.status = "IN_PROGRESS"
        task.start_time = rt.store.now()
        rt.add(at.wf, task)
        self._next_iteration(rt, at.wf, task)

    def _next_iteration(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        task.iteration += 1
        task.output_data["iteration"] = task.iteration
        first = (task.workflow_task.loop_over or [])[0]
        rt.schedule(wf, rt.tree(wf).node_of(first), task.iteration)

    def body(self, wf: WorkflowRecord, task: TaskRecord) -> list[TaskRecord]:
        """This loop's tasks of its current iteration (latest attempts only)."""
        return [
            t
            for t in wf.tasks
            if t.iteration == task.iteration and not t.retried and t.node.loop() is task.node
        ]

    def execute(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> bool:
        body = self.body(wf, task)
        if any(not t.terminal or (t.status in SUCCESSFUL_TASK and not t.executed) for t in body):
            return False
        failed = [t for t in body if t.status not in SUCCESSFUL_TASK]
        if failed:
            reason = " ".join(t.reason_for_incompletion or "" for t in failed)
            rt.finish(task, "FAILED", reason)
            return True
        outputs = {t.node.ref: t.output_data for t in body}
        task.output_data[str(task.iteration)] = outputs
        try:
            again = self._condition(rt, wf, task, outputs)
        except ScriptError as exc:
            rt.finish(
                task,
                "FAILED_WITH_TERMINAL_ERROR",
                f"Unable to evaluate condition {task.workflow_task.loop_condition}, "
                f"exception {exc}",
            )
            return True
        if isinstance(again, Waiting):
            return False
        if again:
            self._next_iteration(rt, wf, task)
        else:
            rt.finish(task, "COMPLETED")
        return True

    def _condition(
        self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord, outputs: dict[str, Any]
    ) -> bool | Waiting:
        # `$` = the re-evaluated inputs, the loop's own output under its ref, and each body
        # task's output map under its ref without the suffix.
        dollar = {**rt.task_input(wf, task.workflow_task), **outputs}
        dollar[task.node.ref] = task.output_data
        key = f"{task.task_id}/{task.iteration}"
        source = task.workflow_task.loop_condition or "false"
        value = value_in_decide(rt, wf, key, source, dollar)
        if isinstance(value, Waiting | bool):
            return value
        return isinstance(value, int | float) and value > 0
