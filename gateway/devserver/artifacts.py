"""The real servers' artifacts: Conductor OSS and Apache Kafka from Maven Central, and a Java
to run them.

Both are fetched once with Maven into a cache outside the repository
(`$GATEWAY_CACHE_DIR`, else `$XDG_CACHE_HOME/conductor-gateway`, else
`~/.cache/conductor-gateway`) and reused from there:

    conductor-server-3.32.3-boot.jar      org.conductoross:conductor-server:3.32.3:jar:boot
    kafka-4.1.1/*.jar                     org.apache.kafka:kafka_2.13:4.1.1 and its runtime
                                          dependencies, plus a log4j2 binding for its logs

A fetch writes into a temporary name and renames when complete, so an interrupted fetch or two
processes fetching at once never leave a half-filled cache entry. `gateway dev fetch` (run by
`make setup`) fills the cache ahead of time. What is missing (Maven, a new enough Java) is said
with the command that installs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gateway.devserver.brokers import BrokerError

CONDUCTOR_VERSION = "3.32.3"
KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
CONDUCTOR_MIN_JAVA = 21  # Conductor OSS 3.22+ is built for Java 21
KAFKA_MIN_JAVA = 17

MAVEN_HINT = "install Maven (apt-get install -y maven) or fetch on a machine that has it"
JAVA_HINT = (
    "install one (for example a Temurin or OpenJDK {need}+ package) and set JAVA_HOME to it; "
    "Java homes under /usr/lib/jvm and /opt/java are found by themselves"
)


def cache_dir() -> Path:
    """Where fetched artifacts live: outside the repository, kept between runs."""
    explicit = os.environ.get("GATEWAY_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "conductor-gateway"


@dataclass(frozen=True)
class Java:
    """A Java runtime: its `java` binary and major version."""

    binary: str
    major: int


def find_java(min_major: int) -> Java:
    """The first Java of at least `min_major`: $JAVA_HOME, `java` on PATH, then the newest
    installed under /usr/lib/jvm or /opt/java. Raises BrokerError listing what was found."""
    seen: list[Java] = []
    for binary in _java_candidates():
        major = _java_major(binary)
        if major is None:
            continue
        java = Java(binary, major)
        if major >= min_major:
            return java
        seen.append(java)
    found = ", ".join(f"{j.binary} ({j.major})" for j in seen) or "no Java at all"
    raise BrokerError(
        f"Java {min_major} or newer is needed; found {found}: {JAVA_HINT.format(need=min_major)}"
    )


def _java_candidates() -> list[str]:
    candidates: list[str] = []
    home = os.environ.get("JAVA_HOME")
    if home:
        candidates.append(str(Path(home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(os.path.realpath(on_path))
    installed: list[tuple[int, str]] = []
    for root in (Path("/usr/lib/jvm"), Path("/opt/java")):
        for binary in sorted(root.glob("*/bin/java")) if root.is_dir() else []:
            installed.append((_java_major(str(binary)) or 0, str(binary)))
    candidates += [b for _, b in sorted(installed, reverse=True)]
    unique: list[str] = []
    for c in candidates:
        real = os.path.realpath(c)
        if os.access(real, os.X_OK) and real not in unique:
            unique.append(real)
    return unique


def _java_major(binary: str) -> int | None:
    """The major version from the home's `release` file, else from `java -version`."""
    release = Path(binary).resolve().parent.parent / "release"
    text = ""
    if release.is_file():
        text = release.read_text(errors="replace")
    else:
        try:
            done = subprocess.run(
                [binary, "-version"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        text = done.stderr + done.stdout
    match = re.search(r'(?:JAVA_VERSION=|version )"(1\.)?(\d+)', text)
    return int(match.group(2)) if match else None


def conductor_jar(version: str = CONDUCTOR_VERSION) -> Path:
    """The Conductor OSS boot jar, fetched on first use."""
    target = cache_dir() / f"conductor-server-{version}-boot.jar"
    if target.is_file():
        return target
    artifact = f"org.conductoross:conductor-server:{version}:jar:boot"
    with _staging(target) as staging:
        _mvn(["dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={staging}"])
        jars = list(staging.glob("*.jar"))
        if len(jars) != 1:
            raise BrokerError(f"Maven fetched {len(jars)} files for {artifact}, expected 1")
        jars[0].replace(target)
    return target


def kafka_libs(version: str = KAFKA_VERSION) -> Path:
    """A folder holding Apache Kafka's jars (broker, tools, dependencies), fetched on first use."""
    target = cache_dir() / f"kafka-{version}"
    if (target / "kafka.complete").is_file():
        return target
    with _staging(target) as staging:
        pom = staging / "pom.xml"
        pom.write_text(_kafka_pom(version))
        libs = staging / "libs"
        _mvn(
            [
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
                "-DincludeScope=runtime",
            ]
        )
        (libs / "kafka.complete").write_text(version + "\n")
        if target.exists():  # another process finished first
            shutil.rmtree(libs)
        else:
            libs.replace(target)
    return target


def fetch_all() -> list[Path]:
    """Fill the cache with both servers (for `make setup` and CI, ahead of the tests)."""
    return [conductor_jar(), kafka_libs()]


class _staging:
    """A temporary folder beside `target` (same filesystem, so the final rename is atomic)."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path: Path | None = None

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", dir=self.target.parent))
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)


def _mvn(args: list[str]) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(f"Maven (mvn) is needed to fetch the real servers: {MAVEN_HINT}")
    argv = [mvn, "--batch-mode", "--quiet", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
        raise BrokerError(f"Maven did not finish within 900 s: {' '.join(argv)}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise BrokerError(f"Maven failed (exit {done.returncode}): {' '.join(argv)}\n{tail}")


def _kafka_pom(version: str) -> str:
    deps = [
        ("org.apache.kafka", "kafka_2.13", version),
        # Kafka logs through SLF4J 1.7; this binds it to log4j2 so its log can be configured.
        ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
    ]
    body = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>local.gateway</groupId><artifactId>kafka-fetch</artifactId>"
        "<version>1</version><packaging>pom</packaging>"
        f"<dependencies>{body}</dependencies></project>"
    )
