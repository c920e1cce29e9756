"""The PromQL name reader that the dashboard and rule checks rely on."""

from __future__ import annotations

import pytest

from tests.unit.deploy.deploy_helpers import (
    exported_metric_labels,
    exported_metric_names,
    grafana_to_promql,
    promql_metric_names,
    promql_selector_labels,
    updated_metric_names,
)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('rate(http_requests_total{job="api", code=~"5.."}[5m])', {"http_requests_total"}),
        ("sum by (topic) (max by (topic, partition) (lag))", {"lag"}),
        ("sum(rate(a_total[5m])) by (le) / count without (instance) (b)", {"a_total", "b"}),
        ("x / ignoring(le) group_left(model) y offset 5m", {"x", "y"}),
        ("(sum(rate(a[5m])) or vector(0)) == 0 and on() sum(lvl:m:sum) > 0", {"a", "lvl:m:sum"}),
        ("deriv(foo[15m:1m]) > 1e-9", {"foo"}),
        ('{__name__="by_name", job="a"}', {"by_name"}),
        ('histogram_quantile(0.95, sum by (le) (rate(h_bucket{stage="total"}[5m])))', {"h_bucket"}),
        ('count_values("version", build_info)', {"build_info"}),
        ("absent(nothing_here)", {"nothing_here"}),
        ('sum(m{label="sum by (x) (not_a_metric)"})', {"m"}),
    ],
)
def test_names_are_the_selected_series(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


@pytest.mark.parametrize("expr", ["sum(rate(x[5m])", "x{a='b'", "x]", "x $y", "sum(x) ; y"])
def test_malformed_expressions_are_rejected(expr: str) -> None:
    with pytest.raises(ValueError):
        promql_metric_names(expr)


def test_grafana_time_macros_become_durations() -> None:
    expr = grafana_to_promql('rate(x{model=~"$model"}[$__rate_interval]) + rate(y[${__interval}])')
    assert expr == 'rate(x{model=~"$model"}[5m]) + rate(y[5m])'
    assert promql_metric_names(expr) == {"x", "y"}


def test_exported_names_carry_the_client_suffixes() -> None:
    names = exported_metric_names()
    assert "streamvision_events_in_total" in names  # counter
    assert "streamvision_events_in" not in names
    assert {"streamvision_latency_seconds_bucket", "streamvision_latency_seconds_count"} <= names  # histogram
    assert "streamvision_consumer_lag" in names  # gauge


@pytest.mark.parametrize(
    ("expr", "labels"),
    [
        ("up", {}),
        ('rate(a_total{job="api", code=~"5.."}[5m])', {"a_total": {"job", "code"}}),
        (
            'sum by (le) (rate(h_bucket{stage="total"}[5m])) / b{x!="1", y!~"z"}',
            {"h_bucket": {"stage"}, "b": {"x", "y"}},
        ),
        ("sum by (topic) (lag{})", {"lag": set()}),
        ('m{label="by (x) y{z=1}"}', {"m": {"label"}}),
    ],
)
def test_selector_labels_are_the_matched_label_names(expr: str, labels: dict[str, set[str]]) -> None:
    assert promql_selector_labels(expr) == labels


def test_exported_labels_cover_every_exported_series() -> None:
    labels = exported_metric_labels()
    assert set(labels) == exported_metric_names()
    assert {"le", "model", "variant", "stage", "instance"} <= labels["streamvision_latency_seconds_bucket"]
    assert "le" not in labels["streamvision_latency_seconds_count"]
    assert labels["streamvision_drift_alerts_active"] >= {"model", "version", "source", "metric", "severity"}


def test_updated_names_are_exported_names_the_code_touches() -> None:
    updated = updated_metric_names()
    assert updated <= exported_metric_names()
    # pipeline.py counts consumed events; services.py reports lag: both are updated, with their suffixes.
    assert {"streamvision_events_in_total", "streamvision_consumer_lag"} <= updated
