"""`gateway check` and `gateway explain`."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    from gateway.cli import add_config_argument

    check = sub.add_parser("check", help="validate settings and rules, then exit")
    add_config_argument(check)
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from gateway.settings import load_settings

    load_settings(args.config)
    print("settings: ok")
    return 0
