"""Mistakes in a workflow are named before anything is sent: the workflow, the task
reference, the problem and the fix."""

from __future__ import annotations

import pytest

from gateway.conductor import (
    ConductorWorkflow,
    DoWhileTask,
    ForkTask,
    JoinTask,
    SimpleTask,
    SwitchTask,
    WaitTask,
)
from gateway.conductor.validation import validate_workflow_def
from gateway.errors import InvalidWorkflowDef


def invalid(wf: ConductorWorkflow) -> str:
    with pytest.raises(InvalidWorkflowDef) as caught:
        wf.to_workflow_def()
    return str(caught.value)


def test_reference_names_must_be_unique_also_when_nested() -> None:
    wf = ConductorWorkflow("dup") >> SimpleTask("a", "step")
    wf >> SwitchTask("route", "x").switch_case("x", [SimpleTask("b", "step")])
    message = invalid(wf)
    assert "workflow 'dup': task 'step': reference name used twice" in message
    assert "tasks[0]" in message and "decisionCases.x" in message
    assert "unique taskReferenceName" in message


def test_a_switch_needs_a_case() -> None:
    wf = ConductorWorkflow("sw") >> SwitchTask("route", "${workflow.input.kind}")
    assert invalid(wf) == (
        "workflow 'sw': task 'route': SWITCH has no cases; add at least one with "
        "switch_case(name, tasks)"
    )


def test_a_do_while_condition_must_name_a_task_of_the_loop() -> None:
    loop = DoWhileTask("repeat", "$.other['iteration'] < 3", [SimpleTask("s", "step")])
    message = invalid(ConductorWorkflow("dw") >> loop)
    assert message.startswith("workflow 'dw': task 'repeat': DO_WHILE condition")
    assert "names no task of the loop" in message and "$.repeat['iteration']" in message


@pytest.mark.parametrize(
    "condition", ["$.repeat['iteration'] < 3", "$.step.done == false", "$.limit > 0"]
)
def test_a_do_while_condition_may_name_the_loop_its_tasks_or_its_inputs(condition: str) -> None:
    loop = DoWhileTask("repeat", condition, [SimpleTask("s", "step")]).input_parameter("limit", 3)
    assert (ConductorWorkflow("dw") >> loop).to_workflow_def().tasks[0]["loopCondition"]


def test_an_expression_must_name_an_existing_task() -> None:
    wf = ConductorWorkflow("expr") >> SimpleTask("a", "load")
    wf >> SimpleTask("b", "ship").input_parameter("items", "${lod.output.items}")
    assert invalid(wf) == (
        "workflow 'expr': task 'ship' inputParameters: expression names task 'lod', which is "
        "not in the workflow (tasks: load, ship); fix the reference name or add the task"
    )


def test_workflow_output_expressions_are_checked_too() -> None:
    wf = ConductorWorkflow("out") >> SimpleTask("a", "load")
    wf.output_parameters({"x": "${missing.output.x}", "y": "${load.output.y}"})
    assert "outputParameters: expression names task 'missing'" in invalid(wf)


def test_loop_iterations_and_workflow_expressions_are_fine() -> None:
    wf = ConductorWorkflow("ok") >> SimpleTask("a", "load")
    wf.output_parameters({"i": "${load__2.output}", "w": wf.input("x"), "v": wf.variable("v")})
    assert wf.to_workflow_def().output_parameters == {
        "i": "${load__2.output}",
        "w": "${workflow.input.x}",
        "v": "${workflow.variables.v}",
    }


def test_a_fork_branch_may_not_be_empty() -> None:
    wf = ConductorWorkflow("fk") >> ForkTask("fan", [[SimpleTask("a", "a1")], []])
    assert "task 'fan': fork branch 1 is empty" in invalid(wf)


def test_a_join_waits_on_existing_tasks() -> None:
    fork = ForkTask("fan", [[WaitTask("w1")], [WaitTask("w2")]])
    wf = ConductorWorkflow("jn") >> fork >> JoinTask("gather", ["w1", "w3"])
    assert "task 'gather': joinOn names 'w3'" in invalid(wf)


def test_an_empty_workflow_is_refused() -> None:
    assert invalid(ConductorWorkflow("empty")) == (
        "workflow 'empty': has no tasks; add at least one task"
    )


def test_an_inline_sub_workflow_is_checked_in_its_own_namespace() -> None:
    child = ConductorWorkflow("child") >> SwitchTask("route", "x")
    wf = ConductorWorkflow("parent") >> SimpleTask("a", "route") >> child
    message = invalid(wf)
    assert "task 'child_1' (inline sub-workflow): workflow 'child': task 'route'" in message


def test_definitions_given_as_json_are_checked_the_same_way() -> None:
    with pytest.raises(InvalidWorkflowDef, match="task 'x': type is missing"):
        validate_workflow_def({"name": "j", "tasks": [{"name": "x", "taskReferenceName": "x"}]})
    fork = {"name": "f", "taskReferenceName": "f", "type": "FORK_JOIN", "forkTasks": [[]]}
    with pytest.raises(InvalidWorkflowDef, match=r"must be followed by a JOIN|is empty"):
        validate_workflow_def({"name": "j", "tasks": [fork]})


def test_chaining_a_non_task_names_it() -> None:
    with pytest.raises(TypeError, match="'ship' is not a task"):
        ConductorWorkflow("t") >> ["ship"]  # type: ignore[list-item]
    with pytest.raises(TypeError, match="is not a task; add task objects"):
        ConductorWorkflow("t").add(print)  # type: ignore[arg-type]
