"""The Grafana dashboard and the alert rules only query metrics the service really exports.

The reference is a real scrape: the application runs in-process (on both test backends),
serves a few API requests, then its /metrics output is parsed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from src.observability.metrics import Metrics
from tests.deploy.promql import metric_names
from tests.deploy.tools import ALERTS, DASHBOARD, GRAFANA_PROVISIONING, load_yaml, run, tool
from tests.helpers import sign_up

# Series that Prometheus or kube-state-metrics produce, not the service.
EXTERNAL_SERIES = {
    "up": "synthesized by Prometheus for every scrape",
    "kube_deployment_status_replicas_unavailable": "kube-state-metrics (Kubernetes only)",
}
GRAFANA_MACROS = re.compile(r"\$__(rate_interval|interval|range)|\$\{__(rate_interval|interval)}")


def _dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _panels() -> list[dict[str, Any]]:
    panels = []
    for panel in _dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return [p for p in panels if p.get("type") != "row"]


def _variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in _dashboard()["templating"]["list"]}


def dashboard_queries() -> list[str]:
    return [t["expr"] for p in _panels() for t in p.get("targets", []) if t.get("expr")]


def _rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def alert_queries() -> list[str]:
    return [str(rule["expr"]) for rule in _rules()]


def recorded_series() -> set[str]:
    return {rule["record"] for rule in _rules() if "record" in rule}


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, http_route) (rate(foo_bucket{job="a", le="+Inf"}'
        '[$__rate_interval]))) / on (job) group_left bar_total offset 5m > 1e3 and up{x="y"}'
    )
    assert metric_names(expr) == {"foo_bucket", "bar_total", "up"}
    assert metric_names("sum(rate(x:y:z[5m])) > bool 0.5") == {"x:y:z"}


def test_dashboard_is_valid_json_with_unique_panels() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard_queries()


def test_dashboard_uses_the_provisioned_data_sources() -> None:
    provisioned = load_yaml(GRAFANA_PROVISIONING / "datasources" / "datasources.yml")
    uids = {source["uid"] for source in provisioned["datasources"]}
    variable = _variables()["datasource"]
    assert variable["query"] == "prometheus"
    assert variable["current"]["value"] in uids  # the compose Grafana opens on its Prometheus
    for panel in _panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
    exemplars = next(s for s in provisioned["datasources"] if s["type"] == "prometheus")
    destinations = exemplars["jsonData"]["exemplarTraceIdDestinations"]
    assert {d["datasourceUid"] for d in destinations} <= uids


def test_every_query_follows_the_instance_variable() -> None:
    instance = _variables()["instance"]
    assert instance["type"] == "query"
    assert instance["datasource"]["uid"] == "${datasource}"
    assert instance["includeAll"]
    assert instance["multi"]
    assert instance["allValue"] == ".*"
    assert 'label_values(up{job="inkwell"}, instance)' in instance["definition"]
    for query in dashboard_queries():
        selectors = re.findall(r"\{([^}]*)\}", query)
        assert selectors, query
        assert all('instance=~"$instance"' in selector for selector in selectors), query


def test_latency_panels_leave_the_probes_out() -> None:
    latency = [q for q in dashboard_queries() if "histogram_quantile" in q]
    assert latency
    for query in latency:
        assert 'http_route!~"/health|/ready|/metrics"' in query, query


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (as a recording rule, Grafana's macros replaced)."""
    rules = [
        {"record": f"dashboard:query_{n}", "expr": GRAFANA_MACROS.sub("5m", expr)}
        for n, expr in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_covers_the_service_signals() -> None:
    referenced = set().union(*(metric_names(q) for q in dashboard_queries()))
    assert {
        "http_server_request_duration_seconds_count",  # request rate, error ratio
        "http_server_request_duration_seconds_bucket",  # p50/p95/p99
        "http_server_active_requests",
        "idempotency_requests_total",
        "cache_requests_total",
        "rate_limited_requests_total",
        "db_pool_connections",
        "up",
    } <= referenced
    quantiles = {m.group(1) for q in dashboard_queries()
                 for m in re.finditer(r"histogram_quantile\(([\d.]+)", q)}  # fmt: skip
    assert quantiles == {"0.5", "0.95", "0.99"}


def _exported_series(exposition: str) -> set[str]:
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names = set()
    for family in text_string_to_metric_families(exposition):
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


async def test_every_queried_metric_is_exported(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    assert (await client.get(f"/api/v1/users/{user['id']}")).status_code == 200
    assert (await client.post("/api/v1/signup", json={"name": ""})).status_code == 422
    assert (await client.get("/ready")).status_code in {200, 503}
    response = await client.get("/metrics")
    assert response.status_code == 200
    exported = _exported_series(response.text)
    assert "http_server_request_duration_seconds_bucket" in exported  # the scrape is real

    allowed = exported | recorded_series() | set(EXTERNAL_SERIES)
    for source, queries in (("dashboard", dashboard_queries()), ("alerts", alert_queries())):
        for query in queries:
            missing = metric_names(query) - allowed
            assert not missing, f"{source} queries {missing}, which /metrics does not export"


@pytest.mark.parametrize("name", sorted(EXTERNAL_SERIES))
def test_external_series_are_not_claimed_by_the_service(name: str) -> None:
    """The allow-list stays honest: if the service starts exporting one, drop it there."""
    exported = _exported_series(generate_latest(Metrics().registry).decode())
    assert name not in exported
