"""The dev server's JavaScript sandbox: QuickJS-ng (the `quickjs-ng` package) for INLINE
scripts, SWITCH `javascript` expressions and DO_WHILE `loopCondition`s.

Each evaluation gets a new QuickJS runtime, as Conductor's GraalJS evaluator gets a new Context
per call (ScriptEvaluator.eval, pool off by default), with `$` parsed from the JSON of the
input inside it: a script never sees a host object (GraalJS's host access is where Conductor's
command-injection CVE lived), and an embedded QuickJS has no `require`, `process`, `fetch`,
file, network or timer functions, so a script can only compute. Each evaluation has a time
limit (Conductor's 4 s; `CONDUCTOR_SCRIPT_MAX_EXECUTION_SECONDS` as on the real server) and a
memory limit (`DEVSERVER_SCRIPT_MAX_MEMORY_MB`, default 64). QuickJS fails an allocation over
the limit with an exception (V8 through mini-racer aborted the whole process on
`new Array(2**28).fill(0)`, which is why QuickJS is used).

Scripts run on a few worker threads (QuickJS releases the GIL while it runs), so the caller
chooses how long to wait: INLINE waits briefly and finishes the task later when a script runs
long, and nothing waits past the time limit. QuickJS counts the limit in CPU time, so the
waiting side also gives up once the limit has passed on the wall clock.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import quickjs

_MIB = 1024 * 1024
_LINE = re.compile(r"<input>:(\d+):\d+")
# Seconds the waiting side allows beyond the limit before it reports the timeout itself.
_GRACE = 1.0


@dataclass(frozen=True)
class Limits:
    time_seconds: float = float(os.environ.get("CONDUCTOR_SCRIPT_MAX_EXECUTION_SECONDS", "4"))
    memory_bytes: int = int(os.environ.get("DEVSERVER_SCRIPT_MAX_MEMORY_MB", "64")) * _MIB


LIMITS = Limits()


class ScriptFailure(Exception):
    """A script that gave no value. A script error is FAILED_WITH_TERMINAL_ERROR in Conductor
    (running it again gives the same error); a resource limit is FAILED, as Conductor's
    timeout (a NonTransientException) is."""

    def __init__(self, message: str, *, terminal: bool) -> None:
        super().__init__(message)
        self.terminal = terminal

    @property
    def status(self) -> str:
        return "FAILED_WITH_TERMINAL_ERROR" if self.terminal else "FAILED"


_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="devserver-script")


def submit(source: str, dollar: Any, limits: Limits | None = None) -> Future[Any]:
    """Start evaluating `source` with `$` = `dollar` on a worker thread; the future gives the
    script's value as JSON types (undefined is None) or raises ScriptFailure."""
    return _POOL.submit(_evaluate, source, dollar, limits or LIMITS)


def wait(future: Future[Any], limits: Limits | None = None) -> Any:
    """The value of a submitted script, waiting at most the time limit (plus a grace)."""
    limits = limits or LIMITS
    try:
        return future.result(timeout=limits.time_seconds + _GRACE)
    except FutureTimeout:
        raise ScriptFailure(timeout_message(limits), terminal=False) from None


def evaluate(source: str, dollar: Any, limits: Limits | None = None) -> Any:
    return wait(submit(source, dollar, limits), limits)


def compile_error(source: str) -> str | None:
    """The syntax error of `source`, or None: compiled, never run (as Conductor checks a
    script at registration: ScriptEvaluator.validateScriptSyntax)."""
    probe = f"try {{ new Function({json.dumps(source)}); null }} catch (e) {{ String(e) }}"
    result = evaluate(probe, None)
    return None if result is None else str(result)


def _evaluate(source: str, dollar: Any, limits: Limits) -> Any:
    context = quickjs.Context()  # its own runtime: nothing is shared between scripts
    context.set_memory_limit(limits.memory_bytes)
    context.set_time_limit(limits.time_seconds)
    # Indirect eval gives the script's completion value (`if (a) { 1 } else { 2 }`, a bare
    # expression) as GraalJS does; it is turned into JSON inside the same eval, under the same
    # limits and without the GIL (a getter may loop, and Object.json() would hold the GIL).
    code = (
        f"var $ = JSON.parse({json.dumps(json.dumps(dollar))});\n"
        f"JSON.stringify((0, eval)({json.dumps(source)}))"
    )
    try:
        text = context.eval(code)
    except quickjs.JSException as exc:
        raise _failure(str(exc), limits) from None
    except quickjs.StackOverflow as exc:
        raise ScriptFailure(_error_message(str(exc)), terminal=True) from None
    return _java_number(json.loads(text)) if isinstance(text, str) else None


def _java_number(value: Any) -> Any:
    """A whole JS number is an int, as Conductor's getObject gives it (fitsInInt/Long)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def _failure(text: str, limits: Limits) -> ScriptFailure:
    if text.startswith("InternalError: interrupted"):
        return ScriptFailure(timeout_message(limits), terminal=False)
    if text.startswith("InternalError: out of memory"):
        megabytes = limits.memory_bytes // _MIB
        return ScriptFailure(
            f"Script exceeded the memory limit of {megabytes} MiB, interrupted.", terminal=False
        )
    return ScriptFailure(_error_message(text), terminal=True)


def timeout_message(limits: Limits) -> str:
    seconds = limits.time_seconds
    shown = int(seconds) if seconds == int(seconds) else seconds
    return f"Script not evaluated within {shown} seconds, interrupted."  # Conductor's words


def _error_message(text: str) -> str:
    """Conductor's "Error evaluating the script `<message>` at line N" from QuickJS's report:
    the message, then a stack whose first frame names the line in the script."""
    message, _, stack = text.partition("\n")
    # GraalJS capitalises the commonest one ("TypeError: Cannot read property 'x' of null").
    message = message.replace("TypeError: cannot read property", "TypeError: Cannot read property")
    line = _LINE.search(stack)
    if line is None:
        return f"Error evaluating the script `{message}`"
    return f"Error evaluating the script `{message}` at line {line.group(1)}"
