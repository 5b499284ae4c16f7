"""The `gateway` command: run | check | explain | dev | top | conductor <op> | worker |
dlq replay | version.

Each family of subcommands registers itself from its module in this package (daemon: run and
dlq replay; rules: check and explain; dev; conductor; worker; top), so this file only wires
them together, gives the ones that read settings the shared `--config` option (an argparse
parent parser) and turns gateway errors into one clear line and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway import __version__, signals
from gateway.errors import GatewayError

log = logging.getLogger("gateway")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Route Kafka and AMQP events to Conductor workflow operations.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda _args: print(__version__) or 0)

    from gateway.cli import conductor, daemon, dev, rules, top, worker

    config = config_parent()
    daemon.register(sub, config)
    rules.register(sub, config)
    dev.register(sub)
    conductor.register(sub, config)
    worker.register(sub, config)
    top.register(sub)
    return parser


def config_parent() -> argparse.ArgumentParser:
    """The parent parser of every subcommand that reads settings: `--config FILE`, the YAML
    settings file (the environment overrides it)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--config", type=Path, default=None, metavar="FILE", help="YAML settings file"
    )
    return parent


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # a real process: SIGTERM during the imports must not kill `gateway run`
        signals.hold()
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and args.command != "run":
        signals.release()
    try:
        result = args.func(args)
    except GatewayError as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)
