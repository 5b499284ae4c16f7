"""`gateway top`: the live view (gateway/liveview.py) of a running gateway, read from its admin
endpoint (gateway/admin.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.liveview import read_view, show, to_text


def register(sub: Any) -> None:
    top = sub.add_parser("top", help="a live view of a running gateway, from its admin endpoint")
    top.add_argument(
        "--admin",
        default="http://127.0.0.1:8088",
        metavar="URL",
        help="the gateway's admin endpoint (%(default)s)",
    )
    top.add_argument("--once", action="store_true", help="print the view once as text and exit")
    top.set_defaults(func=_top)


def _top(args: Any) -> int:
    return asyncio.run(top(args.admin, once=args.once))


async def top(url: str, *, once: bool = False) -> int:
    from gateway.admin import AdminClient  # imported when used: aiohttp and httpx take a while

    async with AdminClient(url) as admin:
        first = await admin.check()
        if once:
            print(to_text(read_view(first)), end="")
            return 0
        await show(admin.read, asyncio.Event())
    return 0
