"""The gateway's Prometheus metrics, on `prometheus-client` with one registry per gateway.

Every series is declared in `SPECS` or `COMPUTED` (name, type, HELP text, labels), which
docs/observability.md mirrors. Updates on the per-event path go through `event_received` and
`event_settled`, which keep the `.labels(...)` children they bind, so an event costs a dict
lookup and an `inc`/`observe` per series; everything else (retries, dead letters, lag) uses
the generic `inc`/`set`, off the hot path.

`render` writes the text exposition format 0.0.4 itself rather than with `generate_latest`,
for two reasons that keep existing scrapers working: whole numbers stay whole (`gateway_in_flight
0`, as before this module used the client library), and counters get no `_created` series.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from gateway.errors import ConductorError

Kind = Literal["counter", "gauge", "histogram"]
T = TypeVar("T")

RECENT = 50  # settled events kept for the live view
Recent = tuple[float, str, Sequence[str], Sequence[str], str, float]
NO_RULE = "(none)"  # the rule label of an event no rule routed (unmatched, unparsable)

# Seconds. Settling includes retries with backoff, so the buckets reach minutes.
SETTLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Completion delay includes the tracker's poll interval, so it starts at a tenth of a second.
PUBLISH_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


@dataclass(frozen=True)
class Spec:
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


SPECS: dict[str, Spec] = {
    "gateway_events_received_total": Spec("counter", "Messages taken from a source.", ("source",)),
    "gateway_events_settled_total": Spec("counter", "Messages settled, by outcome.", ("outcome",)),
    "gateway_event_settle_seconds": Spec(
        "histogram",
        "Seconds from taking a message from a source to settling it (acked, dead-lettered, "
        "deferred or abandoned), by rule, source and outcome.",
        ("rule", "source", "outcome"),
        SETTLE_BUCKETS,
    ),
    "gateway_retries_total": Spec(
        "counter", "Retry attempts scheduled after a retryable failure.", ("source",)
    ),
    "gateway_dead_letters_total": Spec(
        "counter", "Messages published to a dead-letter target.", ("destination",)
    ),
    "gateway_consumer_lag": Spec(
        "gauge", "Kafka messages behind the high-water mark.", ("topic", "partition")
    ),
    "gateway_consumer_stalled": Spec(
        "gauge",
        "1 when a partition has lag but made no progress, or no partitions were assigned for long.",
    ),
    "gateway_auth_failures_total": Spec("counter", "Calls Conductor refused (401/403)."),
    "gateway_conductor_request_seconds": Spec(
        "histogram",
        "Seconds per Conductor client call (retries inside the call included), by operation "
        "(the client method) and status class (2xx, 4xx, 5xx, or unreachable).",
        ("operation", "status_class"),
        CALL_BUCKETS,
    ),
    "gateway_completion_publish_delay_seconds": Spec(
        "histogram",
        "Seconds from a workflow's end (or status change) in Conductor to the broker confirming "
        "its completion event, by rule.",
        ("rule",),
        PUBLISH_BUCKETS,
    ),
}

# Read when scraped from the object that keeps the count (gauge_fn).
COMPUTED: dict[str, tuple[Literal["counter", "gauge"], str]] = {
    "gateway_in_flight": ("gauge", "Messages taken but not settled yet."),
    "gateway_conductor_ready": ("gauge", "1 while Conductor answers."),
    "gateway_dead_letter_blocked": (
        "gauge",
        "Deliveries whose dead letter keeps failing to publish (their source cannot move on).",
    ),
    "gateway_tracker_polls_total": ("counter", "Status requests the tracker sent to Conductor."),
    "gateway_completions_published_total": ("counter", "Completion events a broker confirmed."),
    "gateway_completions_expired_total": (
        "counter",
        "Tracked workflows given up after tracker.max_age_seconds.",
    ),
    "gateway_completions_abandoned_total": (
        "counter",
        "Completions given up after tracker.max_publish_attempts failed publishes.",
    ),
}


class Metrics:
    """The gateway's series in their own `CollectorRegistry` (tests run several gateways)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._series: dict[str, MetricWrapperBase] = {
            name: _declare(name, spec, self.registry) for name, spec in SPECS.items()
        }
        self._gauge_fns: dict[str, Callable[[], float]] = {}
        self.registry.register(_Computed(self._gauge_fns))
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._recent: deque[Recent] = deque(maxlen=RECENT)

    # -- the per-event path: bound children, cached ---------------------------------------------

    def child(self, name: str, *values: str) -> Any:
        """The series' child for these label values (in SPECS order), bound once."""
        key = (name, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = self._series[name].labels(*values)
        return found

    def event_received(self, source: str) -> None:
        self.child("gateway_events_received_total", source).inc()

    def event_settled(
        self,
        rules: Iterable[str],
        source: str,
        outcome: str,
        seconds: float,
        exemplar: dict[str, str] | None = None,
    ) -> None:
        """One settled delivery: the outcome counter, and the latency once per routed rule
        (with the trace id as exemplar while tracing is on)."""
        self.child("gateway_events_settled_total", outcome).inc()
        for rule in rules:
            series = self.child("gateway_event_settle_seconds", rule, source, outcome)
            series.observe(seconds, exemplar)

    def remember(
        self,
        event_id: str,
        rules: Sequence[str],
        workflow_ids: Sequence[str],
        outcome: str,
        seconds: float,
    ) -> None:
        """Keep the last RECENT settled events for the live view (one deque append)."""
        self._recent.append((time.time(), event_id, rules, workflow_ids, outcome, seconds))

    def recent_events(self) -> list[dict[str, Any]]:
        """The last settled events, oldest first, as the admin endpoint's /events gives them."""
        return [
            {
                "at": at,
                "event_id": event_id,
                "rule": ",".join(rules),
                "workflow_id": ",".join(dict.fromkeys(workflow_ids)),
                "outcome": outcome,
                "ms": round(seconds * 1000, 1),
            }
            for at, event_id, rules, workflow_ids, outcome, seconds in list(self._recent)
        ]

    def completion_published(self, rule: str, seconds: float) -> None:
        self.child("gateway_completion_publish_delay_seconds", rule).observe(max(0.0, seconds))

    # -- everything else ------------------------------------------------------------------------

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self._labelled(name, labels).inc(amount)

    def set(self, name: str, value: float, **labels: str) -> None:
        self._labelled(name, labels).set(value)

    def remove(self, name: str, **labels: str) -> None:
        """Drop one series (a partition this member no longer owns reports nothing)."""
        values = _values(name, labels)
        self._children.pop((name, values), None)
        with contextlib.suppress(KeyError):  # never set: nothing to drop
            self._series[name].remove(*values)

    def gauge_fn(self, name: str, fn: Callable[[], float]) -> None:
        """A value computed when scraped (in-flight counts, readiness, tracker counts)."""
        if name not in COMPUTED:
            raise KeyError(f"metric {name!r} is not declared in gateway.metrics.COMPUTED")
        self._gauge_fns[name] = fn

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def total(self, name: str) -> float:
        """The sum of a series over all its labels."""
        return sum(s.value for s in self._samples() if s.name == name)

    def timed(self, client: T) -> T:
        """`client`, its coroutine methods timed into gateway_conductor_request_seconds."""
        return cast(T, _Timed(client, self))

    def render_openmetrics(self) -> bytes:
        """OpenMetrics 1.0 (what Prometheus asks for first): the same series, with exemplars."""
        text: bytes = openmetrics.generate_latest(self.registry)  # type: ignore[no-untyped-call]
        return text

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        lines: list[str] = []
        for family in self.registry.collect():
            name = family.name + "_total" if family.type == "counter" else family.name
            lines.append(f"# HELP {name} {_escape_help(family.documentation)}")
            lines.append(f"# TYPE {name} {family.type}")
            for s in family.samples:
                if not s.name.endswith("_created"):
                    lines.append(f"{s.name}{_labels(s.labels)} {_number(s.value)}")
        return "\n".join(lines) + "\n"

    def _labelled(self, name: str, labels: dict[str, str]) -> Any:
        return self.child(name, *_values(name, labels)) if labels else self._series[name]

    def _samples(self) -> Iterator[Sample]:
        for family in self.registry.collect():
            yield from family.samples


class _Computed(Collector):
    """The gauge_fn values, read at scrape time."""

    def __init__(self, fns: dict[str, Callable[[], float]]) -> None:
        self._fns = fns

    def collect(self) -> Iterable[Metric]:
        for name, fn in sorted(self._fns.items()):
            kind, help_text = COMPUTED[name]
            if kind == "counter":
                yield CounterMetricFamily(name, help_text, value=fn())
            else:
                yield GaugeMetricFamily(name, help_text, value=fn())


_UNTIMED = {"wait_ready", "aclose"}  # coroutines that wait or close, not Conductor calls


class _Timed:
    """A Conductor client whose coroutine methods observe their latency; the rest pass through.

    Wrapped methods are kept in the instance dict, so after the first call a method is found
    without `__getattr__`; properties (`ready`) are read from the client every time.
    """

    def __init__(self, client: Any, metrics: Metrics) -> None:
        self._client = client
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in _UNTIMED and not name.startswith("_") and inspect.iscoroutinefunction(attr):
            attr = _timed_call(attr, name, self._metrics)
            setattr(self, name, attr)
        return attr


def _timed_call(
    call: Callable[..., Awaitable[Any]], operation: str, metrics: Metrics
) -> Callable[..., Awaitable[Any]]:
    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        status = "2xx"
        try:
            return await call(*args, **kwargs)
        except ConductorError as exc:
            status = f"{exc.status // 100}xx" if exc.status else "unreachable"
            raise
        finally:
            seconds = time.monotonic() - start
            metrics.child("gateway_conductor_request_seconds", operation, status).observe(seconds)

    return timed


def _declare(name: str, spec: Spec, registry: CollectorRegistry) -> MetricWrapperBase:
    if spec.kind == "counter":
        return Counter(name, spec.help, spec.labels, registry=registry)
    if spec.kind == "gauge":
        return Gauge(name, spec.help, spec.labels, registry=registry)
    return Histogram(name, spec.help, spec.labels, registry=registry, buckets=spec.buckets)


def _values(name: str, labels: dict[str, str]) -> tuple[str, ...]:
    names = SPECS[name].labels
    if set(labels) != set(names):
        raise KeyError(f"metric {name!r} takes labels {names}, got {tuple(sorted(labels))}")
    return tuple(labels[n] for n in names)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    # Sorted, as the gateway wrote them before prometheus-client: scrapers do not care, but
    # people grep for a series as they saw it.
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return str(int(value)) if float(value).is_integer() else repr(value)
