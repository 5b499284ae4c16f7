"""The compiled rule set: frozen values built once at load, read by the router per event."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.events import Event
from gateway.plan import (
    CompletionSpec,
    Destination,
    Plan,
    RateLimit,
    ReplySpec,
    RetryPolicy,
)
from gateway.rules.actions import ActionSpec
from gateway.rules.pattern import Pattern
from gateway.rules.template import Expression, Renderer

MatchMode = Literal["first", "all"]
OnUnmatched = Literal["ack", "dead_letter"]


@dataclass(frozen=True, slots=True)
class Source:
    """Which deliveries a rule sees: a Kafka topic (or topic regex) or an AMQP queue."""

    kind: Literal["kafka", "amqp"]
    topic: str | None = None
    topic_pattern: re.Pattern[str] | None = None
    queue: str | None = None
    exchange: str | None = None  # AMQP: the exchange the gateway binds the queue to
    routing_key: str | None = None  # AMQP binding key (topic-exchange syntax: * and #)
    routing_words: tuple[str, ...] | None = None

    @property
    def channel(self) -> str | None:
        """`kafka:<topic>` or `amqp:<queue>` when exact; None for a topic pattern."""
        if self.topic is not None:
            return f"kafka:{self.topic}"
        if self.queue is not None:
            return f"amqp:{self.queue}"
        return None

    def describe(self) -> str:
        if self.topic_pattern is not None:
            return f"kafka topic pattern {self.topic_pattern.pattern!r}"
        text = self.channel or ""
        if self.exchange is not None:
            text += f" (bound to {self.exchange}" + (
                f" with {self.routing_key!r})" if self.routing_key else ")"
            )
        return text

    def refuses(self, event: Event) -> str | None:
        """Why this source does not take `event` (None when it does)."""
        if self.kind != event.source:
            return f"source is {self.describe()}, the event came from {event.channel}"
        if self.topic_pattern is not None:
            if event.topic is None or not self.topic_pattern.fullmatch(event.topic):
                return f"topic {event.topic!r} does not match {self.topic_pattern.pattern!r}"
            return None
        if self.channel != event.channel:
            return f"source is {self.describe()}, the event came from {event.channel}"
        return self._refuses_binding(event)

    def _refuses_binding(self, event: Event) -> str | None:
        # Several bindings can feed one queue; a rule bound with a key sees only its messages.
        if self.exchange is not None and event.exchange not in (None, self.exchange):
            return f"exchange {event.exchange!r} is not {self.exchange!r}"
        key = event.routing_key
        if self.routing_words is None or key is None:
            return None
        if binding_matches(self.routing_words, tuple(key.split("."))):
            return None
        return f"routing key {key!r} does not match {self.routing_key!r}"


def binding_matches(pattern: tuple[str, ...], key: tuple[str, ...]) -> bool:
    """AMQP topic-exchange binding syntax: `*` is exactly one word, `#` zero or more words.

    Dynamic programming over the key positions each pattern prefix can reach: O(pattern x key)
    whatever the key (it comes from the publisher), where naive backtracking on several `#`
    is exponential.
    """
    size = len(key)
    reachable = {0}  # positions in `key` the pattern so far can have consumed up to
    for word in pattern:
        if word == "#":
            reachable = set(range(min(reachable), size + 1))
        else:
            reachable = {i + 1 for i in reachable if i < size and (word == "*" or word == key[i])}
        if not reachable:
            return False
    return size in reachable


@dataclass(frozen=True, slots=True)
class Options:
    """What a Plan carries besides the call: resolved against the rule set's defaults."""

    idempotency_key: Renderer | None
    ordering_key: Renderer | None
    retry: RetryPolicy
    dead_letter: Destination | None
    rate_limit: RateLimit | None
    completion: CompletionSpec | None
    reply: ReplySpec | None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    index: int  # position in the file (0-based)
    line: int | None
    source: Source
    pattern: Pattern
    condition: Expression | None
    accept_raw_text: bool
    action: ActionSpec
    options: Options

    def plan(self, doc: Mapping[str, Any], event: Event) -> Plan:
        """Render this rule's Plan for one event (TemplateError when it cannot)."""
        spec, opts = self.action, self.options
        return Plan(
            rule=self.name,
            action=spec.action,
            method=spec.method,
            params=spec.render_params(doc),
            target=spec.target.render(doc) if spec.target is not None else None,
            idempotency_key=_key(opts.idempotency_key, doc, "idempotency_key")
            if opts.idempotency_key is not None
            else event.source_id,
            ordering_key=_key(opts.ordering_key, doc, "ordering_key")
            if opts.ordering_key is not None
            else None,
            retry=opts.retry,
            dead_letter=opts.dead_letter,
            rate_limit=opts.rate_limit,
            completion=opts.completion,
            reply=opts.reply,
        )


