"""`gateway conductor <operation>`: operate workflows from the shell, printing JSON."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    conductor = sub.add_parser("conductor", help="call a Conductor operation, print JSON")
    conductor.set_defaults(func=lambda _a: print("not built yet (issue 4)") or 2)
