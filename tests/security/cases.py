"""The misconfigurations a secured deployment meets, each as the settings that cause it and the
words the one-line error must contain (the setting to fix, or what is wrong)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from gateway.devserver.brokers import RabbitMQ
from gateway.devserver.realservers import ApacheKafka
from tests.security.conftest import (
    AMQP_PASSWORD,
    KAFKA_PASSWORD,
    TlsProxy,
    amqp_tls,
    kafka_mtls,
    kafka_sasl,
)
from tests.tlsca import Authority


@dataclass(frozen=True, slots=True)
class Case:
    sections: dict[str, Any]  # the settings file's kafka/amqp sections
    secrets: dict[str, str]  # environment: passwords
    expected: str  # in the one-line error
    destination: str  # what `gateway dev send` publishes to
    env: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.secrets}


KAFKA_CASES = [
    "wrong_password",
    "unknown_ca",
    "expired_certificate",
    "hostname_mismatch",
    "plaintext_to_tls_port",
    "tls_to_plaintext_port",
    "no_client_certificate",
    "untrusted_client_certificate",
]
AMQP_CASES = [
    "wrong_password",
    "unknown_ca",
    "expired_certificate",
    "hostname_mismatch",
    "plaintext_to_tls_port",
    "tls_to_plaintext_port",
    "no_client_certificate",
    "untrusted_client_certificate",
]


def kafka_case(name: str, kafka: ApacheKafka, ca: Authority, proxies: dict[str, TlsProxy]) -> Case:
    password = {"GATEWAY_KAFKA__SASL_PASSWORD": KAFKA_PASSWORD}
    sasl = kafka_sasl(kafka, ca)
    table: dict[str, tuple[dict[str, Any], dict[str, str], str]] = {
        "wrong_password": (
            sasl,
            {"GATEWAY_KAFKA__SASL_PASSWORD": "not-" + KAFKA_PASSWORD},
            "check kafka.sasl_username and kafka.sasl_password",
        ),
        "unknown_ca": (
            {**sasl, "ssl_cafile": str(ca.wrong_ca)},
            password,
            f"unknown CA (kafka.ssl_cafile={ca.wrong_ca})",
        ),
        "expired_certificate": (
            {**sasl, "bootstrap_servers": proxies["kafka-expired"].address},
            password,
            "certificate at 127.0.0.1",
        ),
        "hostname_mismatch": (
            {**sasl, "bootstrap_servers": proxies["kafka-other-host"].address},
            password,
            "is not valid for 127.0.0.1",
        ),
        "plaintext_to_tls_port": (
            {"bootstrap_servers": kafka.sasl_ssl_bootstrap},
            {},
            "set kafka.security_protocol (now PLAINTEXT) to SSL or SASL_SSL",
        ),
        "tls_to_plaintext_port": (
            {**sasl, "bootstrap_servers": kafka.bootstrap},
            password,
            "kafka.security_protocol (now SASL_SSL)",
        ),
        "no_client_certificate": (
            {**kafka_mtls(kafka, ca), "ssl_certfile": None, "ssl_keyfile": None},
            {},
            "set kafka.ssl_certfile and kafka.ssl_keyfile",
        ),
        "untrusted_client_certificate": (
            {
                **kafka_mtls(kafka, ca),
                "ssl_certfile": str(ca.wrong_client.cert),
                "ssl_keyfile": str(ca.wrong_client.key),
            },
            {},
            f"check that it trusts the CA of kafka.ssl_certfile={ca.wrong_client.cert}",
        ),
    }
    sections, secrets, expected = table[name]
    return Case({"kafka": sections}, secrets, expected, "kafka:anything")


def amqp_case(name: str, rabbit: RabbitMQ, ca: Authority, proxies: dict[str, TlsProxy]) -> Case:
    tls_url, plain_port = rabbit.tls_url, rabbit.port
    good = amqp_tls(ca)
    table: dict[str, tuple[dict[str, Any], str, str]] = {
        "wrong_password": (
            good,
            tls_url.replace(AMQP_PASSWORD, "not-" + AMQP_PASSWORD),
            "password in amqp.url",
        ),
        "unknown_ca": (
            {**good, "ssl_cafile": str(ca.wrong_ca)},
            tls_url,
            f"unknown CA (amqp.ssl_cafile={ca.wrong_ca})",
        ),
        "expired_certificate": (
            good,
            tls_url.replace(str(rabbit.tls_port), str(proxies["amqp-expired"].port)),
            "has expired",
        ),
        "hostname_mismatch": (
            good,
            tls_url.replace(str(rabbit.tls_port), str(proxies["amqp-other-host"].port)),
            "is not valid for 127.0.0.1",
        ),
        "plaintext_to_tls_port": (good, tls_url.replace("amqps://", "amqp://"), "use amqps://"),
        "tls_to_plaintext_port": (
            good,
            tls_url.replace(str(rabbit.tls_port), str(plain_port)),
            "use amqp:// in amqp.url",
        ),
        "no_client_certificate": (
            {"ssl_cafile": str(ca.ca)},
            tls_url,
            "set amqp.ssl_certfile and amqp.ssl_keyfile",
        ),
        "untrusted_client_certificate": (
            {
                **good,
                "ssl_certfile": str(ca.wrong_client.cert),
                "ssl_keyfile": str(ca.wrong_client.key),
            },
            tls_url,
            "amqp.ssl_certfile",
        ),
    }
    sections, url, expected = table[name]
    secrets = {"GATEWAY_AMQP__URL": url}
    return Case({"amqp": sections}, secrets, expected, "amqp:anything")
