"""The real servers users run, started like the local brokers: Conductor OSS and Apache Kafka.

`with ConductorOSS() as conductor:` gives `conductor.url` (ending in /api); `with ApacheKafka()
as kafka:` gives `kafka.bootstrap`. Each runs as a child process in its own session (stopping it
stops everything it spawned), on free loopback ports, in a temporary directory removed on stop.
Readiness is the server's own answer: Conductor's REST API answering a metadata request, Kafka's
"Kafka Server started" line followed by its port accepting connections. A server that does not
come up raises `BrokerError` with the last lines it printed.

Conductor OSS keeps executions, queues and its search index in SQLite (its default since 3.22),
in the temporary directory, so each start is empty. Kafka runs in KRaft mode as one combined
broker and controller, formatted afresh at each start.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.devserver import artifacts
from gateway.devserver.brokers import (
    BrokerError,
    OutputTail,
    ServerProcess,
    free_port,
    wait_for_port,
)


class _JavaServer(ServerProcess):
    """A JVM server in a temporary directory; its output is kept for error messages."""

    base: Path | None = None
    tail: OutputTail | None = None
    started_in: float | None = None  # seconds from spawn to ready, for reports

    def _make_base(self, prefix: str) -> Path:
        self.base = Path(tempfile.mkdtemp(prefix=prefix))
        return self.base

    def _start_java(self, argv: list[str], marker: str | None = None) -> None:
        assert self.base is not None
        self.process = subprocess.Popen(
            argv,
            cwd=self.base,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.tail = OutputTail(self.process, marker=marker)

    def _fail(self, what: str) -> BrokerError:
        code = self.process.poll() if self.process else None
        output = self.tail.text() if self.tail else ""
        self.stop()
        return BrokerError(f"{self.name} {what} (exit status {code}); it printed:\n{output}")

    def stop(self) -> None:
        self._kill_group(20)
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None


class ConductorOSS(_JavaServer):
    """Conductor OSS (the Spring Boot server from Maven Central), SQLite-backed, on loopback."""

    name = "Conductor OSS"

    def __init__(
        self,
        port: int | None = None,
        startup_timeout: float = 240.0,
        version: str = artifacts.CONDUCTOR_VERSION,
        heap: str = "1g",
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.version = version
        self.heap = heap
        # Spring properties for the server, e.g. its workflow status listener:
        # {"conductor.workflow-status-listener.type": "kafka", ...}
        self.settings = dict(settings or {})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        jar = artifacts.conductor_jar(self.version)
        java = artifacts.find_java(artifacts.CONDUCTOR_MIN_JAVA)
        base = self._make_base("gateway-conductor-")
        database = f"jdbc:sqlite:{base / 'conductor.db'}?busy_timeout=15000&journal_mode=WAL"
        argv = [
            java.binary,
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",  # two cores: no parallel GC threads competing with the tests
            # C1 only: less JIT work competing for two cores with the tests beside it.
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            "-jar",
            str(jar),
            f"--server.port={self.port}",
            "--server.address=127.0.0.1",
            f"--spring.datasource.url={database}",
            *(f"--{key}={value}" for key, value in self.settings.items()),
        ]
        began = time.monotonic()
        self._start_java(argv)
        if not self._wait_ready(began + self.startup_timeout):
            raise self._fail(f"did not answer on {self.url} within {self.startup_timeout:.0f}s")
        self.started_in = time.monotonic() - began

    def _wait_ready(self, deadline: float) -> bool:
        assert self.process is not None
        probe = f"{self.url}/metadata/taskdefs"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(probe, timeout=2) as answer,
            ):
                if answer.status == 200:
                    return True
            time.sleep(0.25)
        return False


_KAFKA_LOG4J = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


def _cluster_id() -> str:
    """A random Kafka cluster id (a UUID in URL-safe base64). Like Kafka's own Uuid.randomUuid,
    never one starting with '-': `kafka-storage format -t -x...` takes it for an option and
    fails (one start in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True, slots=True)
