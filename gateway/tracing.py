"""OpenTelemetry tracing: a span per delivery, continued from the message's W3C `traceparent`.

Optional (`pip install conductor-event-gateway[otel]`) and off by default: `Tracing.from_env()`
turns it on only when the SDK is installed and `OTEL_TRACES_EXPORTER` names an exporter
(`otlp` or `console`); the SDK then reads the other standard variables itself
(`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_SAMPLER`, ...). Without the
extra, or with it off, every method here is a no-op that allocates nothing per event.

The spans of one delivery (docs/observability.md#tracing):

- `gateway.delivery` (consumer): from taking the message to settling it; its parent is the
  message's `traceparent` header when it has one. Attributes: the source, event id, outcome.
- `gateway.route`, `store <method>` and `conductor <method>` (client) beneath it;
  `conductor start_workflow`/`execute_workflow` carry `conductor.workflow_id`.
- `gateway.completion` (producer): the tracker publishing the workflow's completion event,
  a child of the span that started the workflow, found through the workflow input's `_trace`.

While tracing is on, a started workflow's input gets `_trace: {"traceparent": ...}` (the
`conductor start_workflow` span), so a workflow can be tied back to its event and its completion
event joins the same trace; completion events carry the CloudEvents distributed-tracing
extension `traceparent`, and dead letters a `traceparent` header.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

T = TypeVar("T")

TRACE_KEY = "_trace"  # the workflow input key that carries the starting span's traceparent
STARTS = {"start_workflow", "execute_workflow"}  # the client methods whose input gets TRACE_KEY
EXPORTERS = ("otlp", "console")


class Tracing:
    """The no-op tracer; `OtelTracing` (below) when tracing is on."""

    enabled = False

    @staticmethod
    def from_env(environ: Mapping[str, str] = os.environ) -> Tracing:
        """OtelTracing when the `otel` extra is installed and OTEL_TRACES_EXPORTER is set."""
        exporter = environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
        if exporter in ("", "none") or environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
            return NO_TRACING
        try:
            otel = importlib.import_module("gateway.otel")  # needs the `otel` extra
        except ImportError as exc:
            from gateway.errors import ConfigError

            raise ConfigError(
                f"OTEL_TRACES_EXPORTER={exporter!r} but OpenTelemetry is not installed: "
                "pip install 'conductor-event-gateway[otel]', or unset OTEL_TRACES_EXPORTER"
            ) from exc
        return OtelTracing(otel.provider_from_env(exporter))

    def delivery(self, source: str, event_id: str, headers: Mapping[str, str]) -> Any:
        """A started (not current) delivery span, or None."""
        return None

    def child(self, name: str, parent: Any) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def activate(self, span: Any) -> contextlib.AbstractContextManager[Any]:
        """Make `span` current for the block and end it after."""
        return contextlib.nullcontext()

    def settled(self, span: Any, outcome: str) -> None:
        """Record the delivery's outcome on its span."""

    def headers(self) -> dict[str, str]:
        """The current span as a `traceparent` header ({} when none)."""
        return {}

    def completion(self, workflow_id: str, workflow_input: Mapping[str, Any]) -> Any:
        """A started span for publishing this workflow's completion, or None."""
        return None

    def end(self, span: Any, error: BaseException | None = None) -> None:
        """End a span from `completion`."""

    def traceparent(self, span: Any) -> str | None:
        return None

    def exemplar(self, span: Any) -> dict[str, str] | None:
        """The span's trace id as a metrics exemplar, or None."""
        return None

    def traced(self, target: T, prefix: str) -> T:
        """`target` with a span around each coroutine method call (itself when off)."""
        return target


NO_TRACING = Tracing()


class OtelTracing(Tracing):
    """Tracing with an OpenTelemetry TracerProvider (the SDK's, or one a test gives)."""

    enabled = True

    def __init__(self, provider: Any) -> None:
        from gateway import otel

        self._otel = otel
        self._tracer = provider.get_tracer("conductor-event-gateway")

    def delivery(self, source: str, event_id: str, headers: Mapping[str, str]) -> Any:
        parent = self._otel.extract(headers)
        attributes = {"messaging.source": source, "gateway.event_id": event_id}
        return self._otel.start(self._tracer, "gateway.delivery", parent, "consumer", attributes)

    def child(self, name: str, parent: Any) -> contextlib.AbstractContextManager[Any]:
        return self._otel.child(self._tracer, name, parent)

    def activate(self, span: Any) -> contextlib.AbstractContextManager[Any]:
        return self._otel.activate(span)

    def settled(self, span: Any, outcome: str) -> None:
        if span is not None:
            span.set_attribute("gateway.outcome", outcome)

    def headers(self) -> dict[str, str]:
        return self._otel.inject_current()

    def completion(self, workflow_id: str, workflow_input: Mapping[str, Any]) -> Any:
        carried = workflow_input.get(TRACE_KEY)
        carrier = carried if isinstance(carried, Mapping) else {}
        parent = self._otel.extract({k: str(v) for k, v in carrier.items()})
        attributes = {"conductor.workflow_id": workflow_id}
        return self._otel.start(self._tracer, "gateway.completion", parent, "producer", attributes)

    def end(self, span: Any, error: BaseException | None = None) -> None:
        if span is not None:
            self._otel.end(span, error)

    def traceparent(self, span: Any) -> str | None:
        return self._otel.traceparent_of(span) if span is not None else None

    def exemplar(self, span: Any) -> dict[str, str] | None:
        return {"trace_id": f"{span.get_span_context().trace_id:032x}"} if span else None

    def traced(self, target: T, prefix: str) -> T:
        return cast(T, _Traced(target, prefix, self))

    def call_span(self, name: str) -> contextlib.AbstractContextManager[Any]:
        return self._otel.client_span(self._tracer, name)


class _Traced:
    """`target` whose public coroutine methods run inside a span named `<prefix> <method>`."""

    def __init__(self, target: Any, prefix: str, tracing: OtelTracing) -> None:
        self._target = target
        self._prefix = prefix
        self._tracing = tracing

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not name.startswith("_") and inspect.iscoroutinefunction(attr):
            attr = _in_span(attr, f"{self._prefix} {name}", name in STARTS, self._tracing)
            setattr(self, name, attr)
        return attr


def _in_span(
    call: Callable[..., Awaitable[Any]], name: str, start: bool, tracing: OtelTracing
) -> Callable[..., Awaitable[Any]]:
    async def traced(*args: Any, **kwargs: Any) -> Any:
        with tracing.call_span(name) as span:
            if start:
                kwargs["input"] = _with_trace(kwargs.get("input"), tracing.headers())
            result = await call(*args, **kwargs)
            workflow_id = _workflow_id(result)
            if start and workflow_id:
                span.set_attribute("conductor.workflow_id", str(workflow_id))
            return result

    return traced


def _with_trace(given: Mapping[str, Any] | None, carrier: dict[str, str]) -> dict[str, Any]:
    """The workflow input plus TRACE_KEY (a copy: the plan's rendered input stays as it was)."""
    return {**(given or {}), TRACE_KEY: carrier}


def _workflow_id(result: Any) -> str:
    """start_workflow returns the id, execute_workflow a WorkflowRun."""
    return result if isinstance(result, str) else str(getattr(result, "workflow_id", "") or "")
