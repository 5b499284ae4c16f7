"""Logging, configured once: readable lines on a terminal, JSON lines otherwise.

Payloads are not logged unless `logging.log_payloads` is on; secrets never are (settings hold
them as SecretStr, and URLs never carry them).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, plus any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure(
    level: str = "INFO", fmt: str = "auto", levels: Mapping[str, str] | None = None
) -> None:
    """Install one stderr handler on the root logger; cap other libraries' loggers.

    `level` applies to the gateway's own loggers. Every other logger is held at INFO or above
    (httpx, httpcore, aiokafka, aio-pika at WARNING), because at DEBUG some print what passes
    through them (httpcore response headers, database drivers their queries). `levels` sets a
    logger by name, e.g. {"aiokafka": "DEBUG"}, for the rare debugging session that needs it.
    """
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    if use_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.INFO, logging.getLevelName(level)))
    logging.getLogger("gateway").setLevel(level)
    # httpx logs full URLs at INFO and httpcore logs response headers at DEBUG.
    for noisy in ("httpx", "httpcore", "aiokafka", "aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for name, named_level in (levels or {}).items():
        logging.getLogger(name).setLevel(named_level)


SETTLED = (
    "settled %(event_id)s rule=%(rule)s workflow=%(workflow_id)s outcome=%(outcome)s in %(ms)sms"
)


def settled_fields(
    event_id: str, rules: Sequence[str], workflow_ids: Sequence[str], outcome: str, seconds: float
) -> dict[str, Any]:
    """The fields of a settled-event line (also JSON keys): never the payload, which only
    `logging.log_payloads` may add, in a line of its own."""
    return {
        "event_id": event_id,
        "rule": ",".join(rules),
        "workflow_id": ",".join(dict.fromkeys(workflow_ids)) or "-",  # in order, once each
        "outcome": outcome,
        "ms": round(seconds * 1000, 1),
    }