class KafkaTls:
    """Secured listeners for `ApacheKafka`, beside its PLAINTEXT one: SASL_SSL with SCRAM-SHA-512
    (`users`, created at format time with `kafka-storage format --add-scram`) and SSL with
    client certificates required (mutual TLS). Files are PEM: `keystore` holds the server's
    unencrypted PKCS#8 key followed by its certificate, `truststore` the CA(s) of client
    certificates."""

    keystore: Path
    truststore: Path
    users: Mapping[str, str] = field(default_factory=dict)  # SCRAM-SHA-512 name -> password


class ApacheKafka(_JavaServer):
    """Apache Kafka from Maven Central: one KRaft node that is both broker and controller."""

    name = "Apache Kafka"

    def __init__(
        self,
        port: int | None = None,
        startup_timeout: float = 120.0,
        version: str = artifacts.KAFKA_VERSION,
        heap: str = "512m",
        tls: KafkaTls | None = None,
    ) -> None:
        self.port = port or free_port()
        self.controller_port = free_port()
        self.startup_timeout = startup_timeout
        self.version = version
        self.heap = heap
        self.tls = tls
        self.sasl_ssl_port = free_port() if tls else 0
        self.mtls_port = free_port() if tls else 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        """The SASL_SSL (SCRAM-SHA-512) listener; only with `tls`."""
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def mtls_bootstrap(self) -> str:
        """The SSL listener that requires a client certificate; only with `tls`."""
        return f"127.0.0.1:{self.mtls_port}"

    def _listeners(self) -> dict[str, str]:
        plain = f"PLAINTEXT://127.0.0.1:{self.port}"
        controller = f"CONTROLLER://127.0.0.1:{self.controller_port}"
        if self.tls is None:
            return {
                "listeners": f"{plain},{controller}",
                "advertised.listeners": plain,
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            }
        secured = f"SASL_SSL://127.0.0.1:{self.sasl_ssl_port},MTLS://127.0.0.1:{self.mtls_port}"
        return {
            "listeners": f"{plain},{secured},{controller}",
            "advertised.listeners": f"{plain},{secured}",
            "listener.security.protocol.map": (
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL"
            ),
            # Brokers talk to each other on PLAINTEXT; only clients meet the secured listeners.
            "inter.broker.listener.name": "PLAINTEXT",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.tls.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.tls.truststore),
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.mtls.ssl.client.auth": "required",
        }

    def _scram_arguments(self) -> list[str]:
        users = self.tls.users if self.tls else {}
        return [
            arg
            for name, password in users.items()
            for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
        ]

    def _properties(self, base: Path) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            **self._listeners(),
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(base / "data"),
            # One node: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # A test group should not wait 3 s for members that will never come.
            "group.initial.rebalance.delay.ms": "0",
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def _java_argv(self, java: str, libs: Path, base: Path, main: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={base / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            main,
        ]

    def start(self) -> None:
        libs = artifacts.kafka_libs(self.version)
        java = artifacts.find_java(artifacts.KAFKA_MIN_JAVA)
        base = self._make_base("gateway-kafka-")
        (base / "server.properties").write_text(self._properties(base))
        (base / "log4j2.properties").write_text(_KAFKA_LOG4J)
        cluster_id = _cluster_id()
        tool = self._java_argv(java.binary, libs, base, "kafka.tools.StorageTool")
        formatted = subprocess.run(
            [
                *tool,
                "format",
                "-t",
                cluster_id,
                "-c",
                str(base / "server.properties"),
                *self._scram_arguments(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if formatted.returncode != 0:
            self.stop()
            raise BrokerError(
                f"formatting Kafka's storage failed (exit status {formatted.returncode}):\n"
                f"{formatted.stdout}{formatted.stderr}"
            )
        began = time.monotonic()
        argv = self._java_argv(java.binary, libs, base, "kafka.Kafka")
        self._start_java([*argv, str(base / "server.properties")], marker="Kafka Server started")
        assert self.tail is not None and self.process is not None
        deadline = began + self.startup_timeout
        while not self.tail.seen.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise self._fail(f"did not start within {self.startup_timeout:.0f}s")
        ports = [self.port, self.sasl_ssl_port, self.mtls_port] if self.tls else [self.port]
        if not all(wait_for_port(port, deadline, self.process) for port in ports):
            raise self._fail(f"said it started but one of its ports {ports} is closed")
        self.started_in = time.monotonic() - began
