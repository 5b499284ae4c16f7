"""`gateway conductor <operation>`: operate workflows from the shell, printing JSON.

Settings come from `--config FILE` and `GATEWAY_CONDUCTOR__*` variables (the URL, Orkes keys,
timeouts). Results are printed to stdout as JSON in Conductor's own camelCase; errors are one
line on stderr with a non-zero exit code (`gateway.cli.main` does that for every GatewayError).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from gateway.errors import ConfigError

Op = Callable[[Any, argparse.Namespace], Awaitable[Any]]
MakeOp = Callable[[Any, str, str, Op], argparse.ArgumentParser]  # (subparsers, name, help, run)
STATUSES = ["COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "IN_PROGRESS"]


def register(sub: Any, config: argparse.ArgumentParser) -> None:
    conductor = sub.add_parser("conductor", help="call a Conductor operation, print JSON")
    ops = conductor.add_subparsers(dest="conductor_command", metavar="OPERATION", required=True)
    op = functools.partial(_op, config)
    _workflow_reads(ops, op)
    _workflow_changes(ops, op)
    _tasks(ops, op)
    _definitions(ops, op)


# -- parsers -----------------------------------------------------------------------------------


def _op(
    config: argparse.ArgumentParser, ops: Any, name: str, help: str, run: Op
) -> argparse.ArgumentParser:
    """The parser of one operation: `--config` and the function that runs it."""
    parser: argparse.ArgumentParser = ops.add_parser(
        name, parents=[config], help=help, description=help
    )
    parser.set_defaults(func=lambda args: _execute(run, args))
    return parser


def _workflow_reads(ops: Any, op: MakeOp) -> None:
    p = op(ops, "start", "start a workflow asynchronously; prints its id", _start)
    _start_args(p)
    p.add_argument("--idempotency-key", help="Orkes: deduplicate starts by this key")
    p.add_argument("--idempotency-strategy", choices=["FAIL", "RETURN_EXISTING", "FAIL_ON_RUNNING"])
    p = op(ops, "execute", "start a workflow and wait for its end or a blocking task", _execute_wf)
    _start_args(p)
    p.add_argument("--wait-until", action="append", metavar="REF", help="task ref (repeatable)")
    p.add_argument("--wait-seconds", type=int, default=10, help="longest wait (default 10)")
    p = op(ops, "get", "a workflow execution with its tasks", _get)
    p.add_argument("workflow_id")
    p.add_argument("--no-tasks", action="store_true", help="leave the task list out")
    p = op(ops, "status", "a workflow's status, output and variables", _status)
    p.add_argument("workflow_id")
    p = op(ops, "correlated", "workflows of NAME with a correlation id", _correlated)
    p.add_argument("name")
    p.add_argument("correlation_id")
    p.add_argument("--include-closed", action="store_true", help="also finished ones")
    p.add_argument("--include-tasks", action="store_true")
    p = op(ops, "search", "search workflow executions", _search)
    p.add_argument("--query", help='e.g. "workflowType = flow AND status IN (RUNNING,PAUSED)"')
    p.add_argument("--free-text", default="*")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--sort", help="e.g. startTime:DESC")


def _start_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="workflow name (default: the --workflow-def's name)")
    p.add_argument(
        "--workflow-def",
        metavar="@FILE|MODULE:ATTR",
        help="run this definition inline, unregistered (JSON/YAML file, or a ConductorWorkflow)",
    )
    p.add_argument("--version", type=int, help="definition version (default: latest)")
    p.add_argument("--input", type=_json_object, default={}, help="JSON object, or @file")
    p.add_argument("--correlation-id")
    p.add_argument("--priority", type=int)


def _workflow_changes(ops: Any, op: MakeOp) -> None:
    p = op(ops, "terminate", "terminate a workflow", _terminate)
    p.add_argument("workflow_id")
    p.add_argument("--reason")
    p.add_argument("--trigger-failure-workflow", action="store_true", help="Orkes only")
    for name, doc in (("pause", "pause a workflow"), ("resume", "resume a paused workflow")):
        op(ops, name, doc, _simple(name)).add_argument("workflow_id")
    p = op(ops, "retry", "retry the failed task(s) of a workflow", _retry)
    p.add_argument("workflow_id")
    p.add_argument("--resume-subworkflow-tasks", action="store_true")
    p = op(ops, "restart", "restart a finished workflow from the beginning", _restart)
    p.add_argument("workflow_id")
    p.add_argument("--use-latest-definitions", action="store_true")
    p = op(ops, "rerun", "rerun a finished workflow, from a task or from scratch", _rerun)
    p.add_argument("workflow_id")
    p.add_argument("--from-task", metavar="TASK_ID", help="task id to rerun from")
    p.add_argument("--task-input", type=_json_object, help="JSON object, or @file")
    p.add_argument("--workflow-input", type=_json_object, help="JSON object, or @file")
    p.add_argument("--correlation-id")
    p = op(ops, "variables", "set workflow variables (Orkes only)", _variables)
    p.add_argument("workflow_id")
    p.add_argument("variables", type=_json_object, help="JSON object, or @file")


def _tasks(ops: Any, op: MakeOp) -> None:
    p = op(ops, "signal", "complete or fail a waiting task", _signal)
    p.add_argument("workflow_id")
    p.add_argument("status", choices=STATUSES)
    p.add_argument("--output", type=_json_object, default={}, help="JSON object, or @file")
    p.add_argument("--task-ref", help="reference name (default: the first waiting WAIT task)")
    p.add_argument("--reason", help="reason for incompletion (with FAILED)")
    op(ops, "capabilities", "what this Conductor supports (probed)", _capabilities)


def _definitions(ops: Any, op: MakeOp) -> None:
    taskdef = ops.add_parser("taskdef", help="register, update or get task definitions")
    tops = taskdef.add_subparsers(dest="taskdef_command", metavar="ACTION", required=True)
    for name, run in (("register", _taskdef_register), ("update", _taskdef_update)):
        p = op(tops, name, f"{name} task definition(s) from a JSON or YAML file", run)
        p.add_argument("file", type=Path)
    op(tops, "get", "print a task definition", _taskdef_get).add_argument("name")
    wfdef = ops.add_parser("workflowdef", help="register workflow definitions")
    wops = wfdef.add_subparsers(dest="workflowdef_command", metavar="ACTION", required=True)
    p = op(wops, "register", "register a workflow definition (file, or module:attr)", _wf_reg)
    p.add_argument(
        "file", metavar="FILE|MODULE:ATTR", help="JSON/YAML file, or a ConductorWorkflow"
    )
    p.add_argument("--overwrite", action="store_true", help="replace the same name+version")


# -- running -----------------------------------------------------------------------------------


def _execute(run: Op, args: argparse.Namespace) -> int:
    from gateway.settings import load_settings

    settings = load_settings(args.config)
    result = asyncio.run(_call(run, settings.conductor, args))
    print(json.dumps(_jsonable(result), indent=2, ensure_ascii=False))
    return 0


async def _call(run: Op, conductor_settings: Any, args: argparse.Namespace) -> Any:
    from gateway.conductor.client import ConductorClient

    async with ConductorClient.from_settings(conductor_settings) as client:
        return await run(client, args)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _json_object(text: str) -> dict[str, Any]:
    """A JSON object given inline or as @path (JSON or YAML)."""
    if text.startswith("@"):
        data = _read_document(Path(text[1:]))
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(
                f"not valid JSON ({exc}); quote it or use @file"
            ) from None
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"orderId\": 1}'")
    return data


def _read_document(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid JSON or YAML: {exc}") from None


# -- operations ------------------------------------------------------------------------------


async def _start(c: Any, a: argparse.Namespace) -> Any:
    name, inline = _target(a)
    wf_id = await c.start_workflow(
        name, a.version, a.input, a.correlation_id, a.priority, workflow_def=inline,
        idempotency_key=a.idempotency_key, idempotency_strategy=a.idempotency_strategy,
    )  # fmt: skip
    return {"workflowId": wf_id}


async def _execute_wf(c: Any, a: argparse.Namespace) -> Any:
    refs = [r for item in a.wait_until or [] for r in item.split(",") if r]
    name, inline = _target(a)
    return await c.execute_workflow(
        name, a.version, a.input, a.correlation_id, a.priority,
        wait_until_task_refs=refs or None, wait_for_seconds=a.wait_seconds, workflow_def=inline,
    )  # fmt: skip


def _target(a: argparse.Namespace) -> tuple[str, Any]:
    """The workflow name and the inline definition (None: run the registered one)."""
    inline = _load_definition(a.workflow_def, "--workflow-def") if a.workflow_def else None
    if not a.name and inline is None:
        raise ConfigError("give the workflow NAME, or its definition with --workflow-def @FILE")
    return a.name or "", inline


def _load_definition(source: str, option: str) -> Any:
    """A workflow definition from `@file` / `file` (JSON or YAML) or `module:attr` (a
    ConductorWorkflow, a definition, or a function without arguments returning one)."""
    path = Path(source[1:] if source.startswith("@") else source)
    if source.startswith("@") or path.exists() or ":" not in source:
        data = _read_document(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{option} {path}: give one workflow definition object")
        return data
    from gateway.cli.worker import load_attribute

    value = load_attribute(source, option)
    return value() if callable(value) and not hasattr(value, "to_workflow_def") else value


async def _get(c: Any, a: argparse.Namespace) -> Any:
    return await c.get_workflow(a.workflow_id, include_tasks=not a.no_tasks)


async def _status(c: Any, a: argparse.Namespace) -> Any:
    return await c.get_status(a.workflow_id)


async def _correlated(c: Any, a: argparse.Namespace) -> Any:
    return await c.get_by_correlation_id(
        a.name, a.correlation_id, include_closed=a.include_closed, include_tasks=a.include_tasks
    )


async def _search(c: Any, a: argparse.Namespace) -> Any:
    return await c.search(a.query, a.free_text, a.start, a.size, a.sort)


async def _terminate(c: Any, a: argparse.Namespace) -> Any:
    await c.terminate(a.workflow_id, a.reason, a.trigger_failure_workflow)
    return {"workflowId": a.workflow_id, "done": "terminate"}


def _simple(name: str) -> Op:
    async def run(c: Any, a: argparse.Namespace) -> Any:
        await getattr(c, name)(a.workflow_id)
        return {"workflowId": a.workflow_id, "done": name}

    return run


async def _retry(c: Any, a: argparse.Namespace) -> Any:
    await c.retry(a.workflow_id, a.resume_subworkflow_tasks)
    return {"workflowId": a.workflow_id, "done": "retry"}


async def _restart(c: Any, a: argparse.Namespace) -> Any:
    await c.restart(a.workflow_id, a.use_latest_definitions)
    return {"workflowId": a.workflow_id, "done": "restart"}


async def _rerun(c: Any, a: argparse.Namespace) -> Any:
    wf_id = await c.rerun(
        a.workflow_id, a.from_task, a.task_input, a.workflow_input, a.correlation_id
    )
    return {"workflowId": wf_id, "done": "rerun"}


async def _variables(c: Any, a: argparse.Namespace) -> Any:
    return await c.update_variables(a.workflow_id, a.variables)


async def _signal(c: Any, a: argparse.Namespace) -> Any:
    task_id = await c.signal(a.workflow_id, a.status, a.output, a.task_ref, a.reason)
    return {"workflowId": a.workflow_id, "taskId": task_id, "done": "signal"}


async def _capabilities(c: Any, a: argparse.Namespace) -> Any:
    caps = await c.capabilities()
    return {
        "flavor": caps.flavor,
        "variables": caps.variables,
        "idempotency": caps.idempotency,
        "signal": caps.signal,
        "syncExecute": caps.sync_execute,
    }


def _task_defs(path: Path) -> list[Any]:
    data = _read_document(path)
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) for item in items):
        raise ConfigError(f"{path}: give a task definition object or a list of them")
    return items


async def _taskdef_register(c: Any, a: argparse.Namespace) -> Any:
    defs = _task_defs(a.file)
    await c.register_task_defs(defs)
    return {"registered": [d.get("name") for d in defs]}


async def _taskdef_update(c: Any, a: argparse.Namespace) -> Any:
    defs = _task_defs(a.file)
    for item in defs:
        await c.update_task_def(item)
    return {"updated": [d.get("name") for d in defs]}


async def _taskdef_get(c: Any, a: argparse.Namespace) -> Any:
    return await c.get_task_def(a.name)


async def _wf_reg(c: Any, a: argparse.Namespace) -> Any:
    from gateway.conductor.builder import ConductorWorkflow
    from gateway.conductor.validation import validate_workflow_def

    loaded = _load_definition(a.file, "workflowdef register")
    if isinstance(loaded, ConductorWorkflow):
        definition = loaded.to_workflow_def()
    else:
        definition = validate_workflow_def(loaded)
    await c.register_workflow(definition, overwrite=a.overwrite)
    return {"registered": definition.name, "version": definition.version}
