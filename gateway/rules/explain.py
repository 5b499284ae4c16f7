"""The text of `gateway explain`: a pure function of a rule set and an event."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.errors import ConfigError
from gateway.events import Event, parse_body
from gateway.plan import Plan
from gateway.rules.request import plan_requests
from gateway.rules.router import Router
from gateway.rules.ruleset import RuleSet


def read_event(args: argparse.Namespace, ruleset: RuleSet, limits: Any) -> Event:
    """Build the Event the command line describes (body from a file, the rest from flags)."""
    try:
        raw = args.event.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--event {args.event}: cannot read: {exc.strerror}") from None
    body, problem = parse_body(
        raw, max_bytes=limits.max_message_bytes, max_depth=limits.max_json_depth
    )
    kind, name = _source(args.source, ruleset)
    headers = dict(_header(h) for h in args.header)
    common: dict[str, Any] = {"raw": raw, "body": body, "body_error": problem, "headers": headers}
    if kind == "kafka":
        return Event("kafka", topic=name, partition=0, offset=0, key=args.key, **common)
    return Event(
        "amqp",
        queue=name,
        key=args.key,
        exchange=args.exchange,
        routing_key=args.routing_key,
        reply_to=args.reply_to,
        correlation_id=args.correlation_id,
        message_id=args.message_id,
        **common,
    )


def _source(spec: str | None, ruleset: RuleSet) -> tuple[str, str]:
    if spec is None:
        channels = [r.source.channel for r in ruleset.rules if r.source.channel]
        if not channels:
            raise ConfigError("give --source kafka:TOPIC or amqp:QUEUE")
        spec = channels[0]
    kind, sep, name = spec.partition(":")
    if not sep or not name or kind not in ("kafka", "amqp"):
        raise ConfigError(f"--source '{spec}' must be kafka:TOPIC or amqp:QUEUE")
    return kind, name


def _header(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--header '{text}' must be KEY=VALUE")
    return key, value


def explain_event(ruleset: RuleSet, event: Event) -> str:
    lines = [
        *_describe_event(event),
        f"rules: {ruleset.file} (match_mode {ruleset.match_mode}, "
        f"on_unmatched {ruleset.on_unmatched})",
        "",
    ]
    result = Router(ruleset).route(event, explain=True)
    plans = {p.rule: p for p in result.plans}
    failures = {f.rule: f for f in result.failures}
    misses = {m.rule: m for m in result.misses}
    for rule in ruleset.rules:
        where = f"{rule.name} (line {rule.line})"
        if rule.name in plans:
            lines += [f"MATCH  {where}", *_describe_plan(plans[rule.name], event), ""]
        elif rule.name in failures:
            error = failures[rule.name].error
            lines += [f"ERROR  {where}: {type(error).__name__}: {error}", ""]
        else:
            lines.append(f"no     {where}: {misses[rule.name].reason}")
    lines += ["", _verdict(result)]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def _describe_event(event: Event) -> list[str]:
    where = (
        f"{event.channel} (partition {event.partition}, offset {event.offset})"
        if event.source == "kafka"
        else event.channel
    )
    lines = [f"event: {where}, source id {event.source_id}"]
    details = {
        "key": event.key,
        "exchange": event.exchange,
        "routing key": event.routing_key,
        "reply to": event.reply_to,
        "correlation id": event.correlation_id,
    }
    shown = [f"{k} {v!r}" for k, v in details.items() if v is not None]
    if event.headers:
        shown.append("headers " + json.dumps(dict(event.headers), ensure_ascii=False))
    if shown:
        lines.append("  " + ", ".join(shown))
    kind = "JSON" if event.body_error is None else f"text ({event.body_error})"
    lines.append(f"  body: {kind}, {len(event.raw)} bytes")
    return lines


def _describe_plan(plan: Plan, event: Event) -> list[str]:
    lines = [f"  action: {plan.action} -> ConductorClient.{plan.method}"]
    if plan.target is not None:
        lines.append(f"  target: {_target(plan)}")
    lines.append(f"  idempotency key: {plan.idempotency_key}")
    if plan.ordering_key is not None:
        lines.append(f"  ordering key: {plan.ordering_key}")
    r = plan.retry
    lines.append(
        f"  retry: up to {r.max_attempts} attempts, backoff {r.initial_backoff:g}s"
        f" x{r.multiplier:g} up to {r.max_backoff:g}s, for at most {r.max_age_seconds:g}s"
    )
    lines.append(f"  dead letter: {plan.dead_letter or 'none (settled by the source)'}")
    lines += _extras(plan, event)
    for i, request in enumerate(plan_requests(plan), 1):
        note = f"  ({request.note})" if request.note else ""
        lines.append(f"  request {i}: {request.line()}{note}")
        body = request.body_json()
        if body is not None:
            lines += ["    " + line for line in body.splitlines()]
    return lines


def _target(plan: Plan) -> str:
    t = plan.target
    assert t is not None
    if t.workflow_id:
        how = f"workflow id {t.workflow_id!r}"
    elif t.correlation_id:
        how = f"workflow '{t.workflow_name}' with correlation id {t.correlation_id!r}"
    else:
        how = f"search {t.query!r}"
    missing = t.on_missing + (f" for {t.retry_for_seconds:g}s" if t.on_missing == "retry" else "")
    if t.start is not None:  # signal-with-start: both paths, as the event would take them
        missing = (
            f"start workflow '{t.start['name']}' (correlation id {t.start['correlation_id']!r},"
            f" input {json.dumps(t.start.get('input'), default=str)}) once per correlation id,"
            f" then {plan.action} it"
        )
    return f"{how}; none found: {missing}; several: {t.on_many}"


def _extras(plan: Plan, event: Event) -> list[str]:
    lines = []
    if plan.rate_limit is not None:
        rl = plan.rate_limit
        limits = []
        if rl.max_concurrent is not None:
            limits.append(f"at most {rl.max_concurrent} at once")
        if rl.max_per_interval is not None:
            limits.append(f"at most {rl.max_per_interval} per {rl.interval_seconds:g}s")
        lines.append("  rate limit: " + ", ".join(limits))
    if plan.completion is not None:
        statuses = ", ".join(sorted(plan.completion.statuses))
        lines.append(f"  completion: publish to {plan.completion.destination} on {statuses}")
    if plan.reply is not None:
        to = plan.reply.destination or "the message's reply-to"
        when = "on completion" if plan.reply.wait_for_completion else "with the result"
        missing = plan.reply.destination is None and not event.reply_to
        lines.append(
            f"  reply: to {to} {when}" + (" (this event has none: no reply)" if missing else "")
        )
    return lines


def _verdict(result: Any) -> str:
    if result.failures:
        return (
            f"result: {len(result.failures)} rule error(s): the event would be dead-lettered "
            "(a permanent error)"
        )
    if result.plans:
        n = len(result.plans)
        return f"result: {n} matching rule{'s' if n != 1 else ''}"
    action = "acknowledged and dropped" if result.on_unmatched == "ack" else "dead-lettered"
    return (
        f"result: no rule matched; on_unmatched {result.on_unmatched}: the event would be {action}"
    )
