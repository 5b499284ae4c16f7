"""The gateway's one exception root.

Every error the gateway raises on purpose derives from `GatewayError`, so a caller can catch
at the level it cares about. Errors of the libraries underneath (httpx, aiokafka, aio-pika) are
translated where they enter (conductor/, sources/, sinks/) and never leak upward.

```
GatewayError
├── ConfigError                 settings or rules file invalid (names file, key, value, fix)
│   └── RuleError               one rule invalid: schema, pattern, template, capability
├── TemplateError               a ${...} template failed while rendering an event
├── InvalidWorkflowDef          a workflow definition fails validation before it is sent
├── EventError                  an incoming message is unusable (too big, not JSON, too deep)
├── ConductorError              Conductor answered with an error, or could not be reached
│   ├── BadRequest              400, or a 3xx redirect (conductor.url is wrong); never retried
│   ├── Unauthorized            401/403: credentials missing, wrong or expired
│   ├── NotFound                404: no such workflow, task or definition
│   ├── Conflict                409: the operation does not fit the workflow's state
│   ├── ServerError             5xx (retryable is taken from Conductor's body)
│   └── TransientError          worth retrying as is
│       ├── ConductorTimeout    no answer within the request timeout, or 408: the request
│       │                       may have taken effect, so only idempotent calls are retried
│       └── ConductorUnavailable connection refused (never sent: always retried), 429 and 503
│                               from Conductor itself (never sent), reset, 502, 504, a bare
│                               proxy 503 (ambiguous: idempotent calls only)
├── PublishError                a completion event or dead letter was not confirmed by a broker
│   └── MessageTooLarge         the broker (or the client's own limit) refused the size
└── Outcome                     control flow of one delivery, raised while it runs, caught by
    ├── RetryLater              settlement: try the delivery again after a backoff
    ├── DeadLetter              settlement: send to the dead-letter target, then ack
    └── Abandoned               settlement (also raised by a delivery whose channel closed):
                                the gateway is stopping; leave it unsettled for redelivery
```
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """Settings or rules are invalid; the message names the key, the value and the fix."""


class RuleError(ConfigError):
    """One rule is invalid: `file:line rule 'name': key: problem`."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        rule: str | None = None,
        key: str | None = None,
    ) -> None:
        self.file, self.line, self.rule, self.key, self.problem = file, line, rule, key, message
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [p for p in (where, f"rule '{self.rule}'" if self.rule else "") if p]
        head = " ".join(parts)
        body = f"{self.key}: {self.problem}" if self.key else self.problem
        return f"{head}: {body}" if head else body


class TemplateError(GatewayError):
    """A template could not be rendered for this event (missing path in strict mode, too big)."""


class InvalidWorkflowDef(GatewayError, ValueError):
    """A workflow definition is invalid; the message names the workflow, the task reference,
    the problem and the fix. Raised before anything is sent to Conductor."""


class EventError(GatewayError):
    """An incoming message cannot be processed: too large, not UTF-8, not JSON, too deep."""


class ConductorError(GatewayError):
    """Conductor answered with an error, or could not be reached.

    `status` is the HTTP status (None when there was no response), `body` Conductor's error
    body as far as it was JSON, `retryable` whether the same request may succeed later.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: dict[str, Any] | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body or {}
        if retryable is not None:
            self.retryable = retryable


class BadRequest(ConductorError):
    """400: the request is wrong."""


class Unauthorized(ConductorError):
    """401/403: credentials missing, wrong or expired."""


class NotFound(ConductorError):
    """404: no such workflow, task or definition (or, on OSS, no such endpoint)."""


class Conflict(ConductorError):
    """409: the operation does not fit the workflow's current state."""


class ServerError(ConductorError):
    """5xx. Retryable only when Conductor's body says so (TransientException)."""


class TransientError(ConductorError):
    """Worth retrying unchanged: the server was busy, slow or unreachable."""

    retryable = True


class ConductorTimeout(TransientError):
    """No answer within the request timeout. The request may or may not have taken effect."""


class ConductorUnavailable(TransientError):
    """Connection refused or reset, 429, 502, 503, 504."""


class PublishError(GatewayError):
    """A broker did not confirm a publish (nack, unroutable, timeout)."""


class MessageTooLarge(PublishError):
    """The message is bigger than the broker accepts; sending it again cannot succeed."""


class Outcome(GatewayError):
    """Control flow for one delivery; raised while it runs, caught only by settlement."""


class RetryLater(Outcome):
    """Settle by trying again after a backoff; the delivery is not acked."""

    def __init__(self, reason: str, *, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


class DeadLetter(Outcome):
    """Settle by publishing to the dead-letter target, then acking the original."""

    def __init__(self, reason: str, *, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


class Abandoned(Outcome):
    """The gateway is stopping, or the delivery's channel closed: leave the delivery unsettled
    so that the broker redelivers it."""
