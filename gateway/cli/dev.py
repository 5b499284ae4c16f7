"""`gateway dev` (the whole local stack) and `gateway dev conductor` (the dev server alone)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

from gateway.devserver.brokers import BrokerError
from gateway.devserver.stack import DEV_DIR, add_arguments, run_dev, run_send
from gateway.errors import ConfigError

log = logging.getLogger("gateway.devserver")


def register(sub: Any) -> None:
    dev = sub.add_parser("dev", help="run a local stack: brokers, Conductor dev server, gateway")
    dev_sub = dev.add_subparsers(dest="dev_command", metavar="WHAT")
    conductor = dev_sub.add_parser(
        "conductor",
        help="run the Conductor dev server alone",
        description="A Conductor-compatible REST server with an in-memory engine, for tests "
        "and local development. Stops on Ctrl-C or SIGTERM.",
    )
    conductor.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    conductor.add_argument("--port", type=int, default=8080, help="port (0 = any free port)")
    conductor.add_argument("--flavor", choices=("oss", "orkes"), default="oss")
    conductor.add_argument("--key-id", default=None, help="Orkes key id; enables token auth")
    conductor.add_argument(
        "--key-secret-env",
        default=None,
        metavar="VAR",
        help="name of the environment variable holding the key secret (never the secret)",
    )
    conductor.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="FILE",
        help="keep executions, definitions and queues in this SQLite file across restarts "
        "(default: in memory, lost on exit)",
    )
    conductor.add_argument("--log-level", default="INFO")
    conductor.add_argument("--tls-cert", type=Path, help="serve https: PEM certificate (chain)")
    conductor.add_argument("--tls-key", type=Path, help="serve https: PEM private key")
    conductor.add_argument(
        "--real",
        action="store_true",
        help="run the real Conductor OSS from Maven Central instead (Java 21+ and Maven; "
        "fetched once into the cache, then about 15-30 s to start)",
    )
    conductor.set_defaults(func=run_conductor)
    fetch = dev_sub.add_parser(
        "fetch",
        help="fetch the real Conductor OSS and Apache Kafka into the cache",
        description="Download Conductor OSS and Apache Kafka from Maven Central once, into "
        "$GATEWAY_CACHE_DIR (default ~/.cache/conductor-gateway), and check that a Java new "
        "enough for each is installed. `make setup` runs it.",
    )
    fetch.set_defaults(func=run_fetch)
    send = dev_sub.add_parser(
        "send",
        help="publish one message to the local stack's brokers",
        description="Publish BODY to kafka:<topic>, amqp:<queue> or amqp:<exchange>/<key>.",
    )
    send.add_argument("--config", type=Path, default=DEV_DIR / "gateway.yaml", metavar="FILE")
    send.add_argument("destination", metavar="DESTINATION")
    send.add_argument("body", metavar="BODY")
    send.set_defaults(func=run_send)
    add_arguments(dev)
    dev.set_defaults(func=run_dev)


def _secret(args: argparse.Namespace) -> str | None:
    if args.key_id is None and args.key_secret_env is None:
        return None
    if args.key_id is None or args.key_secret_env is None:
        raise ConfigError("--key-id and --key-secret-env: give both or neither")
    secret = os.environ.get(args.key_secret_env)
    if not secret:
        raise ConfigError(
            f"--key-secret-env: environment variable {args.key_secret_env} is not set or empty; "
            "export the key secret in it"
        )
    return secret


def run_conductor(args: argparse.Namespace) -> int:
    from gateway.logs import configure

    configure(args.log_level, "text")
    if args.real:
        return _serve_real(args)
    secret = _secret(args)
    asyncio.run(_serve(args, secret, _server_tls(args)))
    return 0


def _server_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.tls_cert is None and args.tls_key is None:
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise ConfigError("--tls-cert and --tls-key: give both or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"--tls-cert {args.tls_cert} / --tls-key {args.tls_key}: cannot load ({exc}); "
            "give a PEM certificate and its unencrypted private key"
        ) from None
    return context


def run_fetch(args: argparse.Namespace) -> int:
    from gateway.devserver import artifacts

    try:
        paths = artifacts.fetch_all()
        conductor_java = artifacts.find_java(artifacts.CONDUCTOR_MIN_JAVA)
        kafka_java = artifacts.find_java(artifacts.KAFKA_MIN_JAVA)
    except BrokerError as exc:
        print(f"gateway dev fetch: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"cached {path}")
    print(f"Java for Conductor OSS: {conductor_java.binary} ({conductor_java.major})")
    print(f"Java for Apache Kafka:  {kafka_java.binary} ({kafka_java.major})")
    return 0


def _serve_real(args: argparse.Namespace) -> int:
    """The real Conductor OSS in the foreground until Ctrl-C or SIGTERM."""
    from gateway.devserver.realservers import ConductorOSS

    if args.flavor != "oss" or args.key_id or args.key_secret_env:
        raise ConfigError(
            "--real runs Conductor OSS, which has no Orkes flavour or keys: "
            "drop --flavor/--key-id/--key-secret-env, or drop --real"
        )
    if args.data is not None:
        raise ConfigError(
            "--data keeps the dev server's state; --real runs Conductor OSS on its own SQLite "
            "in a temporary directory: drop --data, or drop --real"
        )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = ConductorOSS(port=args.port or None)
    try:
        server.start()
    except BrokerError as exc:
        print(f"gateway dev conductor --real: {exc}", file=sys.stderr)
        return 1
    try:
        print(
            f"Conductor OSS {server.version} ready at {server.url} "
            f"(started in {server.started_in:.1f} s)",
            flush=True,
        )
        while not stop.wait(0.5):
            if server.process is None or server.process.poll() is not None:
                print("Conductor OSS exited", file=sys.stderr)
                return 1
        log.info("stopping Conductor OSS")
        return 0
    finally:
        server.stop()


async def _serve(
    args: argparse.Namespace, secret: str | None, ssl_context: ssl.SSLContext | None
) -> None:
    from gateway.devserver.server import DevServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with DevServer(
        host=args.host,
        port=args.port,
        flavor=args.flavor,
        key_id=args.key_id,
        key_secret=secret,
        ssl_context=ssl_context,
        data=args.data,
    ) as server:
        # The line tests and users wait for; flush so a pipe sees it at once.
        print(f"Conductor dev server ({server.flavor}) ready at {server.url}", flush=True)
        await stop.wait()
        log.info("stopping Conductor dev server")
