"""deploy/k8s validates offline against Kubernetes' schemas (kubernetes-validate bundles them) and the
CRDs against schemas of their own fields; the resources agree with each other and with Settings."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate as kv
import pytest

from streams.settings import Settings
from tests.unit.deploy.deploy_helpers import (
    load_yaml,
    load_yaml_all,
    schema_errors,
    settings_env_names,
    settings_from_env,
)

Docs = dict[tuple[str, str], dict[str, Any]]
CRD_SCHEMAS = {
    "ScaledObject": "scaledobject.schema.yaml",
    "PrometheusRule": "prometheusrule.schema.yaml",
    "ServiceMonitor": "servicemonitor.schema.yaml",
}
# The oldest Kubernetes these manifests support, and the newest the validator knows.
K8S_VERSIONS = ("1.29.0", None)
# Metadata keys of KEDA's Kafka scaler (keda.sh/docs/latest/scalers/apache-kafka).
KAFKA_SCALER_KEYS = frozenset(
    {
        "bootstrapServers",
        "consumerGroup",
        "topic",
        "lagThreshold",
        "activationLagThreshold",
        "offsetResetPolicy",
        "allowIdleConsumers",
        "scaleToZeroOnInvalidOffset",
        "excludePersistentLag",
        "version",
        "partitionLimitation",
        "sasl",
        "tls",
        "unsafeSsl",
        "limitToPartitionsWithLag",
        "ensureEvenDistributionOfPartitions",
    }
)


def one(docs: Docs, kind: str, name: str | None = None) -> dict[str, Any]:
    (doc,) = [d for (k, n), d in docs.items() if k == kind and name in (None, n)]
    return doc


def worker_container(docs: Docs, name: str = "streamvision-worker") -> dict[str, Any]:
    (container,) = one(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    return container


def pod_settings(docs: Docs) -> Settings:
    env = dict(one(docs, "ConfigMap")["data"])
    env.update(one(docs, "Secret")["stringData"])
    env.update({e["name"]: e.get("value", "from-the-downward-api") for e in worker_container(docs)["env"]})
    return settings_from_env(env)


def core_validate(doc: dict[str, Any], version: str | None) -> None:
    kv.validate(doc, version or kv.latest_version(), strict=True)


def test_kustomization_lists_every_manifest(k8s_dir: Path) -> None:
    kustomization = load_yaml(k8s_dir / "kustomization.yaml")
    files = {p.name for p in k8s_dir.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    kinds = {d["kind"] for f in files for d in load_yaml_all(k8s_dir / f)}
    expected = {"Deployment", "ConfigMap", "Secret", "ScaledObject", "PodDisruptionBudget", "Service"}
    assert expected | {"PrometheusRule"} <= kinds


@pytest.mark.parametrize("version", K8S_VERSIONS, ids=lambda v: v or "latest")
def test_core_resources_match_the_kubernetes_schemas(k8s_docs: Docs, version: str | None) -> None:
    core = [d for (kind, _), d in k8s_docs.items() if kind not in CRD_SCHEMAS]
    assert len(core) >= 6
    for doc in core:
        core_validate(doc, version)


def test_strict_validation_catches_a_misplaced_field(k8s_docs: Docs) -> None:
    broken = copy.deepcopy(one(k8s_docs, "Deployment", "streamvision-worker"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paths"] = "/ready"
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, kv.latest_version(), strict=True)


@pytest.mark.parametrize("kind", sorted(CRD_SCHEMAS))
def test_custom_resources_match_their_crd_fields(k8s_docs: Docs, kind: str) -> None:
    assert schema_errors(CRD_SCHEMAS[kind], one(k8s_docs, kind)) == []


def test_crd_schemas_catch_mistakes(k8s_docs: Docs) -> None:
    scaled = copy.deepcopy(one(k8s_docs, "ScaledObject"))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 500  # the CRD wants strings
    scaled["spec"]["maxReplicas"] = 3  # the HPA's name, not KEDA's
    errors = schema_errors(CRD_SCHEMAS["ScaledObject"], scaled)
    assert any("lagThreshold" in e for e in errors) and any("maxReplicas" in e for e in errors)
    rule = copy.deepcopy(one(k8s_docs, "PrometheusRule"))
    rule["spec"]["groups"][1]["rules"][0]["annotation"] = {}
    assert schema_errors(CRD_SCHEMAS["PrometheusRule"], rule)


def test_settings_come_from_the_configmap_and_secret(k8s_docs: Docs) -> None:
    config, secret = one(k8s_docs, "ConfigMap"), one(k8s_docs, "Secret")
    names = set(config["data"]) | set(secret["stringData"])
    assert names <= settings_env_names(), f"not Settings fields: {names - settings_env_names()}"
    assert "STREAMVISION_API_TOKEN" not in config["data"], "the token belongs in the Secret"
    settings = pod_settings(k8s_docs)
    assert (
        settings.broker
        and settings.schema_registry_url
        and settings.mlflow_tracking_uri
        and settings.redis_url
    )
    assert settings.device == "cuda" and settings.web_host == "0.0.0.0"
    assert settings.heartbeat_interval_s * 3 <= settings.session_timeout_s, "heartbeat at most a third"
    refs = worker_container(k8s_docs)["envFrom"]
    assert {r["configMapRef"]["name"] for r in refs if "configMapRef" in r} == {config["metadata"]["name"]}
    assert {r["secretRef"]["name"] for r in refs if "secretRef" in r} == {secret["metadata"]["name"]}


def test_worker_probes_and_gpu(k8s_docs: Docs) -> None:
    deployment = one(k8s_docs, "Deployment", "streamvision-worker")
    container = worker_container(k8s_docs)
    settings = pod_settings(k8s_docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": settings.web_port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    resources = container["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 1
    assert "cpu" not in resources["limits"], "a CPU limit throttles decoding"
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(settings.data_dir) in mounts, "the data dir must be writable under a read-only root"
    assert container["args"] == ["streamvision", "worker"]
    assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False


@pytest.mark.parametrize("deployment", ["streamvision-worker", "streamvision-stats"])
def test_workers_advertise_a_reachable_url(k8s_docs: Docs, deployment: str) -> None:
    container = worker_container(k8s_docs, deployment)
    env = [e["name"] for e in container["env"]]
    for name in ("NODE_CANONICAL_URL", "STREAMVISION_WEB_ADVERTISED_URL"):
        url = next(e["value"] for e in container["env"] if e["name"] == name)
        assert url == f"http://$(POD_IP):{pod_settings(k8s_docs).web_port}"
        assert env.index("POD_IP") < env.index(name), "$(POD_IP) expands only if defined before"


def test_inference_and_stats_run_as_separate_deployments(k8s_docs: Docs) -> None:
    roles = {
        name: next(
            e["value"] for e in worker_container(k8s_docs, name)["env"] if e["name"] == "STREAMVISION_ROLE"
        )
        for name in ("streamvision-worker", "streamvision-stats")
    }
    assert roles == {"streamvision-worker": "inference", "streamvision-stats": "stats"}
    stats = worker_container(k8s_docs, "streamvision-stats")
    assert "nvidia.com/gpu" not in stats["resources"]["requests"], "only inference workers need a GPU"
    assert stats["envFrom"] == worker_container(k8s_docs)["envFrom"]
    labels = one(k8s_docs, "Deployment", "streamvision-stats")["spec"]["template"]["metadata"]["labels"]
    assert one(k8s_docs, "Service")["spec"]["selector"].items() <= labels.items(), "views from any worker"


def test_selectors_and_ports_line_up(k8s_docs: Docs) -> None:
    pod_labels = one(k8s_docs, "Deployment", "streamvision-worker")["spec"]["template"]["metadata"]["labels"]
    service, pdb, monitor = (
        one(k8s_docs, "Service"),
        one(k8s_docs, "PodDisruptionBudget"),
        one(k8s_docs, "ServiceMonitor"),
    )
    for selector in (service["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    container_ports = {p["name"] for p in worker_container(k8s_docs)["ports"]}
    assert {p["targetPort"] for p in service_ports.values()} <= container_ports
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports and endpoint["path"] == "/metrics"
    assert "maxUnavailable" in pdb["spec"], "minAvailable would block drains at one replica"


def test_keda_scales_on_the_workers_lag_up_to_the_partition_count(k8s_docs: Docs) -> None:
    scaled, deployment = one(k8s_docs, "ScaledObject"), one(k8s_docs, "Deployment", "streamvision-worker")
    settings = pod_settings(k8s_docs)
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert spec["maxReplicaCount"] == settings.topic_partitions
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka" and set(meta) <= KAFKA_SCALER_KEYS
    assert meta["consumerGroup"] == settings.app_id
    assert meta["topic"] == settings.topic_raw
    assert meta["bootstrapServers"] == (settings.broker or "").removeprefix("kafka://")
    assert meta["allowIdleConsumers"] == "false" and int(meta["lagThreshold"]) > 0


def test_prometheus_rule_carries_the_rule_file(k8s_docs: Docs, rules_file: Path) -> None:
    assert one(k8s_docs, "PrometheusRule")["spec"] == load_yaml(rules_file)


def test_kustomize_renders_a_valid_namespaced_set(k8s_dir: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            "kubectl not installed: kustomize rendering not checked (the files were validated one by one)"
        )
    out = subprocess.run([kubectl, "kustomize", str(k8s_dir)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import yaml

    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    kustomization = load_yaml(k8s_dir / "kustomization.yaml")
    assert len(docs) == sum(len(load_yaml_all(k8s_dir / r)) for r in kustomization["resources"])
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == kustomization["namespace"], doc["metadata"]["name"]
        if doc["kind"] not in CRD_SCHEMAS:
            core_validate(doc, None)
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    image = kustomization["images"][0]
    assert len(deployments) == 2  # inference and stats
    for deployment in deployments:
        assert (
            deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            == f"{image['newName']}:{image['newTag']}"
        )
