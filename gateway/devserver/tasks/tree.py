"""A workflow definition as a tree: where each task sits (top level, a switch case, a fork
branch, a loop body) and what comes after it, as Conductor's WorkflowTask.next resolves it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.devserver.models import WorkflowDef, WorkflowTask
from gateway.devserver.tasks.base import TaskHandler


@dataclass(eq=False)
class Node:
    task: WorkflowTask
    parent: Node | None
    siblings: list[WorkflowTask]
    index: int
    path: str

    @property
    def ref(self) -> str:
        return self.task.task_reference_name

    def ancestors(self) -> list[Node]:
        found: list[Node] = []
        parent = self.parent
        while parent is not None:
            found.append(parent)
            parent = parent.parent
        return found

    def loop(self) -> Node | None:
        """The DO_WHILE whose body holds this task, if any."""
        return next((n for n in self.ancestors() if n.task.type == "DO_WHILE"), None)


class Tree:
    def __init__(self, definition: WorkflowDef, handlers: Mapping[str, TaskHandler]) -> None:
        self._handlers = handlers
        self.nodes: dict[str, Node] = {}
        self._add(definition.tasks, None, "tasks")
        self.first = self.nodes[definition.tasks[0].task_reference_name]

    def _add(self, tasks: list[WorkflowTask], parent: Node | None, path: str) -> None:
        for index, wt in enumerate(tasks):
            node = Node(wt, parent, tasks, index, f"{path}[{index}]")
            self.nodes.setdefault(wt.task_reference_name, node)
            handler = self._handlers.get(wt.type)
            for label, branch in handler.branches(wt) if handler else []:
                self._add(branch, node, f"{node.path}.{label}")

    def branch_node(self, parent: Node, wt: WorkflowTask) -> Node:
        """A node made at run time (a dynamic fork's task) under `parent`."""
        return Node(wt, parent, [wt], 0, f"{parent.path}.dynamic")

    def node_of(self, wt: WorkflowTask) -> Node:
        return self.nodes[wt.task_reference_name]

    def after(self, node: Node) -> Node | None:
        """The task that follows `node` once it is done: its next sibling; at the end of a
        switch case or fork branch, what follows the switch or fork (for a fork, the JOIN);
        at the end of a loop body, the loop itself; nothing at the end of the workflow."""
        if node.index + 1 < len(node.siblings):
            return self.nodes.get(node.siblings[node.index + 1].task_reference_name)
        parent = node.parent
        if parent is None:
            return None
        handler = self._handlers.get(parent.task.type)
        if handler is not None and handler.loops:
            return parent
        return self.after(parent)
