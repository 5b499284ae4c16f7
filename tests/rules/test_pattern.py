"""Every pattern operator, with EventBridge semantics, and pattern compile errors."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.rules.pattern import PatternError, compile_pattern


def matches(pattern: dict[str, Any], doc: dict[str, Any]) -> bool:
    return compile_pattern(pattern).matches(doc)


@pytest.mark.parametrize(
    ("leaf", "value", "expected"),
    [
        (["OrderCreated"], "OrderCreated", True),
        (["OrderCreated"], "OrderPaid", False),
        (["OrderCreated", "OrderPaid"], "OrderPaid", True),  # a list is OR
        ([5], 5, True),
        ([5], 5.0, True),  # numbers compare as numbers
        ([5], "5", False),  # typed: the string "5" is not the number 5
        (["5"], 5, False),
        ([True], True, True),
        ([True], 1, False),  # a boolean is not a number
        ([1], True, False),
        ([None], None, True),  # null matches a present null
        ("OrderCreated", "OrderCreated", True),  # bare scalar = one-element list
        ([""], "", True),
    ],
)
def test_exact_values_are_typed(leaf: Any, value: Any, expected: bool) -> None:
    assert matches({"body": {"f": leaf}}, {"body": {"f": value}}) is expected


def test_null_does_not_match_a_missing_field() -> None:
    assert not matches({"body": {"f": [None]}}, {"body": {}})


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ({"prefix": "ord-"}, "ord-1", True),
        ({"prefix": "ord-"}, "ORD-1", False),
        ({"prefix": "ord-"}, 5, False),
        ({"prefix": {"equals-ignore-case": "ord-"}}, "ORD-1", True),
        ({"suffix": ".png"}, "a.png", True),
        ({"suffix": ".png"}, "a.PNG", False),
        ({"suffix": {"equals-ignore-case": ".png"}}, "a.PNG", True),
        ({"equals-ignore-case": "Captured"}, "CAPTURED", True),
        ({"equals-ignore-case": "Captured"}, "capture", False),
        ({"wildcard": "order.*.created"}, "order.eu.created", True),
        ({"wildcard": "order.*.created"}, "order.created", False),
        ({"wildcard": "a*"}, "a", True),
        ({"wildcard": "a\\*b"}, "a*b", True),  # \* is a literal star
        ({"wildcard": "a\\*b"}, "axb", False),
        ({"wildcard": "*"}, "", True),
        ({"wildcard": "a*ab"}, "aab", True),  # pieces may not overlap: "a" then "ab"
        ({"wildcard": "a*ab"}, "ab", False),
        ({"wildcard": "*x*y*"}, "..x..y..", True),
        ({"wildcard": "*x*y*"}, "..y..x..", False),
        ({"wildcard": "a**b"}, "ab", True),
        ({"wildcard": "a\\\\b"}, "a\\b", True),  # \\ is a literal backslash
        ({"numeric": [">", 0]}, 0.5, True),
        ({"numeric": [">", 0]}, 0, False),
        ({"numeric": [">=", 0]}, 0, True),
        ({"numeric": [">", 0, "<=", 5]}, 5, True),
        ({"numeric": [">", 0, "<=", 5]}, 5.01, False),
        ({"numeric": ["<", 10]}, -3, True),
        ({"numeric": ["=", 3]}, 3.0, True),
        ({"numeric": ["=", 3]}, 3.1, False),
        ({"numeric": [">", 0]}, "7", False),  # strings are not numbers
        ({"numeric": [">", 0]}, True, False),
        ({"anything-but": "cancelled"}, "open", True),
        ({"anything-but": "cancelled"}, "cancelled", False),
        ({"anything-but": ["a", "b"]}, "b", False),
        ({"anything-but": ["a", "b"]}, "c", True),
        ({"anything-but": [5]}, 5, False),
        ({"anything-but": [5]}, "5", True),
        ({"anything-but": {"prefix": "test-"}}, "test-1", False),
        ({"anything-but": {"prefix": "test-"}}, "prod-1", True),
        ({"anything-but": {"suffix": ".tmp"}}, "a.tmp", False),
        ({"anything-but": {"wildcard": "*.tmp"}}, "a.tmp", False),
        ({"anything-but": {"wildcard": ["*.tmp", "*.bak"]}}, "a.bak", False),
        ({"anything-but": {"equals-ignore-case": ["X", "y"]}}, "Y", False),
        ({"anything-but": {"equals-ignore-case": ["X", "y"]}}, "z", True),
    ],
)
def test_operators(operator: dict[str, Any], value: Any, expected: bool) -> None:
    assert matches({"body": {"f": [operator]}}, {"body": {"f": value}}) is expected


def test_exists() -> None:
    present = {"body": {"f": [{"exists": True}]}}
    absent = {"body": {"f": [{"exists": False}]}}
    assert matches(present, {"body": {"f": None}})
    assert matches(present, {"body": {"f": {"deep": 1}}})
    assert not matches(present, {"body": {}})
    assert matches(absent, {"body": {}})
    assert matches(absent, {"body": "not an object"})
    assert not matches(absent, {"body": {"f": 1}})


def test_anything_but_needs_the_field_present() -> None:
    assert not matches({"body": {"f": [{"anything-but": "x"}]}}, {"body": {}})


def test_fields_are_anded_and_nested_objects_walk_in() -> None:
    pattern = {"body": {"type": ["OrderCreated"], "customer": {"tier": ["gold"]}}}
    assert matches(pattern, {"body": {"type": "OrderCreated", "customer": {"tier": "gold"}}})
    assert not matches(pattern, {"body": {"type": "OrderCreated", "customer": {"tier": "iron"}}})
    assert not matches(pattern, {"body": {"type": "OrderCreated"}})


def test_an_array_in_the_event_matches_when_any_element_matches() -> None:
    assert matches({"body": {"tags": ["vip"]}}, {"body": {"tags": ["new", "vip"]}})
    assert not matches({"body": {"tags": ["vip"]}}, {"body": {"tags": ["new"]}})
    # arrays of objects are walked through too
    doc = {"body": {"items": [{"sku": "A"}, {"sku": "B"}]}}
    assert matches({"body": {"items": {"sku": ["B"]}}}, doc)
    assert not matches({"body": {"items": {"sku": ["C"]}}}, doc)


def test_or_at_top_level_and_nested() -> None:
    pattern = {"$or": [{"body": {"type": ["A"]}}, {"headers": {"kind": ["a"]}}]}
    assert matches(pattern, {"body": {"type": "A"}, "headers": {}})
    assert matches(pattern, {"body": {}, "headers": {"kind": "a"}})
    assert not matches(pattern, {"body": {"type": "B"}, "headers": {"kind": "b"}})
    nested = {"body": {"$or": [{"a": [1]}, {"b": [{"numeric": [">", 10]}]}], "c": ["x"]}}
    assert matches(nested, {"body": {"b": 11, "c": "x"}})
    assert not matches(nested, {"body": {"b": 11, "c": "y"}})
    assert not matches(nested, {"body": {"b": 9, "c": "x"}})


def test_headers_key_and_metadata_are_addressable() -> None:
    pattern = {"headers": {"x-src": [{"prefix": "shop"}]}, "key": ["k1"], "partition": [0]}
    assert matches(pattern, {"headers": {"x-src": "shop-eu"}, "key": "k1", "partition": 0})
    assert not matches(pattern, {"headers": {"x-src": "shop-eu"}, "key": "k2", "partition": 0})


def test_an_empty_pattern_matches_everything() -> None:
    assert matches({}, {"body": 1})
    assert compile_pattern(None).matches({"body": None})


def test_mismatch_explains_the_first_failing_field() -> None:
    pattern = compile_pattern({"body": {"type": ["A", {"prefix": "Ord"}]}})
    reason = pattern.mismatch({"body": {"type": "Paid"}})
    assert reason == 'body.type is "Paid", wanted "A" or prefix "Ord"'
    assert pattern.mismatch({"body": {}}) == 'body.type is missing, wanted "A" or prefix "Ord"'
    assert pattern.mismatch({"body": {"type": "A"}}) is None


@pytest.mark.parametrize(
    ("pattern", "message", "path"),
    [
        ({"body": {"f": []}}, "an empty list matches nothing", ("body", "f")),
        ({"body": {"f": [{"prefix": 5}]}}, "prefix takes a string", ("body", "f", 0, "prefix")),
        ({"body": {"f": [{"nope": 1}]}}, "unknown operator 'nope'", ("body", "f", 0, "nope")),
        ({"body": {"f": [{"a": 1, "b": 2}]}}, "exactly one key", ("body", "f", 0)),
        ({"body": {"f": [{"numeric": [">"]}]}}, "numeric takes", ("body", "f", 0, "numeric")),
        ({"body": {"f": [{"numeric": [">", 1, ">", 2]}]}}, "not allowed", ("body", "f", 0)),
        ({"body": {"f": [{"numeric": ["~", 1]}]}}, "not allowed", ("body", "f", 0)),
        ({"body": {"f": [{"exists": "yes"}]}}, "exists takes true or false", ("body", "f", 0)),
        ({"body": {"f": [{"cidr": "10.0.0.0/8"}]}}, "cidr is not supported", ("body", "f", 0)),
        ({"body": {"f": [[1]]}}, "a list inside a value list", ("body", "f", 0)),
        ({"$or": [{"body": {"a": [1]}}]}, "at least two patterns", ("$or",)),
        ({"bodyy": {"a": [1]}}, "unknown field 'bodyy'", ("bodyy",)),
        ({"body": {"f": [{"anything-but": []}]}}, "at least one value", ("body", "f", 0)),
    ],
)
def test_compile_errors_say_what_and_where(
    pattern: dict[str, Any], message: str, path: tuple[Any, ...]
) -> None:
    with pytest.raises(PatternError) as info:
        compile_pattern(pattern, roots=frozenset({"body", "headers"}))
    assert message in str(info.value)
    assert info.value.path[: len(path)] == path


@pytest.mark.parametrize(
    "op", ["prefix", "suffix", "anything-but", "numeric", "exists", "wildcard", "cidr"]
)
def test_an_operator_without_a_value_list_is_an_error_not_a_nested_field(op: str) -> None:
    # `type: {prefix: Order}` used to compile as the field `type.prefix` and never match.
    with pytest.raises(PatternError) as info:
        compile_pattern({"body": {"type": {op: "Order"}}}, roots=frozenset({"body"}))
    assert f'type: [{{{op}: "Order"}}]' in str(info.value)
    assert info.value.path == ("body", "type", op)


def test_equals_ignore_case_as_a_bare_nested_key_is_refused_too() -> None:
    with pytest.raises(PatternError, match=r"put it in a value list"):
        compile_pattern({"body": {"equals-ignore-case": "x"}})


@pytest.mark.timeout(30)  # a hang guard, not a speed measurement
def test_wildcard_matching_does_not_backtrack_on_hostile_values() -> None:
    """A regex `.*a.*a.*a...b` backtracks without end on 'aaaa...'; the piece scan does not."""
    pattern = compile_pattern({"body": {"f": [{"wildcard": "*a*a*a*a*a*a*a*a*b"}]}})
    assert not pattern.matches({"body": {"f": "a" * 100_000}})
    assert pattern.matches({"body": {"f": "a" * 100_000 + "b"}})
