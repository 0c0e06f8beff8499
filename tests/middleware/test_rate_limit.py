"""Rate limiting: headers, 429s, per-client keys, auth routes, trusted proxies.

The limits here are per hour, not per minute: the sliding-window counter weighs the previous
window's hits rounded down, so just after a window boundary a limit of N admits one more
request. With minute windows, a test's few requests straddled a boundary in about one run of
ten; with hour windows, about one in a thousand of a whole file's runs.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.helpers import assert_problem, authed_user, signup_body


async def test_limited_routes_carry_ratelimit_headers(make_client: Any) -> None:
    async with make_client(rate_limit_enabled=True, rate_limit_default="5/hour") as client:
        response = await client.get("/api/v1/users")
    assert response.headers["ratelimit-policy"] == '"default";q=5;w=3600'
    policy, remaining, reset = response.headers["ratelimit"].split(";")
    assert policy == '"default"'
    assert remaining == "r=4"
    assert 0 <= int(reset.removeprefix("t=")) <= 3600


async def test_over_the_limit_is_429_with_retry_after(make_client: Any) -> None:
    async with make_client(rate_limit_enabled=True, rate_limit_default="3/hour") as client:
        statuses = [(await client.get("/api/v1/users")).status_code for _ in range(3)]
        refused = await client.get("/api/v1/content")
        metrics = (await client.get("/metrics")).text
    assert statuses == [200, 200, 200]
    assert_problem(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert refused.headers["ratelimit"].startswith('"default";r=0;')
    assert 'rate_limited_requests_total{http_route="/api/v1/content"} 1.0' in metrics


async def test_route_label_is_the_template_not_the_raw_path(make_client: Any) -> None:
    async with make_client(rate_limit_enabled=True, rate_limit_default="1/hour") as client:
        await client.get("/api/v1/users")
        await client.get("/api/v1/users/6b3a4bd4-6d5f-4bd1-9d31-1a8a6a7a9f00")
        metrics = (await client.get("/metrics")).text
    assert 'rate_limited_requests_total{http_route="/api/v1/users/{user_id}"} 1.0' in metrics
    assert "6b3a4bd4" not in metrics


async def test_auth_routes_use_the_auth_limit(make_client: Any) -> None:
    async with make_client(
        rate_limit_enabled=True, rate_limit_default="100/hour", rate_limit_auth="2/hour"
    ) as client:
        responses = [
            await client.post("/api/v1/auth/login", json={"email": "a@b.co", "password": "x" * 8})
            for _ in range(3)
        ]
        other = await client.get("/api/v1/users")
    assert [r.status_code for r in responses] == [401, 401, 429]
    assert responses[0].headers["ratelimit-policy"] == '"auth";q=2;w=3600'
    assert other.status_code == 200


async def test_probes_metrics_and_docs_are_never_limited(make_client: Any) -> None:
    async with make_client(rate_limit_enabled=True, rate_limit_default="1/hour") as client:
        for path in ("/health", "/ready", "/metrics", "/openapi.json"):
            for _ in range(3):
                response = await client.get(path)
                assert response.status_code == 200, path
                assert "ratelimit" not in response.headers


async def test_authenticated_users_have_their_own_budget(make_client: Any) -> None:
    async with make_client(
        rate_limit_enabled=True, rate_limit_default="2/hour", rate_limit_auth="100/hour"
    ) as client:
        alice, bob = await authed_user(client), await authed_user(client)
        alice_statuses = [
            (await client.get("/api/v1/users/me", headers=alice["headers"])).status_code
            for _ in range(3)
        ]
        bob_status = (await client.get("/api/v1/users/me", headers=bob["headers"])).status_code
    assert alice_statuses == [200, 200, 429]
    assert bob_status == 200


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    make_client: Any,
) -> None:
    async with make_client(rate_limit_enabled=True, rate_limit_default="1/hour") as client:
        first = await client.get("/api/v1/users", headers={"X-Forwarded-For": "198.51.100.1"})
        spoofed = await client.get("/api/v1/users", headers={"X-Forwarded-For": "198.51.100.2"})
    assert first.status_code == 200
    assert spoofed.status_code == 429


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(make_client: Any) -> None:
    async with make_client(
        rate_limit_enabled=True, rate_limit_default="1/hour", trusted_proxies=["127.0.0.0/8"]
    ) as client:
        first = await client.get("/api/v1/users", headers={"X-Forwarded-For": "198.51.100.1"})
        second = await client.get("/api/v1/users", headers={"X-Forwarded-For": "198.51.100.2"})
        again = await client.get("/api/v1/users", headers={"X-Forwarded-For": "198.51.100.1"})
    assert (first.status_code, second.status_code, again.status_code) == (200, 200, 429)


async def test_a_429_does_not_consume_an_idempotency_key(make_client: Any) -> None:
    async with make_client(rate_limit_enabled=True, rate_limit_auth="1/hour") as client:
        await client.post("/api/v1/auth/login", json={"email": "a@b.co", "password": "x" * 8})
        refused = await client.post(
            "/api/v1/signup", json=signup_body(), headers={"Idempotency-Key": "k"}
        )
    assert_problem(refused, 429, "rate_limited")
    assert "idempotent-replayed" not in refused.headers


async def test_disabled_limiter_sends_no_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users")
    assert "ratelimit" not in response.headers


# --- attacks on the limiter ----------------------------------------------------------------------


def from_address(address: str, token: str | None = None) -> dict[str, str]:
    """Headers of a request from `address` (the app trusts the test client as its proxy)."""
    headers = {"X-Forwarded-For": address}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


AUTH_ATTEMPTS = {
    "/api/v1/auth/login": {"json": {"email": "victim@example.com", "password": "guess-0001"}},
    "/api/v1/auth/token": {"data": {"username": "victim@example.com", "password": "guess-0001"}},
    "/api/v1/auth/refresh": {"json": {"refresh_token": "not-a-token"}},
    "/api/v1/signup": {"json": {"name": "Eve", "email": "not-an-address", "password": "x" * 8}},
}


@pytest.mark.parametrize("path", sorted(AUTH_ATTEMPTS))
async def test_an_auth_route_budget_is_per_address_whatever_token_is_sent(
    make_client: Any, path: str
) -> None:
    """An attacker holding several accounts sends each one's token in turn: the budget is the
    address's, not the token's."""
    async with make_client(
        rate_limit_enabled=True, rate_limit_auth="3/hour", trusted_proxies=["127.0.0.0/8"]
    ) as client:
        tokens = client.app.state.resources.tokens  # type: ignore[attr-defined]
        accounts = [tokens.issue_pair(uuid.uuid4(), uuid.uuid4()).access_token for _ in range(4)]
        attacker = "203.0.113.9"
        statuses = [
            (
                await client.post(
                    path, headers=from_address(attacker, token), **AUTH_ATTEMPTS[path]
                )
            ).status_code
            for token in accounts
        ]
        anonymous = await client.post(path, headers=from_address(attacker), **AUTH_ATTEMPTS[path])
        elsewhere = await client.post(
            path, headers=from_address("198.51.100.20"), **AUTH_ATTEMPTS[path]
        )
    assert 429 not in statuses[:3]
    assert statuses[3] == 429
    assert_problem(anonymous, 429, "rate_limited")
    assert elsewhere.status_code != 429  # another address has its own budget


async def test_paths_outside_the_api_are_limited(make_client: Any) -> None:
    async with make_client(rate_limit_enabled=True, rate_limit_default="4/hour") as client:
        junk = [
            await client.post("/x"),
            await client.post("/health"),
            await client.put("/"),
            await client.delete("/metrics"),
        ]
        refused = await client.post("/wp-login.php")
        probe = await client.get("/health")
    assert [r.status_code for r in junk] == [404, 405, 404, 405]
    assert_problem(refused, 429, "rate_limited")
    assert probe.status_code == 200


async def test_head_on_probes_is_never_limited(make_client: Any) -> None:
    async with make_client(rate_limit_enabled=True, rate_limit_default="1/hour") as client:
        for path in ("/health", "/ready", "/metrics", "/docs"):
            for _ in range(3):
                response = await client.head(path)
                assert response.status_code == 200, path
                assert "ratelimit" not in response.headers


async def test_password_changes_spend_the_auth_budget_of_the_caller(make_client: Any) -> None:
    """A stolen access token buys auth-rate guesses at the current password, not 600 a minute."""
    async with make_client(rate_limit_enabled=True, rate_limit_auth="3/hour") as client:
        user = await authed_user(client)  # signup + login: from another address's budget
        wrong = {"current_password": "not the password", "new_password": "another password"}
        answers = [
            await client.post("/api/v1/users/me/password", json=wrong, headers=user["headers"])
            for _ in range(4)
        ]
    assert [a.status_code for a in answers[:3]] == [403, 403, 403]
    assert_problem(answers[3], 429, "rate_limited")
    assert answers[0].headers["ratelimit-policy"].startswith('"auth";q=3')
