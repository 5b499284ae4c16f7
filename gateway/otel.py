"""The OpenTelemetry calls behind `gateway.tracing.OtelTracing`; imported only when tracing is on,
so this is the one module that needs the `otel` extra installed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Literal

from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# W3C traceparent/tracestate: what Kafka and AMQP producers put in message headers.
_PROPAGATOR = TraceContextTextMapPropagator()
_CARRIED = ("traceparent", "tracestate")
_KINDS = {"consumer": SpanKind.CONSUMER, "producer": SpanKind.PRODUCER}


def provider_from_env(exporter: str) -> TracerProvider:
    """A TracerProvider exporting in batches; the SDK reads OTEL_SERVICE_NAME, the sampler and
    the exporter's endpoint and headers from the environment itself."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_exporter(exporter)))
    return provider


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from gateway.errors import ConfigError

    raise ConfigError(f"OTEL_TRACES_EXPORTER={name!r} is not supported; use otlp, console or none")


def extract(headers: Mapping[str, str]) -> context.Context:
    """The parent context a message's `traceparent` header names (an empty one without it)."""
    lowered = {k.lower(): v for k, v in headers.items() if k.lower() in _CARRIED}
    return _PROPAGATOR.extract(lowered)


def start(
    tracer: trace.Tracer,
    name: str,
    parent: context.Context,
    kind: Literal["consumer", "producer"],
    attributes: Mapping[str, str],
) -> Span:
    return tracer.start_span(name, context=parent, kind=_KINDS[kind], attributes=dict(attributes))


@contextlib.contextmanager
def child(tracer: trace.Tracer, name: str, parent: Span | None) -> Iterator[Span | None]:
    if parent is None:
        yield None
        return
    with tracer.start_as_current_span(name, context=trace.set_span_in_context(parent)) as span:
        yield span


@contextlib.contextmanager
def activate(span: Span | None) -> Iterator[Span | None]:
    if span is None:
        yield None
        return
    with trace.use_span(span, end_on_exit=True, set_status_on_exception=True):
        yield span


def client_span(tracer: trace.Tracer, name: str) -> contextlib.AbstractContextManager[Span]:
    return tracer.start_as_current_span(name, kind=SpanKind.CLIENT)


def end(span: Span, error: BaseException | None) -> None:
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error)))
    span.end()


def inject_current() -> dict[str, str]:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def traceparent_of(span: Span) -> str | None:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")
