"""Golden tests: `gateway check` and `gateway explain` output, compared verbatim.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/rules/test_golden.py`
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway import cli

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
G = "tests/rules/golden"

CASES = {
    "check_errors": ["check", "--offline", "--rules", f"{G}/rules_errors.yaml"],
    "check_warnings": ["check", "--offline", "--rules", f"{G}/rules_warnings.yaml"],
    "check_example": ["check", "--offline", "--rules", "config/rules.yaml"],
    "check_bad_settings": [
        "check",
        "--offline",
        "--config",
        f"{G}/bad_settings.yaml",
        "--rules",
        "config/rules.yaml",
    ],
    "explain_order_created": [
        "explain",
        "--rules",
        "config/rules.yaml",
        "--source",
        "kafka:orders",
        "--event",
        f"{G}/events/order_created.json",
        "--key",
        "o-1001",
        "--header",
        "traceparent=00-abc-def-01",
    ],
    "explain_order_cancelled": [
        "explain",
        "--rules",
        "config/rules.yaml",
        "--source",
        "kafka:orders",
        "--event",
        f"{G}/events/order_cancelled.json",
    ],
    "explain_payment": [
        "explain",
        "--rules",
        "config/rules.yaml",
        "--source",
        "amqp:payments",
        "--exchange",
        "payments",
        "--routing-key",
        "payment.card",
        "--message-id",
        "m-1",
        "--event",
        f"{G}/events/payment.json",
    ],
    "explain_quote": [
        "explain",
        "--rules",
        "config/rules.yaml",
        "--source",
        "amqp:quotes",
        "--header",
        "type=quote.request",
        "--reply-to",
        "amq.rabbitmq.reply-to.g1",
        "--correlation-id",
        "req-5",
        "--message-id",
        "m-2",
        "--event",
        f"{G}/events/quote.json",
    ],
    "explain_unmatched": [
        "explain",
        "--rules",
        "config/rules.yaml",
        "--source",
        "kafka:orders",
        "--event",
        f"{G}/events/order_shipped.json",
    ],
    "explain_not_json": [
        "explain",
        "--rules",
        "config/rules.yaml",
        "--source",
        "kafka:orders",
        "--event",
        f"{G}/events/not_json.txt",
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)  # paths in the output are relative, as a user would type them
    for key in [k for k in os.environ if k.startswith("GATEWAY_")]:
        monkeypatch.delenv(key)
    code = cli.main(CASES[name])
    out, err = capsys.readouterr()
    actual = f"$ gateway {' '.join(CASES[name])}\nexit {code}\n--- stdout\n{out}--- stderr\n{err}"
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual)
    assert actual == path.read_text()
