"""The action registry (`ACTIONS`: one `Action` per rule action) and the compiled actions:
one `ActionSpec` per rule renders a `Plan` per event.

`Plan.method` and `Plan.params` are exactly a `ConductorClient` method and its keyword
arguments (see gateway/plan.py). Parameters are rendered from templates and then checked
against the type the method expects, so a wrong type is a TemplateError here and never a
400 from Conductor later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from gateway.errors import TemplateError
from gateway.plan import OnMany, OnMissing, Target
from gateway.rules import request, schema
from gateway.rules.request import Request
from gateway.rules.template import Renderer, compile_query, compile_value
from gateway.statuses import TERMINAL_WORKFLOW, UNSUCCESSFUL_WORKFLOW, TaskResultStatus

Kind = Literal["any", "object", "object?", "string", "string?", "int?", "strings?", "bool"]


class ParamError(ValueError):
    """A parameter that is wrong at load time; `key` names it inside the action."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class Param:
    name: str  # the ConductorClient keyword argument
    render: Renderer
    kind: Kind
    key: str  # the YAML key, for error messages
    fast: type | None = None  # a value of exactly this type needs no check (None: any value)

    def value(self, doc: Mapping[str, Any]) -> Any:
        value = self.render(doc)
        if self.fast is None or type(value) is self.fast:
            return value
        return _coerce(value, self.kind, self.key)


_FAST: dict[str, type | None] = {
    "any": None,
    "object": dict,
    "object?": dict,
    "string": str,
    "string?": str,
    "int?": int,
    "strings?": type(None),  # a list needs its items checked
    "bool": bool,
}


def _coerce(value: Any, kind: Kind, key: str) -> Any:
    if kind == "any" or (value is None and kind.endswith("?")):
        return value
    base = kind.rstrip("?")
    if base == "object" and isinstance(value, dict):
        return value
    if base == "string" and isinstance(value, str | int | float) and not isinstance(value, bool):
        return value if isinstance(value, str) else _number_text(value)
    if base == "int" and isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if base == "int" and isinstance(value, int) and not isinstance(value, bool):
        if key.endswith("priority") and not 0 <= value <= 99:
            raise TemplateError(f"{key} must be between 0 and 99, got {value}")
        return value
    if base == "strings" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if base == "bool" and isinstance(value, bool):
        return value
    shown = "null" if value is None else type(value).__name__
    raise TemplateError(f"{key} must be {_KIND_TEXT[base]}, got {shown}")


