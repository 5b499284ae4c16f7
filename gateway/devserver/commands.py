"""`gateway dev` (the whole local stack) and `gateway dev conductor` (the dev server alone)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    dev = sub.add_parser("dev", help="run a local stack: brokers, Conductor dev server, gateway")
    dev_sub = dev.add_subparsers(dest="dev_command", metavar="WHAT")
    conductor = dev_sub.add_parser("conductor", help="run the Conductor dev server alone")
    conductor.set_defaults(func=lambda _a: print("not built yet (issue 3)") or 2)
    dev.set_defaults(func=lambda _a: print("not built yet (issue 6)") or 2)
