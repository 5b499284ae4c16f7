"""Rules that run a workflow from its definition: `workflow_def` inline, or
`workflow_def_file` (relative to the rules file), for start_workflow and execute_workflow;
the definition is validated when the rules load."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from gateway.conductor import ConductorClient, ConductorWorkflow, SetVariableTask
from gateway.errors import RuleError
from gateway.rules.loader import load_rules
from gateway.rules.request import plan_requests
from gateway.rules.router import Router
from tests.rules.helpers import kafka_event, one_rule

GREETING = ConductorWorkflow("greeting", version=1)
GREETING >> SetVariableTask("greet").input_parameter("hello", GREETING.input("name"))
DEFINITION = GREETING.to_workflow_def().to_wire()


def rules_file(tmp_path: Path, action: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(f"rules:\n  - name: r\n    source: {{topic: orders}}\n{action}")
    return path


def test_execute_workflow_with_a_definition_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "greeting.json").write_text(json.dumps(DEFINITION))
    action = (
        "    execute_workflow:\n      name: greeting\n      input: {name: '${body.who}'}\n"
        "      workflow_def_file: flows/greeting.json\n"
    )
    ruleset = load_rules(rules_file(tmp_path, action))
    (plan,) = Router(ruleset).route(kafka_event({"who": "ada"})).plans
    assert plan.method == "execute_workflow"
    assert plan.params["workflow_def"] == DEFINITION
    assert plan.params["input"] == {"name": "ada"}
    inspect.signature(ConductorClient.execute_workflow).bind("self", **plan.params)
    (request,) = plan_requests(plan)
    assert request.path == "/api/workflow/execute/greeting/0"
    assert request.body["workflowDef"] == DEFINITION  # ${workflow.input.name} sent as written


def test_start_workflow_with_an_inline_definition() -> None:
    ruleset = one_rule(
        "start_workflow:\n  name: greeting\n  workflow_def: " + json.dumps(DEFINITION) + "\n"
    )
    (plan,) = Router(ruleset).route(kafka_event({"who": "ada"})).plans
    assert plan.params["workflow_def"] == DEFINITION


def test_an_invalid_definition_is_a_load_error_naming_the_task(tmp_path: Path) -> None:
    broken = {**DEFINITION, "tasks": [{**DEFINITION["tasks"][0], "type": "SWITCH"}]}
    (tmp_path / "broken.yaml").write_text(json.dumps(broken))
    action = "    start_workflow:\n      name: greeting\n      workflow_def_file: broken.yaml\n"
    with pytest.raises(RuleError) as info:
        load_rules(rules_file(tmp_path, action))
    assert "rule 'r': start_workflow.workflow_def_file: workflow 'greeting': task 'greet': " in (
        str(info.value)
    )
    assert "SWITCH has no cases" in str(info.value)


def test_the_rule_and_its_definition_name_the_same_workflow() -> None:
    with pytest.raises(RuleError) as info:
        one_rule("execute_workflow:\n  name: other\n  workflow_def: " + json.dumps(DEFINITION))
    assert "execute_workflow.workflow_def: defines workflow 'greeting' but the rule's name is " in (
        str(info.value)
    )


def test_a_missing_file_says_where_it_was_looked_for(tmp_path: Path) -> None:
    action = "    start_workflow:\n      name: greeting\n      workflow_def_file: nope.json\n"
    with pytest.raises(RuleError) as info:
        load_rules(rules_file(tmp_path, action))
    message = str(info.value)
    assert f"start_workflow.workflow_def_file: cannot read '{tmp_path / 'nope.json'}'" in message
    assert "relative to the rules file" in message


def test_inline_and_file_together_are_refused() -> None:
    with pytest.raises(RuleError, match="give workflow_def or workflow_def_file, not both"):
        one_rule(
            "start_workflow:\n  name: greeting\n  workflow_def_file: a.json\n"
            "  workflow_def: " + json.dumps(DEFINITION)
        )
