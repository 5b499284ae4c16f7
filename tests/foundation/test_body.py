"""parse_body: the orjson fast path decides exactly as the json module and a bracket count."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import EventError
from gateway.events import _nesting_depth, parse_body

MAX_DEPTH = 8

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=30,
)


def reference(raw: bytes) -> tuple[Any, str | None]:
    """What parse_body answered before the fast path: json.loads after a bracket count."""
    text = raw.decode("utf-8")
    depth = _nesting_depth(text)
    if depth > MAX_DEPTH:
        return text, f"JSON nesting depth {depth} is over the limit of {MAX_DEPTH}"
    try:
        return json.loads(text), None
    except ValueError as exc:
        return text, f"body is not JSON: {exc}"


@given(json_values)
def test_any_json_value_parses_as_the_json_module_does(value: Any) -> None:
    raw = json.dumps(value).encode()
    assert repr(parse_body(raw, max_bytes=1 << 20, max_depth=MAX_DEPTH)) == repr(reference(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b"NaN",
        b'{"n": 123456789012345678901234567890}',
        b'"\\ud800"',
        b"[" * 9 + b"]" * 9,
        b"[" * 2000 + b"]" * 2000,
        b'{"s": "[[[[[[[[[[[["}',
        b"not json",
        b"",
    ],
)
def test_what_orjson_refuses_or_changes_is_decided_as_before(raw: bytes) -> None:
    assert repr(parse_body(raw, max_bytes=1 << 20, max_depth=MAX_DEPTH)) == repr(reference(raw))


def test_bad_utf8_and_oversize_are_refused() -> None:
    with pytest.raises(EventError, match="not UTF-8"):
        parse_body(b"\xff", max_bytes=10, max_depth=MAX_DEPTH)
    with pytest.raises(EventError, match="over the limit of 3 bytes"):
        parse_body(b"[1,2]", max_bytes=3, max_depth=MAX_DEPTH)
