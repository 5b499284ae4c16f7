"""The task handler contract: one class per task type, and what a handler may ask the engine.

A handler says how its type is validated at registration, which nested task lists it holds,
how a task of its type is scheduled and started, how it is re-evaluated while it runs
(JOIN, DO_WHILE, SUB_WORKFLOW), what follows it, and its part in terminate and retry.
Handlers hold no state: everything lives in the workflow and task records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from gateway.devserver.models import TaskDef, WorkflowDef, WorkflowTask
from gateway.devserver.state import new_id
from gateway.devserver.tasks.script import check

if TYPE_CHECKING:
    from gateway.devserver.decider import EngineState
    from gateway.devserver.state import TaskRecord, WorkflowRecord
    from gateway.devserver.tasks.tree import Node, Tree


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a task is being scheduled: its workflow, its place in the definition, the loop
    iteration, and the input a retry or rerun passes on (None: map inputParameters now)."""

    wf: WorkflowRecord
    node: Node
    iteration: int
    given: dict[str, Any] | None = None


@dataclass(frozen=True)
class Problem:
    """One registration error: where in the definition, and what is wrong."""

    path: str
    message: str


def required(wt: WorkflowTask, path: str, field: str) -> Problem:
    # Conductor's wording (WorkflowTaskTypeConstraint), plus the reference name.
    return Problem(
        path,
        f"{field} field is required for taskType: {wt.type} taskName: {wt.name} "
        f"(taskReferenceName: {wt.task_reference_name})",
    )


def script_problem(wt: WorkflowTask, path: str, field: str, source: str | None) -> list[Problem]:
    """A script that does not compile is refused at registration, as Conductor refuses it
    (WorkflowTaskTypeConstraint.validateScriptExpression, plus the reference name)."""
    error = check(source) if source else None
    if error is None:
        return []
    return [
        Problem(
            path,
            f"{field} of taskReferenceName {wt.task_reference_name}: Expression is not well "
            f"formatted: {error}",
        )
    ]


class Runtime(Protocol):
    """What handlers may ask of the decider."""

    store: EngineState

    def tree(self, wf: WorkflowRecord) -> Tree: ...

    def context(self, wf: WorkflowRecord) -> dict[str, Any]: ...

    def task_input(
        self, wf: WorkflowRecord, wt: WorkflowTask, task_id: str | None = None
    ) -> dict[str, Any]: ...

    def new_task(
        self,
        wf: WorkflowRecord,
        node: Node,
        iteration: int,
        input_data: dict[str, Any],
        task_id: str | None = None,
    ) -> TaskRecord: ...

    def add(self, wf: WorkflowRecord, task: TaskRecord) -> None: ...

    def schedule(
        self,
        wf: WorkflowRecord,
        node: Node,
        iteration: int,
        input_data: dict[str, Any] | None = None,
    ) -> None: ...

    def finish(self, task: TaskRecord, status: str, reason: str | None = None) -> None: ...

    def end(
        self, wf: WorkflowRecord, status: str, reason: str | None, *, failure_workflow: bool = True
    ) -> None: ...

    def fail(self, wf: WorkflowRecord, reason: str) -> None: ...

    def launch(
        self,
        definition: WorkflowDef,
        input_data: dict[str, Any],
        *,
        parent: TaskRecord | None = None,
        workflow_id: str | None = None,
        correlation_id: str | None = None,
        priority: int = 0,
        task_to_domain: dict[str, str] | None = None,
    ) -> WorkflowRecord: ...

    def workflow(self, workflow_id: str | None) -> WorkflowRecord | None: ...

    def terminate(self, wf: WorkflowRecord, reason: str) -> None: ...

    def decide(self, wf: WorkflowRecord) -> None: ...


class TaskHandler:
    type: ClassVar[str]
    # Built-in operators are never retried by the decider (TaskType.isBuiltIn).
    built_in: ClassVar[bool] = False
    # Workflow retry reopens these in place instead of copying them (WEO.retry).
    retry_in_place: ClassVar[bool] = False
    # A task that ends the last branch of this container hands control back to it.
    loops: ClassVar[bool] = False
    # Runs on Conductor's system-task worker, so it keeps evaluating while the workflow is
    # PAUSED (JOIN, SUB_WORKFLOW); only scheduling of new tasks stops.
    is_async: ClassVar[bool] = False
    # Rerun from this task schedules it anew from its place instead of resetting it.
    rebuilt_on_rerun: ClassVar[bool] = False
    # Its mapper passes the task's id for `${CPEWF_TASK_ID}`, and its task definition for the
    # inputTemplate (each XTaskMapper's getTaskInput call); the others leave both out.
    own_task_id: ClassVar[bool] = False
    input_template: ClassVar[bool] = False

    def validate(self, wt: WorkflowTask, path: str) -> list[Problem]:
        return []

    def branches(self, wt: WorkflowTask) -> list[tuple[str, list[WorkflowTask]]]:
        """Nested task lists, each with its path label (`forkTasks[0]`, `loopOver`...)."""
        return []

    def type_name(self, wt: WorkflowTask) -> str:
        return wt.type

    def def_name(self, wt: WorkflowTask) -> str:
        return wt.name

    def default_task_def(self, wt: WorkflowTask) -> TaskDef:
        # MetadataMapperService: ad-hoc defs of system tasks get no retries (§3.5).
        return TaskDef(name=wt.name, retry_count=0)

    def schedule(self, rt: Runtime, at: Slot) -> None:
        """Create the task (input mapped unless given) and start it."""
        task = self.new_task(rt, at)
        rt.add(at.wf, task)
        if not task.terminal:
            self.start(rt, at.wf, task)

    def new_task(self, rt: Runtime, at: Slot, data: dict[str, Any] | None = None) -> TaskRecord:
        """A task for `at`, not yet added, with `data` as its input, else `at.given`, else
        its inputParameters mapped now."""
        task_id = new_id()
        if data is None:
            data = self.input_of(rt, at, task_id)
        return rt.new_task(at.wf, at.node, at.iteration, data, task_id)

    def input_of(self, rt: Runtime, at: Slot, task_id: str | None = None) -> dict[str, Any]:
        """The input a task at `at` is scheduled with: `at.given` (a retry or rerun passes
        the old task's), else its inputParameters mapped now for the task `task_id`."""
        if at.given is not None:
            return at.given
        return self.input_for(rt, at.wf, at.node.task, task_id or new_id())

    def input_for(
        self, rt: Runtime, wf: WorkflowRecord, wt: WorkflowTask, task_id: str
    ) -> dict[str, Any]:
        """The input of a new task `task_id` at `wt`: its inputParameters mapped now."""
        return rt.task_input(wf, wt, task_id)

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        """Run a task just added (first attempt or a retry's copy)."""

    def execute(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> bool:
        """Re-evaluate a running task during a decide; True when it changed."""
        return False

    def successor(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> Node | None:
        return rt.tree(wf).after(task.node)

    def cancel(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        """The workflow ends while this task runs (it is being CANCELED)."""

    def reopen(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        """Workflow retry reopens this task in place (only when `retry_in_place`)."""
        task.status = "IN_PROGRESS"
        task.end_time = 0
        task.reason_for_incompletion = None
