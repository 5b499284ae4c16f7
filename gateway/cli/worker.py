"""`gateway worker module:attr ...`: run `@worker_task` functions until SIGTERM or Ctrl-C.

`module:attr` names one worker or a list of them; a bare `module` takes every `@worker_task`
defined at its top level. The current directory is importable, as with `python -m`. The first
signal stops polling and lets the tasks in hand finish (up to `--drain-seconds`); a second one
exits at once (Conductor hands the unfinished tasks out again after their response timeout).
On exit it prints what it reported, as one JSON line: `{"reported": {"type": {"COMPLETED": n}}}`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import logging
import os
import signal
import sys
import types
from typing import Any

from gateway import signals
from gateway.conductor.worker import WorkerTask
from gateway.errors import ConfigError

log = logging.getLogger("gateway.worker")


def register(sub: Any, config: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "worker",
        parents=[config],
        help="run @worker_task functions (module:attr) against Conductor",
    )
    parser.add_argument("targets", nargs="+", metavar="MODULE[:ATTR]", help="workers to run")
    parser.add_argument("--concurrency", type=int, help="tasks at a time per worker (override)")
    parser.add_argument("--domain", help="poll this task domain (override)")
    parser.add_argument("--worker-id", help="the worker id reported to Conductor")
    parser.add_argument(
        "--drain-seconds", type=float, default=30.0, help="on stop, wait this long (default 30)"
    )
    parser.set_defaults(func=_run)


def load_attribute(target: str, what: str) -> Any:
    """`module:attr` imported (the current directory is importable); ConfigError says why not."""
    module_name, _, attr = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{what} '{target}': cannot import {module_name!r}: {exc}") from None
    if not attr:
        return module
    if not hasattr(module, attr):
        raise ConfigError(
            f"{what} '{target}': module {module_name!r} has no {attr!r}; name an attribute "
            "defined at its top level"
        )
    return getattr(module, attr)


def load_workers(targets: list[str]) -> list[WorkerTask]:
    """The workers `module:attr` (or every one in `module`) names; ConfigError says why not."""
    workers: list[WorkerTask] = []
    for target in targets:
        value = load_attribute(target, "worker")
        if isinstance(value, types.ModuleType):
            found = [v for v in vars(value).values() if isinstance(v, WorkerTask)]
        else:
            found = list(value) if isinstance(value, list | tuple) else [value]
        bad = [item for item in found if not isinstance(item, WorkerTask)]
        if bad or not found:
            what = f"{bad[0]!r} is not a @worker_task function" if bad else "no worker found"
            raise ConfigError(
                f"worker '{target}': {what}; decorate a function with @worker_task('task_name') "
                "and name it as module:attr, or name a module that defines some"
            )
        workers += found
    return workers


def _run(args: argparse.Namespace) -> int:
    from gateway import logs
    from gateway.settings import load_settings

    settings = load_settings(args.config)
    logs.configure(settings.logging.level, settings.logging.format)
    workers = [_override(w, args) for w in load_workers(args.targets)]
    reported = asyncio.run(_serve(settings.conductor, workers, args.drain_seconds))
    print(json.dumps({"reported": reported}), flush=True)
    return 0


def _override(worker: WorkerTask, args: argparse.Namespace) -> WorkerTask:
    changes = {
        "concurrency": args.concurrency,
        "domain": args.domain,
        "worker_id": args.worker_id,
    }
    return dataclasses.replace(worker, **{k: v for k, v in changes.items() if v is not None})


async def _serve(conductor: Any, workers: list[WorkerTask], drain: float) -> dict[str, Any]:
    from gateway.conductor.client import ConductorClient
    from gateway.conductor.runner import TaskRunner

    async with ConductorClient.from_settings(conductor) as client:
        runner = TaskRunner(client, workers, drain_seconds=drain)
        _install_signals(runner)
        names = ", ".join(f"{w.task_definition_name} (x{w.concurrency})" for w in workers)
        log.info("worker running: %s against %s", names, conductor.url)
        await runner.run()
    reported: dict[str, dict[str, int]] = {}
    for (task_type, status), count in sorted(runner.reported.items()):
        reported.setdefault(task_type, {})[status] = count
    return reported


def _install_signals(runner: Any) -> None:
    def first(signum: int) -> None:
        log.info("received %s: finishing the tasks in hand", signal.Signals(signum).name)
        runner.stop()

    signals.handle(first, "; Conductor will hand the tasks out again", log)
