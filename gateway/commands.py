"""`gateway run` and `gateway dlq replay`: the daemon's commands."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    from gateway.cli import add_config_argument

    run = sub.add_parser("run", help="run the gateway daemon")
    add_config_argument(run)
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from gateway.settings import load_settings

    load_settings(args.config)
    print("gateway: the daemon is not built yet (issue 6)")
    return 2
