"""`gateway check` warnings (never matches, shadowed) and capability requirements, including
the probe against the dev server over real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import cli
from gateway.devserver.server import DevServer
from gateway.rules.analysis import analyse, covers
from gateway.rules.capabilities import required_capabilities
from gateway.rules.pattern import compile_pattern

from .helpers import rules


def warnings_of(text: str) -> list[str]:
    return [w.render("rules.yaml") for w in analyse(rules(text))]


@pytest.mark.parametrize(
    ("match", "reason"),
    [
        ('{body: {n: [{numeric: [">", 10, "<", 5]}]}}', "body.n: numeric > 10 and < 5 matches no"),
        ("{body: {a: [{exists: false}], a.b: [1]}}", None),  # a.b is a key with a dot: fine
        (
            "{body: {a: [{exists: false}]}, $or: [{body: {a: {b: [1]}}}, {body: {a: [2]}}]}",
            "every $or branch is impossible",
        ),
        (
            "{body: {t: [A]}, $or: [{body: {t: [B]}}, {body: {t: [C]}}]}",
            "every $or branch is impossible",
        ),
        ("{topic: [payments]}", "match.topic wants \"payments\" but the source is 'orders'"),
        ("{source: [amqp]}", 'match.source wants "amqp"'),
    ],
)
def test_never_matching_rules_are_warned(match: str, reason: str | None) -> None:
    text = f"""\
        rules:
          - name: r
            source: {{topic: orders}}
            match: {match}
            pause: {{workflow_id: x}}
        """
    found = warnings_of(text)
    if reason is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith("rules.yaml:2 rule 'r': warning: can never")
        assert reason in found[0]


def test_a_false_literal_condition_never_matches() -> None:
    text = """\
        rules:
          - name: r
            source: {topic: orders}
            condition: "`false`"
            pause: {workflow_id: x}
        """
    assert warnings_of(text) == [
        "rules.yaml:2 rule 'r': warning: can never match: condition '`false`' is always false"
    ]


def test_shadowed_rules_are_warned_in_first_mode_only() -> None:
    text = """\
        match_mode: {mode}
        rules:
          - name: wide
            source: {{topic: orders}}
            match: {{body: {{type: [{{prefix: Order}}], total: [{{numeric: [">", 0]}}]}}}}
            pause: {{workflow_id: x}}
          - name: narrow
            source: {{topic: orders}}
            match: {{body: {{type: [OrderCreated], total: [{{numeric: [">", 10, "<", 20]}}],
                    extra: [1]}}}}
            pause: {{workflow_id: x}}
          - name: other-source
            source: {{topic: other}}
            match: {{body: {{type: [OrderCreated]}}}}
            pause: {{workflow_id: x}}
        """
    assert warnings_of(text.format(mode="first")) == [
        "rules.yaml:7 rule 'narrow': warning: is shadowed by rule 'wide' (line 3): every event "
        "it matches is taken by that earlier rule (match_mode: first)"
    ]
    assert warnings_of(text.format(mode="all")) == []


@pytest.mark.parametrize(
    ("wide", "narrow", "expected"),
    [
        ({}, {"body": {"a": [1]}}, True),
        ({"body": {"a": [1, 2]}}, {"body": {"a": [1]}}, True),
        ({"body": {"a": [1]}}, {"body": {"a": [1, 2]}}, False),
        ({"body": {"a": [{"prefix": "ab"}]}}, {"body": {"a": [{"prefix": "abc"}]}}, True),
        ({"body": {"a": [{"prefix": "abc"}]}}, {"body": {"a": [{"prefix": "ab"}]}}, False),
        ({"body": {"a": [{"suffix": "z"}]}}, {"body": {"a": ["xyz"]}}, True),
        ({"body": {"a": [{"exists": True}]}}, {"body": {"a": ["x"]}}, True),
        ({"body": {"a": [{"exists": True}]}}, {"body": {"a": [{"exists": False}]}}, False),
        ({"body": {"a": [{"anything-but": "x"}]}}, {"body": {"a": ["y"]}}, True),
        ({"body": {"a": [{"equals-ignore-case": "ab"}]}}, {"body": {"a": ["AB"]}}, True),
        (
            {"body": {"a": [{"prefix": {"equals-ignore-case": "a"}}]}},
            {"body": {"a": [{"equals-ignore-case": "AB"}]}},
            True,
        ),
        (
            {"body": {"a": [{"prefix": "a"}]}},
            {"body": {"a": [{"equals-ignore-case": "ab"}]}},
            False,
        ),
        ({"body": {"n": [{"numeric": [">=", 0]}]}}, {"body": {"n": [{"numeric": ["=", 0]}]}}, True),
        ({"body": {"n": [{"numeric": [">", 0]}]}}, {"body": {"n": [{"numeric": ["=", 0]}]}}, False),
        ({"$or": [{"body": {"a": [1]}}, {"body": {"b": [1]}}]}, {"body": {"a": [1]}}, True),
    ],
)
def test_covers(wide: dict, narrow: dict, expected: bool) -> None:  # type: ignore[type-arg]
    assert covers(compile_pattern(wide), compile_pattern(narrow)) is expected


CAPS_RULES = """\
rules:
  - name: vars
    source: {topic: t}
    update_variables: {workflow_id: x, variables: {a: 1}}
  - name: first-wait
    source: {topic: t}
    signal: {workflow_id: x}
  - name: by-ref
    source: {topic: t}
    signal: {workflow_id: x, task_ref: w}
  - name: sync
    source: {queue: q}
    execute_workflow: {name: w}
