"""The Conductor-compatible dev server: aiohttp.web routes over the in-memory engine.

```python
async with DevServer(port=0, flavor="orkes") as server:
    server.url   # "http://127.0.0.1:<port>/api"
```
A background sweeper fires timers (WAIT durations, task and workflow timeouts) every
`sweep_interval` seconds; retry delays need no timer, they are checked at poll.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from aiohttp import web

from gateway.cancellation import cancel
from gateway.devserver.auth import TokenIssuer
from gateway.devserver.clock import Clock, SystemClock
from gateway.devserver.engine import Engine
from gateway.devserver.http import (
    AUTH_KEY,
    auth_middleware,
    errors_middleware,
    json_response,
    read_object,
)
from gateway.devserver.persistence import Persistence
from gateway.devserver.routes_metadata import MetadataRoutes
from gateway.devserver.routes_tasks import TaskRoutes
from gateway.devserver.routes_workflow import WorkflowRoutes
from gateway.devserver.taskops import TaskOps
from gateway.errors import ConfigError, NotFound

log = logging.getLogger(__name__)
Flavor = Literal["oss", "orkes"]


class DevServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        flavor: Flavor = "oss",
        key_id: str | None = None,
        key_secret: str | None = None,
        token_ttl_seconds: float = 3600.0,
        *,
        clock: Clock | None = None,
        sweep_interval: float = 0.1,
        event_publisher: Callable[[str, bytes], Awaitable[None]] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        data: Path | None = None,
    ) -> None:
        if flavor not in ("oss", "orkes"):
            raise ConfigError(f"flavor: {flavor!r} is not valid; use 'oss' or 'orkes'")
        if (key_id is None) != (key_secret is None):
            raise ConfigError("key_id and key_secret: give both or neither")
        self.host = host
        self.flavor: Flavor = flavor
        self.clock = clock or SystemClock()
        self.engine = Engine(self.clock, flavor)
        # Where EVENT tasks with kafka:/amqp: sinks publish (sink, JSON); none: they fail.
        self.engine.store.publish = event_publisher
        self.tasks = TaskOps(self.engine.store, self.engine.decider, self.engine.orkes)
        self.auth = None
        if key_id is not None and key_secret is not None:
            if flavor != "orkes":
                raise ConfigError("key_id/key_secret: token auth exists only with flavor 'orkes'")
            self.auth = TokenIssuer(key_id, key_secret, token_ttl_seconds, self.clock)
        self._requested_port = port
        self._ssl_context = ssl_context  # serve https with it
        self._sweep_interval = sweep_interval
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None
        # `data`: keep executions, definitions and queues in this SQLite file across restarts.
        self.persistence = Persistence(data) if data is not None else None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}/api"

    def build_app(self) -> web.Application:
        middlewares = [errors_middleware, auth_middleware]
        if self.persistence is not None:
            middlewares.insert(0, self._persist_middleware)
        app = web.Application(middlewares=middlewares)
        app[AUTH_KEY] = self.auth
        if self.auth is not None:
            app.router.add_post("/api/token", self._token)
        else:
            app.router.add_post("/api/token", self._no_token)
        MetadataRoutes(self.engine).register(app.router)
        WorkflowRoutes(self.engine, self.tasks.sweep).register(app.router)
        TaskRoutes(self.engine, self.tasks).register(app.router)
        return app

    @web.middleware
    async def _persist_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """The response goes out once the changes it reports are in the data file. Reads
        change nothing (polls do: they hand out tasks) and need not wait."""
        if request.method in ("GET", "HEAD") and "/poll/" not in request.path:
            return await handler(request)
        try:
            return await handler(request)
        finally:
            assert self.persistence is not None
            await self.persistence.flush(self.engine)

    async def _token(self, request: web.Request) -> web.Response:
        assert self.auth is not None
        body = await read_object(request)
        token = self.auth.issue(body.get("keyId"), body.get("keySecret"))  # AuthError: 401
        return json_response({"token": token})

    async def _no_token(self, _request: web.Request) -> web.Response:
        # The SDKs read a 404 here as "this Conductor has no auth" (§1.1).
        raise NotFound("No static resource api/token.", status=404)

    async def start(self) -> None:
        if self.persistence is not None:
            self.persistence.open(self.engine)
        try:
            await self._listen()
        except BaseException:
            await self.stop()  # the data file's lock too
            raise

    async def _listen(self) -> None:
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        # A short shutdown grace: a pending execute or batch poll must not hold up the exit.
        site = web.TCPSite(
            self._runner,
            self.host,
            self._requested_port,
            reuse_address=True,
            shutdown_timeout=1.0,
            ssl_context=self._ssl_context,
        )
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="devserver-sweeper")
        log.info("conductor dev server (%s) listening on %s", self.flavor, self.url)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                self.tasks.sweep()
                if self.persistence is not None:
                    await self.persistence.flush(self.engine)
            except Exception:
                log.exception("dev server sweeper failed")

    async def stop(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        await cancel(sweeper)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.persistence is not None:
            await self.persistence.close(self.engine)

    async def __aenter__(self) -> DevServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
