"""The shipped alert rules and Grafana dashboard use only metrics the daemon exports."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.metrics import DepotMetrics
from tests.metrics.promql import all_depot_identifiers, grafana_query_names, metric_names

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "config" / "prometheus" / "alerts.yml"
ALERTS_TEST = Path(__file__).with_name("alerts_test.yml")
DASHBOARD = ROOT / "config" / "grafana" / "depotctl.json"

# series Prometheus itself adds for every target
PROMETHEUS_SERIES = frozenset({"up"})

REQUIRED_ALERTS = {
    "DepotFailsafeActive": "depot_failsafe_active",
    "DepotMeterStale": "depot_meter_age_seconds",
    "DepotChargerOffline": "depot_charger_connected",
    "DepotLimitExceeded": "depot_limit_exceeded_seconds_total",
    "DepotDepartureAtRisk": "depot_departure_at_risk",
    "DepotPlanTimeHigh": "depot_plan_duration_seconds_bucket",
    "DepotChargerUncontrolled": "depot_charger_uncontrolled",
    "DepotChargerFailsafeMissing": "depot_charger_failsafe_installed",
    "DepotChargerClockOffset": "depot_charger_clock_offset_seconds",
}


@pytest.fixture(scope="module")
def exported() -> frozenset[str]:
    return DepotMetrics().exported_names() | PROMETHEUS_SERIES


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_tokenizer() -> None:
    assert metric_names('histogram_quantile(0.95, sum by (le) (rate(a_bucket{x="y"}[5m]))) > 2') == {"a_bucket"}
    assert metric_names('a / on(x) group_left(reason) b_info offset 5m') == {"a", "b_info"}
    assert metric_names('sum(c{l=~"$v"}) or vector(0)') == {"c"}
    assert metric_names('max by(v) (d) > bool 1e3') == {"d"}
    assert metric_names('rate(e_total{a="} f"}[$__rate_interval]) * 3600') == {"e_total"}
    assert metric_names('up{job="depotctl"} == 0') == {"up"}
    assert grafana_query_names('label_values(g{instance=~"$instance"}, charger)') == {"g"}


def test_alert_rules_are_complete_and_well_formed() -> None:
    by_name = {r["alert"]: r for r in rules() if "alert" in r}
    assert set(REQUIRED_ALERTS) <= set(by_name)
    for name, metric in REQUIRED_ALERTS.items():
        assert metric in metric_names(by_name[name]["expr"]), name
    for name, rule in by_name.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert "for" in rule, name


def test_alert_expressions_use_only_exported_metrics(exported: frozenset[str]) -> None:
    for rule in rules():
        expr = str(rule["expr"])
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        assert names <= exported, f"{rule.get('alert')}: {sorted(names - exported)} not exported"
        # cross-check the tokenizer: every depot_ word in the expression was seen as a metric
        assert all_depot_identifiers(expr) <= names, expr
        for text in rule.get("annotations", {}).values():  # template queries, e.g. the fail-safe reason
            assert all_depot_identifiers(str(text)) <= exported, text


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (`apt-get install prometheus` provides it)")
    done = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_alerts_fire_as_intended() -> None:
    """`promtool test rules` on series shaped like the daemon's (tests/metrics/alerts_test.yml)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (`apt-get install prometheus` provides it)")
    done = subprocess.run([promtool, "test", "rules", ALERTS_TEST.name], capture_output=True, text=True,
                          timeout=60, cwd=ALERTS_TEST.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_alert_unit_test_series_are_exported(exported: frozenset[str]) -> None:
    doc = yaml.safe_load(ALERTS_TEST.read_text())
    for test in doc["tests"]:
        for s in test["input_series"]:
            assert metric_names(s["series"]) <= exported, s["series"]


def dashboard_queries(node: Any) -> Iterator[str]:
    """Every Prometheus query in the dashboard: panel targets, annotations, template variables."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                yield value["query"]
            elif key == "definition" and isinstance(value, str):
                yield value
            else:
                yield from dashboard_queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_queries(item)


def test_dashboard_parses_and_uses_only_exported_metrics(exported: frozenset[str]) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["panels"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    queries = list(dashboard_queries(dash))
    assert len(queries) >= 20
    used: set[str] = set()
    for q in queries:
        names = grafana_query_names(q)
        assert names, f"no metric found in {q!r}"
        assert names <= exported, f"{sorted(names - exported)} not exported: {q!r}"
        assert all_depot_identifiers(q) <= names, q
        used |= names
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    # the dashboard shows every contract metric except the solver's own counters
    assert {"depot_grid_current_amperes", "depot_circuit_headroom_amperes", "depot_charger_limit_amperes",
            "depot_charger_current_amperes", "depot_failsafe_active", "depot_plan_duration_seconds_bucket",
            "depot_meter_age_seconds", "depot_overload_sheds_total", "depot_limit_exceeded_seconds_total",
            "depot_profile_pushes_total", "depot_departure_at_risk", "depot_charger_uncontrolled",
            "depot_charger_clock_offset_seconds", "depot_charger_failsafe_installed"} <= used
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
