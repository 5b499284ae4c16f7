"""TLS and SASL settings reach the broker clients, with certificate verification on."""

from __future__ import annotations

import ssl

from pydantic import SecretStr

from gateway.settings import AmqpSettings, KafkaSettings
from gateway.sinks.amqp import _safe_url, connect_options
from gateway.sinks.kafka import producer_options


def test_kafka_producer_is_durable_by_default() -> None:
    options = producer_options(KafkaSettings(), 10.0)
    assert options["acks"] == "all" and options["enable_idempotence"] is True
    assert options["security_protocol"] == "PLAINTEXT" and "ssl_context" not in options


def test_kafka_sasl_ssl_verifies_the_broker_and_passes_credentials() -> None:
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="gw",
        sasl_password=SecretStr("pw"),
    )
    options = producer_options(settings, 10.0)
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("gw", "pw")


def test_amqps_gets_a_verifying_context_and_amqp_none() -> None:
    plain = connect_options(AmqpSettings(url=SecretStr("amqp://u:p@h:5672/")))
    assert "ssl_context" not in plain
    secure = connect_options(AmqpSettings(url=SecretStr("amqps://u:p@h:5671/vh")))
    context = secure["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_amqp_url_in_messages_has_no_password() -> None:
    settings = AmqpSettings(url=SecretStr("amqps://user:s3cret@rabbit:5671/prod"))
    assert _safe_url(settings) == "amqps://user@rabbit:5671/prod"
