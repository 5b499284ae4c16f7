"""Static checks for `gateway check`: rules that can never match, rules shadowed by others.

Both checks are conservative: a warning is printed only when it is certain (or, for two
exact values on one field, certain unless the event holds an array with both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.rules.pattern import (
    Exact,
    FieldTest,
    IgnoreCase,
    Leaf,
    Numeric,
    Pattern,
    Prefix,
    Suffix,
)
from gateway.rules.ruleset import Rule, RuleSet


@dataclass(frozen=True, slots=True)
class RuleWarning:
    rule: str
    line: int | None
    message: str

    def render(self, file: str | None) -> str:
        where = f"{file}:{self.line}" if file and self.line else (file or "")
        head = f"{where} rule '{self.rule}'" if where else f"rule '{self.rule}'"
        return f"{head}: warning: {self.message}"


def analyse(ruleset: RuleSet) -> list[RuleWarning]:
    warnings: list[RuleWarning] = []
    for i, rule in enumerate(ruleset.rules):
        reason = never_matches(rule)
        if reason is not None:
            warnings.append(RuleWarning(rule.name, rule.line, f"can never match: {reason}"))
            continue
        if ruleset.match_mode == "first":
            earlier = _shadowing(ruleset.rules[:i], rule)
            if earlier is not None:
                warnings.append(
                    RuleWarning(
                        rule.name,
                        rule.line,
                        f"is shadowed by rule '{earlier.name}' (line {earlier.line}): every "
                        "event it matches is taken by that earlier rule (match_mode: first)",
                    )
                )
    return warnings


# --- never matches ---------------------------------------------------------------------


def never_matches(rule: Rule) -> str | None:
    if rule.condition is not None and _falsy_literal(rule.condition.source):
        return f"condition {rule.condition.source!r} is always false"
    reason = _source_conflict(rule)
    return reason if reason is not None else _unsatisfiable(rule.pattern, ())


def _falsy_literal(source: str) -> bool:
    import jmespath

    node = jmespath.compile(source).parsed
    return bool(node["type"] == "literal" and node["value"] in (False, None, "", [], {}))


def _source_conflict(rule: Rule) -> str | None:
    src = rule.source
    fixed = {"topic": src.topic, "queue": src.queue, "source": src.kind}
    for field in rule.pattern.fields:
        if len(field.path) == 1 and fixed.get(field.path[0]) is not None:
            value = fixed[field.path[0]]
            if not field.matches({field.path[0]: value}):
                return f"match.{field.path[0]} wants {field.describe()} but the source is {value!r}"
    return None


def _unsatisfiable(pattern: Pattern, outer: tuple[FieldTest, ...]) -> str | None:
    fields = (*outer, *pattern.fields)
    for field in pattern.fields:
        presence = field.if_absent or field.if_present
        if not presence and not any(_leaf_possible(leaf) for leaf in field.leaves):
            return f"{'.'.join(field.path)}: {field.describe()} matches no value"
    reason = _conflict(fields)
    if reason is not None:
        return reason
    for branches in pattern.ors:
        reasons = [_unsatisfiable(branch, fields) for branch in branches]
        if all(r is not None for r in reasons):
            return "every $or branch is impossible: " + "; ".join(str(r) for r in reasons)
    return None


def _leaf_possible(leaf: Leaf) -> bool:
    return not isinstance(leaf, Numeric) or leaf.satisfiable()


def _conflict(fields: tuple[FieldTest, ...]) -> str | None:
    for a in fields:
        for b in fields:
            if a is b:
                continue
            reason = _pair_conflict(a, b)
            if reason is not None:
                return reason
    return None


def _pair_conflict(a: FieldTest, b: FieldTest) -> str | None:
    absent_only = a.if_absent and not a.if_present and not a.leaves
    required = not b.if_absent
    if absent_only and required and b.path[: len(a.path)] == a.path:
        return f"{'.'.join(a.path)} must be missing but {'.'.join(b.path)} must be present"
    if a.path == b.path and _exact_only(a) and _exact_only(b):
        left = {_key(leaf) for leaf in a.leaves}
        if not left & {_key(leaf) for leaf in b.leaves}:
            return (
                f"{'.'.join(a.path)} must be {a.describe()} and also {b.describe()} "
                "(possible only when it is an array holding both)"
            )
    return None


def _exact_only(field: FieldTest) -> bool:
    return (
        not field.if_absent
        and not field.if_present
        and all(isinstance(leaf, Exact) for leaf in field.leaves)
    )


def _key(leaf: Leaf) -> str:
    assert isinstance(leaf, Exact)
    value = leaf.value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value)


# --- shadowing ---------------------------------------------------------------------------


def _shadowing(earlier: tuple[Rule, ...], rule: Rule) -> Rule | None:
    for other in earlier:
        if other.source != rule.source or other.condition is not None:
            continue
        if covers(other.pattern, rule.pattern):
            return other
    return None


def covers(wide: Pattern, narrow: Pattern) -> bool:
    """True when every event `narrow` matches is matched by `wide` (conservative)."""
    for branches in wide.ors:
        if not any(covers(branch, narrow) for branch in branches):
            return False
    for field in wide.fields:
        if not any(f.path == field.path and _field_covers(field, f) for f in narrow.fields):
            return False
    return True


def _field_covers(wide: FieldTest, narrow: FieldTest) -> bool:
    if narrow.if_absent and not wide.if_absent:
        return False
    if narrow.if_present and not wide.if_present:
        return False
    if wide.if_present:
        return True
    return all(any(leaf_covers(w, n) for w in wide.leaves) for n in narrow.leaves)


def leaf_covers(wide: Leaf, narrow: Leaf) -> bool:
    if wide == narrow:
        return True
    if isinstance(narrow, Exact):
        return wide.test(narrow.value)
    if isinstance(narrow, Numeric) and isinstance(wide, Numeric):
        return _range_covers(wide, narrow)
    if isinstance(narrow, Prefix | Suffix | IgnoreCase):
        return _text_covers(wide, narrow)
    return False


def _range_covers(wide: Numeric, narrow: Numeric) -> bool:
    low_ok = wide.low < narrow.low or (
        wide.low == narrow.low and (wide.low_inclusive or not narrow.low_inclusive)
    )
    high_ok = wide.high > narrow.high or (
        wide.high == narrow.high and (wide.high_inclusive or not narrow.high_inclusive)
    )
    return low_ok and high_ok


def _text_covers(wide: Any, narrow: Prefix | Suffix | IgnoreCase) -> bool:
    narrow_ic = isinstance(narrow, IgnoreCase) or narrow.ignore_case
    if isinstance(wide, IgnoreCase) or type(wide) not in (Prefix, Suffix):
        return False
    if wide.ignore_case is False and narrow_ic:
        return False  # a case-insensitive narrow set holds values a case-sensitive one refuses
    text = narrow.text.casefold() if wide.ignore_case else narrow.text
    if isinstance(narrow, IgnoreCase):
        return text.startswith(wide.text) if isinstance(wide, Prefix) else text.endswith(wide.text)
    if type(wide) is not type(narrow):
        return False
    return text.startswith(wide.text) if isinstance(wide, Prefix) else text.endswith(wide.text)
