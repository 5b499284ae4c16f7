"""The router: one event in, the Plans of the rules it matches out (in file order).

Rules are indexed by channel (`kafka:<topic>` / `amqp:<queue>`), so the cost of routing an
event does not grow with rules written for other sources; rules with a topic pattern are
resolved once per topic and cached. Every failure to render surfaces as a `PlanFailure` holding
a TemplateError or EventError (permanent for this event), never as another exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import EventError, TemplateError
from gateway.events import Event
from gateway.plan import Destination, Plan
from gateway.rules.ruleset import OnUnmatched, Rule, RuleSet

MAX_CACHED_CHANNELS = 10_000


@dataclass(frozen=True, slots=True)
class Miss:
    """A rule that did not match, and why (filled in only when explaining)."""

    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class PlanFailure:
    """A rule that applies to the event but cannot be turned into a Plan: a permanent error."""

    rule: str
    error: TemplateError | EventError
    dead_letter: Destination | None = None  # the rule's dead-letter target (or the default)


@dataclass(frozen=True, slots=True)
class RouteResult:
    plans: tuple[Plan, ...]
    failures: tuple[PlanFailure, ...]
    misses: tuple[Miss, ...]
    on_unmatched: OnUnmatched

    @property
    def unmatched(self) -> bool:
        """No rule applied: settle by the rule set's `on_unmatched` policy."""
        return not self.plans and not self.failures


class Router:
    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self._exact: dict[str, list[Rule]] = {}
        self._patterned: list[Rule] = []
        for rule in ruleset.rules:
            channel = rule.source.channel
            if channel is None:
                self._patterned.append(rule)
            else:
                self._exact.setdefault(channel, []).append(rule)
        self._cache: dict[str, tuple[Rule, ...]] = {}

    def candidates(self, event: Event) -> tuple[Rule, ...]:
        """The rules whose source takes this event's channel, in file order."""
        channel = event.channel
        found = self._cache.get(channel)
        if found is None:
            found = self._resolve(event)
            if len(self._cache) >= MAX_CACHED_CHANNELS:
                self._cache.clear()
            self._cache[channel] = found
        return found

    def _resolve(self, event: Event) -> tuple[Rule, ...]:
        rules = list(self._exact.get(event.channel, ()))
        rules += [r for r in self._patterned if r.source.refuses(event) is None]
        return tuple(sorted(rules, key=lambda r: r.index))

    def route(self, event: Event, *, explain: bool = False) -> RouteResult:
        first = self.ruleset.match_mode == "first"
        plans: list[Plan] = []
        failures: list[PlanFailure] = []
        misses: list[Miss] = []
        doc: dict[str, Any] | None = None
        for rule in self.candidates(event):
            if doc is None:
                doc = event.envelope()
            miss = _evaluate(rule, event, doc, plans, failures, explain)
            if miss is not None:
                if explain:
                    misses.append(Miss(rule.name, miss))
                continue
            if first:
                break
        if explain:
            misses = self._explain_rest(event, misses, plans, failures)
        return RouteResult(tuple(plans), tuple(failures), tuple(misses), self.ruleset.on_unmatched)

    def _explain_rest(
        self, event: Event, misses: list[Miss], plans: list[Plan], failures: list[PlanFailure]
    ) -> list[Miss]:
        decided = {m.rule for m in misses} | {p.rule for p in plans} | {f.rule for f in failures}
        candidates = {r.name for r in self.candidates(event)}
        out = {m.rule: m for m in misses}
        for rule in self.ruleset.rules:
            if rule.name in decided:
                continue
            if rule.name in candidates:
                out[rule.name] = Miss(
                    rule.name, "not evaluated: an earlier rule took the event (match_mode first)"
                )
            else:
                out[rule.name] = Miss(rule.name, rule.source.refuses(event) or "other source")
        order = {r.name: r.index for r in self.ruleset.rules}
        return sorted(out.values(), key=lambda m: order[m.rule])


def _evaluate(
    rule: Rule,
    event: Event,
    doc: Mapping[str, Any],
    plans: list[Plan],
    failures: list[PlanFailure],
    explain: bool,
) -> str | None:
    """Append the rule's Plan (or PlanFailure) and return None, or return why it does not match
    (the full reason only when explaining: building it costs more than matching)."""
    if rule.source.exchange is not None:
        refused = rule.source.refuses(event)
        if refused is not None:
            return refused
    if event.body_error is not None and not rule.accept_raw_text:
        error = EventError(f"{event.body_error} (set accept_raw_text: true to take text)")
        failures.append(PlanFailure(rule.name, error, rule.options.dead_letter))
        return None
    if not rule.pattern.matches(doc):
        return "match: " + (rule.pattern.mismatch(doc) or "no match") if explain else "match"
    try:
        if rule.condition is not None:
            value = rule.condition.evaluate(doc, strict=False)
            if not _truthy(value):
                return f"condition: {rule.condition.source!r} is {_show(value)}"
        plans.append(rule.plan(doc, event))
    except TemplateError as exc:
        failures.append(PlanFailure(rule.name, exc, rule.options.dead_letter))
    return None


def _truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; 0 is true."""
    return value is not None and value is not False and value != "" and value != [] and value != {}


def _show(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=str)[:80]
