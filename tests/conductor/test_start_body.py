"""A plain start's body is built without the pydantic model (the gateway's hot path, issue 18);
it must be exactly the body the model gives, and anything else must still go through the model."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.conductor.client import _plain_start, _start_request
from gateway.errors import BadRequest

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)


@given(
    name=st.text(min_size=1),
    version=st.none() | st.integers(-5, 5),
    input=st.none() | st.dictionaries(st.text(), json_values, max_size=4),
    correlation_id=st.none() | st.text(),
    priority=st.none() | st.integers(0, 99),
)
def test_a_plain_start_has_the_models_body(
    name: str, version: int | None, input: Any, correlation_id: str | None, priority: int | None
) -> None:
    plain = _plain_start(name, version, input, correlation_id, priority)
    model = _start_request(name, version, input, correlation_id, priority).to_wire()
    assert plain is not None
    assert orjson.dumps(plain) == orjson.dumps(model)


@pytest.mark.parametrize(
    ("name", "version", "input", "priority"),
    [("", None, {}, None), ("w", "2", {}, None), ("w", None, [1], None), ("w", None, {}, 100)],
)
def test_anything_else_is_left_to_the_model(
    name: str, version: Any, input: Any, priority: Any
) -> None:
    assert _plain_start(name, version, input, None, priority) is None
    if name == "" or priority == 100:
        with pytest.raises(BadRequest):
            _start_request(name, version, input, None, priority)
