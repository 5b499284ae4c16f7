"""Load a rules file: YAML (with line numbers) -> pydantic models -> a compiled, frozen RuleSet.

Every problem becomes a `RuleError` naming the file, line, rule and key, e.g.
`rules.yaml:14 rule 'cancel-order': terminate.workflow_id: template '${body.id' is missing '}'`.
All problems of the file are collected; `RuleSetError` (a RuleError) carries them all.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from gateway.errors import ConfigError, RuleError, TemplateError
from gateway.plan import CompletionSpec, Destination, RateLimit, ReplySpec, RetryPolicy
from gateway.rules import schema
from gateway.rules.actions import ParamError, compile_action
from gateway.rules.pattern import PatternError, compile_pattern
from gateway.rules.ruleset import Options, Rule, RuleSet, Source
from gateway.rules.template import compile_expression, compile_value

Loc = tuple[str | int, ...]
ENVELOPE_FIELDS = frozenset(
    [
        "body",
        "headers",
        "key",
        "topic",
        "partition",
        "offset",
        "queue",
        "exchange",
        "routing_key",
        "message_id",
        "correlation_id",
        "reply_to",
        "timestamp",
        "source",
    ]
)
MAX_RULES_BYTES = 4 * 1024 * 1024


class RuleSetError(RuleError):
    """Several rule errors at once; `errors` holds each one, the message lists them all."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = tuple(errors)
        first = errors[0]
        super().__init__(
            first.problem, file=first.file, line=first.line, rule=first.rule, key=first.key
        )

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)


