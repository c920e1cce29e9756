"""docker-compose.yml wiring: start order, ports, profiles, and the monitoring configs it mounts."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tests.unit.deploy.deploy_helpers import command_list, load_yaml, settings_from_env, strings_in

STREAMVISION_IMAGE = "streamvision:local"
# Ports images listen on without saying so in the compose file.
IMAGE_DEFAULT_PORTS = {
    "redis:": {6379},
    "postgres:": {5432},
    "prom/prometheus:": {9090},
    "grafana/grafana:": {3000},
}


def healthchecked(service: dict[str, Any]) -> bool:
    """Whether Compose can report the service healthy (its own check, or the StreamVision image's)."""
    check = service.get("healthcheck")
    if check is not None:
        return not check.get("disable", False)
    return service.get("image") == STREAMVISION_IMAGE  # the Dockerfile's HEALTHCHECK


def listen_ports(service: dict[str, Any]) -> set[int]:
    """The container ports a service listens on, from its ports, expose, env and command."""
    ports = {int(p.split(":")[-1].split("/")[0].split("-")[0]) for p in service.get("ports", [])}
    ports |= {int(p) for p in service.get("expose", [])}
    env = service.get("environment") or {}
    ports |= {int(p) for p in re.findall(r"://[^:,]*:(\d+)", env.get("KAFKA_LISTENERS", ""))}
    for key in ("KARAPACE_PORT", "STREAMVISION_WEB_PORT"):
        if key in env:
            ports.add(int(env[key]))
    ports |= {
        int(m) for arg in command_list(service.get("command")) for m in re.findall(r"^--port=(\d+)$", arg)
    }
    for prefix, defaults in IMAGE_DEFAULT_PORTS.items():
        if str(service.get("image", "")).startswith(prefix):
            ports |= defaults
    return ports


def references(text: str, hosts: set[str]) -> set[tuple[str, int]]:
    """``(host, port)`` pairs in ``text`` naming one of ``hosts`` (URLs, host:port lists)."""
    pattern = r"(?:^|[/@,=\s])(" + "|".join(map(re.escape, sorted(hosts, key=len, reverse=True))) + r"):(\d+)"
    return {(m.group(1), int(m.group(2))) for m in re.finditer(pattern, text)}


def service_references(name: str, service: dict[str, Any], hosts: set[str]) -> set[tuple[str, int]]:
    texts = [*strings_in(service.get("environment") or {}), *command_list(service.get("command"))]
    texts += command_list(service.get("entrypoint"))
    return {ref for text in texts for ref in references(text, hosts) if ref[0] != name}


def dependency_closure(compose: dict[str, Any], name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dep in compose["services"][todo.pop()].get("depends_on") or {}:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def host_path(service: dict[str, Any], container_path: str, repo: Path) -> Path | None:
    """The repository file behind ``container_path`` through the service's bind mounts."""
    best: tuple[int, Path] | None = None
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith(".") and PurePosixPath(container_path).is_relative_to(target):
            rest = PurePosixPath(container_path).relative_to(target)
            if best is None or len(target) > best[0]:
                best = (len(target), repo / source / rest)
    return best[1] if best else None


def test_depends_on_targets_exist_and_can_satisfy_their_condition(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            target = services[dep]
            if spec["condition"] == "service_healthy":
                assert healthchecked(target), (
                    f"{name} waits for {dep} to be healthy, which has no healthcheck"
                )
            if spec["condition"] == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dep} is a one-shot: it must not restart"
            dep_profiles, own_profiles = set(target.get("profiles", [])), set(service.get("profiles", []))
            if dep_profiles:
                assert own_profiles and own_profiles <= dep_profiles, f"{name} may start without {dep}"
        assert name not in dependency_closure(compose, name), f"dependency cycle through {name}"


def test_nothing_starts_before_what_it_needs(compose: dict[str, Any]) -> None:
    hosts = set(compose["services"])
    for name, service in compose["services"].items():
        needed = {host for host, _ in service_references(name, service, hosts)}
        missing = needed - dependency_closure(compose, name)
        assert not missing, f"{name} talks to {missing} but does not wait for them (depends_on)"
        for dep, spec in (service.get("depends_on") or {}).items():
            if dep in needed and healthchecked(compose["services"][dep]):
                assert spec["condition"] != "service_started", f"{name} should wait for {dep} to be healthy"


def test_every_referenced_port_is_listened_on(compose: dict[str, Any], repo: Path) -> None:
    hosts = set(compose["services"])
    refs = {(n, r) for n, s in compose["services"].items() for r in service_references(n, s, hosts)}
    prometheus = load_yaml(repo / "deploy" / "prometheus" / "prometheus.yml")
    for job in prometheus["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            refs |= {("prometheus", ("worker-cpu", sd["port"])), ("prometheus", ("worker-gpu", sd["port"]))}
    datasources = load_yaml(repo / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    refs |= {("grafana", ref) for ds in datasources["datasources"] for ref in references(ds["url"], hosts)}
    assert len(refs) > 10
    for source, (host, port) in refs:
        assert port in listen_ports(compose["services"][host]), (
            f"{source} uses {host}:{port}, not a port of {host}"
        )


def test_healthchecks_probe_the_services_own_ports(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        probe = " ".join(command_list((service.get("healthcheck") or {}).get("test")))
        for port in re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", probe):
            assert int(port) in listen_ports(service), f"{name}'s healthcheck probes port {port}"


def test_long_running_services_report_health(compose: dict[str, Any]) -> None:
    unhealthchecked = {
        n for n, s in compose["services"].items() if s.get("restart", "no") != "no" and not healthchecked(s)
    }
    assert unhealthchecked == {"camera"}, "only the camera (no web server) goes without a healthcheck"


def test_profiles_pick_one_worker_kind(compose: dict[str, Any]) -> None:
    services = compose["services"]
    infra = {n for n, s in services.items() if not s.get("profiles")}
    assert {"kafka", "schema-registry", "mlflow", "postgres", "redis", "prometheus", "grafana"} <= infra
    assert services["worker-gpu"]["profiles"] == ["gpu"] and services["worker-cpu"]["profiles"] == ["cpu"]
    assert set(services["camera"]["profiles"]) == {"cpu", "gpu"}
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}], "one NVIDIA GPU per worker"
    assert "deploy" not in services["worker-cpu"]


def test_worker_web_port_is_published_for_every_replica(compose: dict[str, Any]) -> None:
    for name in ("worker-gpu", "worker-cpu"):
        service = compose["services"][name]
        web_port = settings_from_env(service["environment"]).web_port
        (mapping,) = service["ports"]
        host, container = mapping.rsplit(":", 1)
        low, high = (int(p) for p in host.split("-"))
        assert int(container) == web_port and low == web_port and high - low + 1 >= 4, name
        assert "container_name" not in service, f"{name}: a fixed container name prevents --scale"


def test_partitions_come_from_one_variable(compose_raw: dict[str, Any]) -> None:
    raw = compose_raw["services"]
    values = {
        raw["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"],
        raw["kafka-init"]["environment"]["STREAMVISION_TOPIC_PARTITIONS"],
        raw["worker-gpu"]["environment"]["STREAMVISION_TOPIC_PARTITIONS"],
        raw["worker-cpu"]["environment"]["STREAMVISION_TOPIC_PARTITIONS"],
    }
    assert len(values) == 1 and "${STREAMVISION_TOPIC_PARTITIONS" in values.pop()


def test_broker_takes_what_workers_send_and_supports_transactions(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]["environment"]
    worker = settings_from_env(compose["services"]["worker-cpu"]["environment"])
    assert worker.max_request_bytes <= int(kafka["KAFKA_MESSAGE_MAX_BYTES"]) <= worker.max_fetch_bytes
    # One broker: exactly_once needs these internal topics to fit on it.
    for key in ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"):
        assert kafka[key] == "1"
    assert int(compose["services"]["kafka-init"]["environment"]["STREAMVISION_TOPIC_REPLICAS"]) == 1


def test_prometheus_finds_workers_and_rules(compose: dict[str, Any], repo: Path) -> None:
    service = compose["services"]["prometheus"]
    config = load_yaml(repo / "deploy" / "prometheus" / "prometheus.yml")
    for pattern in config["rule_files"]:
        folder = host_path(service, str(PurePosixPath(pattern).parent), repo)
        assert folder is not None and list(folder.glob(PurePosixPath(pattern).name)), pattern
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "streamvision"]
    assert job["metrics_path"] == "/metrics"
    for name in ("worker-gpu", "worker-cpu"):
        aliases = compose["services"][name]["networks"]["default"]["aliases"]
        assert set(job["dns_sd_configs"][0]["names"]) <= set(aliases), f"{name} is not discovered"


def test_grafana_loads_the_provisioned_dashboard(compose: dict[str, Any], repo: Path) -> None:
    service = compose["services"]["grafana"]
    home = host_path(service, service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"], repo)
    assert home is not None and home.is_file()
    providers = load_yaml(repo / "deploy" / "grafana" / "provisioning" / "dashboards" / "streamvision.yml")
    for provider in providers["providers"]:
        folder = host_path(service, provider["options"]["path"], repo)
        assert folder is not None and home.parent == folder


@pytest.mark.parametrize("service", ["kafka-init"])
def test_one_shot_script_is_mounted_where_it_runs(compose: dict[str, Any], repo: Path, service: str) -> None:
    spec = compose["services"][service]
    script = host_path(spec, command_list(spec["entrypoint"])[-1], repo)
    assert script is not None and script.is_file()
