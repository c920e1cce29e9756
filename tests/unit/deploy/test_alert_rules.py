"""The Prometheus rules: promtool's own checks and unit tests when promtool is installed, and a
Python-level check that always runs (structure, durations, templates, metric names)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.deploy.deploy_helpers import (
    REPO,
    exported_metric_labels,
    exported_metric_names,
    load_yaml,
    promql_metric_names,
    promql_selector_labels,
    schema_errors,
    updated_metric_names,
)

RULE_TESTS = REPO / "deploy" / "prometheus" / "tests" / "streamvision.rules.test.yml"
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
SEVERITIES = {"critical", "warning", "info"}


@pytest.fixture(scope="module")
def rules(rules_file: Path) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(rules_file)["groups"] for rule in group["rules"]]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO)


# --- promtool (skipped, with a message, where it is not installed) ---------------------------------
def test_promtool_checks_the_rules(promtool: str, rules_file: Path) -> None:
    out = run(promtool, "check", "rules", str(rules_file))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_unit_tests_fire_the_alerts(promtool: str) -> None:
    out = run(promtool, "test", "rules", str(RULE_TESTS))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_checks_the_compose_prometheus_config(promtool: str) -> None:
    out = run(
        promtool, "check", "config", "--syntax-only", str(REPO / "deploy" / "prometheus" / "prometheus.yml")
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_rejects_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(rate(x[5m])\n")
    assert run(promtool, "check", "rules", str(bad)).returncode != 0


# --- Python-level checks (always run) --------------------------------------------------------------
def test_rule_file_structure(rules_file: Path, rules: list[dict[str, Any]]) -> None:
    doc = load_yaml(rules_file)
    groups = [g["name"] for g in doc["groups"]]
    assert len(groups) == len(set(groups)), "group names must be unique"
    alerts = [r["alert"] for r in rules if "alert" in r]
    assert len(alerts) == len(set(alerts)), "alert names must be unique"
    for rule in rules:
        assert ("alert" in rule) != ("record" in rule), rule
        assert isinstance(rule["expr"], str) and rule["expr"].strip(), rule
        for key in ("for", "keep_firing_for"):
            if key in rule:
                assert DURATION.match(rule[key]), f"{rule.get('alert')}: bad {key} {rule[key]!r}"
        if "record" in rule:
            assert rule["record"].count(":") == 2, "recording rules are named level:metric:operations"
        else:
            assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_rule_file_matches_its_schema(rules_file: Path) -> None:
    assert schema_errors("prometheus-rules.schema.yaml", load_yaml(rules_file)) == []


def test_templates_are_balanced(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        for text in [*(rule.get("annotations") or {}).values(), *(rule.get("labels") or {}).values()]:
            assert text.count("{{") == text.count("}}"), f"{rule.get('alert')}: {text}"
            for action in re.findall(r"\{\{(.*?)\}\}", text):
                assert re.fullmatch(r"\s*\$(labels\.\w+|value)(\s*\|\s*\w+)?\s*", action), action


def test_rules_use_only_exported_metrics(rules: list[dict[str, Any]]) -> None:
    recorded = {r["record"] for r in rules if "record" in r}
    allowed = exported_metric_names() | recorded
    used_by_alerts: set[str] = set()
    for rule in rules:
        names = promql_metric_names(rule["expr"])
        assert names, f"{rule.get('alert') or rule.get('record')} selects no series"
        assert names <= allowed, f"{rule.get('alert') or rule.get('record')}: unknown {names - allowed}"
        if "alert" in rule:
            used_by_alerts |= names
    assert recorded <= used_by_alerts, f"recorded but never used: {recorded - used_by_alerts}"


def test_rules_query_metrics_the_worker_updates(rules: list[dict[str, Any]]) -> None:
    exported, updated = exported_metric_names(), updated_metric_names()
    for rule in rules:
        stale = (promql_metric_names(rule["expr"]) & exported) - updated
        assert not stale, f"{rule.get('alert') or rule.get('record')}: nothing in the worker updates {stale}"


def test_rules_match_only_labels_the_worker_sets(rules: list[dict[str, Any]]) -> None:
    labels = exported_metric_labels()
    for rule in rules:
        for metric, used in promql_selector_labels(rule["expr"]).items():
            if metric in labels:  # recording rules are checked through the rules that define them
                unknown = used - labels[metric]
                assert not unknown, f"{rule.get('alert') or rule.get('record')}: {metric} has no {unknown}"


def test_drift_severities_are_the_ones_the_worker_writes(rules: list[dict[str, Any]]) -> None:
    from monitoring.drift import CRITICAL, WARNING

    matched = {
        m.group(1)
        for rule in rules
        for m in re.finditer(r'streamvision_drift_alerts_active\{severity="(\w+)"\}', rule["expr"])
    }
    assert matched == {CRITICAL, WARNING}


@pytest.mark.parametrize(
    ("what", "metric"),
    [
        ("drift alerts firing", "streamvision_drift_alerts_active"),
        ("consumer lag", "streamvision:consumer_lag:sum"),
        ("error rate", "streamvision:events_failed:ratio_rate5m"),
        ("no throughput", "streamvision_events_out_total"),
    ],
)
def test_the_required_alerts_exist(rules: list[dict[str, Any]], what: str, metric: str) -> None:
    alerting = [r for r in rules if "alert" in r and metric in promql_metric_names(r["expr"])]
    assert alerting, f"no alert on {what} ({metric})"


def test_unit_tests_cover_every_alert(rules: list[dict[str, Any]]) -> None:
    tests = load_yaml(RULE_TESTS)
    assert tests["rule_files"] == ["../rules/streamvision.rules.yml"]
    fired = {
        case["alertname"]
        for t in tests["tests"]
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    required = {"StreamVisionDriftCritical", "StreamVisionConsumerLagHigh", "StreamVisionHighErrorRate"}
    assert required | {"StreamVisionNoThroughput"} <= fired
    assert fired <= {r["alert"] for r in rules if "alert" in r}
