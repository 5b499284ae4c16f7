"""aiokafka options from the settings: consumer group behaviour, TLS (verification always on)
and SASL. Shared by the source, the dead-letter reader and the dev stack."""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from gateway.settings import KafkaSettings


def consumer_options(settings: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "group_id": settings.group_id,
        "enable_auto_commit": False,
        # Only committed transactions: an aborted transaction's records are not events (its
        # producer writes them again, at other offsets, and that copy would start a second
        # workflow). Plain records are returned either way.
        "isolation_level": "read_committed",
        "auto_offset_reset": settings.auto_offset_reset,
        "session_timeout_ms": settings.session_timeout_ms,
        "max_poll_interval_ms": settings.max_poll_interval_ms,
        "rebalance_timeout_ms": max(
            settings.session_timeout_ms, int(settings.revoke_drain_seconds * 1000) + 5_000
        ),
    }
    if settings.group_instance_id:
        options["group_instance_id"] = settings.group_instance_id
    options.update(security_options(settings))
    return options


def security_options(settings: KafkaSettings) -> dict[str, Any]:
    """TLS (verification always on) and SASL, shared by the consumer and the producer."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None,
            certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
            keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        )
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options
