"""Settings: YAML under environment, strict keys, one-line errors, secrets never shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.settings import describe_settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "gateway.yaml"


def gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.fixture(autouse=True)
def _no_gateway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("GATEWAY_"):
            monkeypatch.delenv(key)


def test_environment_wins_over_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "g.yaml"
    config.write_text("kafka:\n  bootstrap_servers: a:1\n  group_id: from-yaml\n")
    monkeypatch.setenv("GATEWAY_KAFKA__BOOTSTRAP_SERVERS", "b:2,c:3")
    settings = load_settings(config)
    assert settings.kafka.bootstrap_servers == ["b:2", "c:3"]
    assert settings.kafka.group_id == "from-yaml"  # untouched keys keep the file's value


def test_unknown_yaml_key_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "g.yaml"
    config.write_text("kafka:\n  bootstrap_server: a:1\n")
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_server.*unknown setting"):
        load_settings(config)


def test_settings_are_frozen() -> None:
    settings = load_settings(None)
    with pytest.raises(ValueError):
        settings.kafka.group_id = "x"  # type: ignore[misc]


def test_amqp_url_rejects_disabled_tls_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_AMQP__URL", "amqps://u:p@h:5671/?no_verify_ssl=1")
    with pytest.raises(ConfigError, match="no_verify_ssl"):
        load_settings(None)


def test_conductor_url_must_not_carry_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CONDUCTOR__URL", "https://user:pw@conductor/api")
    with pytest.raises(ConfigError, match="must not carry credentials"):
        load_settings(None)


def test_check_accepts_the_example_config() -> None:
    result = gateway("check", "--config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr


def test_check_unknown_key_exits_nonzero_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "g.yaml"
    config.write_text("conductor:\n  urll: http://x/api\n")
    result = gateway("check", "--config", str(config))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "conductor.urll" in lines[0] and "unknown setting" in lines[0]


def test_check_empty_bootstrap_servers_names_the_variable() -> None:
    result = gateway(
        "check", "--config", str(EXAMPLE), env={"GATEWAY_KAFKA__BOOTSTRAP_SERVERS": ""}
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "kafka.bootstrap_servers" in lines[0]
    assert "GATEWAY_KAFKA__BOOTSTRAP_SERVERS" in lines[0] and "empty" in lines[0]


def test_passwords_never_appear_in_output(tmp_path: Path) -> None:
    secrets = {
        "GATEWAY_KAFKA__SASL_PASSWORD": "kafka-pw-7731",
        "GATEWAY_AMQP__URL": "amqp://user:amqp-pw-7732@127.0.0.1:5672/",
        "GATEWAY_CONDUCTOR__KEY_SECRET": "orkes-secret-7733",
    }
    ok = gateway("check", "--config", str(EXAMPLE), env=secrets)
    bad = gateway("check", "--config", str(EXAMPLE), env={**secrets, "GATEWAY_ADMIN__PORT": "x"})
    assert ok.returncode == 0 and bad.returncode != 0
    settings_repr = repr(load_settings_with(secrets))
    for output in (ok.stdout, ok.stderr, bad.stdout, bad.stderr, settings_repr):
        assert not re.search(r"pw-773[12]|secret-7733", output), output


def load_settings_with(env: dict[str, str]) -> object:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return load_settings(EXAMPLE)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_docs_document_every_setting() -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [
        f"{key} ({env})"
        for key, env, _default, _description in describe_settings()
        if f"`{key}`" not in reference or f"`{env}`" not in reference
    ]
    assert not missing, "docs/configuration.md lacks: " + ", ".join(missing)


def test_version_and_help() -> None:
    assert gateway("version").stdout.strip()
    help_text = gateway("--help").stdout
    for command in ("run", "check", "dev", "conductor"):
        assert command in help_text
