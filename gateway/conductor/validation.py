"""Check a workflow definition before it is sent, so a mistake is named here, with the task
reference and the fix, rather than found by Conductor (or at run time).

Checked: every task has a name, reference name and type; reference names are unique in the
workflow (nested tasks included; an inline sub-workflow is its own namespace, checked too);
a SWITCH has at least one case and an expression; a fork has branches and none is empty, and a
JOIN follows it; a JOIN waits only on tasks that exist; a DO_WHILE has tasks and its condition
names (`$.<name>`) the loop, one of its tasks or one of its inputs; a SUB_WORKFLOW names its
workflow; and every `${<ref>.…}` expression names `workflow` or a task of the workflow. (Tasks
a dynamic fork creates are known only at run time, so with one in the workflow unknown
references are allowed.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.conductor.models import WorkflowDef
from gateway.errors import InvalidWorkflowDef

EXPRESSION_ROOT = re.compile(r"\$\{\s*([A-Za-z0-9_\-]+)\.")
LOOP_NAME = re.compile(r"\$\.([A-Za-z0-9_\-]+)")
ITERATION = re.compile(r"__\d+$")
FORKS = ("FORK_JOIN", "FORK_JOIN_DYNAMIC")


def validate_workflow_def(data: WorkflowDef | Mapping[str, Any]) -> WorkflowDef:
    """The definition as a `WorkflowDef`, or `InvalidWorkflowDef` naming what is wrong."""
    raw = data.to_wire() if isinstance(data, WorkflowDef) else dict(data)
    name = raw.get("name") or "?"
    tasks = raw.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise InvalidWorkflowDef(f"workflow '{name}': has no tasks; add at least one task")
    checker = _Checker(str(name))
    checker.check_list(tasks, "tasks")
    checker.check_expressions(raw.get("outputParameters"), "outputParameters")
    checker.check_references()
    try:
        return WorkflowDef.model_validate(raw)
    except ValueError as exc:
        raise InvalidWorkflowDef(f"workflow '{name}': {exc}") from None


class _Checker:
    def __init__(self, workflow: str) -> None:
        self.workflow = workflow
        self.refs: dict[str, str] = {}  # reference name -> where it is
        self.expressions: list[tuple[str, str]] = []  # (where, referenced name)
        self.dynamic = False

    def fail(self, where: str, problem: str) -> InvalidWorkflowDef:
        return InvalidWorkflowDef(f"workflow '{self.workflow}': {where}: {problem}")

    def check_list(self, tasks: Any, where: str) -> None:
        if not isinstance(tasks, list):
            raise self.fail(where, f"is {type(tasks).__name__}, not a list of tasks")
        self._collect(tasks, where)
        for index, task in enumerate(tasks):
            self._check_task(task, tasks[index + 1] if index + 1 < len(tasks) else None)

    def _collect(self, tasks: list[Any], where: str) -> None:
        for index, task in enumerate(tasks):
            if not isinstance(task, Mapping):
                raise self.fail(f"{where}[{index}]", "is not a task object")
            for key in ("name", "taskReferenceName", "type"):
                if not isinstance(task.get(key), str) or not task.get(key):
                    ref = task.get("taskReferenceName") or f"{where}[{index}]"
                    raise self.fail(f"task '{ref}'", f"{key} is missing; give the task a {key}")
            ref = task["taskReferenceName"]
            if ref in self.refs:
                raise self.fail(
                    f"task '{ref}'",
                    f"reference name used twice ({self.refs[ref]} and {where}[{index}]); "
                    "give each task a unique taskReferenceName",
                )
            self.refs[ref] = f"{where}[{index}]"
            self.dynamic |= task["type"] == "FORK_JOIN_DYNAMIC"
            for child_where, child in _children(task):
                self._collect(child, f"task '{ref}' {child_where}")

    def _check_task(self, task: Mapping[str, Any], following: Any) -> None:
        ref, kind = task["taskReferenceName"], task["type"]
        check = _CHECKS.get(kind)
        if check is not None:
            check(self, task)
        if kind in FORKS and not (isinstance(following, Mapping) and following["type"] == "JOIN"):
            raise self.fail(f"task '{ref}'", f"a {kind} must be followed by a JOIN task; add one")
        self.check_expressions(task.get("inputParameters"), f"task '{ref}' inputParameters")
        for _, child in _children(task):
            for index, sub in enumerate(child):
                self._check_task(sub, child[index + 1] if index + 1 < len(child) else None)

    def check_expressions(self, value: Any, key: str) -> None:
        for text in _strings(value):
            for root in EXPRESSION_ROOT.findall(text):
                self.expressions.append((key, root))

    def check_references(self) -> None:
        if self.dynamic:
            return
        for key, root in self.expressions:
            if root != "workflow" and ITERATION.sub("", root) not in self.refs:
                known = ", ".join(sorted(self.refs))
                raise self.fail(
                    key,
                    f"expression names task '{root}', which is not in the workflow (tasks: "
                    f"{known}); fix the reference name or add the task",
                )


def _children(task: Mapping[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    for case, tasks in (task.get("decisionCases") or {}).items():
        yield f"decisionCases.{case}", tasks
    if task.get("defaultCase"):
        yield "defaultCase", task["defaultCase"]
    for index, branch in enumerate(task.get("forkTasks") or []):
        yield f"forkTasks[{index}]", branch
    if task.get("loopOver"):
        yield "loopOver", task["loopOver"]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _switch(checker: _Checker, task: Mapping[str, Any]) -> None:
    ref = task["taskReferenceName"]
    if not task.get("decisionCases"):
        raise checker.fail(
            f"task '{ref}'", "SWITCH has no cases; add at least one with switch_case(name, tasks)"
        )
    if not task.get("expression"):
        raise checker.fail(f"task '{ref}'", "SWITCH has no expression; give case_expression")


def _fork(checker: _Checker, task: Mapping[str, Any]) -> None:
    ref, branches = task["taskReferenceName"], task.get("forkTasks") or []
    if not branches:
        raise checker.fail(f"task '{ref}'", "FORK_JOIN has no branches; give a list of branches")
    for index, branch in enumerate(branches):
        if not branch:
            raise checker.fail(
                f"task '{ref}'", f"fork branch {index} is empty; put a task in it or drop it"
            )


def _join(checker: _Checker, task: Mapping[str, Any]) -> None:
    for name in task.get("joinOn") or []:
        if name not in checker.refs:
            raise checker.fail(
                f"task '{task['taskReferenceName']}'",
                f"joinOn names '{name}', which is not a task of the workflow; fix the name",
            )


def _do_while(checker: _Checker, task: Mapping[str, Any]) -> None:
    ref = task["taskReferenceName"]
    if not task.get("loopOver"):
        raise checker.fail(f"task '{ref}'", "DO_WHILE has no tasks to loop over; give tasks")
    names = {ref, *(t.get("taskReferenceName") for t in task["loopOver"])}
    names |= set(task.get("inputParameters") or {})
    condition = str(task.get("loopCondition") or "")
    if not names & set(LOOP_NAME.findall(condition)):
        raise checker.fail(
            f"task '{ref}'",
            f"DO_WHILE condition {condition!r} names no task of the loop; refer to one as "
            f"$.{ref}['iteration'] or $.<loop task ref>, or to a loop input as $.<input>",
        )


def _sub_workflow(checker: _Checker, task: Mapping[str, Any]) -> None:
    params = task.get("subWorkflowParam") or {}
    ref = task["taskReferenceName"]
    if not params.get("name"):
        raise checker.fail(f"task '{ref}'", "SUB_WORKFLOW has no subWorkflowParam.name; name it")
    child = params.get("workflowDefinition")
    if child is not None:
        try:
            validate_workflow_def(child)
        except InvalidWorkflowDef as exc:
            raise checker.fail(f"task '{ref}' (inline sub-workflow)", str(exc)) from None


_CHECKS = {
    "SWITCH": _switch,
    "FORK_JOIN": _fork,
    "JOIN": _join,
    "DO_WHILE": _do_while,
    "SUB_WORKFLOW": _sub_workflow,
}