def _key(render: Renderer, doc: Mapping[str, Any], name: str) -> str:
    from gateway.errors import TemplateError

    value = render(doc)
    if value is None or value == "":
        raise TemplateError(f"{name} rendered {'null' if value is None else 'an empty string'}")
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    match_mode: MatchMode = "first"
    on_unmatched: OnUnmatched = "ack"
    default_retry: RetryPolicy = field(default_factory=RetryPolicy)
    default_dead_letter: Destination | None = None
    file: str | None = None

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def kafka_topics(self) -> frozenset[str]:
        """Exact topics to subscribe to."""
        return frozenset(r.source.topic for r in self.rules if r.source.topic is not None)

    def kafka_topic_patterns(self) -> tuple[str, ...]:
        """Topic regexes to subscribe with (aiokafka `pattern=`), in file order, deduplicated."""
        seen: dict[str, None] = {}
        for r in self.rules:
            if r.source.topic_pattern is not None:
                seen[r.source.topic_pattern.pattern] = None
        return tuple(seen)

    def amqp_queues(self) -> frozenset[str]:
        return frozenset(r.source.queue for r in self.rules if r.source.queue is not None)

    def amqp_bindings(self) -> tuple[tuple[str, str, str], ...]:
        """(queue, exchange, routing key) bindings the AMQP source should declare."""
        seen: dict[tuple[str, str, str], None] = {}
        for r in self.rules:
            s = r.source
            if s.queue is not None and s.exchange is not None:
                seen[(s.queue, s.exchange, s.routing_key or "#")] = None
        return tuple(seen)

    # -- topology: what the sources subscribe to and declare ------------------------------------

    def kafka_pattern(self) -> str | None:
        """One anchored regex for every topic pattern of the rules (aiokafka takes one), the
        exact topics included; None when no rule has a pattern."""
        patterns = self.kafka_topic_patterns()
        if not patterns:
            return None
        exact = [re.escape(t) for t in sorted(self.kafka_topics())]
        return "^(?:" + "|".join([*(f"(?:{p})" for p in patterns), *exact]) + ")$"

    def amqp_queue_bindings(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """Each queue to consume, in name order, with its (exchange, routing key) bindings."""
        bindings: dict[str, list[tuple[str, str]]] = {q: [] for q in sorted(self.amqp_queues())}
        for queue, exchange, routing_key in self.amqp_bindings():
            bindings.setdefault(queue, []).append((exchange, routing_key))
        return {queue: tuple(pairs) for queue, pairs in bindings.items()}

    def amqp_declared_queues(self) -> list[str]:
        """Queues the gateway publishes to through the default exchange: declared so a publish
        is routable (dead letters by default go to `<queue>.dlq`)."""
        names = {f"{queue}.dlq" for queue in self.amqp_queue_bindings()}
        for destination in self.destinations():
            if destination.kind == "amqp" and destination.name == "":
                names.add(destination.routing_key)
        return sorted(names)

    def destinations(self) -> list[Destination]:
        """Every destination the rules publish to: dead letters, completions, replies."""
        found: list[Destination] = []
        if self.default_dead_letter is not None:
            found.append(self.default_dead_letter)
        for rule in self.rules:
            opts = rule.options
            if opts.dead_letter is not None:
                found.append(opts.dead_letter)
            if opts.completion is not None:
                found.append(opts.completion.destination)
            if opts.reply is not None and opts.reply.destination is not None:
                found.append(opts.reply.destination)
        return found