def _number_text(value: int | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


_KIND_TEXT = {
    "object": "a JSON object",
    "string": "a string",
    "int": "an integer",
    "strings": "a list of strings",
    "bool": "true or false",
}


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """A compiled plan.Target: templates for how to find the workflow, plus the policies."""

    workflow_id: Renderer | None
    correlation_id: Renderer | None
    workflow_name: str | None
    query: Renderer | None
    on_missing: OnMissing
    retry_for_seconds: float
    on_many: OnMany
    action: str
    start: tuple[Param, ...] = ()  # on_missing "start": start_workflow's arguments

    def render(self, doc: Mapping[str, Any]) -> Target:
        correlation_id = self._text(self.correlation_id, doc, "correlation_id")
        start = None
        if self.on_missing == "start":
            start = {p.name: p.value(doc) for p in self.start}
            start["correlation_id"] = start.get("correlation_id") or correlation_id
        return Target(
            workflow_id=self._text(self.workflow_id, doc, "workflow_id"),
            correlation_id=correlation_id,
            workflow_name=self.workflow_name,
            query=self._text(self.query, doc, "query"),
            on_missing=self.on_missing,
            retry_for_seconds=self.retry_for_seconds,
            on_many=self.on_many,
            start=start,
        )

    def _text(self, render: Renderer | None, doc: Mapping[str, Any], key: str) -> str | None:
        if render is None:
            return None
        value = _coerce(render(doc), "string", f"{self.action}.{key}")
        if not value:
            raise TemplateError(f"{self.action}.{key} rendered an empty string")
        assert isinstance(value, str)
        return value


@dataclass(frozen=True, slots=True)
class ActionSpec:
    action: str
    method: str
    params: tuple[Param, ...]
    target: TargetSpec | None
    capability: str | None = None  # optional Conductor capability needed (capabilities.py)

    def render_params(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for p in self.params:
            value = p.render(doc)
            if p.fast is not None and type(value) is not p.fast:
                value = _coerce(value, p.kind, p.key)
            out[p.name] = value
        return out


# --- compiling ---------------------------------------------------------------------------


class _Builder:
    """Collects the Params of one action, compiling each value's templates."""

    def __init__(self, action: str, strict: bool) -> None:
        self.action, self.strict = action, strict
        self.params: list[Param] = []

    def add(self, name: str, value: Any, kind: Kind, key: str | None = None) -> None:
        yaml_key = f"{self.action}.{key or name}"
        render = self._compile(value, key or name)
        if not _templated(value):
            try:  # a literal of the wrong type is a load error, not a failure per event
                _coerce(value, kind, yaml_key)
            except TemplateError as exc:
                raise ParamError(key or name, str(exc).removeprefix(f"{yaml_key} ")) from None
        fast = object if name == "priority" else _FAST[kind]  # object: always checked (range)
        self.params.append(Param(name, render, kind, yaml_key, fast))

    def literal(self, name: str, value: Any) -> None:
        self.params.append(Param(name, _const(value), "any", f"{self.action}.{name}"))

    def _compile(self, value: Any, key: str) -> Renderer:
        from gateway.rules.template import TemplateSyntaxError

        try:
            return compile_value(value, strict=self.strict)
        except TemplateSyntaxError as exc:
            inner = ".".join(str(p) for p in exc.path)
            raise ParamError(f"{key}.{inner}" if inner else key, str(exc)) from None


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False


def _const(value: Any) -> Renderer:
    def const(_doc: Mapping[str, Any]) -> Any:
        return value

    return const


def _no_template(key: str, value: str | None) -> None:
    if value is not None and "${" in value:
        raise ParamError(key, "must be a literal; a template would let an event choose it")


def _start(b: _Builder, m: schema.StartWorkflowModel) -> str:
    _new_workflow(b, m)
    b.literal("task_to_domain", m.task_to_domain)
    b.literal("workflow_def", _definition(m))
    return "start_workflow"


def _execute(b: _Builder, m: schema.ExecuteWorkflowModel) -> str:
    _new_workflow(b, m)
    b.literal("wait_until_task_refs", m.wait_until_task_refs)
    b.literal("wait_for_seconds", m.wait_for_seconds)
    if m.workflow_def is not None:
        b.literal("workflow_def", _definition(m))
    return "execute_workflow"


def _definition(m: schema.NewWorkflowModel) -> dict[str, Any] | None:
    """The inline definition (the loader has read `workflow_def_file` into `workflow_def`),
    validated now and sent as written (its `${...}` are Conductor's expressions, not ours)."""
    if m.workflow_def is None:
        return None
    from gateway.conductor.validation import validate_workflow_def
    from gateway.errors import InvalidWorkflowDef

    key = "workflow_def_file" if m.workflow_def_file else "workflow_def"
    try:
        definition = validate_workflow_def(m.workflow_def)
    except InvalidWorkflowDef as exc:
        raise ParamError(key, str(exc)) from None
    if definition.name != m.name:
        raise ParamError(
            key,
            f"defines workflow '{definition.name}' but the rule's name is '{m.name}'; "
            "make them the same",
        )
    return dict(m.workflow_def)


def _new_workflow(b: _Builder, m: schema.NewWorkflowModel) -> None:
    _no_template("name", m.name)
    b.literal("name", m.name)
    b.literal("version", m.version)
    b.add("input", {} if m.input is None else m.input, "object")
    b.add("correlation_id", m.correlation_id, "string?")
    b.add("priority", m.priority, "int?")


def _signal(b: _Builder, m: schema.SignalModel) -> str:
    b.literal("status", m.status)
    b.add("output", m.output, "object?")
    b.add("task_ref", m.task_ref, "string?")
    if m.reason is not None:
        b.add("reason_for_incompletion", m.reason, "string?", "reason")
    return "signal"


def _task(b: _Builder, m: schema.CompleteTaskModel | schema.FailTaskModel, status: str) -> str:
    reason = getattr(m, "reason", None)
    if m.task_id is not None:
        b.add("task_id", m.task_id, "string")
        b.add("workflow_id", m.workflow_id, "string")
        b.literal("status", status)
        b.add("output", m.output, "object?")
        if reason is not None:
            b.add("reason_for_incompletion", reason, "string?", "reason")
        return "update_task"
    b.literal("status", status)
    b.add("output", m.output, "object?")
    b.add("task_ref", m.task_ref, "string")
    if reason is not None:
        b.add("reason_for_incompletion", reason, "string?", "reason")
    return "signal"


def _complete(b: _Builder, m: schema.CompleteTaskModel) -> str:
    return _task(b, m, "COMPLETED")


def _fail(b: _Builder, m: schema.FailTaskModel) -> str:
    return _task(b, m, "FAILED_WITH_TERMINAL_ERROR" if m.terminal else "FAILED")


def _variables(b: _Builder, m: schema.UpdateVariablesModel) -> str:
    b.add("variables", m.variables, "object")
    return "update_variables"


def _terminate(b: _Builder, m: schema.TerminateModel) -> str:
    b.add("reason", m.reason, "string?")
    b.literal("trigger_failure_workflow", m.trigger_failure_workflow)
    return "terminate"


def _pause(_b: _Builder, _m: schema.PauseModel) -> str:
    return "pause"


def _resume(_b: _Builder, _m: schema.ResumeModel) -> str:
    return "resume"


def _retry(b: _Builder, m: schema.RetryActionModel) -> str:
    b.literal("resume_subworkflow_tasks", m.resume_subworkflow_tasks)
    return "retry"


def _restart(b: _Builder, m: schema.RestartModel) -> str:
    b.literal("use_latest_definitions", m.use_latest_definitions)
    return "restart"


def _rerun(b: _Builder, m: schema.RerunModel) -> str:
    b.add("re_run_from_task_id", m.from_task_id, "string?", "from_task_id")
    b.add("task_input", m.task_input, "object?")
    b.add("workflow_input", m.workflow_input, "object?")
    b.add("correlation_id", m.new_correlation_id, "string?", "new_correlation_id")
    return "rerun"


# --- the registry ------------------------------------------------------------------------

Params = Mapping[str, Any]


class ActionCalls(Protocol):
    """The `ConductorClient` methods that actions call (the executor's `Conductor` adds the
    look-ups and starts). Plan params are these methods' keyword arguments, rendered and
    type-checked when the plan was built (`Param.kind`)."""

    async def signal(
        self,
        workflow_id: str,
        status: TaskResultStatus,
        output: Mapping[str, Any] | None = ...,
        task_ref: str | None = ...,
        reason_for_incompletion: str | None = ...,
    ) -> str | None: ...

    async def update_task(
        self,
        task_id: str,
        workflow_id: str,
        status: TaskResultStatus,
        output: Mapping[str, Any] | None = ...,
        reason_for_incompletion: str | None = ...,
    ) -> str: ...

    async def update_variables(self, workflow_id: str, variables: Mapping[str, Any]) -> Any: ...

    async def terminate(
        self, workflow_id: str, reason: str | None = ..., trigger_failure_workflow: bool = ...
    ) -> None: ...

    async def pause(self, workflow_id: str) -> None: ...

    async def resume(self, workflow_id: str) -> None: ...

    async def retry(self, workflow_id: str, resume_subworkflow_tasks: bool = ...) -> None: ...

    async def restart(self, workflow_id: str, use_latest_definitions: bool = ...) -> None: ...

    async def rerun(
        self,
        workflow_id: str,
        re_run_from_task_id: str | None = ...,
        task_input: Mapping[str, Any] | None = ...,
        workflow_input: Mapping[str, Any] | None = ...,
        correlation_id: str | None = ...,
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class ActionStates:
    """Which workflow states an action applies to, and which mean it already happened."""

    eligible: frozenset[str]  # empty: any state
    noop: frozenset[str] = frozenset()  # success without a call, always
    repeated: frozenset[str] = frozenset()  # success when the delivery may be a redelivery


ACTIVE = frozenset({"RUNNING", "PAUSED"})
_AGAIN = frozenset({"RUNNING"})  # retried, restarted or rerun already


@dataclass(frozen=True, slots=True)
class Action:
    """One rule action, whole: its YAML model, how its params are built, what `explain` shows
    it sends, the workflow states it applies to and the client call that runs it.

    The registry lives here, beside the builders, because building is most of an action; the
    executor and `request.plan_requests` look actions up by `Plan.action`. A new action is one
    entry (plus its model field in schema.RuleModel, which pydantic needs).
    """

    name: str  # the rule action (its YAML key is schema.ACTION_KEYS[name])
    model: type[BaseModel]
    build: Callable[[_Builder, Any], str]  # adds the params, returns the client method
    requests: Callable[[Params, str], list[Request]]  # the HTTP requests, for `explain`
    states: ActionStates
    # The client call, given the found workflow's id (None for complete/fail_task by task id,
    # which have no target). None for the starts: the executor runs them through its dedupe.
    call: Callable[[ActionCalls, str | None, Params], Awaitable[Any]] | None = None
    starts_on_missing: bool = False  # may take `on_missing: start` (signal-with-start)
    # Acts on a waiting task: a NotFound (or None from a by-ref signal) means none waits yet.
    on_task: bool = False
    # The optional Conductor capability a rule of this action needs (capabilities.py), if any.
    capability: Callable[[Any], str | None] = lambda _model: None

    @property
    def starts(self) -> bool:
        return self.call is None


def _signal_capability(m: schema.SignalModel) -> str | None:
    """The first waiting task (no task_ref, no reason): only the signal endpoint finds it."""
    return "signal" if m.task_ref is None and m.reason is None else None


def _found(workflow_id: str | None) -> str:
    assert workflow_id is not None, "only a task by id is acted on without a target"
    return workflow_id


async def _call_task(c: ActionCalls, workflow_id: str | None, p: Params) -> str | None:
    if workflow_id is None:  # complete_task / fail_task by task id: the params name both
        return await c.update_task(**p)
    return await c.signal(workflow_id, **p)


_TASK = ActionStates(ACTIVE)

ACTIONS: Mapping[str, Action] = {
    a.name: a
    for a in (
        Action(
            "start_workflow",
            schema.StartWorkflowModel,
            _start,
            request.start_requests,
            ActionStates(frozenset()),
        ),
        Action(
            "execute_workflow",
            schema.ExecuteWorkflowModel,
            _execute,
            request.execute_requests,
            ActionStates(frozenset()),
            capability=lambda _m: "sync_execute",
        ),
        Action(
            "signal",
            schema.SignalModel,
            _signal,
            request.signal_requests,
            _TASK,
            lambda c, wf, p: c.signal(_found(wf), **p),
            starts_on_missing=True,
            on_task=True,
            capability=_signal_capability,
        ),
        Action(
            "complete_task",
            schema.CompleteTaskModel,
            _complete,
            request.task_requests,
            _TASK,
            _call_task,
            starts_on_missing=True,
            on_task=True,
        ),
        Action("fail_task", schema.FailTaskModel, _fail, request.task_requests, _TASK, _call_task),
        Action(
            "update_variables",
            schema.UpdateVariablesModel,
            _variables,
            request.variables_requests,
            ActionStates(frozenset()),
            lambda c, wf, p: c.update_variables(_found(wf), **p),
            starts_on_missing=True,
            capability=lambda _m: "variables",
        ),
        Action(
            "terminate",
            schema.TerminateModel,
            _terminate,
            request.terminate_requests,
            ActionStates(ACTIVE, noop=frozenset({"TERMINATED"})),
            lambda c, wf, p: c.terminate(_found(wf), **p),
        ),
        Action(
            "pause",
            schema.PauseModel,
            _pause,
            request.pause_requests,
            ActionStates(frozenset({"RUNNING"}), noop=frozenset({"PAUSED"})),
            lambda c, wf, p: c.pause(_found(wf), **p),
        ),
        Action(
            "resume",
            schema.ResumeModel,
            _resume,
            request.resume_requests,
            ActionStates(frozenset({"PAUSED"}), noop=frozenset({"RUNNING"})),
            lambda c, wf, p: c.resume(_found(wf), **p),
        ),
        Action(
            "retry",
            schema.RetryActionModel,
            _retry,
            request.retry_requests,
            ActionStates(UNSUCCESSFUL_WORKFLOW, repeated=_AGAIN),
            lambda c, wf, p: c.retry(_found(wf), **p),
        ),
        Action(
            "restart",
            schema.RestartModel,
            _restart,
            request.restart_requests,
            ActionStates(TERMINAL_WORKFLOW, repeated=_AGAIN),
            lambda c, wf, p: c.restart(_found(wf), **p),
        ),
        Action(
            "rerun",
            schema.RerunModel,
            _rerun,
            request.rerun_requests,
            ActionStates(TERMINAL_WORKFLOW, repeated=_AGAIN),
            lambda c, wf, p: c.rerun(_found(wf), **p),
        ),
    )
}


def compile_action(action: str, model: Any, *, strict: bool) -> ActionSpec:
    """Compile one action's model; raises ParamError (key inside the action) or TemplateError."""
    key = schema.ACTION_KEYS[action]
    builder = _Builder(key, strict)
    method = ACTIONS[action].build(builder, model)
    target = None
    start_given = schema.started_on_missing(model) is not None
    if start_given and (not ACTIONS[action].starts_on_missing or method == "update_task"):
        what = "complete_task by task_id" if method == "update_task" else action
        raise ParamError(
            "on_missing",
            f"start is for signal, complete_task by task_ref and update_variables, not {what} "
            "(a task id names a task of a workflow that exists); use dead_letter, skip or retry",
        )
    if isinstance(model, schema._Targeted) and method != "update_task":
        target = _compile_target(key, model, strict)
    capability = ACTIONS[action].capability(model)
    return ActionSpec(action, method, tuple(builder.params), target, capability)


def _start_on_missing(
    key: str, m: schema.StartOnMissingModel, name: str, strict: bool
) -> tuple[Param, ...]:
    b = _Builder(f"{key}.start", strict)
    b.literal("name", name)
    b.literal("version", m.version)
    b.add("input", {} if m.input is None else m.input, "object")
    b.add("correlation_id", m.correlation_id, "string?")
    return tuple(b.params)


def _compile_target(key: str, m: schema._Targeted, strict: bool) -> TargetSpec:
    _no_template("workflow_name", m.workflow_name)
    start: tuple[Param, ...] = ()
    if (block := schema.started_on_missing(m)) is not None:
        assert m.workflow_name is not None  # the schema asks for a target by correlation id
        try:
            start = _start_on_missing(key, block, m.workflow_name, strict)
        except ParamError as exc:
            raise ParamError(f"start.{exc.key}", str(exc)) from None

    def text(name: str, value: str | None, query: bool = False) -> Renderer | None:
        if value is None:
            return None
        try:
            return (
                compile_query(value, strict=strict)
                if query
                else compile_value(value, strict=strict)
            )
        except TemplateError as exc:
            raise ParamError(name, str(exc)) from None

    return TargetSpec(
        workflow_id=text("workflow_id", m.workflow_id),
        correlation_id=text("correlation_id", m.correlation_id),
        workflow_name=m.workflow_name,
        query=text("query", m.query, query=True),
        on_missing=m.on_missing,
        retry_for_seconds=m.retry_for_seconds,
        on_many=m.on_many,
        action=key,
        start=start,
    )
