"""In-process counters and gauges, rendered in the Prometheus text format by the admin endpoint.

Deliberately tiny (no client library): a handful of labelled counters are all the daemon needs,
and every update is a dict increment on the event loop's thread.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

Labels = tuple[tuple[str, str], ...]

_HELP = {
    "gateway_events_received_total": ("counter", "Messages taken from a source."),
    "gateway_events_settled_total": ("counter", "Messages settled, by outcome."),
    "gateway_retries_total": ("counter", "Retry attempts scheduled after a retryable failure."),
    "gateway_dead_letters_total": ("counter", "Messages published to a dead-letter target."),
    "gateway_in_flight": ("gauge", "Messages taken but not settled yet."),
    "gateway_consumer_lag": ("gauge", "Kafka messages behind the high-water mark."),
    "gateway_consumer_stalled": (
        "gauge",
        "1 when a partition has lag but made no progress, or no partitions were assigned for long.",
    ),
    "gateway_conductor_ready": ("gauge", "1 while Conductor answers."),
    "gateway_dead_letter_blocked": (
        "gauge",
        "Deliveries whose dead letter keeps failing to publish (their source cannot move on).",
    ),
    "gateway_auth_failures_total": ("counter", "Calls Conductor refused (401/403)."),
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
    """Counters and gauges keyed by name and sorted label pairs."""

    def __init__(self) -> None:
        self._values: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._gauge_fns: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        series = self._values[name]
        series[key] = series.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        self._values[name][tuple(sorted(labels.items()))] = value

    def remove(self, name: str, **labels: str) -> None:
        """Drop one series (a partition this member no longer owns reports nothing)."""
        self._values.get(name, {}).pop(tuple(sorted(labels.items())), None)

    def gauge_fn(self, name: str, fn: Callable[[], float]) -> None:
        """A gauge computed when scraped (in-flight counts, readiness)."""
        self._gauge_fns[name] = fn

    def value(self, name: str, **labels: str) -> float:
        return self._values.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def total(self, name: str) -> float:
        return sum(self._values.get(name, {}).values())

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        lines: list[str] = []
        names = sorted(set(self._values) | set(self._gauge_fns) | set(_HELP))
        for name in names:
            kind, help_text = _HELP.get(name, ("gauge", name))
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            if name in self._gauge_fns:
                lines.append(f"{name} {_number(self._gauge_fns[name]())}")
                continue
            for labels, value in sorted(self._values.get(name, {}).items()):
                lines.append(f"{name}{_labels(labels)} {_number(value)}")
        return "\n".join(lines) + "\n"


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
