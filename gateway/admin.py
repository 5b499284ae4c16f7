"""The admin HTTP endpoint (aiohttp.web): /healthz, /readyz, /metrics, /events, /rules.

The endpoint opens before anything else, so both probes answer from the first second.

- /healthz (liveness): 200 while the process is alive and making progress: during start-up,
  while its loop keeps retrying the dependencies that are down; afterwards, while no consumer
  is stalled (lag without progress, or no partitions assigned for long). 503 otherwise, so a
  supervisor restarts it. A dependency that is down is not a reason to restart.
- /readyz (readiness): 200 `{"ready": true, "reasons": []}` once every dependency is open
  and answering and Kafka has its partitions; 503 `{"ready": false, "reasons": [...]}`
  otherwise, each reason `<component>: <cause>` (gateway/readiness.py).
- /metrics: Prometheus text (including `gateway_dead_letter_blocked`, from the pipeline);
  OpenMetrics, with exemplars, when the scraper's Accept asks for it (Prometheus does).
- /events: the last settled events (event id, rule, workflow ids, outcome, ms; never payloads),
  for `gateway top`.
- /rules: the loaded rules (names, sources, actions), never templates' rendered values.

`AdminClient` is the other side, `gateway top` reading a running gateway's endpoint.

This module is an edge like sources/, sinks/ and conductor/ (ruff's banned-api lets it import
aiohttp and httpx, pyproject.toml): the one module that speaks the admin protocol, both ways.
It reads the gateway's state and changes nothing, and keeping it here spares the composition
root (app.py) and the live view any HTTP code.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
from aiohttp import web

from gateway.errors import GatewayError
from gateway.liveview import Sample

if TYPE_CHECKING:
    from gateway.app import Gateway

OPENMETRICS = "application/openmetrics-text"
OPENMETRICS_TYPE = OPENMETRICS + "; version=1.0.0; charset=utf-8"


class Admin:
    """`async with Admin(gateway, host, port):` serves until the block ends."""

    def __init__(self, gateway: Gateway, host: str, port: int) -> None:
        self._gateway = gateway
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port = port

    async def __aenter__(self) -> Admin:
        app = web.Application()
        app.add_routes(
            [
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
                web.get("/metrics", self._metrics),
                web.get("/events", self._events),
                web.get("/rules", self._rules),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        addresses = self._runner.addresses  # the bound (host, port, ...) of each socket
        if addresses:
            self.port = int(addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        gw = self._gateway
        if not gw.started:
            starting = "stalled" if gw.readiness.stalled else "starting"
            return web.json_response(
                {"status": starting}, status=503 if gw.readiness.stalled else 200
            )
        stalled = gw.kafka is not None and gw.kafka.stalled
        # Shown, not judged: a blocked dead letter is retried for ever, and the Kafka stall
        # alarm above fires if it holds a partition back for long.
        blocked = gw.pipeline.dead_letters_blocked if gw.pipeline is not None else 0
        body = {"status": "stalled" if stalled else "ok", "dead_letters_blocked": blocked}
        return web.json_response(body, status=503 if stalled else 200)

    async def _readyz(self, _request: web.Request) -> web.Response:
        reasons = self._gateway.reasons()
        body = {"ready": not reasons, "reasons": reasons}
        return web.json_response(body, status=503 if reasons else 200)

    async def _metrics(self, request: web.Request) -> web.Response:
        metrics = self._gateway.metrics
        if OPENMETRICS in request.headers.get("Accept", ""):  # exemplars need OpenMetrics
            body = metrics.render_openmetrics()
            return web.Response(body=body, headers={"Content-Type": OPENMETRICS_TYPE})
        text = metrics.render()
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def _events(self, _request: web.Request) -> web.Response:
        return web.json_response({"events": self._gateway.metrics.recent_events()})

    async def _rules(self, _request: web.Request) -> web.Response:
        rules: list[dict[str, Any]] = [
            {
                "name": rule.name,
                "source": rule.source.describe(),
                "action": rule.action.action,
                "line": rule.line,
            }
            for rule in self._gateway.ruleset.rules
        ]
        return web.json_response(
            {"on_unmatched": self._gateway.ruleset.on_unmatched, "rules": rules}
        )


class AdminClient:
    """`async with AdminClient(url) as admin:` reads a running gateway's admin endpoint."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=5.0)

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def read(self) -> Sample:
        return await read_admin(self._http)

    async def check(self) -> Sample:
        """The first read: an endpoint that does not answer is an error naming the fix."""
        try:
            return await self.read()
        except httpx.HTTPError as exc:
            raise GatewayError(
                f"--admin {self.url}: cannot read the gateway's admin endpoint ({exc}); give the "
                "URL of a running gateway's admin.port, e.g. --admin http://127.0.0.1:8088"
            ) from exc


async def read_admin(http: httpx.AsyncClient) -> Sample:
    """A Sample from a gateway's admin endpoint: /metrics, /events, /readyz and /rules."""
    metrics, events, ready, rules = await asyncio.gather(
        http.get("/metrics"), http.get("/events"), http.get("/readyz"), http.get("/rules")
    )
    metrics.raise_for_status()
    recent = events.json().get("events", []) if events.status_code == 200 else []
    reasons = ready.json().get("reasons", []) if ready.status_code in (200, 503) else []
    names = [r["name"] for r in rules.json().get("rules", [])] if rules.status_code == 200 else []
    return Sample(metrics.text, recent, reasons, rules=names)
