"""Task handlers, one per task type, and the registration check built on them.

A new task type is one new handler class added to HANDLERS."""

from __future__ import annotations

from gateway.devserver.http import validation_failed
from gateway.devserver.models import WorkflowDef, WorkflowTask
from gateway.devserver.tasks.base import Problem, TaskHandler
from gateway.devserver.tasks.event import Event
from gateway.devserver.tasks.fork import ForkJoin, ForkJoinDynamic, Join
from gateway.devserver.tasks.http import Http
from gateway.devserver.tasks.inline import Inline
from gateway.devserver.tasks.jq import JsonJqTransform
from gateway.devserver.tasks.loop import DoWhile
from gateway.devserver.tasks.subworkflow import StartWorkflow, SubWorkflow
from gateway.devserver.tasks.switch import Decision, Switch
from gateway.devserver.tasks.terminate import Terminate
from gateway.devserver.tasks.variables import SetVariable
from gateway.devserver.tasks.waiting import Human, Wait
from gateway.devserver.tasks.worker import Dynamic, Simple

HANDLERS: dict[str, TaskHandler] = {
    h.type: h
    for h in (
        Simple(),
        Dynamic(),
        Wait(),
        Human(),
        SetVariable(),
        Terminate(),
        Switch(),
        Decision(),
        ForkJoin(),
        ForkJoinDynamic(),
        Join(),
        DoWhile(),
        SubWorkflow(),
        StartWorkflow(),
        Inline(),
        JsonJqTransform(),
        Http(),
        Event(),
    )
}


def definition_problems(definition: WorkflowDef) -> list[Problem]:
    """Every task of the tree checked by its handler; unknown types and repeated reference
    names refused (WorkflowTaskTypeConstraint, WorkflowDefConstraint)."""
    problems: list[Problem] = []
    seen: set[str] = set()

    def walk(tasks: list[WorkflowTask], path: str) -> None:
        for index, wt in enumerate(tasks):
            where = f"{path}[{index}]"
            ref = wt.task_reference_name
            if ref in seen:
                problems.append(
                    Problem(
                        path,
                        f"taskReferenceName: {ref} should be unique across tasks for a given "
                        f"workflowDefinition: {definition.name}",
                    )
                )
            seen.add(ref)
            handler = HANDLERS.get(wt.type)
            if handler is None:
                problems.append(
                    Problem(
                        f"{where}.type",
                        f"task '{ref}': type {wt.type!r} is not supported by the dev server; "
                        f"use one of {', '.join(HANDLERS)}",
                    )
                )
                continue
            problems.extend(handler.validate(wt, where))
            for label, branch in handler.branches(wt):
                walk(branch, f"{where}.{label}")

    walk(definition.tasks, "tasks")
    return problems


def check_definition(definition: WorkflowDef, where: str) -> None:
    """400 with Conductor's validationErrors body naming each bad task and field."""
    problems = definition_problems(definition)
    if problems:
        items = [{"path": f"{where}.{p.path}", "message": p.message} for p in problems]
        raise validation_failed(items)
