"""The provisioned Grafana dashboard loads, is laid out sanely, and queries only metrics the worker
exports (streams/metrics.py); promtool parses every query when it is installed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.deploy_helpers import (
    REPO,
    exported_metric_labels,
    exported_metric_names,
    grafana_label_values_metric,
    grafana_to_promql,
    load_yaml,
    promql_metric_names,
    promql_selector_labels,
    updated_metric_names,
)

DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "streamvision.json"
DATASOURCES = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    flat = []
    for panel in dashboard["panels"]:
        flat.append(panel)
        flat.extend(panel.get("panels", []))  # collapsed rows keep their panels inside
    return flat


@pytest.fixture(scope="module")
def queries(panels: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query target."""
    return [(p["title"], grafana_to_promql(t["expr"])) for p in panels for t in p.get("targets", [])]


def test_dashboard_loads_with_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "streamvision" and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert "id" not in dashboard or dashboard["id"] is None, "a fixed id clashes between Grafana instances"


def test_panels_are_laid_out_on_the_grid(panels: list[dict[str, Any]]) -> None:
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        area = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def test_every_query_uses_the_provisioned_datasource(panels: list[dict[str, Any]]) -> None:
    (source,) = load_yaml(DATASOURCES)["datasources"]
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert panel["targets"] and len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]


def test_queries_use_only_exported_metrics(queries: list[tuple[str, str]]) -> None:
    exported = exported_metric_names()
    used: set[str] = set()
    for title, expr in queries:
        names = promql_metric_names(expr)
        assert names, f"{title}: {expr} selects nothing"
        assert names <= exported, f"{title}: not exported by streams/metrics.py: {names - exported}"
        used |= names
    shown = {n.removesuffix("_total").removesuffix("_bucket") for n in used}
    for key in ("streamvision_events_in", "streamvision_events_failed", "streamvision_latency_seconds"):
        assert key in shown, f"the dashboard does not show {key}"
    assert {"streamvision_consumer_lag", "streamvision_drift_value", "streamvision_model_info"} <= shown


def test_queries_show_metrics_the_worker_updates(queries: list[tuple[str, str]]) -> None:
    updated = updated_metric_names()
    for title, expr in queries:
        stale = promql_metric_names(expr) - updated
        assert not stale, f"{title}: nothing in the worker updates {stale} (the panel would stay empty)"


def test_queries_match_only_labels_the_worker_sets(queries: list[tuple[str, str]]) -> None:
    labels = exported_metric_labels()
    for title, expr in queries:
        for metric, used in promql_selector_labels(expr).items():
            assert not used - labels[metric], f"{title}: {metric} has no {used - labels[metric]}"


def test_template_variables_query_exported_metrics(dashboard: dict[str, Any]) -> None:
    exported = exported_metric_names()
    variables = dashboard["templating"]["list"]
    assert variables
    for variable in variables:
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        metric = grafana_label_values_metric(query)
        assert metric in exported, f"${variable['name']}: {query}"


def test_promtool_parses_every_query(promtool: str, queries: list[tuple[str, str]], tmp_path: Path) -> None:
    # promtool has no "check expression": wrap each query in a recording rule and check those.
    rules = [{"record": f"dashboard:query_{i}:check", "expr": expr} for i, (_, expr) in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
