"""Loading a rules file: every error names file, line, rule and key; all errors are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import RuleError, TemplateError
from gateway.rules.loader import RuleSetError, load_rules, parse_rules

from .helpers import rules

ROOT = Path(__file__).resolve().parents[2]


def errors_of(text: str) -> list[str]:
    with pytest.raises(RuleError) as info:
        rules(text)
    error = info.value
    return [e.render() for e in error.errors] if isinstance(error, RuleSetError) else [str(error)]


def test_the_example_rules_load() -> None:
    ruleset = load_rules(ROOT / "config" / "rules.yaml")
    assert [r.name for r in ruleset.rules] == [
        "start-order",
        "cancel-order",
        "payment-received",
        "quote-request",
    ]
    assert ruleset.kafka_topics() == {"orders"}
    assert ruleset.amqp_queues() == {"payments", "quotes"}
    assert ruleset.amqp_bindings() == (("payments", "payments", "payment.*"),)


def test_error_names_file_line_rule_and_key() -> None:
    text = """\
        rules:
          - name: ok
            source: {topic: orders}
            pause: {workflow_id: x}
          - name: cancel-order
            source: {topic: orders}
            terminate:
              workflow_id: "${body.id"
        """
    assert errors_of(text) == [
        "rules.yaml:8 rule 'cancel-order': terminate.workflow_id: template '${body.id' is "
        "missing '}'"
    ]


def test_an_operator_outside_a_value_list_is_a_load_error() -> None:
    text = """\
        rules:
          - name: created
            source: {topic: orders}
            match: {body: {type: {prefix: Order}}}
            pause: {workflow_id: x}
        """
    [error] = errors_of(text)
    assert "rule 'created'" in error
    assert "'prefix' is an operator, not a field" in error
    assert 'type: [{prefix: "Order"}]' in error


def test_all_errors_are_reported_in_file_order() -> None:
    text = """\
        match_mode: sometimes
        rules:
          - name: a
            source: {topic: t}
            pause: {workflow_id: x, colour: red}
          - name: b
            source: {queue: q}
            match: {body: {n: [{numeric: [">"]}]}}
            pause: {workflow_id: x}
          - source: {queue: q}
            pause: {workflow_id: x}
        """
    assert errors_of(text) == [
        "rules.yaml:1: match_mode: Input should be 'first' or 'all' (got 'sometimes')",
        "rules.yaml:5 rule 'a': pause.colour: unknown key; allowed here: workflow_id, "
        "correlation_id, workflow_name, query, on_missing, retry_for_seconds, on_many",
        "rules.yaml:8 rule 'b': match.body.n.0.numeric: numeric takes [op, number] or [op, "
        'number, op, number], e.g. [">", 0, "<=", 5]',
        "rules.yaml:10 rule '#3': name: required key is missing",
    ]


def test_duplicate_rule_names_and_keys() -> None:
    text = """\
        rules:
          - name: a
            source: {topic: t}
            pause: {workflow_id: x}
          - name: a
            source: {topic: t}
            pause: {workflow_id: x}
        """
    assert errors_of(text) == [
        "rules.yaml:5 rule 'a': name: duplicate rule name (first at rule #1)"
    ]
    text = """\
        rules:
          - name: a
            source: {topic: t}
            pause: {workflow_id: x}
            pause: {workflow_id: y}
        """
    assert errors_of(text) == ["rules.yaml:5: duplicate key 'pause'"]


def test_yaml_syntax_errors_have_a_line() -> None:
    (error,) = errors_of("rules:\n  - name: a\n    source: {topic: t\n")
    assert error.startswith("rules.yaml:4: not valid YAML")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "the top level must be a mapping"),
        ("version: 2", "version: Input should be 1"),
        (
            "rules: [{name: a, source: {topic: t, queue: q}, pause: {workflow_id: x}}]",
            "give exactly one of topic, topic_pattern (Kafka) or queue (AMQP)",
        ),
        (
            "rules: [{name: a, source: {topic: t, exchange: e}, pause: {workflow_id: x}}]",
            "exchange and routing_key go with queue",
        ),
        (
            "rules: [{name: a, source: {topic_pattern: '(x'}, pause: {workflow_id: x}}]",
            "source.topic_pattern: not a valid regular expression",
        ),
        (
            "rules: [{name: a b, source: {topic: t}, pause: {workflow_id: x}}]",
            "name: String should match pattern",
        ),
        (
            "rules: [{name: a, source: {topic: t}, condition: 'a ==', pause: {workflow_id: x}}]",
            "condition: 'a ==' is not valid JMESPath",
        ),
        ("defaults: {dead_letter: 'x:y'}", "defaults.dead_letter: destination 'x:y'"),
        ("defaults: {retry: {max_attempts: 0}}", "defaults.retry.max_attempts"),
        (
            "rules: [{name: a, source: {topic: t}, rate_limit: {}, pause: {workflow_id: x}}]",
            "give max_concurrent, max_per_interval or both",
        ),
    ],
)
def test_schema_errors(text: str, message: str) -> None:
    assert any(message in e for e in errors_of(text)), errors_of(text)


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="cannot read rules file"):
        load_rules(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_rules(empty).rules == ()


def test_defaults_are_merged_into_rules() -> None:
    ruleset = parse_rules(
        """
defaults:
  retry: {max_attempts: 4, initial_backoff: 2}
  dead_letter: kafka:dlq
rules:
  - name: a
    source: {topic: t}
    pause: {workflow_id: x}
  - name: b
    source: {topic: t}
    pause: {workflow_id: x}
    retry: {max_attempts: 9}
    dead_letter: amqp:other
"""
    )
    a, b = ruleset.rules
    assert (a.options.retry.max_attempts, a.options.retry.initial_backoff) == (4, 2)
    assert (b.options.retry.max_attempts, b.options.retry.initial_backoff) == (9, 2)
    assert str(a.options.dead_letter) == "kafka:dlq"
    assert str(b.options.dead_letter) == "amqp:other"


def test_strict_templates_by_default_or_per_rule() -> None:
    ruleset = parse_rules(
        """
defaults: {strict: true}
rules:
  - name: a
    source: {topic: t}
    pause: {workflow_id: '${body.id}'}
  - name: b
    source: {topic: t}
    strict: false
    pause: {workflow_id: '${body.id}'}
"""
    )
    a, b = ruleset.rules
    with pytest.raises(TemplateError, match="missing or null"):
        a.action.target.render({"body": {}})  # type: ignore[union-attr]
    with pytest.raises(TemplateError, match="must be a string, got null"):
        b.action.target.render({"body": {}})  # type: ignore[union-attr]


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(RuleError, match="too many YAML aliases"):
        load_rules(bomb)
