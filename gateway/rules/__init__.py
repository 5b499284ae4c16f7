"""Routing rules: YAML schema, content patterns, ${...} templates, the router.

    ruleset = load_rules("config/rules.yaml")        # RuleError naming file:line, rule, key
    result = Router(ruleset).route(event)            # plans, failures, on_unmatched
    needs = required_capabilities(ruleset)           # what the rules need of Conductor

The names are imported on first use, so `gateway --help` does not load the rule compiler.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.rules.capabilities import Requirement, required_capabilities
    from gateway.rules.loader import RuleSetError, load_rules, parse_rules
    from gateway.rules.router import Miss, PlanFailure, Router, RouteResult
    from gateway.rules.ruleset import Rule, RuleSet

_HOMES = {
    "Requirement": "capabilities",
    "required_capabilities": "capabilities",
    "RuleSetError": "loader",
    "load_rules": "loader",
    "parse_rules": "loader",
    "PlanFailure": "router",
    "Miss": "router",
    "RouteResult": "router",
    "Router": "router",
    "Rule": "ruleset",
    "RuleSet": "ruleset",
}
__all__ = [
    "Miss",
    "PlanFailure",
    "Requirement",
    "RouteResult",
    "Router",
    "Rule",
    "RuleSet",
    "RuleSetError",
    "load_rules",
    "parse_rules",
    "required_capabilities",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'gateway.rules' has no attribute '{name}'")
    return getattr(importlib.import_module(f"gateway.rules.{home}"), name)
