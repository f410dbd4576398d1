"""The container, compose and Kubernetes artefacts are valid and agree with the code they deploy.

No Docker engine or cluster runs here, so these checks are static: Kubernetes schemas (strict), a
project-written schema of the KEDA fields used, the Dockerfile linter, and cross-checks of entry points,
setting names, ports and the partition/replica bound against the code.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from streamnlp.config import WorkerSettings
from streamnlp.dev.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KNOWN_SETTINGS = {env for env, _, _ in WorkerSettings.describe()} | {
    env for env, _, _ in ServiceSettings.describe()
}
KEDA = Draft202012Validator(json.loads((ROOT / "deploy" / "schemas" / "keda.schema.json").read_text()))


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    names = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    return [(name, doc) for name in names for doc in documents(K8S / name)]


def validate(document: dict[str, Any]) -> None:
    if document["apiVersion"].startswith("keda.sh/"):
        KEDA.validate(document)
    else:
        kubernetes_validate.validate(document, "1.37.0", strict=True)


def test_every_kubernetes_resource_is_valid() -> None:
    resources = k8s_documents()
    assert {doc["kind"] for _, doc in resources} >= {
        "Deployment", "ConfigMap", "Service", "PodDisruptionBudget", "ScaledObject", "TriggerAuthentication",
    }  # fmt: skip
    for _, document in resources:
        validate(document)
    for document in documents(K8S / "secret.example.yaml"):
        validate(document)


@pytest.mark.parametrize(
    ("kind", "path", "bad"),
    [
        ("Deployment", ["spec", "replicas"], "three"),
        ("Deployment", ["spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"], "six"),
        ("Deployment", ["spec", "template", "spec", "containers", 0, "portz"], []),
        ("ScaledObject", ["spec", "maxReplicaCount"], "8"),
        ("ScaledObject", ["spec", "triggers", 0, "metadata", "lagTreshold"], "500"),
    ],
)
def test_a_broken_manifest_is_rejected(kind: str, path: list, bad: object) -> None:
    (document,) = [copy.deepcopy(d) for _, d in k8s_documents() if d["kind"] == kind]
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = bad
    with pytest.raises((ValidationError, kubernetes_validate.ValidationError)):
        validate(document)


def _env_names() -> list[str]:
    names: list[str] = []
    for _, document in k8s_documents():
        if document["kind"] == "ConfigMap":
            names += list(document["data"])
        if document["kind"] == "Deployment":
            for container in document["spec"]["template"]["spec"]["containers"]:
                names += [e["name"] for e in container.get("env", [])]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("worker", "producer"):
        names += list(compose["services"][name]["environment"])
    names += [
        line.split()[1].split("=")[0]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("ENV ")
    ]
    names += [
        ln.strip().split("=")[0]
        for ln in (ROOT / "Dockerfile").read_text().splitlines()
        if ln.strip().startswith("STREAMNLP_")
    ]
    return names


def test_every_environment_variable_a_manifest_sets_is_a_setting() -> None:
    names = [n for n in _env_names() if n.startswith("STREAMNLP_")]
    assert len(names) > 20
    assert set(names) <= KNOWN_SETTINGS, sorted(set(names) - KNOWN_SETTINGS)


def test_manifest_values_parse_as_the_settings_they_set() -> None:
    (configmap,) = [d for _, d in k8s_documents() if d["kind"] == "ConfigMap"]
    settings = WorkerSettings.from_env(configmap["data"])
    assert settings.topic_profiles() == {"chats": "ecommerce", "payments": "banking"}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    WorkerSettings.from_env(
        {k: str(v) for k, v in compose["services"]["worker"]["environment"].items()}
    ).topic_profiles()


def test_replicas_are_bounded_by_partitions_and_lag_triggers_cover_every_input() -> None:
    (configmap,) = [d for _, d in k8s_documents() if d["kind"] == "ConfigMap"]
    (scaled,) = [d for _, d in k8s_documents() if d["kind"] == "ScaledObject"]
    settings = WorkerSettings.from_env(configmap["data"])
    assert scaled["spec"]["maxReplicaCount"] == settings.topic_partitions
    triggers = scaled["spec"]["triggers"]
    assert {t["metadata"]["topic"] for t in triggers} == set(settings.topic_profiles())
    assert {t["metadata"]["consumerGroup"] for t in triggers} == {settings.group}
    (deployment,) = [d for _, d in k8s_documents() if d["kind"] == "Deployment"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


def test_every_image_runs_the_entry_point_the_tests_run() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["streamnlp"]' in dockerfile and 'CMD ["worker"]' in dockerfile
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["streamnlp"] == "streamnlp.cli:main"
    from streamnlp.cli import main

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("worker", "producer"):
        assert compose["services"][name]["command"][0] in main.commands
    (deployment,) = [d for _, d in k8s_documents() if d["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker"]


def test_probes_and_scrapes_use_the_worker_web_port_and_paths() -> None:
    (deployment,) = [d for _, d in k8s_documents() if d["kind"] == "Deployment"]
    (configmap,) = [d for _, d in k8s_documents() if d["kind"] == "ConfigMap"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    port = int(configmap["data"]["STREAMNLP_WEB_PORT"])
    assert container["ports"][0]["containerPort"] == port
    assert (
        container["readinessProbe"]["httpGet"]["path"],
        container["livenessProbe"]["httpGet"]["path"],
    ) == ("/ready", "/health")
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["dns_sd_configs"][0]["port"] == port
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "streamnlp.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    from streamnlp.metrics import Metrics

    exported = {m.name for m in Metrics().registry.collect()}
    used = {
        name.removesuffix("_total").removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
        for name in re.findall(r"streamnlp_[a-z_]+", exprs)
    }
    assert used <= exported, used - exported


def test_the_dockerfile_passes_its_linter() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linter_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install -y curl\nUSER root\n")
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert subprocess.run([hadolint, str(bad)], capture_output=True, check=False).returncode != 0
