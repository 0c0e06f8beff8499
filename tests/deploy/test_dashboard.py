"""The Grafana dashboard and the alert rules only query metrics the service really exports.

The reference is a real scrape: the application runs in-process (on both test backends),
serves a few API requests, then its /metrics output is parsed. Queries on the event worker's
job are checked against a real `inkwell worker` process's /metrics instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from src.observability.metrics import Metrics
from tests.conftest import BASE_SETTINGS, RUN_ID, Backend
from tests.deploy.promql import metric_names
from tests.deploy.tools import ALERTS, DASHBOARD, GRAFANA_PROVISIONING, ROOT, load_yaml, run, tool
from tests.helpers import sign_up
from tests.resilience.servers import free_port

# Series that Prometheus or kube-state-metrics produce, not the service.
EXTERNAL_SERIES = {
    "up": "synthesized by Prometheus for every scrape",
    "kube_deployment_status_replicas_unavailable": "kube-state-metrics (Kubernetes only)",
}
WORKER_JOB = 'job="inkwell-worker"'
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


def _is_worker_query(query: str) -> bool:
    return WORKER_JOB in query


@pytest.mark.parametrize(("name", "job"), [("instance", "inkwell"), ("worker", "inkwell-worker")])
def test_every_query_follows_its_instance_variable(name: str, job: str) -> None:
    """The API's panels follow `instance`, the Events row's follow `worker` (the worker's
    targets are another job's, so picking an API instance must not empty the Events row)."""
    variable = _variables()[name]
    assert variable["type"] == "query"
    assert variable["datasource"]["uid"] == "${datasource}"
    assert variable["includeAll"]
    assert variable["multi"]
    assert variable["allValue"] == ".*"
    assert f'label_values(up{{job="{job}"}}, instance)' in variable["definition"]
    queries = [q for q in dashboard_queries() if _is_worker_query(q) == (name == "worker")]
    assert queries
    for query in queries:
        selectors = re.findall(r"\{([^}]*)\}", query)
        assert selectors, query
        assert all(f'instance=~"${name}"' in selector for selector in selectors), query
        assert all(f'job="{job}"' in selector for selector in selectors), query


def test_latency_panels_leave_the_probes_out() -> None:
    latency = [
        q
        for q in dashboard_queries()
        if "histogram_quantile" in q and "http_server_request_duration_seconds" in q
    ]
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
        # The Events row: the worker's backlog, throughput by outcome, lag, dead letters.
        "outbox_events_pending",
        "events_processed_total",
        "event_delivery_lag_seconds_bucket",
    } <= referenced
    outcomes = {m.group(1) for q in dashboard_queries()
                for m in re.finditer(r'outcome="(\w+)"', q) if "events_processed" in q}  # fmt: skip
    assert "dead_lettered" in outcomes
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
            if _is_worker_query(query):
                continue  # the worker's own scrape checks these
            missing = metric_names(query) - allowed
            assert not missing, f"{source} queries {missing}, which /metrics does not export"


@pytest.fixture
def worker(backend: Backend, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`inkwell worker` as the manifests run it, against the test PostgreSQL and Redis, with
    its own Redis key prefix; yields the process and the base URL of its WORKER_PORT."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OTEL_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "APP_ENV": "test",
            "JWT_SECRET": BASE_SETTINGS["jwt_secret"],
            "DATABASE_URL": backend.database_url,
            "REDIS_URL": str(backend.redis_url),
            "REDIS_KEY_PREFIX": f"inkwell-test-{RUN_ID}:worker-{port}:",
            "HOST": "127.0.0.1",
            "WORKER_PORT": str(port),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
        }
    )
    log = tmp_path / "worker.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "src.cli", "worker"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "inkwell worker exited:\n" + log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "no /health on WORKER_PORT:\n" + log.read_text()
            time.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_the_worker_serves_every_series_queried_on_its_job(
    worker: tuple[subprocess.Popen[bytes], str],
) -> None:
    """What the worker Deployment and the Events row rely on, from a real `inkwell worker`:
    /health and /ready on WORKER_PORT (the probes), a /metrics holding every series the
    dashboard and the alerts query on job inkwell-worker, and exit 0 on SIGTERM."""
    process, url = worker
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200
    assert httpx.get(f"{url}/ready", timeout=5).status_code == 200
    response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    exported = _exported_series(response.text)
    allowed = exported | recorded_series() | set(EXTERNAL_SERIES)
    queries = [
        (source, query)
        for source, found in (("dashboard", dashboard_queries()), ("alerts", alert_queries()))
        for query in found
        if _is_worker_query(query)
    ]
    assert queries
    for source, query in queries:
        missing = metric_names(query) - allowed
        assert not missing, f"{source} queries {missing}, which the worker does not export"
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0


@pytest.mark.parametrize("name", sorted(EXTERNAL_SERIES))
def test_external_series_are_not_claimed_by_the_service(name: str) -> None:
    """The allow-list stays honest: if the service starts exporting one, drop it there."""
    exported = _exported_series(generate_latest(Metrics().registry).decode())
    assert name not in exported
