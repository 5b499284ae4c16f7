"""The live terminal view of a gateway (rich): `gateway dev` shows it, `gateway top` for any
running gateway from its admin endpoint (/metrics, /events, /readyz; gateway/cli/top.py).

Per rule the events/s over the last refresh and the outcomes so far, the last events with their
workflow ids, dead letters, completion events published, Conductor readiness and the gateway's
readiness reasons. Everything is computed from the Prometheus text (the same numbers a
dashboard gets) plus the admin endpoint's short list of recent events.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when used: `gateway run` builds the CLI without loading rich
    from rich.console import Group
    from rich.text import Text

REFRESH_SECONDS = 1.0
SHOWN_EVENTS = 10


@dataclass(frozen=True)
class Sample:
    """What one refresh read: the metrics text, recent events (newest last), readiness reasons."""

    metrics: str
    recent: Sequence[Mapping[str, Any]] = ()
    reasons: Sequence[str] = ()
    at: float = field(default_factory=time.monotonic)
    rules: Sequence[str] = ()  # the loaded rules, shown before their first event


@dataclass(frozen=True)
class RuleRow:
    rule: str
    per_second: float
    outcomes: Mapping[str, int]


@dataclass(frozen=True)
class View:
    rules: Sequence[RuleRow]
    recent: Sequence[Mapping[str, Any]]
    dead_letters: int
    completions: int
    conductor_ready: bool | None  # None: the gateway has not opened its Conductor client yet
    in_flight: int
    reasons: Sequence[str]


def read_view(now: Sample, before: Sample | None = None) -> View:
    """The view of `now`; rates are the difference from `before` (0 without it)."""
    counts = _settled_by_rule(now.metrics)
    earlier = _settled_by_rule(before.metrics) if before is not None else {}
    elapsed = now.at - before.at if before is not None else 0.0
    for rule in now.rules:
        counts.setdefault(rule, {})
    rows = []
    for rule, outcomes in sorted(counts.items()):
        done = sum(outcomes.values()) - sum(earlier.get(rule, {}).values())
        rate = done / elapsed if elapsed > 0 else 0.0
        rows.append(RuleRow(rule, rate, dict(sorted(outcomes.items()))))
    values = _plain_values(now.metrics)
    ready = values.get("gateway_conductor_ready")
    return View(
        rules=rows,
        recent=list(now.recent)[-SHOWN_EVENTS:],
        dead_letters=int(values.get("gateway_dead_letters_total", 0)),
        completions=int(values.get("gateway_completions_published_total", 0)),
        conductor_ready=None if ready is None else ready == 1,
        in_flight=int(values.get("gateway_in_flight", 0)),
        reasons=list(now.reasons),
    )


def _settled_by_rule(text: str) -> dict[str, dict[str, int]]:
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for family in text_string_to_metric_families(text):
        if family.name != "gateway_event_settle_seconds":
            continue
        for s in family.samples:
            if s.name.endswith("_count"):
                counts[s.labels["rule"]][s.labels["outcome"]] += int(s.value)
    return counts


def _plain_values(text: str) -> dict[str, float]:
    """Each series summed over its labels (dead letters by destination, ...)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            totals[s.name] += s.value
    return totals


def render(view: View) -> Group:
    from rich.console import Group
    from rich.table import Table

    rules = Table(title="Rules", expand=True)
    for column in ("rule", "events/s", "outcomes"):
        rules.add_column(column)
    for row in view.rules:
        outcomes = ", ".join(f"{name} {count}" for name, count in row.outcomes.items())
        rules.add_row(row.rule, f"{row.per_second:.1f}", outcomes)
    recent = Table(title="Last events", expand=True)
    recent.add_column("time", no_wrap=True, min_width=8)
    for column in ("event", "rule"):
        recent.add_column(column, overflow="ellipsis")
    recent.add_column("workflow", no_wrap=True, min_width=36)  # a whole id, to copy
    for column in ("outcome", "ms"):
        recent.add_column(column, no_wrap=True)
    for event in reversed(view.recent):
        when = time.strftime("%H:%M:%S", time.localtime(float(event.get("at", 0))))
        recent.add_row(
            when,
            str(event.get("event_id", "")),
            str(event.get("rule", "")),
            str(event.get("workflow_id", "")),
            _outcome(str(event.get("outcome", ""))),
            str(event.get("ms", "")),
        )
    return Group(rules, recent, _footer(view))


def _outcome(word: str) -> Text:
    from rich.text import Text

    return Text(word, style="red" if word == "dead_letter" else "green")


def _footer(view: View) -> Text:
    from rich.text import Text

    ready = {True: ("ready", "green"), False: ("not ready", "red"), None: ("opening", "yellow")}
    word, style = ready[view.conductor_ready]
    footer = Text()
    footer.append("Conductor ")
    footer.append(word, style=style)
    footer.append(f" | in flight {view.in_flight} | dead letters ")
    footer.append(str(view.dead_letters), style="red" if view.dead_letters else "")
    footer.append(f" | completions published {view.completions}")
    for reason in view.reasons:
        footer.append(f"\nnot ready: {reason}", style="yellow")
    return footer


def to_text(view: View, width: int = 120) -> str:
    """The view as plain text (for tests and logs)."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(render(view))
    output = console.file
    assert isinstance(output, io.StringIO)
    return output.getvalue()


async def show(read: Callable[[], Awaitable[Sample]], stop: asyncio.Event) -> None:
    """Refresh the view every REFRESH_SECONDS until `stop` is set; logs print above it."""
    from rich.live import Live
    from rich.text import Text

    before: Sample | None = None
    with Live(auto_refresh=False, redirect_stderr=True, redirect_stdout=True) as live:
        while not stop.is_set():
            try:
                now = await read()
            except Exception as exc:  # the gateway went away for a moment: say so, keep going
                live.update(Text(f"cannot read the gateway: {exc}", style="red"), refresh=True)
            else:
                live.update(render(read_view(now, before)), refresh=True)
                before = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)


def read_gateway(gateway: Any) -> Callable[[], Awaitable[Sample]]:
    """A reader of an in-process Gateway (what `gateway dev` shows)."""

    async def read() -> Sample:
        metrics, rules = gateway.metrics, [rule.name for rule in gateway.ruleset.rules]
        return Sample(metrics.render(), metrics.recent_events(), gateway.reasons(), rules=rules)

    return read
