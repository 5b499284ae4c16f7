"""Building events and rule sets for the rules tests."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from gateway.events import Event
from gateway.rules.loader import parse_rules
from gateway.rules.ruleset import RuleSet


def kafka_event(body: Any, topic: str = "orders", **extra: Any) -> Event:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return Event(
        "kafka",
        raw=raw,
        body=body,
        topic=topic,
        partition=extra.pop("partition", 0),
        offset=extra.pop("offset", 7),
        **extra,
    )


def amqp_event(body: Any, queue: str = "payments", **extra: Any) -> Event:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return Event("amqp", raw=raw, body=body, queue=queue, **extra)


def text_event(text: str, topic: str = "orders") -> Event:
    return Event(
        "kafka",
        raw=text.encode(),
        body=text,
        body_error="body is not JSON",
        topic=topic,
        partition=0,
        offset=1,
    )


def rules(yaml_text: str, file: str = "rules.yaml") -> RuleSet:
    return parse_rules(textwrap.dedent(yaml_text), file=file)


def one_rule(body: str, source: str = "{topic: orders}", **top: str) -> RuleSet:
    """A rule set with one rule `r` whose remaining keys are `body` (YAML, indented 4)."""
    head = "".join(f"{k}: {v}\n" for k, v in top.items())
    text = head + "rules:\n  - name: r\n    source: " + source + "\n"
    text += textwrap.indent(textwrap.dedent(body), "    ")
    return parse_rules(text, file="rules.yaml")
