"""`ConductorWorkflow`: define a workflow in Python, the way conductor-python does.

```python
from gateway.conductor import ConductorWorkflow, SimpleTask, SwitchTask, WaitTask

wf = ConductorWorkflow("order_flow", version=1)
load = SimpleTask("load_order", "load").input_parameter("orderId", wf.input("orderId"))
route = SwitchTask("route", load.output("kind"))
route.switch_case("express", SimpleTask("ship_fast", "fast")).default_case(WaitTask("hold"))
wf >> load >> route >> [[SimpleTask("bill", "bill")], [SimpleTask("notify", "notify")]]
wf.output_parameters({"kind": load.output("kind")})

await client.register_workflow(wf, overwrite=True)     # or start/execute it inline:
run = await client.execute_workflow(wf, input={"orderId": "A-1"})
```

It is called `ConductorWorkflow`, as in conductor-python, and not `Workflow`, because
`gateway.conductor.Workflow` is the model of a workflow *execution* (what `get_workflow`
returns); a builder of definitions under the same name would read as one thing and be another.
Unlike conductor-python's it holds no executor: the (async) `ConductorClient` takes it instead.

`to_workflow_def()` validates the definition (see `gateway.conductor.validation`) and returns
the `WorkflowDef` Conductor stores, equal to what conductor-python's `ConductorWorkflow` gives
for the same workflow (tests/workflows/test_sdk_equality.py). Where the two differ on purpose:
a JOIN is added after every fork, also after the last task and inside branches, cases and
loops (conductor-python adds it only between two top-level tasks, leaving a fork Conductor
cannot join); `restartable(False)` is sent (conductor-python drops it); forks added with `>>`
are named `forked_<n>` (their position among such forks) rather than a random id, so the same
code registers the same definition twice.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Self

from gateway.conductor.models import WorkflowDef
from gateway.conductor.operators import ForkTask, InlineSubWorkflowTask, render
from gateway.conductor.tasks import TaskInterface
from gateway.conductor.validation import validate_workflow_def


class TimeoutPolicy(StrEnum):
    TIME_OUT_WORKFLOW = "TIME_OUT_WF"
    ALERT_ONLY = "ALERT_ONLY"


class ConductorWorkflow:
    """A workflow definition built in code. Setters return the workflow, so they chain."""

    SCHEMA_VERSION = 2

    def __init__(self, name: str, version: int | None = None, description: str | None = None):
        if not isinstance(name, str) or not name:
            raise ValueError(f"workflow name {name!r} is not a non-empty string; name it")
        self.name = name
        self.version = version
        self.description = description
        self._tasks: list[TaskInterface] = []
        self._forks = 0
        self._owner_email: str | None = None
        self._timeout_policy: TimeoutPolicy | None = None
        self._timeout_seconds = 60  # conductor-python's default
        self._failure_workflow = ""
        self._input_parameters: list[str] = []
        self._output_parameters: dict[str, Any] = {}
        self._input_template: dict[str, Any] = {}
        self._variables: dict[str, Any] = {}
        self._restartable = True
        self._status_listener_sink: str | None = None

    # -- settings (conductor-python's names) ---------------------------------------------------

    def timeout_policy(self, timeout_policy: TimeoutPolicy | str) -> Self:
        self._timeout_policy = TimeoutPolicy(timeout_policy)
        return self

    def timeout_seconds(self, timeout_seconds: int) -> Self:
        if timeout_seconds < 0:
            raise ValueError(f"workflow '{self.name}': timeout_seconds {timeout_seconds} < 0")
        self._timeout_seconds = timeout_seconds
        return self

    def owner_email(self, owner_email: str) -> Self:
        self._owner_email = owner_email
        return self

    def failure_workflow(self, failure_workflow: str) -> Self:
        """The workflow Conductor starts when this one fails (for compensation)."""
        self._failure_workflow = failure_workflow
        return self

    def restartable(self, restartable: bool) -> Self:
        self._restartable = restartable
        return self

    def enable_status_listener(self, sink_name: str) -> Self:
        self._status_listener_sink = sink_name
        return self

    def disable_status_listener(self) -> Self:
        self._status_listener_sink = None
        return self

    def output_parameters(self, output_parameters: dict[str, Any] | None) -> Self:
        self._output_parameters = copy.deepcopy(output_parameters or {})
        return self

    def output_parameter(self, key: str, value: Any) -> Self:
        self._output_parameters[key] = copy.deepcopy(value)
        return self

    def input_template(self, input_template: dict[str, Any] | None) -> Self:
        self._input_template = copy.deepcopy(input_template or {})
        return self

    def variables(self, variables: dict[str, Any] | None) -> Self:
        self._variables = copy.deepcopy(variables or {})
        return self

    def input_parameters(self, input_parameters: list[str] | dict[str, Any]) -> Self:
        """The workflow's input names (documentation); a dict sets the input template."""
        if isinstance(input_parameters, dict):
            return self.input_template(input_parameters)
        self._input_parameters = list(input_parameters)
        return self

    def workflow_input(self, input: dict[str, Any]) -> Self:
        return self.input_template(input)

    # -- tasks ---------------------------------------------------------------------------------

    def __rshift__(
        self,
        task: TaskInterface | Sequence[TaskInterface | Sequence[TaskInterface]] | ConductorWorkflow,
    ) -> Self:
        """`wf >> task`, `wf >> [[a, b], [c]]` (a fork; JOIN added), `wf >> child_workflow`."""
        if isinstance(task, ConductorWorkflow):
            return self.add(self._inline(task))
        if isinstance(task, Sequence) and not isinstance(task, str):
            self._forks += 1
            branches = [[b] if isinstance(b, TaskInterface | str) else list(b) for b in task]
            return self.add(ForkTask(f"forked_{self._forks}", branches))
        return self.add(task)

    def add(self, task: TaskInterface | Sequence[TaskInterface]) -> Self:
        """Append a task, or each task of a list, in order."""
        items = task if isinstance(task, Sequence) and not isinstance(task, str) else [task]
        for item in items:
            if not isinstance(item, TaskInterface):
                raise TypeError(
                    f"workflow '{self.name}': {item!r} is not a task; add task objects such as "
                    "SimpleTask('name', 'ref') (a @worker_task function is not a task)"
                )
            self._tasks.append(copy.deepcopy(item))
        return self

    def _inline(self, child: ConductorWorkflow) -> InlineSubWorkflowTask:
        self._forks += 1
        task = InlineSubWorkflowTask(f"{child.name}_{self._forks}", child)
        task.input_parameters.update(child._input_template)
        return task

    @property
    def tasks(self) -> list[TaskInterface]:
        return list(self._tasks)

    # -- expressions ---------------------------------------------------------------------------

    def input(self, json_path: str | None = None) -> str:
        """`${workflow.input}` or `${workflow.input.<json_path>}`."""
        return "${workflow.input" + (f".{json_path}" if json_path else "") + "}"

    def output(self, json_path: str | None = None) -> str:
        return "${workflow.output" + (f".{json_path}" if json_path else "") + "}"

    def variable(self, name: str | None = None) -> str:
        """`${workflow.variables.<name>}` (set by SET_VARIABLE tasks)."""
        return "${workflow.variables" + (f".{name}" if name else "") + "}"

    # -- the definition ------------------------------------------------------------------------

    def to_workflow_def(self) -> WorkflowDef:
        """The definition Conductor stores, validated first (InvalidWorkflowDef names the task
        reference and the fix)."""
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "tasks": [t.to_wire() for t in render(self._tasks)],
            "inputParameters": list(self._input_parameters),
            "outputParameters": copy.deepcopy(self._output_parameters),
            "failureWorkflow": self._failure_workflow,
            "schemaVersion": self.SCHEMA_VERSION,
            "ownerEmail": self._owner_email,
            "timeoutPolicy": self._timeout_policy.value if self._timeout_policy else None,
            "timeoutSeconds": self._timeout_seconds,
            "variables": copy.deepcopy(self._variables),
            "inputTemplate": copy.deepcopy(self._input_template),
            "restartable": self._restartable,
            "workflowStatusListenerEnabled": self._status_listener_sink is not None,
            "workflowStatusListenerSink": self._status_listener_sink,
        }
        return validate_workflow_def({k: v for k, v in data.items() if v is not None})

    def __repr__(self) -> str:
        return f"ConductorWorkflow({self.name!r}, version={self.version!r})"
