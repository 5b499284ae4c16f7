"""Settings: environment `GATEWAY_*` (nested with `__`) over a YAML file; the environment wins.

Validated once at the edge, then passed inside as frozen values. Unknown keys are errors, and
every error names the key, the value's problem and how to fix it. Secrets are `SecretStr` and
are never printed (`model_dump` shows `**********`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from gateway.errors import ConfigError

ENV_PREFIX = "GATEWAY_"
REPLICA_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class KafkaSettings(_Section):
    """Kafka connection, consumer group and producer behaviour."""

    bootstrap_servers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1:9092"],
        description="Comma-separated host:port list of Kafka brokers.",
    )
    client_id: str = Field("conductor-gateway", description="Client id sent to the brokers.")
    group_id: str = Field("conductor-gateway", description="Consumer group id.")
    group_instance_id: str | None = Field(
        None, description="Static membership id (KIP-345): fewer rebalances on restarts."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when the protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    ssl_cafile: Path | None = Field(None, description="CA bundle that signs the brokers' certs.")
    ssl_certfile: Path | None = Field(None, description="Client certificate for mutual TLS.")
    ssl_keyfile: Path | None = Field(None, description="Client private key for mutual TLS.")
    enable_idempotence: bool = Field(
        True,
        description="Idempotent producer (acks=all). Turn off only for brokers without "
        "InitProducerId, such as Tansu.",
    )
    max_in_flight_per_partition: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Unsettled messages per partition before it is left out of "
        "fetches (one fetch may bring up to as many more).",
    )
    session_timeout_ms: int = Field(10_000, ge=1_000, description="Consumer session timeout.")
    max_poll_interval_ms: int = Field(300_000, ge=10_000, description="Max time between polls.")
    revoke_drain_seconds: float = Field(
        10.0, gt=0, description="Deadline to finish in-flight work of revoked partitions."
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a new consumer group starts reading."
    )
    reply_topic_header: str = Field(
        "kafka_replyTopic",
        min_length=1,
        description="Header naming the topic a request's reply goes to (Spring's "
        "KafkaHeaders.REPLY_TOPIC).",
    )
    correlation_id_header: str = Field(
        "kafka_correlationId",
        min_length=1,
        description="Header of a request's correlation id, echoed on its reply (Spring's "
        "KafkaHeaders.CORRELATION_ID); `correlation-id` is read too.",
    )

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("bootstrap_servers")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("is empty; give at least one host:port, e.g. 127.0.0.1:9092")
        for server in value:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"'{server}' is not host:port, e.g. 127.0.0.1:9092")
        return value


class AmqpSettings(_Section):
    """RabbitMQ connection."""

    url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="amqp:// or amqps:// URL (secret: it may hold a password).",
    )
    ssl_cafile: Path | None = Field(None, description="CA bundle for amqps://.")
    ssl_certfile: Path | None = Field(None, description="Client certificate for amqps://.")
    ssl_keyfile: Path | None = Field(None, description="Client private key for amqps://.")
    prefetch: int = Field(
        100,
        ge=1,
        le=65_535,
        description="Deliveries in work per consumer; the broker's window holds 32 more, "
        "settled ones whose acks are being batched.",
    )
    reconnect_interval: float = Field(2.0, gt=0, description="Seconds between reconnect tries.")

    @field_validator("url")
    @classmethod
    def _amqp_url(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        parts = urlsplit(raw)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("must look like amqp://user:password@host:5672/vhost (or amqps://)")
        if "no_verify_ssl" in (parts.query or ""):
            raise ValueError("no_verify_ssl turns TLS verification off; give ssl_cafile instead")
        return value


class ConductorSettings(_Section):
    """Where Conductor is and how to talk to it."""

    url: str = Field(
        "http://127.0.0.1:8080/api", description="Conductor API base URL, ending in /api."
    )
    key_id: str | None = Field(None, description="Orkes application key id.")
    key_secret: SecretStr | None = Field(None, description="Orkes application key secret.")
    request_timeout: float = Field(10.0, gt=0, le=600, description="Seconds per HTTP request.")
    flavor: Literal["auto", "oss", "orkes"] = Field(
        "auto", description="auto probes the server; oss or orkes skips the probe."
    )
    transport: Literal["httptools", "aiohttp", "httpx"] = Field(
        "httptools",
        description="httptools: the gateway's lean keep-alive pool (default, measured fastest: "
        "bench/http_transport.py); aiohttp: aiohttp's client; httpx: httpx's own pool "
        "(honours proxy variables).",
    )
    max_connections: int = Field(64, ge=1, le=1_000, description="Connection pool size.")
    ca_file: Path | None = Field(None, description="CA bundle for https (verification is on).")
    max_retries: int = Field(5, ge=0, le=100, description="Retries of a transient failure.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8080/api")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials; use key_id and key_secret")
        return value.rstrip("/")


class StoreSettings(_Section):
    """The durable store for dedupe records and the completion outbox."""

    sqlite_path: Path = Field(Path("var/gateway.db"), description="SQLite file (default store).")
    postgres_dsn: SecretStr | None = Field(
        None, description="PostgreSQL DSN; when set it replaces SQLite (several replicas)."
    )
    retention_seconds: float = Field(
        1_209_600,
        ge=0,
        description="Keep dedupe records this long (default 14 days; 0 keeps them forever). "
        "Set it longer than any redelivery can arrive: the source topic's retention.ms, or "
        "the longest a message can wait in an AMQP queue.",
    )
    purge_interval_seconds: float = Field(
        3600, gt=0, description="Seconds between background purges of expired dedupe records."
    )
    claim_seconds: float = Field(
        60.0,
        gt=0,
        description="Lease of a replica's claims (a start's key, the outbox rows it polls): how "
        "long the other replicas wait for one that stopped answering before they take its work "
        "over. Longer than a start call with its retries takes.",
    )


class AdminSettings(_Section):
    """The admin HTTP endpoint: /healthz, /readyz, /metrics, /rules."""

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8088, ge=0, le=65_535, description="Port; 0 disables the endpoint.")


class LimitSettings(_Section):
    """Input limits: a message beyond them is dead-lettered with the reason."""

    max_message_bytes: int = Field(1_048_576, ge=1, description="Largest accepted body.")
    max_json_depth: int = Field(64, ge=1, le=1_000, description="Deepest accepted JSON nesting.")


class TrackerSettings(_Section):
    """Completion tracking: how Conductor is polled for workflows the gateway started."""

    min_interval: float = Field(0.5, gt=0, description="First poll delay after a start.")
    max_interval: float = Field(30.0, gt=0, description="Cap of the adaptive poll delay.")
    concurrency: int = Field(16, ge=1, le=1_000, description="Status requests in flight.")
    batch_size: int = Field(200, ge=1, le=10_000, description="Workflows fetched per round.")
    max_age_seconds: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="Stop tracking a workflow this long after its start (logged, counted).",
    )
    max_publish_attempts: int = Field(
        50, ge=1, description="Give up publishing one completion after this many failures."
    )
    content_mode: Literal["structured", "binary"] = Field(
        "structured", description="CloudEvents mode: structured JSON body or binary (headers)."
    )


class RelaySettings(_Section):
    """Relay of Conductor OSS's Kafka workflow status listener as CloudEvents (off unless a
    topic is set)."""

    topic: str | None = Field(
        None,
        min_length=1,
        description="Topic the status listener publishes to (its default-topic, "
        "workflow-status-events); unset: no relay.",
    )
    destination: str | None = Field(
        None,
        description="Where the CloudEvents go: kafka:<topic>, amqp:<queue> or amqp:<ex>/<key>.",
    )
    group_id: str = Field("conductor-gateway-relay", description="Consumer group of the relay.")
    workflow_names: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated workflow names to relay (empty: all)."
    )
    event_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["completed", "terminated"],
        description="Comma-separated listener event types to relay: started, completed, "
        "terminated, paused, resumed, retried, restarted, reran.",
    )
    include_gateway_started: bool = Field(
        False,
        description="Relay the events of workflows the gateway started too (their completion "
        "events are the tracker's; off: left out, as the store records them).",
    )

    @field_validator("workflow_names", "event_types", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @model_validator(mode="after")
    def _destination_given(self) -> RelaySettings:
        if self.topic and not self.destination:
            raise ValueError(
                f"relay.topic '{self.topic}' needs relay.destination, e.g. kafka:workflow-events"
            )
        unknown = sorted(set(self.event_types) - RELAY_EVENT_TYPES)
        if unknown:
            raise ValueError(
                f"relay.event_types: {', '.join(unknown)} unknown; use some of "
                f"{', '.join(sorted(RELAY_EVENT_TYPES))} (finalized repeats completed/terminated)"
            )
        return self


RELAY_EVENT_TYPES = frozenset(
    {"started", "completed", "terminated", "paused", "resumed", "retried", "restarted", "reran"}
)


class LoggingSettings(_Section):
    """Logging: readable on a terminal, JSON lines otherwise."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Level.")
    format: Literal["auto", "text", "json"] = Field("auto", description="auto, text or json.")
    log_payloads: bool = Field(
        False,
        description="Log the body (first 4 KiB) of each dead-lettered message (off: bodies may "
        "hold personal data).",
    )
    levels: dict[str, Literal["DEBUG", "INFO", "WARNING", "ERROR"]] = Field(
        default_factory=dict,
        description="Level per logger name, e.g. {aiokafka: DEBUG}. Other libraries' loggers "
        "stay at INFO or above whatever `level` says (at DEBUG they print SQL parameters).",
    )


