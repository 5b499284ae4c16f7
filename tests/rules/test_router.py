"""Routing: source index, first/all, conditions, raw text, failures, explanations."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import EventError, TemplateError
from gateway.rules.loader import load_rules
from gateway.rules.router import Router

from .helpers import amqp_event, kafka_event, rules, text_event

RULES = """\
    match_mode: {mode}
    on_unmatched: dead_letter
    rules:
      - name: created
        source: {{topic: orders}}
        match: {{body: {{type: [OrderCreated]}}}}
        start_workflow: {{name: order, correlation_id: "${{body.id}}"}}
      - name: big
        source: {{topic: orders}}
        match: {{body: {{total: [{{numeric: [">", 100]}}]}}}}
        pause: {{workflow_id: "${{body.wf}}"}}
      - name: any-topic
        source: {{topic_pattern: "ord.*"}}
        pause: {{workflow_id: x}}
      - name: payments
        source: {{queue: payments, exchange: pay, routing_key: "payment.*.eu"}}
        pause: {{workflow_id: "${{body.wf}}"}}
"""


def router(mode: str = "first") -> Router:
    return Router(rules(RULES.format(mode=mode)))


def test_first_mode_takes_the_first_match_in_file_order() -> None:
    result = router().route(kafka_event({"type": "OrderCreated", "id": "o", "total": 500}))
    assert [p.rule for p in result.plans] == ["created"]


def test_all_mode_takes_every_match_in_file_order() -> None:
    event = kafka_event({"type": "OrderCreated", "id": "o", "total": 500, "wf": "w"})
    result = router("all").route(event)
    assert [p.rule for p in result.plans] == ["created", "big", "any-topic"]


def test_candidates_are_indexed_by_source() -> None:
    r = router()
    assert [x.name for x in r.candidates(kafka_event({}, topic="orders"))] == [
        "created",
        "big",
        "any-topic",
    ]
    assert [x.name for x in r.candidates(kafka_event({}, topic="ordinals"))] == ["any-topic"]
    assert [x.name for x in r.candidates(kafka_event({}, topic="other"))] == []
    assert [x.name for x in r.candidates(amqp_event({}, queue="payments"))] == ["payments"]


def test_unmatched_reports_the_policy() -> None:
    result = router().route(kafka_event({}, topic="other"))
    assert result.unmatched and result.on_unmatched == "dead_letter"


def test_amqp_binding_key_filters_messages_of_the_queue() -> None:
    r = router()
    hit = amqp_event({"wf": "w1"}, exchange="pay", routing_key="payment.card.eu")
    assert [p.rule for p in r.route(hit).plans] == ["payments"]
    miss = amqp_event({"wf": "w1"}, exchange="pay", routing_key="payment.card.us")
    result = r.route(miss, explain=True)
    assert result.unmatched
    assert "routing key 'payment.card.us' does not match 'payment.*.eu'" in result.misses[-1].reason


def test_binding_key_hash_matches_zero_or_more_words() -> None:
    from gateway.rules.ruleset import binding_matches

    def m(pattern: str, key: str) -> bool:
        return binding_matches(tuple(pattern.split(".")), tuple(key.split(".")))

    assert m("a.#", "a") and m("a.#", "a.b.c") and m("#", "x.y") and m("#.z", "z")
    assert m("a.#.z", "a.z") and m("a.#.z", "a.b.c.z") and not m("a.#.z", "a.b")
    assert m("a.*", "a.b") and not m("a.*", "a") and not m("a.*", "a.b.c")


def test_binding_with_many_hashes_on_a_long_key_is_decided_in_polynomial_time() -> None:
    # The routing key comes from whoever publishes; backtracking over 10 `#` against 200
    # words would try ~C(200, 10) splits before answering.
    from gateway.rules.ruleset import binding_matches

    key = tuple(f"w{i % 7}" for i in range(200))
    pattern = ("#",) * 10 + ("nomatch",)
    assert binding_matches(pattern, key) is False
    assert binding_matches(("#", "w0") * 10 + ("#",), key) is True
    assert binding_matches(("#", "*") * 10 + ("#", "w3"), key) is True  # key[199] = "w3"


def test_binding_matching_agrees_with_a_regex_reference() -> None:
    import itertools
    import re

    from gateway.rules.ruleset import binding_matches

    def reference(pattern: tuple[str, ...], key: tuple[str, ...]) -> bool:
        # Words as "<w>." then `*` is one word and `#` any run of words.
        parts = {"#": r"(?:[^.]*\.)*", "*": r"[^.]*\."}
        regex = "".join(parts.get(w, re.escape(w + ".")) for w in pattern)
        return re.fullmatch(regex, "".join(w + "." for w in key)) is not None

    words = ("a", "b", "*", "#")
    for length in range(4):
        for pattern in itertools.product(words, repeat=length):
            for key_length in range(4):
                for key in itertools.product(("a", "b"), repeat=key_length):
                    assert binding_matches(pattern, key) == reference(pattern, key), (pattern, key)


def test_a_body_that_is_not_json_is_a_permanent_error_unless_accepted() -> None:
    result = router().route(text_event("not json"))
    assert [f.rule for f in result.failures] == ["created"]
    assert isinstance(result.failures[0].error, EventError)
    assert "accept_raw_text" in str(result.failures[0].error)
    accepting = rules(
        """\
        rules:
          - name: raw
            source: {topic: orders}
            accept_raw_text: true
            match: {body: [{prefix: "PING"}]}
            start_workflow: {name: ping, input: {text: "${body}"}}
        """
    )
    (plan,) = Router(accepting).route(text_event("PING 1")).plans
    assert plan.params["input"] == {"text": "PING 1"}


def test_condition_uses_jmespath_truthiness() -> None:
    ruleset = rules(
        """\
        rules:
          - name: c
            source: {topic: orders}
            condition: "body.items[?qty > `1`]"
            pause: {workflow_id: x}
        """
    )
    r = Router(ruleset)
    assert r.route(kafka_event({"items": [{"qty": 2}]})).plans
    result = r.route(kafka_event({"items": [{"qty": 1}]}), explain=True)
    assert result.unmatched
    assert result.misses[0].reason == "condition: 'body.items[?qty > `1`]' is []"
    zero = Router(rules(RULES_ZERO))
    assert zero.route(kafka_event({"n": 0})).plans  # 0 is true in JMESPath


RULES_ZERO = """\
rules:
  - name: z
    source: {topic: orders}
    condition: body.n
    pause: {workflow_id: x}
