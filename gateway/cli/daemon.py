"""`gateway run` and `gateway dlq replay`: the daemon's commands."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
from typing import Any

from gateway import signals

log = logging.getLogger("gateway")


def register(sub: Any, config: argparse.ArgumentParser) -> None:
    run = sub.add_parser("run", parents=[config], help="run the gateway daemon")
    run.set_defaults(func=_run)

    dlq = sub.add_parser("dlq", help="dead-letter tools")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="WHAT")
    replay = dlq_sub.add_parser(
        "replay",
        parents=[config],
        help="re-inject dead letters into the topic or queue they came from",
    )
    replay.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="TARGET",
        help="the dead-letter destination: kafka:<topic> or amqp:<queue>",
    )
    replay.add_argument("--rule", default=None, help="replay only dead letters of this rule")
    replay.add_argument("--limit", type=int, default=None, help="replay at most N messages")
    replay.add_argument(
        "--to",
        default=None,
        metavar="DESTINATION",
        help="replay to this destination instead of each message's origin (which must be a "
        "source of the loaded rules)",
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="print what would be replayed; publish nothing"
    )
    replay.set_defaults(func=_replay)


def _run(args: argparse.Namespace) -> int:
    from gateway import logs
    from gateway.settings import load_settings

    settings = load_settings(args.config)
    logs.configure(settings.logging.level, settings.logging.format, settings.logging.levels)
    return asyncio.run(run_daemon(settings))


async def run_daemon(settings: Any) -> int:
    """Run until SIGTERM/SIGINT, which may come at any moment; a second signal exits at once.

    The rules are loaded first (a configuration that cannot work exits 2 before anything
    opens). Then the signal handlers are installed, before anything starts: a signal during
    start-up cancels it, which closes what was opened (the Kafka consumer leaves its group),
    and exits 0; a signal once started drains within `shutdown_grace_seconds`, and exits 0.
    """
    from gateway.app import Gateway

    gateway = Gateway(settings)
    received = _install_signals(gateway, asyncio.current_task())
    if received:
        log.info("received %s before start-up: exiting", signal.Signals(received[0]).name)
        return 0
    try:
        async with gateway:
            log.info("gateway running (rules: %s)", settings.rules_file)
            settle_heap()
            await gateway.serve()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not received or task is None:
            raise
        task.uncancel()
        log.info("stopped during start-up: closed what was opened")
    return 0


def settle_heap() -> None:
    """Freeze what start-up built (modules, models, rules, clients: it lives as long as the
    process), so that the collector's full passes no longer walk it. Unfrozen, each full pass
    took 20-40 ms of the event loop about once a second at 1,100 events/s, and those pauses
    were the gateway's p99 latency (issue 18: bench/pipeline.py --latency)."""
    gc.collect()  # what is garbage now would never be collected once frozen
    gc.freeze()


def _install_signals(gateway: Any, main: asyncio.Task[Any] | None) -> list[int]:
    """Loop handlers for SIGTERM/SIGINT; returns the list of signals received (so far: any
    held by `gateway.signals` while the process was importing)."""

    def first(signum: int) -> None:
        name = signal.Signals(signum).name
        if gateway.started:
            log.info("received %s: draining", name)
            gateway.request_stop()  # serve() drains and returns
        elif main is not None:
            log.info("received %s during start-up: closing what was opened", name)
            main.cancel()  # start-up is cancelled where it stands

    received = signals.handle(first, " without draining", log)
    received.extend(signals.held())
    return received


def _replay(args: argparse.Namespace) -> int:
    from gateway.replay import run_replay

    return run_replay(args)