"""


def test_required_capabilities() -> None:
    needs = [(r.rule, r.capability) for r in required_capabilities(rules(CAPS_RULES))]
    assert needs == [("vars", "variables"), ("first-wait", "signal"), ("sync", "sync_execute")]


async def run_check(tmp_path: Path, url: str, text: str = CAPS_RULES) -> int:
    config = tmp_path / "gateway.yaml"
    config.write_text(f"conductor: {{url: '{url}'}}\n")
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    argv = ["check", "--config", str(config), "--rules", str(path)]
    return await asyncio.to_thread(cli.main, argv)


async def test_check_fails_a_rule_the_oss_server_cannot_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with DevServer(port=0, flavor="oss") as server:
        code = await run_check(tmp_path, server.url)
    out, err = capsys.readouterr()
    assert code == 1
    assert f"conductor: oss at {server.url}" in out
    assert err.splitlines() == [
        f"{tmp_path}/rules.yaml:2 rule 'vars': update_variables: update_variables needs the "
        "Orkes variables endpoint, which this Conductor (oss) lacks; use Orkes Conductor, or "
        "complete a WAIT task whose output a SET_VARIABLE task copies into the variables (OSS "
        "has no variables endpoint)"
    ]


async def test_check_notes_options_oss_ignores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = """\
rules:
  - name: stop
    source: {topic: t}
    terminate: {workflow_id: x, trigger_failure_workflow: true}
"""
    async with DevServer(port=0, flavor="oss") as server:
        code = await run_check(tmp_path, server.url, text)
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert (
        f"{tmp_path}/rules.yaml:2 rule 'stop': warning: OSS Conductor ignores "
        "trigger_failure_workflow on terminate; the failure workflow will not start"
    ) in out.splitlines()


async def test_check_passes_on_orkes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with DevServer(port=0, flavor="orkes") as server:
        code = await run_check(tmp_path, server.url)
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "conductor: orkes at" in out and "rules: ok (4 rules" in out


async def test_check_passes_with_a_note_when_conductor_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = await run_check(tmp_path, f"http://127.0.0.1:{port}/api")
    out, _ = capsys.readouterr()
    assert code == 0
    assert f"conductor: not probed (http://127.0.0.1:{port}/api did not answer" in out
    assert "rule 'vars' needs 'variables'" in out


# --- soundness of `covers` -------------------------------------------------------------------


VALUES = st.sampled_from(["", "a", "ab", "abc", "AB", "b", "ba", 0, 1, 2.5, -1, True, None])
LEAVES = st.one_of(
    VALUES,
    st.sampled_from(["a", "ab", "A", ""]).map(lambda t: {"prefix": t}),
    st.sampled_from(["a", "b", "c"]).map(lambda t: {"suffix": t}),
    st.sampled_from(["a", "AB"]).map(lambda t: {"prefix": {"equals-ignore-case": t}}),
    st.sampled_from(["ab", "AB"]).map(lambda t: {"equals-ignore-case": t}),
    st.sampled_from(["a*", "*b", "a*c", "*"]).map(lambda t: {"wildcard": t}),
    st.sampled_from([[">", 0], [">=", 0, "<", 2], ["=", 1], ["<", 0], [">", 1, "<=", 2.5]]).map(
        lambda t: {"numeric": t}
    ),
    st.booleans().map(lambda b: {"exists": b}),
    st.sampled_from(["a", ["a", "b"], {"prefix": "a"}]).map(lambda t: {"anything-but": t}),
)
FIELD = st.lists(LEAVES, min_size=1, max_size=3)
PATTERNS = st.fixed_dictionaries({}, optional={"x": FIELD, "y": FIELD}).map(
    lambda body: {"body": body} if body else {}
)
DOCS = st.fixed_dictionaries(
    {}, optional={"x": VALUES | st.lists(VALUES, max_size=3), "y": VALUES}
).map(lambda body: {"body": body})


@settings(max_examples=400, deadline=None)
@given(wide=PATTERNS, narrow=PATTERNS, docs=st.lists(DOCS, min_size=1, max_size=20))
def test_covers_is_sound(wide: dict, narrow: dict, docs: list) -> None:  # type: ignore[type-arg]
    """When `covers` says wide covers narrow, no event matches narrow but not wide."""
    w, n = compile_pattern(wide), compile_pattern(narrow)
    if covers(w, n):
        for doc in docs:
            assert not n.matches(doc) or w.matches(doc), (wide, narrow, doc)