def load_rules(path: Path | str) -> RuleSet:
    """Read and compile a rules file; raise RuleError (RuleSetError for several)."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise RuleError(f"cannot read rules file: {exc.strerror}", file=name) from None
    if len(raw) > MAX_RULES_BYTES:
        raise RuleError(f"is {len(raw)} bytes, over the limit of {MAX_RULES_BYTES}", file=name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RuleError("is not UTF-8 text", file=name) from None
    return parse_rules(text, file=name)


def parse_rules(text: str, *, file: str = "<rules>") -> RuleSet:
    data, lines = _read_yaml(text, file)
    return _Compiler(file, lines).compile(data)


# --- YAML with line numbers ----------------------------------------------------------------


def _read_yaml(text: str, file: str) -> tuple[Any, dict[Loc, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        lines: dict[Loc, int] = {}
        if node is not None:
            _record_lines(node, (), lines, file)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleError(f"not valid YAML: {problem}", file=file, line=line) from None
    return data, lines


MAX_YAML_NODES = 200_000  # aliases can multiply a small file (a "billion laughs" file)


def _record_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int], file: str) -> None:
    if len(lines) > MAX_YAML_NODES:
        raise RuleError(
            f"has more than {MAX_YAML_NODES} values (too many YAML aliases?)", file=file
        )
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise RuleError(
                    f"duplicate key '{key}'", file=file, line=key_node.start_mark.line + 1
                )
            seen.add(key)
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _record_lines(value_node, (*loc, key), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(item, (*loc, i), lines, file)


# --- compiling -------------------------------------------------------------------------


class _Compiler:
    def __init__(self, file: str, lines: dict[Loc, int]) -> None:
        self.file, self.lines = file, lines
        self.errors: list[RuleError] = []

    def line(self, loc: Loc) -> int | None:
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None

    def error(self, problem: str, loc: Loc, rule: str | None = None, key: str = "") -> None:
        self.errors.append(
            RuleError(problem, file=self.file, line=self.line(loc), rule=rule, key=key or None)
        )

    def compile(self, data: Any) -> RuleSet:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.error("the top level must be a mapping with a `rules:` list", ())
            raise RuleSetError(self.errors)
        top = self._validate(schema.RuleSetModel, data, (), None)
        if top is None:
            raw_rules = data.get("rules")
            top = schema.RuleSetModel(rules=raw_rules if isinstance(raw_rules, list) else [])
        defaults = top.defaults
        default_retry = _retry_policy(defaults.retry, RetryPolicy())
        default_dlq = self._destination(
            defaults.dead_letter, ("defaults", "dead_letter"), None, "defaults.dead_letter"
        )
        rules = self._rules(top.rules, defaults, default_retry, default_dlq)
        if self.errors:
            self.errors.sort(key=lambda e: e.line or 0)  # file order (stable within a line)
            raise RuleSetError(self.errors)
        return RuleSet(
            tuple(rules), top.match_mode, top.on_unmatched, default_retry, default_dlq, self.file
        )

    def _rules(
        self,
        raws: list[Any],
        defaults: schema.DefaultsModel,
        retry: RetryPolicy,
        dlq: Destination | None,
    ) -> list[Rule]:
        rules: list[Rule] = []
        names: dict[str, int] = {}
        for i, raw in enumerate(raws):
            loc: Loc = ("rules", i)
            name = raw.get("name") if isinstance(raw, dict) else None
            label = name if isinstance(name, str) else f"#{i + 1}"
            model = self._validate(schema.RuleModel, raw, loc, label)
            if model is None:
                self._check_match_only(raw, loc, label)
                continue
            if model.name in names:
                self.error(
                    f"duplicate rule name (first at rule #{names[model.name] + 1})",
                    (*loc, "name"),
                    label,
                    "name",
                )
                continue
            names[model.name] = i
            rule = self._rule(model, i, loc, defaults, retry, dlq)
            if rule is not None:
                rules.append(rule)
        return rules

    def _check_match_only(self, raw: Any, loc: Loc, label: str) -> None:
        """A rule that failed its schema still gets its pattern checked: report all at once."""
        if isinstance(raw, dict) and isinstance(raw.get("match"), dict):
            try:
                compile_pattern(raw["match"], roots=ENVELOPE_FIELDS)
            except PatternError as exc:
                key = ".".join(str(p) for p in ("match", *exc.path))
                self.error(str(exc), (*loc, "match", *exc.path), label, key)

    def _validate(self, cls: type[BaseModel], raw: Any, loc: Loc, rule: str | None) -> Any:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                where = tuple(err["loc"])
                self.error(
                    _pydantic_problem(err, cls),
                    (*loc, *where),
                    rule,
                    ".".join(str(p) for p in where),
                )
            return None

    def _rule(
        self,
        m: schema.RuleModel,
        index: int,
        loc: Loc,
        defaults: schema.DefaultsModel,
        retry: RetryPolicy,
        dlq: Destination | None,
    ) -> Rule | None:
        before = len(self.errors)
        strict = defaults.strict if m.strict is None else m.strict
        source = self._source(m, loc)
        pattern = self._pattern(m, loc)
        condition = self._condition(m, loc)
        action = self._action(m, loc, strict)
        options = self._options(m, loc, strict, retry, dlq)
        if len(self.errors) > before or source is None or pattern is None or action is None:
            return None
        assert options is not None
        return Rule(
            name=m.name,
            index=index,
            line=self.line(loc),
            source=source,
            pattern=pattern,
            condition=condition,
            accept_raw_text=m.accept_raw_text,
            action=action,
            options=options,
        )

    def _source(self, m: schema.RuleModel, loc: Loc) -> Source | None:
        s = m.source
        if s.topic_pattern is not None:
            try:
                regex = re.compile(s.topic_pattern)
            except re.error as exc:
                self.error(
                    f"not a valid regular expression: {exc}",
                    (*loc, "source", "topic_pattern"),
                    m.name,
                    "source.topic_pattern",
                )
                return None
            return Source("kafka", topic_pattern=regex)
        if s.topic is not None:
            return Source("kafka", topic=s.topic)
        words = tuple(s.routing_key.split(".")) if s.routing_key else None
        return Source(
            "amqp",
            queue=s.queue,
            exchange=s.exchange,
            routing_key=s.routing_key,
            routing_words=words,
        )

    def _pattern(self, m: schema.RuleModel, loc: Loc) -> Any:
        try:
            return compile_pattern(m.match, roots=ENVELOPE_FIELDS)
        except PatternError as exc:
            key = ".".join(str(p) for p in ("match", *exc.path))
            self.error(str(exc), (*loc, "match", *exc.path), m.name, key)
            return None

    def _condition(self, m: schema.RuleModel, loc: Loc) -> Any:
        if m.condition is None:
            return None
        try:
            return compile_expression(m.condition)
        except TemplateError as exc:
            self.error(str(exc), (*loc, "condition"), m.name, "condition")
            return None

    def _action(self, m: schema.RuleModel, loc: Loc, strict: bool) -> Any:
        key = schema.ACTION_KEYS[m.action]
        try:
            return compile_action(m.action, self._with_definition(m.action_model), strict=strict)
        except ParamError as exc:
            parts = tuple(int(p) if p.isdigit() else p for p in exc.key.split("."))
            self.error(str(exc), (*loc, key, *parts), m.name, f"{key}.{exc.key}")
        except TemplateError as exc:
            self.error(str(exc), (*loc, key), m.name, key)
        return None

    def _with_definition(self, model: Any) -> Any:
        """The action model with its `workflow_def_file` (relative to the rules file) read
        into `workflow_def`."""
        name = getattr(model, "workflow_def_file", None)
        if name is None:
            return model
        path = Path(self.file).parent / name
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ParamError(
                "workflow_def_file",
                f"cannot read {str(path)!r}: {exc.strerror}; give a JSON or YAML file's path "
                "relative to the rules file",
            ) from None
        except yaml.YAMLError as exc:
            problem = f"{path}: not valid JSON or YAML: {exc}"
            raise ParamError("workflow_def_file", problem) from None
        if not isinstance(data, dict):
            raise ParamError("workflow_def_file", f"{path}: give one workflow definition object")
        return model.model_copy(update={"workflow_def": data})

    def _options(
        self,
        m: schema.RuleModel,
        loc: Loc,
        strict: bool,
        retry: RetryPolicy,
        dlq: Destination | None,
    ) -> Options | None:
        dead_letter = dlq
        if m.dead_letter:
            dead_letter = self._destination(
                m.dead_letter, (*loc, "dead_letter"), m.name, "dead_letter"
            )
        return Options(
            idempotency_key=self._key_template(
                m.idempotency_key, loc, m.name, "idempotency_key", strict
            ),
            ordering_key=self._key_template(m.ordering_key, loc, m.name, "ordering_key", strict),
            retry=_retry_policy(m.retry, retry) if m.retry is not None else retry,
            dead_letter=dead_letter,
            rate_limit=_rate_limit(m.rate_limit),
            completion=self._completion(m, loc),
            reply=self._reply(m, loc),
        )

    def _completion(self, m: schema.RuleModel, loc: Loc) -> CompletionSpec | None:
        if m.completion is None:
            return None
        dest = self._destination(
            m.completion.destination,
            (*loc, "completion", "destination"),
            m.name,
            "completion.destination",
        )
        if dest is None:
            return None
        statuses = frozenset(m.completion.statuses) if m.completion.statuses else None
        return CompletionSpec(dest, statuses) if statuses else CompletionSpec(dest)

    def _reply(self, m: schema.RuleModel, loc: Loc) -> ReplySpec | None:
        if m.reply is not None:
            dest = self._destination(
                m.reply.destination, (*loc, "reply", "destination"), m.name, "reply.destination"
            )
            return ReplySpec(dest, m.reply.wait_for_completion)
        if m.execute_workflow is not None:
            return ReplySpec()  # a synchronous execution answers the message's reply-to
        return None

    def _key_template(self, text: str | None, loc: Loc, rule: str, key: str, strict: bool) -> Any:
        if text is None:
            return None
        try:
            return compile_value(text, strict=strict)
        except TemplateError as exc:
            self.error(str(exc), (*loc, key), rule, key)
            return None

    def _destination(
        self, spec: str | None, loc: Loc, rule: str | None, key: str
    ) -> Destination | None:
        if spec is None:
            return None
        try:
            return Destination.parse(spec)
        except ConfigError as exc:
            self.error(str(exc), loc, rule, key)
            return None


def _retry_policy(m: schema.RetryModel, base: RetryPolicy) -> RetryPolicy:
    given = {k: v for k, v in m.model_dump().items() if v is not None}
    merged = {
        "max_attempts": base.max_attempts,
        "initial_backoff": base.initial_backoff,
        "max_backoff": base.max_backoff,
        "multiplier": base.multiplier,
        "max_age_seconds": base.max_age_seconds,
    } | given
    return RetryPolicy(**merged)


def _pydantic_problem(err: Any, cls: type[BaseModel]) -> str:
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(cls, tuple(err["loc"])[:-1])
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return f"unknown key{hint}"
    if err["type"] == "missing":
        return "required key is missing"
    message = str(err["msg"]).removeprefix("Value error, ")
    if "input" in err and not isinstance(err["input"], dict | list):
        return f"{message} (got {err['input']!r})"
    return message


def _allowed_keys(cls: type[BaseModel], loc: Loc) -> list[str]:
    model: Any = cls
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if info is None:
            return []
        model = _model_of(info.annotation)
        if model is None:
            return []
    return list(model.model_fields)


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _rate_limit(rate: schema.RateLimitModel | None) -> RateLimit | None:
    if rate is None:
        return None
    return RateLimit(rate.max_concurrent, rate.max_per_interval, rate.interval_seconds)
