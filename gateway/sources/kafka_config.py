"""aiokafka options from the settings: consumer group behaviour, TLS (verification always on)
and SASL. Shared by the source, the dead-letter reader and the dev stack."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed

from gateway.settings import KafkaSettings
from gateway.sinks.tls import client_context, tls_problem

PROBE_SECONDS = 5.0
# The longest a fetch waits at the broker for a first record. Apache Kafka answers as soon as
# one arrives, so this only paces idle polling (10 empty fetches a second). Tansu holds each
# fetch answer for this wait (half of it from 250 ms up), records or not: with aiokafka's 500
# an event waited 0-250 ms for its fetch (bare loop p50 130 ms, p99 280 ms at 1,100 events/s);
# with 100, p50 33 ms and p99 65 ms (bench/pipeline.py --latency, issue 18).
FETCH_MAX_WAIT_MS = 100


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
        "fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
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
        options["ssl_context"] = client_context(
            settings.ssl_cafile, settings.ssl_certfile, settings.ssl_keyfile
        )
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


async def security_problem(settings: KafkaSettings, timeout: float = PROBE_SECONDS) -> str | None:
    """Why the first bootstrap server refuses us, when TLS or SASL is the reason; else None.

    The Kafka client logs the TLS or SASL error and raises only "Unable to bootstrap", so this
    repeats the handshake on one connection (aiokafka's own `create_conn`, same options) to
    find the cause and the setting that fixes it."""
    host, _, port = settings.bootstrap_servers[0].rpartition(":")
    options = security_options(settings)
    try:
        async with asyncio.timeout(timeout):
            connection = await create_conn(
                host, int(port), request_timeout_ms=int(timeout * 1000), **options
            )
    except TimeoutError:
        return None  # no answer at all: not a TLS or SASL refusal
    except SaslAuthenticationFailed:
        return (
            f"{host}:{port} refused the login of user '{settings.sasl_username}' "
            f"({settings.sasl_mechanism or 'PLAIN'}); check kafka.sasl_username and "
            "kafka.sasl_password"
        )
    except (KafkaConnectionError, OSError) as exc:
        return _connection_problem(f"{type(exc).__name__}: {exc}", settings, f"{host}:{port}")
    connection.close()
    return None


def _connection_problem(detail: str, settings: KafkaSettings, where: str) -> str | None:
    protocol = settings.security_protocol
    problem = tls_problem(detail, "kafka", settings.ssl_cafile, where)
    if problem is not None and "plaintext port" in problem:
        return f"{problem}; set kafka.security_protocol (now {protocol}) to PLAINTEXT or " + (
            "SASL_PLAINTEXT, or use the broker's TLS listener"
        )
    if problem is not None:
        return problem
    if protocol in ("SSL", "SASL_SSL") and ("eof" in detail.lower() or detail.endswith(": ")):
        return (
            f"{where} closed the connection during the TLS handshake: it may be a plaintext "
            f"port; check kafka.security_protocol (now {protocol}) against the listener"
        )
    if protocol in ("SSL", "SASL_SSL") and "closed" in detail:
        # TLS 1.3: a refused client certificate shows only after the handshake, as a close.
        if settings.ssl_certfile is None:
            return (
                f"{where} closed the connection after the TLS handshake; if the listener "
                "requires client certificates, set kafka.ssl_certfile and kafka.ssl_keyfile"
            )
        return (
            f"{where} closed the connection after the TLS handshake; check that it trusts the "
            f"CA of kafka.ssl_certfile={settings.ssl_certfile}"
        )
    if protocol in ("PLAINTEXT", "SASL_PLAINTEXT") and "closed" in detail:
        return (
            f"{where} closed the connection at the first request; if it is a TLS listener, set "
            f"kafka.security_protocol (now {protocol}) to SSL or SASL_SSL and kafka.ssl_cafile"
        )
    return None
