"""Tasks that workers poll: SIMPLE, and DYNAMIC (a SIMPLE task whose name comes from input)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.devserver.models import TaskDef, WorkflowTask
from gateway.devserver.state import new_id
from gateway.devserver.tasks.base import Problem, Runtime, Slot, TaskHandler, required

if TYPE_CHECKING:
    from gateway.devserver.state import TaskRecord, WorkflowRecord


class Simple(TaskHandler):
    type = "SIMPLE"
    own_task_id = True
    input_template = True

    def type_name(self, wt: WorkflowTask) -> str:
        return wt.name

    def default_task_def(self, wt: WorkflowTask) -> TaskDef:
        # An unregistered SIMPLE task gets Conductor's ad-hoc definition: 3 retries (§3.5).
        return TaskDef(name=wt.name)

    def start(self, rt: Runtime, wf: WorkflowRecord, task: TaskRecord) -> None:
        rt.store.enqueue(task)


class Dynamic(TaskHandler):
    """DynamicTaskMapper: the task is created under the name held by the input key that
    `dynamicTaskNameParam` names, and runs as a worker task of that name."""

    type = "DYNAMIC"
    own_task_id = True
    input_template = True
    rebuilt_on_rerun = True

    def validate(self, wt: WorkflowTask, path: str) -> list[Problem]:
        if not wt.dynamic_task_name_param:
            return [required(wt, path, "dynamicTaskNameParam")]
        return []

    def schedule(self, rt: Runtime, at: Slot) -> None:
        wt = at.node.task
        task_id = new_id()
        data = self.input_of(rt, at, task_id)
        name = data.get(wt.dynamic_task_name_param or "")
        if not isinstance(name, str) or not name:
            rt.fail(
                at.wf,
                f"Cannot map a dynamic task based on the parameter and input. Parameter= "
                f"{wt.dynamic_task_name_param}, input= {data}",
            )
            return
        task = rt.new_task(at.wf, at.node, at.iteration, data, task_id)
        # From here on it is a worker task of that name (queue, retries, timeouts).
        task.workflow_task = wt.model_copy(update={"name": name, "type": "SIMPLE"})
        task.type_name = task.def_name = name
        task.task_def = rt.store.metadata.find_task_def(name) or TaskDef(name=name)
        rt.add(at.wf, task)
        rt.store.enqueue(task)
