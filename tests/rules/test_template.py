"""${...} templates: typed values, interpolation, escapes, strictness, limits, safe queries."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import TemplateError
from gateway.rules import template
from gateway.rules.template import (
    compile_expression,
    compile_query,
    compile_string,
    compile_value,
)

DOC: dict[str, Any] = {
    "body": {"id": "o-1", "n": 3, "ok": True, "items": [{"sku": "A"}, {"sku": "B"}], "none": None},
    "headers": {"x-trace": "t-1"},
    "key": "k",
    "topic": "orders",
    "partition": 2,
    "offset": 40,
}


def render(text: str, **kw: Any) -> Any:
    return compile_string(text, **kw)(DOC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${body.id}", "o-1"),
        ("${body.n}", 3),  # exactly one ${...}: the typed value
        ("${body.ok}", True),
        ("${body.items}", [{"sku": "A"}, {"sku": "B"}]),
        ("${body.none}", None),
        ("${body.missing}", None),  # a missing path is null (not strict)
        ("${body}", DOC["body"]),
        ("no template", "no template"),
        ("order ${body.id}", "order o-1"),  # embedded: interpolated
        ("n=${body.n} ok=${body.ok}", "n=3 ok=true"),  # non-strings as JSON
        ("items ${body.items[0]}", 'items {"sku":"A"}'),
        ("x ${body.missing}", "x null"),
        ("$${body.id}", "${body.id}"),  # escaped: literal
        ("cost $${x} for ${body.id}", "cost ${x} for o-1"),
        ('${headers."x-trace"}', "t-1"),
        ("${topic}:${partition}:${offset}", "orders:2:40"),
        ("${body.items[*].sku}", ["A", "B"]),
        ("${length(body.items)}", 2),
        ("${join(',', body.items[*].sku)}", "A,B"),
        ("${{id: body.id, first: body.items[0].sku}}", {"id": "o-1", "first": "A"}),
        ('${`"}"`}', "}"),  # a brace inside a JMESPath literal does not close the template
        ("${ body.id }", "o-1"),
    ],
)
def test_render(text: str, expected: Any) -> None:
    assert render(text) == expected


def test_strict_templates_refuse_missing_paths() -> None:
    with pytest.raises(TemplateError, match=r"\$\{body.missing\} is missing or null"):
        render("${body.missing}", strict=True)
    with pytest.raises(TemplateError):
        render("x ${body.missing}", strict=True)
    assert render("${body.id}", strict=True) == "o-1"


def test_a_body_that_is_not_json_is_a_string() -> None:
    doc = {"body": "plain text"}
    assert compile_string("${body}")(doc) == "plain text"
    assert compile_string("${body.id}")(doc) is None
    assert compile_string("got: ${body}")(doc) == "got: plain text"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${body.id", "template '${body.id' is missing '}'"),
        ("${}", "is empty"),
        ("${body..id}", "is not valid JMESPath"),
        ("${body.id ||}", "is not valid JMESPath"),
        ("${" + "a." * 600 + "b}", "over the limit of 1000"),
        ("${" + "+".join(["a"] * 5) + "}", "is not valid JMESPath"),
        ("${" + "!" * 900 + "a}", "is nested too deeply"),
    ],
)
def test_compile_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        compile_string(text)
    assert message in str(info.value)


def test_ast_node_limit() -> None:
    expr = "[" + ",".join(["a"] * 250) + "]"
    with pytest.raises(TemplateError, match="AST nodes, over the limit"):
        compile_expression(expr)


def test_doubling_chains_are_refused_at_compile() -> None:
    # Each step quadruples the string: 6 steps copy it 4^6 times before any size check, and
    # within the limit of 16 pipes and functions.
    doubling = " | ".join(["join('', [@, @, @, @])"] * 6)
    with pytest.raises(TemplateError, match="copy its input up to"):
        compile_expression("body.s | " + doubling)
    multi = ".".join(["[@, @, @]"] * 8)  # no pipe, no function: 3^8 copies
    with pytest.raises(TemplateError, match="copy its input up to"):
        compile_expression(multi)
    mapped = "map(&[@, @, @, @], " * 6 + "@" + ")" * 6
    with pytest.raises(TemplateError, match="copy its input up to"):
        compile_expression(mapped)


def test_too_many_pipes_and_functions_are_refused() -> None:
    chain = " | ".join(["to_string(@)"] * 9)  # 9 functions and 8 pipes
    with pytest.raises(TemplateError, match="17 pipes and function calls, over the limit of 16"):
        compile_expression(chain)


def test_ordinary_expressions_stay_within_the_growth_limits() -> None:
    doc = {"body": {"items": [{"id": 1, "n": "a"}, {"id": 2, "n": "b"}], "tags": ["x", "y"]}}
    for text, expected in (
        ("join(', ', body.tags)", "x, y"),
        ("body.items[*].{id: id, n: n}", [{"id": 1, "n": "a"}, {"id": 2, "n": "b"}]),
        ("body.items[?id > `1`].n | [0]", "b"),
        ("map(&join('-', [n, to_string(id)]), body.items)", ["a-1", "b-2"]),
        ("[body.tags, body.tags, body.tags] | [].length(@)", [1, 1, 1, 1, 1, 1]),
    ):
        assert compile_expression(text).evaluate(doc, strict=True) == expected, text


def test_rendered_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template, "MAX_RENDERED_CHARS", 100)
    big = {"body": {"s": "x" * 80, "items": list(range(50))}}
    with pytest.raises(TemplateError, match="rendered more than 100"):
        compile_string("${body.s}${body.s}")(big)
    with pytest.raises(TemplateError, match="rendered more than 100"):
        compile_string("${body.items[*].[@, @, @]}")(big)


def test_runtime_jmespath_errors_are_template_errors() -> None:
    with pytest.raises(TemplateError, match="abs"):
        compile_string("${abs(body.id)}")(DOC)


def test_compile_value_templates_strings_anywhere_but_not_keys() -> None:
    value = {"a": "${body.id}", "${body.id}": ["${body.n}", {"deep": "n=${body.n}"}], "c": 1}
    out = compile_value(value)(DOC)
    assert out == {"a": "o-1", "${body.id}": [3, {"deep": "n=3"}], "c": 1}


def test_each_render_builds_new_containers() -> None:
    render_value = compile_value({"fixed": {"list": [1]}})
    first = render_value(DOC)
    first["fixed"]["list"].append(2)
    assert render_value(DOC) == {"fixed": {"list": [1]}}  # a plan cannot alter its rule


@pytest.mark.parametrize(
    "value",
    [
        "o-1 AND status = RUNNING",
        'o-1" OR "1',
        "o'1",
        "a,b",
        "(x)",
        "x*",
        "",
        "a b",
    ],
)
def test_query_values_cannot_inject_clauses(value: str) -> None:
    query = compile_query("workflowType = order AND correlationId = ${body.id}")
    with pytest.raises(TemplateError, match="not safe in a search query"):
        query({"body": {"id": value}})


def test_query_values_that_are_plain_tokens_render() -> None:
    query = compile_query("workflowType = order AND correlationId = ${body.id}")
    assert (
        query({"body": {"id": "o-1:eu/2"}}) == "workflowType = order AND correlationId = o-1:eu/2"
    )
    assert query({"body": {"id": 42}}) == "workflowType = order AND correlationId = 42"
    with pytest.raises(TemplateError, match="must be a string or number"):
        query({"body": {"id": None}})
    with pytest.raises(TemplateError, match="must be a string or number"):
        query({"body": {"id": {"a": 1}}})


# --- properties ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
TEMPLATES = [
    "${body}",
    "${body.a}",
    "x ${body.a.b} y",
    "${body[0]}",
    "${body.a[*].b}",
    "${length(body)}",
    "${sort(body)}",
    "${abs(body.a)}",
    "${to_number(body)}",
    "${join(',', body)}",
    "${keys(body)}",
    "${max_by(body, &a)}",
    "${body | [0]}",
    "${body.* | [0]}",
    "${contains(body, 'x')}",
    "${starts_with(body, 'x')}",
]
COMPILED = [compile_string(t, strict=s) for t in TEMPLATES for s in (False, True)]
QUERY = compile_query("correlationId = ${body.a}")


@settings(max_examples=300, deadline=None)
@given(body=json_values)
def test_rendering_arbitrary_json_raises_only_template_errors(body: Any) -> None:
    doc = {"body": body, "headers": {}, "key": None}
    for render_template in [*COMPILED, QUERY]:
        with contextlib.suppress(TemplateError):
            render_template(doc)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60))
def test_compiling_arbitrary_text_raises_only_template_errors(text: str) -> None:
    with contextlib.suppress(TemplateError):
        compile_string(text)({"body": {"a": 1}})
