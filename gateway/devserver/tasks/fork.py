"""FORK_JOIN, FORK_JOIN_DYNAMIC and JOIN (mapper/ForkJoinTaskMapper,
ForkJoinDynamicTaskMapper, JoinTaskMapper, tasks/Join).

A fork is created COMPLETED (type FORK) together with the first task of every branch and its
JOIN. The JOIN waits for the tasks it joins on: the first one that fails for good fails it;
when all are done its output maps each ref to that task's output."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gateway.devserver.models import WorkflowTask
from gateway.devserver.tasks.base import Problem, Runtime, Slot, TaskHandler, required
from gateway.statuses import SUCCESSFUL_TASK

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord
    from gateway.devserver.tasks.tree import Node


def latest(wf: WorkflowRecord, ref: str) -> TaskRecord | None:
    return next((t for t in reversed(wf.tasks) if t.ref == ref), None)


def suffix(ref: str, iteration: int, in_loop: bool) -> str:
    return f"{ref}__{iteration}" if in_loop and iteration else ref


class _Fork(TaskHandler):
    built_in = True
    rebuilt_on_rerun = True

    def type_name(self, wt: WorkflowTask) -> str:
        return "FORK"

    def def_name(self, wt: WorkflowTask) -> str:
        return "FORK"

    def _open(self, rt: Runtime, at: Slot, data: dict[str, Any]) -> Node | None:
        """Create the FORK task and return the JOIN after it; None (workflow failed) when
        no JOIN follows it."""
        join = rt.tree(at.wf).after(at.node)
        if join is None or join.task.type != "JOIN":
            kind = "Dynamic join" if at.node.task.type == "FORK_JOIN_DYNAMIC" else "Fork task"
            rt.fail(at.wf, f"{kind} definition is not followed by a join task")
            return None
        task = self.new_task(rt, at, data)
        rt.add(at.wf, task)
        rt.finish(task, "COMPLETED")
        return join


class ForkJoin(_Fork):
    type = "FORK_JOIN"

    def validate(self, wt: WorkflowTask, path: str) -> list[Problem]:
        if not wt.fork_tasks:
            return [required(wt, path, "forkTasks")]
        return []

    def branches(self, wt: WorkflowTask) -> list[tuple[str, list[WorkflowTask]]]:
        return [(f"forkTasks[{i}]", branch) for i, branch in enumerate(wt.fork_tasks or [])]

    def schedule(self, rt: Runtime, at: Slot) -> None:
        join = self._open(rt, at, self.input_of(rt, at))
        if join is None:
            return
        tree = rt.tree(at.wf)
        for branch in at.node.task.fork_tasks or []:
            if branch:
                rt.schedule(at.wf, tree.node_of(branch[0]), at.iteration)
        rt.schedule(at.wf, join, at.iteration)


class ForkJoinDynamic(_Fork):
    """The explicit-list form: `dynamicForkTasksParam` names the input holding a list of
    workflow tasks, `dynamicForkTasksInputParamName` the map of ref -> input."""

    type = "FORK_JOIN_DYNAMIC"

    def validate(self, wt: WorkflowTask, path: str) -> list[Problem]:
        problems: list[Problem] = []
        if not wt.dynamic_fork_tasks_param:
            problems.append(required(wt, path, "dynamicForkTasksParam"))
        if not wt.dynamic_fork_tasks_input_param_name:
            problems.append(required(wt, path, "dynamicForkTasksInputParamName"))
        return problems

    def schedule(self, rt: Runtime, at: Slot) -> None:
        wt = at.node.task
        data = self.input_of(rt, at)
        forks = self._forks(rt, at.wf, wt, data)
        if forks is None:
            return
        inputs: dict[str, Any] = data.get(wt.dynamic_fork_tasks_input_param_name or "") or {}
        refs = [f.task_reference_name for f in forks]
        fork_input = {**data, "forkedTasks": refs, "forkedTaskDefs": [f.wire() for f in forks]}
        join = self._open(rt, at, fork_input)
        if join is None:
            return
        tree = rt.tree(at.wf)
        for fork in forks:
            given = inputs.get(fork.task_reference_name)
            child = dict(given) if isinstance(given, dict) else {}
            rt.schedule(at.wf, tree.branch_node(at.node, fork), at.iteration, child)
        rt.schedule(at.wf, join, at.iteration)

    def _forks(
        self, rt: Runtime, wf: WorkflowRecord, wt: WorkflowTask, data: dict[str, Any]
    ) -> list[WorkflowTask] | None:
        raw = data.get(wt.dynamic_fork_tasks_param or "")
        inputs = data.get(wt.dynamic_fork_tasks_input_param_name or "")
        if not isinstance(raw, list) or (inputs is not None and not isinstance(inputs, dict)):
            rt.fail(wf, f"Input to the dynamically forked tasks is not a map -> expecting a map "
                        f"of K,V  but found {type(inputs).__name__}")  # fmt: skip
            return None
        try:
            forks = [WorkflowTask.model_validate(item) for item in raw]
        except ValidationError as exc:
            rt.fail(wf, f"No dynamic tasks could be created: {exc.errors()[0]['msg']}")
            return None
        from gateway.devserver.tasks import HANDLERS  # the registry imports this module

        unknown = [f.task_reference_name for f in forks if f.type not in HANDLERS]
        refs = [f.task_reference_name for f in forks]
        if unknown or len(set(refs)) != len(refs):
            rt.fail(wf, f"No dynamic tasks could be created for {', '.join(unknown or refs)}")
            return None
        return forks


class Join(TaskHandler):
    type = "JOIN"
    built_in = True
    rebuilt_on_rerun = True
    retry_in_place = True
    is_async = True

    def def_name(self, wt: WorkflowTask) -> str:
        return "JOIN"

    def schedule(self, rt: Runtime, at: Slot) -> None:
        node, iteration = at.node, at.iteration
        in_loop = node.loop() is not None
        fork = node.siblings[node.index - 1] if node.index > 0 else None
        if fork is not None and fork.type == "FORK_JOIN_DYNAMIC":
            fork_task = latest(at.wf, suffix(fork.task_reference_name, iteration, in_loop))
            refs = list(fork_task.input_data.get("forkedTasks", [])) if fork_task else []
            join_on = [suffix(r, iteration, in_loop) for r in refs]
        else:
            join_on = [suffix(r, iteration, in_loop) for r in node.task.join_on or []]
        # Conductor ignores a JOIN's inputParameters: its input is only joinOn.
        task = self.new_task(rt, at, {"joinOn": join_on})
        task.status = "IN_PROGRESS"
        task.start_time = rt.store.now()
        rt.add(at.wf, task)

    def execute(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> bool:
        """tasks/Join.execute: outputs are gathered as they come; the first joined task
        that ended unsuccessfully (not optional) ends the JOIN at once, CANCELED when every
        such task was canceled (a child terminated by hand), else FAILED."""
        refs: list[str] = task.input_data["joinOn"]
        joined = [t for ref in refs if (t := latest(wf, ref)) is not None]
        everything_ended = len(joined) == len(refs) and all(t.terminal for t in joined)
        for t in joined:
            if t.output_data:
                task.output_data[t.ref] = t.output_data
            if _unsuccessful(t) and not t.workflow_task.optional:
                failed = [f for f in joined if _unsuccessful(f)]
                reason = " ".join(
                    f.reason_for_incompletion for f in failed if f.reason_for_incompletion
                )
                canceled = all(
                    f.status == "CANCELED" for f in failed if not f.workflow_task.optional
                )
                rt.finish(task, "CANCELED" if canceled else "FAILED", reason)
                return True
        if not everything_ended:
            return False
        with_errors = [t for t in joined if t.status == "COMPLETED_WITH_ERRORS"]
        rt.finish(task, "COMPLETED_WITH_ERRORS" if with_errors else "COMPLETED")
        return True


def _unsuccessful(task: TaskRecord) -> bool:
    return task.terminal and task.status not in SUCCESSFUL_TASK
