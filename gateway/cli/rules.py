"""`gateway check` and `gateway explain`.

check:   settings (exit 2 when invalid), then rules (exit 1 on errors, or when the reachable
         Conductor lacks a capability a rule needs); warnings never fail the check.
explain: which rules an event matches, why the others do not, and the exact requests each
         matched rule would send to Conductor. It calls nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.errors import RuleError

if TYPE_CHECKING:
    from gateway.rules.ruleset import RuleSet

PROBE_TIMEOUT_SECONDS = 5.0


def register(sub: Any, config: argparse.ArgumentParser) -> None:
    check = sub.add_parser("check", parents=[config], help="validate settings and rules, then exit")
    check.add_argument(
        "--rules", type=Path, default=None, metavar="FILE", help="rules file (default: settings)"
    )
    check.add_argument(
        "--offline", action="store_true", help="do not ask Conductor for its capabilities"
    )
    check.set_defaults(func=_check)

    explain = sub.add_parser(
        "explain", parents=[config], help="show what the rules do with one event"
    )
    explain.add_argument("--rules", type=Path, default=None, metavar="FILE")
    explain.add_argument("--event", type=Path, required=True, metavar="FILE", help="body")
    explain.add_argument("--header", action="append", default=[], metavar="K=V")
    explain.add_argument("--key", default=None, help="Kafka message key")
    explain.add_argument("--source", default=None, metavar="kafka:TOPIC|amqp:QUEUE")
    explain.add_argument("--exchange", default=None, help="AMQP exchange it arrived through")
    explain.add_argument("--routing-key", default=None, help="AMQP routing key")
    explain.add_argument("--reply-to", default=None, help="AMQP reply-to")
    explain.add_argument("--correlation-id", default=None, help="AMQP correlation id")
    explain.add_argument("--message-id", default=None, help="AMQP message id")
    explain.set_defaults(func=_explain)


# --- check -------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    from gateway.rules.analysis import analyse
    from gateway.settings import load_settings

    settings = load_settings(args.config)  # a ConfigError here exits 2 (cli.main)
    print("settings: ok")
    ruleset = _load_or_report(args.rules or settings.rules_file)
    if ruleset is None:
        return 1
    for warning in analyse(ruleset):
        print(warning.render(ruleset.file))
    failed = False if args.offline else _probe(ruleset, settings)
    if failed:
        return 1
    print(f"rules: ok ({_summary(ruleset)})")
    return 0


def _load_or_report(path: Path | str) -> RuleSet | None:
    """The rule set at `path`, or None after printing every error in it to stderr."""
    from gateway.rules.loader import RuleSetError, load_rules

    try:
        return load_rules(path)
    except RuleSetError as exc:
        for error in exc.errors:
            print(error.render(), file=sys.stderr)
    except RuleError as exc:
        print(exc.render(), file=sys.stderr)
    return None


def _summary(ruleset: Any) -> str:
    n = len(ruleset.rules)
    topics = len(ruleset.kafka_topics()) + len(ruleset.kafka_topic_patterns())
    queues = len(ruleset.amqp_queues())
    return (
        f"{n} rule{'s' if n != 1 else ''}, {topics} Kafka topic{'s' if topics != 1 else ''}, "
        f"{queues} AMQP queue{'s' if queues != 1 else ''}, match_mode {ruleset.match_mode}"
    )


def _probe(ruleset: Any, settings: Any) -> bool:
    """Ask Conductor what it supports; True when a rule needs something it lacks."""
    from gateway.rules.capabilities import (
        flavor_notes,
        missing_capabilities,
        required_capabilities,
    )

    if not required_capabilities(ruleset) and not _has_flavor_options(ruleset):
        return False
    url = settings.conductor.url
    try:
        caps = asyncio.run(asyncio.wait_for(_capabilities(settings), PROBE_TIMEOUT_SECONDS))
    except ImportError as exc:
        print(f"conductor: not probed (the client is not available: {exc})")
        return False
    except Exception as exc:  # unreachable, refused, timed out, or a client
        # still being built: the check reports it and passes, it never crashes
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][-160:]
        print(f"conductor: not probed ({url} did not answer: {reason})")
        _print_needs(ruleset)
        return False
    print(f"conductor: {caps.flavor} at {url}")
    for rule_name, note in flavor_notes(ruleset, caps):
        rule = ruleset.rule(rule_name)
        print(f"{ruleset.file}:{rule.line} rule '{rule_name}': warning: {note}")
    missing = missing_capabilities(ruleset, caps)
    for req in missing:
        rule = ruleset.rule(req.rule)
        error = RuleError(
            f"{req.reason}, which this Conductor ({caps.flavor}) lacks; {req.fix}",
            file=ruleset.file,
            line=rule.line,
            rule=req.rule,
            key=req.action if req.action != "retry" else "retry_workflow",
        )
        print(error.render(), file=sys.stderr)
    return bool(missing)


def _has_flavor_options(ruleset: Any) -> bool:
    return any(r.action.method == "terminate" for r in ruleset.rules)


def _print_needs(ruleset: Any) -> None:
    from gateway.rules.capabilities import required_capabilities

    for req in required_capabilities(ruleset):
        print(f"  rule '{req.rule}' needs '{req.capability}': {req.reason}")


async def _capabilities(settings: Any) -> Any:
    from gateway.conductor import ConductorClient

    async with ConductorClient.from_settings(settings.conductor) as client:
        return await client.capabilities()


# --- explain -----------------------------------------------------------------------------


def _explain(args: argparse.Namespace) -> int:
    from gateway.rules.explain import explain_event, read_event
    from gateway.settings import load_settings

    settings = load_settings(args.config)
    ruleset = _load_or_report(args.rules or settings.rules_file)
    if ruleset is None:
        return 1
    event = read_event(args, ruleset, settings.limits)
    print(explain_event(ruleset, event), end="")
    return 0
