"""Control-flow operators for workflows as code, named as in conductor-python: SWITCH,
FORK_JOIN (+ JOIN), FORK_JOIN_DYNAMIC, DO_WHILE, SUB_WORKFLOW.

A fork is given as a list of branches, each a list of tasks; the JOIN after it is added for
you (named `join_<fork ref>`, waiting on the last task of each branch) unless the next task is
a `JoinTask` you wrote yourself. That is conductor-python's rule for a workflow's top level;
here it applies in every task list (branches, cases, loops) and also after the last task,
where conductor-python leaves the JOIN out.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

from gateway.conductor.tasks import TaskInterface, TaskType, WorkflowTask
from gateway.errors import InvalidWorkflowDef

if TYPE_CHECKING:
    from gateway.conductor.builder import ConductorWorkflow


def render(tasks: Sequence[TaskInterface]) -> list[WorkflowTask]:
    """A task list as Conductor stores it: each task rendered, JOINs added after forks."""
    rendered: list[WorkflowTask] = []
    for index, task in enumerate(tasks):
        rendered.extend(task.to_workflow_tasks())
        following = tasks[index + 1] if index + 1 < len(tasks) else None
        if isinstance(task, ForkTask | DynamicForkTask) and not isinstance(following, JoinTask):
            rendered.extend(task.join_tasks())
    return rendered


def _task_list(tasks: TaskInterface | Sequence[TaskInterface]) -> list[TaskInterface]:
    items = [tasks] if isinstance(tasks, TaskInterface) else list(tasks)
    for item in items:
        if not isinstance(item, TaskInterface):
            raise TypeError(
                f"{item!r} is not a task; give task objects such as SimpleTask('name', 'ref') "
                "(a @worker_task function is not a task)"
            )
    return items


class SwitchTask(TaskInterface):
    """Run the case whose name equals `case_expression`'s value (or, with `use_javascript`,
    the value the JavaScript expression returns); the default case otherwise."""

    def __init__(self, task_ref_name: str, case_expression: str, use_javascript: bool = False):
        super().__init__(task_ref_name, TaskType.SWITCH)
        self.case_expression = case_expression
        self.use_javascript = use_javascript
        self.decision_cases: dict[str, list[TaskInterface]] = {}
        self.default_tasks: list[TaskInterface] = []

    def switch_case(self, case_name: str, tasks: TaskInterface | Sequence[TaskInterface]) -> Self:
        self.decision_cases[case_name] = _task_list(tasks)
        return self

    def default_case(self, tasks: TaskInterface | Sequence[TaskInterface]) -> Self:
        self.default_tasks = _task_list(tasks)
        return self

    def to_workflow_task(self) -> WorkflowTask:
        task = super().to_workflow_task()
        if self.use_javascript:
            task.evaluator_type = "graaljs"
            task.expression = self.case_expression
        else:
            task.evaluator_type = "value-param"
            task.input_parameters["switchCaseValue"] = self.case_expression
            task.expression = "switchCaseValue"
        task.decision_cases = {name: render(ts) for name, ts in self.decision_cases.items()}
        task.default_case = render(self.default_tasks)
        return task

    def children(self) -> list[TaskInterface]:
        return [t for ts in self.decision_cases.values() for t in ts] + self.default_tasks


class JoinTask(TaskInterface):
    """Wait for the named tasks (the last of each fork branch) to finish."""

    def __init__(
        self,
        task_ref_name: str,
        join_on: Sequence[str] | None = None,
        join_on_script: str | None = None,
    ) -> None:
        super().__init__(task_ref_name, TaskType.JOIN)
        self.join_on = list(join_on) if join_on is not None else None
        if join_on_script is not None:
            self.evaluator_type = "js"
            self.expression = join_on_script

    def to_workflow_task(self) -> WorkflowTask:
        task = super().to_workflow_task()
        task.join_on = copy.copy(self.join_on)
        return task


class ForkTask(TaskInterface):
    """Run branches in parallel: `forked_tasks` is a list of branches, each a list of tasks
    (a bare task is a one-task branch). With `join_on`, the JOIN is `<ref>_join` and waits on
    exactly those references (conductor-python's naming for that case)."""

    def __init__(
        self,
        task_ref_name: str,
        forked_tasks: Sequence[TaskInterface | Sequence[TaskInterface]],
        join_on: Sequence[str] | None = None,
    ) -> None:
        super().__init__(task_ref_name, TaskType.FORK_JOIN)
        self.forked_tasks = [_task_list(branch) for branch in forked_tasks]
        self.join_on = list(join_on) if join_on is not None else None

    def to_workflow_task(self) -> WorkflowTask:
        task = super().to_workflow_task()
        task.fork_tasks = [render(branch) for branch in self.forked_tasks]
        task.join_on = [branch[-1].task_reference_name for branch in task.fork_tasks if branch]
        return task

    def join_tasks(self) -> list[WorkflowTask]:
        if self.join_on is not None:
            return [JoinTask(f"{self.task_reference_name}_join", self.join_on).to_workflow_task()]
        last = [branch[-1].task_reference_name for branch in self.forked_tasks if branch]
        return [JoinTask(f"join_{self.task_reference_name}", last).to_workflow_task()]

    def children(self) -> list[TaskInterface]:
        return [t for branch in self.forked_tasks for t in branch]


class DynamicForkTask(TaskInterface):
    """Fork into the tasks listed at run time in the input `tasks_param`, each with its input
    from `tasks_input_param_name`. Set both with `input_parameters`."""

    def __init__(
        self,
        task_ref_name: str,
        tasks_param: str = "dynamicTasks",
        tasks_input_param_name: str = "dynamicTasksInputs",
        join_task: JoinTask | None = None,
    ) -> None:
        super().__init__(task_ref_name, TaskType.FORK_JOIN_DYNAMIC)
        self.tasks_param = tasks_param
        self.tasks_input_param_name = tasks_input_param_name
        self.join_task = join_task

    def to_workflow_task(self) -> WorkflowTask:
        task = super().to_workflow_task()
        task.dynamic_fork_tasks_param = self.tasks_param
        task.dynamic_fork_tasks_input_param_name = self.tasks_input_param_name
        return task

    def join_tasks(self) -> list[WorkflowTask]:
        join = self.join_task or JoinTask(f"join_{self.task_reference_name}", [])
        return [join.to_workflow_task()]


class DoWhileTask(TaskInterface):
    """Run `tasks` again while `termination_condition` (JavaScript over `$.<ref>` values, e.g.
    `$.loop.iteration < 3`) is true; it is evaluated after each iteration."""

    def __init__(
        self,
        task_ref_name: str,
        termination_condition: str,
        tasks: TaskInterface | Sequence[TaskInterface],
    ) -> None:
        super().__init__(task_ref_name, TaskType.DO_WHILE)
        self.loop_condition = termination_condition
        self.loop_over = _task_list(tasks)

    def to_workflow_task(self) -> WorkflowTask:
        task = super().to_workflow_task()
        task.loop_condition = self.loop_condition
        task.loop_over = render(self.loop_over)
        return task

    def children(self) -> list[TaskInterface]:
        return list(self.loop_over)


def get_for_loop_condition(task_ref_name: str, iterations: int) -> str:
    return f"if ( $.{task_ref_name}.iteration < {iterations} ) {{ true; }} else {{ false; }}"


class LoopTask(DoWhileTask):
    """Run `tasks` `iterations` times."""

    def __init__(
        self, task_ref_name: str, iterations: int, tasks: TaskInterface | Sequence[TaskInterface]
    ) -> None:
        condition = get_for_loop_condition(task_ref_name, iterations)
        super().__init__(task_ref_name, condition, tasks)


class SubWorkflowTask(TaskInterface):
    """Run a registered workflow as a child and wait for it."""

    def __init__(
        self,
        task_ref_name: str,
        workflow_name: str,
        version: int | None = None,
        task_to_domain_map: dict[str, str] | None = None,
    ) -> None:
        super().__init__(task_ref_name, TaskType.SUB_WORKFLOW)
        self.workflow_name = workflow_name
        self.version = version
        self.task_to_domain_map = task_to_domain_map

    def to_workflow_task(self) -> WorkflowTask:
        task = super().to_workflow_task()
        params: dict[str, Any] = {"name": self.workflow_name, "version": self.version}
        params["taskToDomain"] = self.task_to_domain_map
        task.sub_workflow_param = {k: v for k, v in params.items() if v is not None}
        return task


class InlineSubWorkflowTask(TaskInterface):
    """Run `workflow` (a `ConductorWorkflow`, not registered) as a child and wait for it: its
    definition travels inside this task."""

    def __init__(self, task_ref_name: str, workflow: ConductorWorkflow) -> None:
        super().__init__(task_ref_name, TaskType.SUB_WORKFLOW)
        self.workflow = workflow

    def to_workflow_task(self) -> WorkflowTask:
        task = super().to_workflow_task()
        try:
            child = self.workflow.to_workflow_def()
        except InvalidWorkflowDef as exc:
            where = f"task '{self.task_reference_name}' (inline sub-workflow)"
            raise InvalidWorkflowDef(f"{where}: {exc}") from None
        params = {
            "name": self.workflow.name,
            "version": self.workflow.version,
            "workflowDefinition": child.to_wire(),
        }
        task.sub_workflow_param = {k: v for k, v in params.items() if v is not None}
        return task
