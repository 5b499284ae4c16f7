"""SWITCH and the legacy DECISION (mapper/SwitchTaskMapper, DecisionTaskMapper).

The case is evaluated when the task is scheduled; the task completes at once with the chosen
case in its output, and the first task of that case is scheduled beside it. The case is the
Java `toString` of the value, so `true` is "true" and 2.0 is "2.0"."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.devserver.mapping import java_text
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

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord
    from gateway.devserver.tasks.tree import Node

EVALUATORS = ("value-param", "javascript", "graaljs")


class Switch(TaskHandler):
    type = "SWITCH"
    built_in = True
    rebuilt_on_rerun = True

    def validate(self, wt: WorkflowTask, path: str) -> list[Problem]:
        problems: list[Problem] = []
        if not wt.evaluator_type:
            problems.append(required(wt, path, "evaluatorType"))
        elif wt.evaluator_type not in EVALUATORS:
            problems.append(
                Problem(
                    path,
                    f"evaluatorType {wt.evaluator_type!r} of taskReferenceName "
                    f"{wt.task_reference_name} is not supported by the dev server; use one of "
                    f"{', '.join(EVALUATORS)}",
                )
            )
        if wt.evaluator_type and not wt.expression:
            problems.append(required(wt, path, "expression"))
        elif wt.evaluator_type in ("javascript", "graaljs"):
            problems += script_problem(wt, path, "expression", wt.expression)
        if not wt.decision_cases:
            problems.append(_no_cases(wt, path))
        return problems

    def branches(self, wt: WorkflowTask) -> list[tuple[str, list[WorkflowTask]]]:
        cases = [(f"decisionCases.{k}", v) for k, v in (wt.decision_cases or {}).items()]
        return [*cases, ("defaultCase", wt.default_case or [])]

    def def_name(self, wt: WorkflowTask) -> str:
        return wt.type

    def case_of(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> str | Waiting:
        wt, data = task.workflow_task, task.input_data
        if wt.evaluator_type == "value-param":
            return java_text(data.get(wt.expression or ""))
        return _case(value_in_decide(rt, wf, task.task_id, wt.expression or "", data))

    def chosen(self, wt: WorkflowTask, case: str) -> list[WorkflowTask]:
        # Since v3.31.0 a matched but empty case runs nothing, not the default.
        cases = wt.decision_cases or {}
        return cases.get(case, wt.default_case or [])

    def output(self, case: str) -> dict[str, Any]:
        return {"evaluationResult": [case], "selectedCase": case}

    def schedule(self, rt: Runtime, at: Slot) -> None:
        task = self.new_task(rt, at)
        rt.add(at.wf, task)
        self._choose(rt, at.wf, task)

    def execute(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> bool:
        return self._choose(rt, wf, task)  # only while its script runs long

    def _choose(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> bool:
        """Evaluate the case, end the task with it and schedule the branch; False while the
        script is still running (the task waits IN_PROGRESS)."""
        try:
            case = self.case_of(rt, wf, task)
        except ScriptError as exc:
            rt.finish(task, "FAILED", f"Error evaluating the expression: {exc}")
            return True
        if isinstance(case, Waiting):
            task.status = "IN_PROGRESS"
            task.start_time = task.start_time or rt.store.now()
            return False
        branch = self.chosen(task.workflow_task, case)
        task.input_data = {**task.input_data, "case": case}
        if branch:
            task.input_data["hasChildren"] = "true"
        task.output_data = self.output(case)
        rt.finish(task, "COMPLETED")
        if branch:
            rt.schedule(wf, rt.tree(wf).node_of(branch[0]), task.iteration)
        return True

    def successor(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> Node | None:
        if task.input_data.get("hasChildren") == "true":
            return None  # the branch is running; its last task leads on
        return rt.tree(wf).after(task.node)


class Decision(Switch):
    type = "DECISION"

    def validate(self, wt: WorkflowTask, path: str) -> list[Problem]:
        problems: list[Problem] = []
        if not wt.case_value_param and not wt.case_expression:
            problems.append(required(wt, path, "caseValueParam or caseExpression"))
        elif not wt.case_value_param:
            problems += script_problem(wt, path, "caseExpression", wt.case_expression)
        if not wt.decision_cases:
            problems.append(_no_cases(wt, path))
        return problems

    def case_of(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> str | Waiting:
        wt, data = task.workflow_task, task.input_data
        if wt.case_value_param:
            return java_text(data.get(wt.case_value_param))
        return _case(value_in_decide(rt, wf, task.task_id, wt.case_expression or "", data))

    def chosen(self, wt: WorkflowTask, case: str) -> list[WorkflowTask]:
        # DECISION falls back to the default on an empty case too.
        return (wt.decision_cases or {}).get(case) or wt.default_case or []

    def output(self, case: str) -> dict[str, Any]:
        return {"caseOutput": [case]}


def _no_cases(wt: WorkflowTask, path: str) -> Problem:
    # Conductor's wording (its typo included), plus the reference name.
    return Problem(
        path,
        f"decisionCases should have atleast one task for taskType: {wt.type} "
        f"taskName: {wt.name} (taskReferenceName: {wt.task_reference_name})",
    )


def _case(value: Any) -> str | Waiting:
    return value if isinstance(value, Waiting) else java_text(value)
