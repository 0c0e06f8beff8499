"""`/metrics`: the contract's names and labels, route templates, buckets, exemplars, pools."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from src import __version__
from tests.helpers import sign_up, signup_body

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
OTEL_HTTP_BUCKETS = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, float("inf"),
]  # fmt: skip


async def scrape(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def samples(families: dict[str, Any], name: str, sample_name: str | None = None) -> list[Any]:
    return [s for s in families[name].samples if sample_name is None or s.name == sample_name]


async def test_every_contract_metric_is_exposed_with_its_labels(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    families = await scrape(client)

    expected = {
        "http_server_request_duration_seconds": (
            "histogram", {"http_request_method", "http_route", "http_response_status_code"}),
        "http_server_active_requests": ("gauge", set()),
        "signup_requests": ("counter", {"status"}),
        "idempotency_requests": ("counter", {"outcome"}),
        "cache_requests": ("counter", {"cache", "result"}),
        "rate_limited_requests": ("counter", {"http_route"}),
        "db_pool_connections": ("gauge", {"engine", "state"}),
    }  # fmt: skip
    for name, (kind, labels) in expected.items():
        assert name in families, name
        assert families[name].type == kind, name
        for sample in families[name].samples:
            assert set(sample.labels) - {"le"} <= labels, (name, sample.labels)
    duration = samples(
        families,
        "http_server_request_duration_seconds",
        "http_server_request_duration_seconds_count",
    )
    assert {tuple(sorted(s.labels.items())) for s in duration} >= {
        (("http_request_method", "POST"), ("http_response_status_code", "201"),
         ("http_route", "/api/v1/signup")),
    }  # fmt: skip
    total = samples(families, "signup_requests", "signup_requests_total")
    assert [(s.labels, s.value) for s in total] == [({"status": "success"}, 1.0)]


async def test_signup_outcomes_are_counted_by_status(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    await client.post("/api/v1/signup", json=signup_body(email=user["email"]))
    await client.post("/api/v1/signup", json=signup_body(password="short"))
    families = await scrape(client)
    counted = {
        s.labels["status"]: s.value
        for s in samples(families, "signup_requests", "signup_requests_total")
    }
    assert counted == {"success": 1.0, "duplicate": 1.0, "invalid": 1.0}


async def test_http_route_is_the_route_template_never_the_raw_path(
    client: httpx.AsyncClient,
) -> None:
    user = await sign_up(client)
    missing = uuid.uuid4()
    assert (await client.get(f"/api/v1/users/{user['id']}")).status_code == 200
    assert (await client.get(f"/api/v1/users/{missing}")).status_code == 404
    assert (await client.get("/api/v1/users/not-a-uuid")).status_code == 422
    assert (await client.get(f"/api/v1/no-such-thing/{missing}")).status_code == 404

    response = await client.get("/metrics")
    assert user["id"] not in response.text
    assert str(missing) not in response.text
    assert "not-a-uuid" not in response.text
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    routes = {
        s.labels["http_route"] for s in samples(families, "http_server_request_duration_seconds")
    }
    assert routes == {"/api/v1/signup", "/api/v1/users/{user_id}", "unmatched"}


async def test_answers_given_before_routing_are_labelled_with_their_route(
    client: httpx.AsyncClient,
) -> None:
    body = signup_body()
    headers = {"Idempotency-Key": "label-me"}
    await client.post("/api/v1/signup", json=body, headers=headers)
    replay = await client.post("/api/v1/signup", json=body, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    too_big = await client.post(
        "/api/v1/content",
        content=b"x" * (1024 * 1024 + 1),
        headers={"content-type": "application/json"},
    )
    assert too_big.status_code == 413
    families = {
        f.name: f for f in text_string_to_metric_families((await client.get("/metrics")).text)
    }
    labelled = {
        (s.labels["http_route"], s.labels["http_response_status_code"])
        for s in samples(families, "http_server_request_duration_seconds")
    }
    assert ("/api/v1/signup", "201") in labelled
    assert ("/api/v1/content", "413") in labelled
    assert not any(route == "unmatched" for route, _ in labelled)


async def test_request_duration_uses_the_opentelemetry_http_buckets(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/health")
    families = await scrape(client)
    bounds = [
        float(s.labels["le"])
        for s in samples(
            families,
            "http_server_request_duration_seconds",
            "http_server_request_duration_seconds_bucket",
        )
        if s.labels["http_route"] == "/health"
    ]
    assert bounds == OTEL_HTTP_BUCKETS


async def test_openmetrics_scrape_carries_the_trace_id_as_exemplar(
    client: httpx.AsyncClient,
) -> None:
    trace_id = uuid.uuid4().hex
    header = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    await client.post("/api/v1/signup", json=signup_body(), headers={"traceparent": header})
    response = await client.get("/metrics", headers={"Accept": OPENMETRICS})

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
    lines = [line for line in response.text.splitlines() if f'# {{trace_id="{trace_id}"}}' in line]
    assert lines, response.text
    assert all(line.startswith("http_server_request_duration_seconds_bucket{") for line in lines)
    assert all('http_route="/api/v1/signup"' in line for line in lines)


async def test_no_exemplar_for_a_trace_that_is_not_sampled(client: httpx.AsyncClient) -> None:
    """Only a sampled trace is exported, so only it is worth jumping to. (A process without an
    exporter samples nothing: tests/observability/test_tracing.py checks it on a real one.)"""
    trace_id = uuid.uuid4().hex
    header = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-00"  # the caller did not sample it
    await client.post("/api/v1/signup", json=signup_body(), headers={"traceparent": header})
    response = await client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert 'http_route="/api/v1/signup"' in response.text
    assert trace_id not in response.text


async def test_pool_gauges_report_both_engines(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)  # uses the write engine
    await client.get(f"/api/v1/users/{user['id']}")  # a hot statement: may hold a connection
    await client.get("/api/v1/users")  # the read engine's pool (a profile may not touch it)
    families = await scrape(client)
    pool = {
        (s.labels["engine"], s.labels["state"]): s.value
        for s in samples(families, "db_pool_connections")
    }
    assert set(pool) == {(e, s) for e in ("write", "read") for s in ("checked_out", "idle")}
    assert pool[("write", "checked_out")] == 0
    assert pool[("read", "checked_out")] == 0
    assert pool[("write", "idle")] >= 1
    assert pool[("read", "idle")] >= 1


async def test_promtool_accepts_a_real_scrape(client: httpx.AsyncClient) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("promtool is required under CI=true (Debian package `prometheus`)")
        pytest.skip("promtool is not installed")
    user = await sign_up(client)
    await client.get(f"/api/v1/users/{user['id']}")
    await client.get("/api/v1/nope")
    response = await client.get("/metrics")

    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=response.content,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert re.search(rb"\S", result.stdout + result.stderr) is None, result.stdout + result.stderr


async def test_build_info_names_the_running_version(client: httpx.AsyncClient) -> None:
    families = await scrape(client)
    (info,) = samples(families, "inkwell_build_info")
    assert info.value == 1
    assert info.labels == {
        "version": __version__,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }
