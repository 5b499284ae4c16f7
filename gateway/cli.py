"""The `gateway` command: run | check | explain | dev | top | conductor <op> | worker |
dlq replay | version.

Each family of subcommands registers itself from the module that implements it, so this file
only wires them together and turns gateway errors into one clear line and exit code 2.
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

    from gateway import commands, liveview
    from gateway.conductor import commands as conductor_commands
    from gateway.conductor import launcher
    from gateway.devserver import commands as dev_commands
    from gateway.rules import commands as rules_commands

    commands.register(sub)
    rules_commands.register(sub)
    dev_commands.register(sub)
    conductor_commands.register(sub)
    launcher.register(sub)
    liveview.register(sub)
    return parser


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """`--config FILE`: the YAML settings file (the environment overrides it)."""
    parser.add_argument(
        "--config", type=Path, default=None, metavar="FILE", help="YAML settings file"
    )


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
