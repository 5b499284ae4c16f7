"""The TLS failure texts the clients pass on (OpenSSL's words, as Python's ssl module gives
them) become one line naming the setting to fix; other failures are left to the caller."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.sinks.tls import tls_problem

CA = Path("/etc/gateway/ca.pem")


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        (
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local "
            "issuer certificate (_ssl.c:1006)",
            f"unknown CA (kafka.ssl_cafile={CA}); set kafka.ssl_cafile to the CA",
        ),
        (
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
            "certificate in certificate chain (_ssl.c:1006)",
            "unknown CA (kafka.ssl_cafile=",
        ),
        (
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has "
            "expired (_ssl.c:1006)",
            "certificate at h:9093 has expired",
        ),
        (
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, "
            "certificate is not valid for 'h'. (_ssl.c:1006)",
            "is not valid for h:9093",
        ),
        (
            "SSLError(1, '[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate "
            "required (_ssl.c:2580)')",
            "set kafka.ssl_certfile and kafka.ssl_keyfile",
        ),
        (
            "SSLError(1, '[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:2580)')",
            "refused our client certificate (kafka.ssl_certfile)",
        ),
        ("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)", "plaintext port"),
    ],
)
def test_tls_failures_name_the_setting(detail: str, expected: str) -> None:
    problem = tls_problem(detail, "kafka", CA, "h:9093")
    assert problem is not None and expected in problem and "\n" not in problem


def test_an_unknown_ca_without_a_ca_file_says_the_system_store() -> None:
    detail = "certificate verify failed: unable to get local issuer certificate"
    problem = tls_problem(detail, "conductor", None, "h:443", "ca_file")
    assert problem is not None and "not in conductor.ca_file or the system store" in problem


@pytest.mark.parametrize("detail", ["Connection refused", "[Errno 111] Connect call failed", ""])
def test_other_failures_are_not_tls_problems(detail: str) -> None:
    assert tls_problem(detail, "kafka", CA, "h:9093") is None
