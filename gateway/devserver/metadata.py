"""Task and workflow definitions (§4.17, §4.18), held in memory."""

from __future__ import annotations

from gateway.devserver.models import TaskDef, WorkflowDef
from gateway.devserver.tasks import check_definition
from gateway.errors import Conflict, NotFound


class Metadata:
    def __init__(self) -> None:
        self._task_defs: dict[str, TaskDef] = {}
        self._workflow_defs: dict[str, dict[int, WorkflowDef]] = {}

    def upsert_task_def(self, task_def: TaskDef, now_ms: int) -> None:
        """POST taskdefs: an upsert, no 409."""
        task_def.create_time = now_ms
        self._task_defs[task_def.name] = task_def

    def update_task_def(self, task_def: TaskDef) -> None:
        """PUT taskdefs: 404 when missing; keeps createTime and createdBy."""
        old = self.get_task_def(task_def.name, f"No such task by name {task_def.name}")
        task_def.create_time, task_def.created_by = old.create_time, old.created_by
        self._task_defs[task_def.name] = task_def

    def get_task_def(self, name: str, message: str | None = None) -> TaskDef:
        found = self._task_defs.get(name)
        if found is None:
            raise NotFound(message or f"No such taskType found by name: {name}", status=404)
        return found

    def find_task_def(self, name: str) -> TaskDef | None:
        return self._task_defs.get(name)

    def task_defs(self) -> list[TaskDef]:
        return list(self._task_defs.values())

    def workflow_defs(self) -> list[WorkflowDef]:
        return [d for versions in self._workflow_defs.values() for d in versions.values()]

    def restore(self, task_defs: list[TaskDef], workflow_defs: list[WorkflowDef]) -> None:
        """Definitions read back from a `--data` file, as they were stored."""
        self._task_defs.update((d.name, d) for d in task_defs)
        for d in workflow_defs:
            self._workflow_defs.setdefault(d.name, {})[d.version] = d

    def register_workflow(self, definition: WorkflowDef, overwrite: bool, now_ms: int) -> None:
        check_definition(definition, "registerWorkflowDef")
        versions = self._workflow_defs.setdefault(definition.name, {})
        if definition.version in versions and not overwrite:
            raise Conflict(
                f"Workflow with {definition.name}.{definition.version} already exists!",
                status=409,
            )
        definition.create_time = now_ms
        versions[definition.version] = definition

    def find_workflow(self, name: str, version: int | None) -> WorkflowDef | None:
        versions = self._workflow_defs.get(name)
        if not versions:
            return None
        if version is None:
            return versions[max(versions)]
        return versions.get(version)

    def get_workflow(self, name: str, version: int | None) -> WorkflowDef:
        found = self.find_workflow(name, version)
        if found is None:
            raise NotFound(
                f"No such workflow found by name: {name}, version: "
                f"{'null' if version is None else version}",
                status=404,
            )
        return found