class Settings(BaseSettings):
    """All gateway settings. Build with `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    amqp: AmqpSettings = Field(default_factory=AmqpSettings)
    conductor: ConductorSettings = Field(default_factory=ConductorSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    tracker: TrackerSettings = Field(default_factory=TrackerSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    rules_file: Path = Field(Path("config/rules.yaml"), description="The routing rules file.")
    replica_id: str | None = Field(
        None,
        description="This replica's name, unique among the replicas sharing a store and "
        "stable across its restarts (e.g. a StatefulSet pod name): owner of its start claims "
        "and kafka.group_instance_id when that is unset. Unset: <host name>-<pid>, new with "
        "every restart (no static membership).",
    )
    shutdown_grace_seconds: float = Field(
        30.0, gt=0, description="Time to finish in-flight work after SIGTERM."
    )

    @field_validator("replica_id")
    @classmethod
    def _replica_name(cls, value: str | None) -> str | None:
        # It becomes a Kafka group.instance.id and the part of a claim owner before its '#'.
        if value is not None and not REPLICA_NAME.fullmatch(value):
            raise ValueError(
                f"'{value}' cannot name a replica; use 1-200 letters, digits, '.', '_' or '-' "
                "(e.g. the pod name)"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment must win over it.
        return (env_settings, init_settings)


def load_settings(config: Path | None = None) -> Settings:
    """Read the YAML file (if any) and the environment; raise ConfigError naming the key."""
    data: dict[str, Any] = {}
    if config is not None:
        data = _read_yaml(config)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, config)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read settings file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return data


def describe_validation_error(exc: ValidationError, config: Path | None) -> str:
    """One line per problem: `key (env VAR): problem`; never echoes a secret's value."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        env = ENV_PREFIX + "__".join(str(p).upper() for p in error["loc"])
        source = f" (from {env})" if env in os.environ else (f" in {config}" if config else "")
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting; check the spelling against docs/configuration.md"
        lines.append(f"setting '{key}'{source}: {message}")
    return "\n".join(lines)


def describe_settings() -> list[tuple[str, str, str, str]]:
    """(YAML key, environment variable, default, description) for every setting."""
    rows: list[tuple[str, str, str, str]] = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub_name, sub_field in annotation.model_fields.items():
                default = sub_field.get_default(call_default_factory=True)
                rows.append(_row(f"{name}.{sub_name}", default, sub_field.description))
        else:
            rows.append(_row(name, field.get_default(call_default_factory=True), field.description))
    return rows


def _row(key: str, default: Any, description: str | None) -> tuple[str, str, str, str]:
    env = ENV_PREFIX + key.upper().replace(".", "__")
    if isinstance(default, SecretStr):
        shown = "(secret)"
    elif isinstance(default, list):
        shown = ",".join(map(str, default))
    else:
        shown = "" if default is None else str(default)
    return key, env, shown, description or ""
