"""Which optional Conductor capabilities a rule set needs, and which of them a server lacks.

The names match `gateway.conductor.capabilities.Capabilities`: `variables` (Orkes variables
endpoint), `signal` (signal endpoints, OSS v3.32.0+ / Orkes v5.1.0+), `sync_execute`
(synchronous execute, OSS v3.21.23+ / Orkes v5+).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.rules.ruleset import RuleSet


@dataclass(frozen=True, slots=True)
class Requirement:
    rule: str
    action: str
    capability: str  # an attribute of Capabilities
    reason: str  # what needs it
    fix: str  # what to do when the server lacks it


_VARIABLES_FIX = (
    "use Orkes Conductor, or complete a WAIT task whose output a SET_VARIABLE task copies "
    "into the variables (OSS has no variables endpoint)"
)
_SIGNAL_FIX = "name the task with task_ref, or upgrade Conductor (OSS v3.32.0+, Orkes v5.1.0+)"
_EXECUTE_FIX = "use start_workflow with completion publishing, or upgrade Conductor (OSS v3.21.23+)"


_REASONS = {
    "variables": ("update_variables needs the Orkes variables endpoint", _VARIABLES_FIX),
    "signal": (
        "signal without task_ref targets the first waiting task, which needs the signal endpoint",
        _SIGNAL_FIX,
    ),
    "sync_execute": ("execute_workflow needs synchronous execute", _EXECUTE_FIX),
}


def required_capabilities(ruleset: RuleSet) -> tuple[Requirement, ...]:
    """One Requirement per rule that needs an optional capability, in file order."""
    out: list[Requirement] = []
    for rule in ruleset.rules:
        capability = rule.action.capability
        if capability is not None:
            reason, fix = _REASONS[capability]
            out.append(Requirement(rule.name, rule.action.action, capability, reason, fix))
    return tuple(out)


def missing_capabilities(ruleset: RuleSet, capabilities: Any) -> tuple[Requirement, ...]:
    """The requirements that `capabilities` (a Capabilities) does not meet."""
    return tuple(
        req
        for req in required_capabilities(ruleset)
        if not getattr(capabilities, req.capability, False)
    )


def flavor_notes(ruleset: RuleSet, capabilities: Any) -> tuple[tuple[str, str], ...]:
    """(rule, note) for options the connected flavor accepts but ignores (not errors)."""
    if getattr(capabilities, "flavor", None) != "oss":
        return ()
    notes = []
    for rule in ruleset.rules:
        params = {p.name: p.render({}) for p in rule.action.params if p.kind == "any"}
        if rule.action.method == "terminate" and params.get("trigger_failure_workflow"):
            notes.append(
                (
                    rule.name,
                    "OSS Conductor ignores trigger_failure_workflow on terminate; the "
                    "failure workflow will not start",
                )
            )
    return tuple(notes)