"""


def test_rendering_failures_are_template_errors_and_stop_first_mode() -> None:
    result = router().route(kafka_event({"type": "OrderCreated", "id": {"not": "text"}}))
    assert not result.plans
    (failure,) = result.failures
    assert failure.rule == "created" and isinstance(failure.error, TemplateError)
    assert "correlation_id must be a string" in str(failure.error)


def test_explain_says_why_each_rule_did_not_match() -> None:
    result = router().route(kafka_event({"type": "OrderPaid", "total": 5}), explain=True)
    reasons = {m.rule: m.reason for m in result.misses}
    assert reasons == {
        "created": 'match: body.type is "OrderPaid", wanted "OrderCreated"',
        "big": "match: body.total is 5, wanted numeric > 100",
        "payments": "source is amqp:payments (bound to pay with 'payment.*.eu'), "
        "the event came from kafka:orders",
    }
    assert [p.rule for p in result.plans] == ["any-topic"]


def test_routing_does_not_explain_unless_asked() -> None:
    result = router().route(kafka_event({"type": "OrderPaid"}))
    assert result.misses == ()


# --- properties ----------------------------------------------------------------------------


EXAMPLE = Router(load_rules(Path(__file__).resolve().parents[2] / "config" / "rules.yaml"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "orderId", "items", "total", "status", "amount", "x"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)
bodies = (
    st.fixed_dictionaries(
        {"type": st.sampled_from(["OrderCreated", "OrderCancelled"]) | json_values},
        optional={
            "orderId": json_values,
            "items": json_values,
            "total": json_values,
            "status": st.sampled_from(["captured", "CAPTURED"]) | json_values,
            "amount": json_values,
            "paymentId": json_values,
        },
    )
    | json_values
)


@settings(max_examples=300, deadline=None)
@given(body=bodies, queue=st.sampled_from(["orders", "payments", "quotes"]))
def test_routing_arbitrary_json_never_raises(body: object, queue: str) -> None:
    """Whatever the body, routing ends in plans, declared failures or no match."""
    if queue == "orders":
        event = kafka_event(body)
    else:
        event = amqp_event(body, queue=queue, headers={"type": "quote.x"}, message_id="m")
    result = EXAMPLE.route(event, explain=True)
    for failure in result.failures:
        assert isinstance(failure.error, TemplateError | EventError)
    assert len(result.plans) + len(result.failures) <= 1


def test_a_failure_carries_the_rule_dead_letter_target() -> None:
    ruleset = rules(
        """\
        defaults: {dead_letter: "kafka:dlq"}
        rules:
          - name: own
            source: {topic: orders}
            match: {body: {kind: [own]}}
            dead_letter: amqp:own-dlq
            pause: {workflow_id: "${body.wf}"}
          - name: default
            source: {topic: orders}
            pause: {workflow_id: "${body.wf}"}
        """
    )
    r = Router(ruleset)
    assert str(r.route(kafka_event({"kind": "own"})).failures[0].dead_letter) == "amqp:own-dlq"
    assert str(r.route(kafka_event({"kind": "x"})).failures[0].dead_letter) == "kafka:dlq"
