"""`gateway dlq replay`: put dead letters back on the topic or queue they came from.

Each dead letter names its origin in `x-gateway-error-origin`; replay republishes the original
body, key and headers (the `x-gateway-error-*` headers stripped) there, waits for the broker's
confirmation, and only then marks the dead letter handled.

The origin is taken from the message, so it is checked: replay publishes only to origins that
are sources of the loaded rules (`rules_file`), so a forged or stale header cannot send
messages anywhere else. Other dead letters are refused, reported one by one and left in the
dead letters. `--to DESTINATION` replays everything to that destination instead.

A dead letter whose body the broker refused for size carries `x-gateway-error-body-ref`: the
body is read from the file kept beside the store (`store.sqlite_path`'s directory), checked
against its SHA-256, and replayed as the original bytes; one that cannot be found is refused.

Replay reads only the dead letters stored when it started (see gateway/sources/stored.py), so
a replayed message that fails again is not replayed again in the same run. `--rule` replays
only dead letters of that rule; `--limit` stops after N; `--dry-run` prints what would be
replayed and publishes and settles nothing. Exit status 1 when a dead letter was refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.deadletters import BODY_REF, PREFIX, KeptBodies, KeptBodyMissing, strip_error_headers
from gateway.errors import ConfigError
from gateway.plan import Destination
from gateway.rules.ruleset import RuleSet, Source
from gateway.settings import Settings
from gateway.sinks import Publisher
from gateway.sources.stored import StoredMessage, StoredReader, open_stored

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Report:
    replayed: int = 0  # with --dry-run: would be replayed
    refused: int = 0  # left in the dead letters
    skipped: int = 0  # of another rule (--rule)


@dataclass(frozen=True, slots=True)
class Request:
    source: Destination
    rule: str | None
    limit: int | None
    to: Destination | None
    dry_run: bool
    ruleset: RuleSet | None  # the origins allowed without --to
    rules_file: str
    kept: KeptBodies  # bodies the dead-letter broker refused for size


def run_replay(args: argparse.Namespace) -> int:
    """The `gateway dlq replay` command."""
    from gateway import logs
    from gateway.settings import load_settings

    settings = load_settings(args.config)
    logs.configure(settings.logging.level, settings.logging.format, settings.logging.levels)
    report = asyncio.run(
        replay(
            settings,
            args.source,
            rule=args.rule,
            limit=args.limit,
            to=args.to,
            dry_run=args.dry_run,
        )
    )
    verb = "would replay" if args.dry_run else "replayed"
    print(
        f"{verb} {report.replayed} dead letters from {args.source}; "
        f"refused {report.refused} (left in {args.source}); skipped {report.skipped} of other rules"
    )
    return 1 if report.refused else 0


async def replay(
    settings: Settings,
    source: str,
    *,
    rule: str | None = None,
    limit: int | None = None,
    to: str | None = None,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
) -> Report:
    """Republish dead letters from `source` (see the module doc); `say` gets per-message lines."""
    request = _request(settings, source, rule, limit, to, dry_run)
    try:
        reader_cm = open_stored(settings, request.source, rule or "all")
    except ValueError as exc:
        raise ConfigError(f"--from {source}: {exc}") from None
    report = Report()
    async with contextlib.AsyncExitStack() as stack:
        try:
            reader = await stack.enter_async_context(reader_cm)
        except ValueError as exc:
            raise ConfigError(f"--from {source}: {exc}") from None
        publisher = None if dry_run else await stack.enter_async_context(Publisher(settings))
        await _replay_all(request, reader, publisher, report, say)
    return report


def _request(
    settings: Settings,
    source: str,
    rule: str | None,
    limit: int | None,
    to: str | None,
    dry_run: bool,
) -> Request:
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: give a positive number of messages")
    try:
        target = Destination.parse(to) if to is not None else None
    except ConfigError as exc:
        raise ConfigError(f"--to: {exc}") from None
    ruleset = None
    if target is None:
        from gateway.rules.loader import load_rules

        ruleset = load_rules(settings.rules_file)
    return Request(
        Destination.parse(source),
        rule,
        limit,
        target,
        dry_run,
        ruleset,
        str(settings.rules_file),
        KeptBodies.beside(settings.store),
    )


async def _replay_all(
    request: Request,
    reader: StoredReader,
    publisher: Publisher | None,
    report: Report,
    say: Callable[[str], None],
) -> None:
    async for message in reader.messages():
        if request.rule is not None and message.headers.get(PREFIX + "rule") != request.rule:
            report.skipped += 1
            continue
        target, refusal = _target(request, message)
        body = message.body
        if target is not None and BODY_REF in message.headers:
            try:
                body = await request.kept.read(message.headers[BODY_REF])
            except KeptBodyMissing as exc:
                target, refusal = None, str(exc)
        if target is None:
            report.refused += 1
            say(f"refused {message.where}: {refusal}; left in the dead letters")
            await reader.keep(message)
            continue
        if publisher is None:
            say(f"would replay {message.where}{_rule_of(message)} to {target}")
        else:
            await _publish(publisher, target, message, body)
            await reader.done(message)
        report.replayed += 1
        if request.limit is not None and report.replayed >= request.limit:
            return


def _target(request: Request, message: StoredMessage) -> tuple[Destination | None, str]:
    """Where to replay `message`, or None and why not."""
    if request.to is not None:
        return request.to, ""
    origin = message.headers.get(PREFIX + "origin")
    if not origin:
        return None, f"no {PREFIX}origin header (not a gateway dead letter); give --to DESTINATION"
    try:
        target = Destination.parse(origin)
    except ConfigError:
        return None, f"{PREFIX}origin {origin!r} is not a destination; give --to DESTINATION"
    if request.ruleset is None or not is_rule_source(request.ruleset, target):
        return None, (
            f"origin {origin} is not a source of the rules in {request.rules_file}; "
            "give --to DESTINATION to replay it elsewhere"
        )
    return target, ""


def is_rule_source(ruleset: RuleSet, target: Destination) -> bool:
    """Whether `target` is a topic or queue some rule consumes."""
    return any(_consumes(rule.source, target) for rule in ruleset.rules)


def _consumes(source: Source, target: Destination) -> bool:
    if target.kind == "kafka" and source.kind == "kafka":
        pattern = source.topic_pattern
        return source.topic == target.name or bool(pattern and pattern.fullmatch(target.name))
    if target.kind == "amqp" and source.kind == "amqp":
        return not target.name and source.queue == target.routing_key
    return False


async def _publish(
    publisher: Any, target: Destination, message: StoredMessage, body: bytes
) -> None:
    await publisher.publish(
        target,
        body,
        key=message.key,
        headers=strip_error_headers(message.headers),
        correlation_id=message.correlation_id,
        content_type=message.headers.get("content-type", "application/json"),
    )


def _rule_of(message: StoredMessage) -> str:
    rule = message.headers.get(PREFIX + "rule")
    return f" (rule {rule})" if rule else ""
