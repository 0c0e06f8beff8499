"""HTTP details a careful client (or a hostile one) relies on: Allow, HEAD, no Host-built
redirects, replays that keep their caching rules, bounded metric labels."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.helpers import assert_problem, authed_user, publish, sign_up


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/content/{id}", "DELETE, GET, HEAD, PATCH"),
        ("POST", "/api/v1/content/{id}", "DELETE, GET, HEAD, PATCH"),
        ("DELETE", "/api/v1/content", "GET, HEAD, POST"),
        ("POST", "/health", "GET, HEAD"),
        ("DELETE", "/api/v1/signup", "POST"),
    ],
)
async def test_a_405_lists_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path.format(id=uuid.uuid4()))
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allowed


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
async def test_head_on_a_probe_answers_like_get_without_a_body(
    client: httpx.AsyncClient, path: str
) -> None:
    got = await client.get(path)
    head = await client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["x-content-type-options"] == "nosniff"
    assert head.headers["x-request-id"]


async def test_head_on_content_answers_like_get(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    item = await publish(client, author)
    url = f"/api/v1/content/{item['id']}"
    got = await client.get(url)
    head = await client.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    missing = await client.head(f"/api/v1/content/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.content == b""


@pytest.mark.parametrize("path", ["/api/v1/content/", "/api/v1/users/", "/health/"])
async def test_a_trailing_slash_is_404_and_never_a_redirect_built_from_host(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, headers={"Host": "evil.example"})
    assert_problem(response, 404, "not_found")
    assert "location" not in response.headers
    assert "evil.example" not in response.text


async def test_a_replayed_login_keeps_cache_control_no_store(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    body = {"email": user["email"], "password": user["password"]}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/api/v1/auth/login", json=body, headers=key)
    again = await client.post("/api/v1/auth/login", json=body, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert first.headers["cache-control"] == again.headers["cache-control"] == "no-store"
    assert again.headers["content-type"] == "application/json"


async def test_unknown_methods_share_one_metric_label(client: httpx.AsyncClient) -> None:
    unknown = {"PROPFIND", "MKCOL", "PURGE", "BREW"}
    for method in unknown:
        response = await client.request(method, "/api/v1/content")
        assert_problem(response, 405, "method_not_allowed")
    metrics = (await client.get("/metrics")).text
    methods = {
        line.split('http_request_method="')[1].split('"')[0]
        for line in metrics.splitlines()
        if line.startswith("http_server_request_duration_seconds_count")
    }
    assert "_OTHER" in methods
    assert not methods & unknown
