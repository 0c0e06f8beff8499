"""Hot reads: cache hits answered before the framework routes the request — the same bytes and
headers the route gives, the same template in metrics, and nothing else answered there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.helpers import assert_problem, authed_user, publish


def _names(spans: InMemorySpanExporter) -> list[str]:
    return [span.name for span in spans.get_finished_spans()]


def _answered_by_the_hot_read(spans: InMemorySpanExporter, use_case: str) -> bool:
    """The use case ran once, under the `hot_read` span (not again under the route)."""
    finished = spans.get_finished_spans()
    hot = [span for span in finished if span.name == "hot_read"]
    runs = [span for span in finished if span.name == use_case]
    return (
        len(hot) == 1
        and len(runs) == 1
        and runs[0].parent is not None
        and runs[0].parent.span_id == hot[0].context.span_id
    )


async def _cached_item(client: httpx.AsyncClient) -> tuple[dict[str, object], httpx.Response]:
    author = await authed_user(client)
    item = await publish(client, author)
    first = await client.get(f"/api/v1/content/{item['id']}")  # the route's miss fills the cache
    assert first.headers["cache-status"] == "inkwell; fwd=miss"
    return item, first


async def test_a_cached_item_is_answered_before_the_router_with_the_route_s_bytes(
    client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    item, first = await _cached_item(client)
    recorded_spans.clear()

    hit = await client.get(f"/api/v1/content/{item['id']}")

    assert hit.status_code == 200
    assert hit.headers["cache-status"] == "inkwell; hit"
    assert hit.headers["content-type"] == "application/json"
    assert hit.content == first.content
    assert "x-request-id" in hit.headers
    assert hit.headers["x-content-type-options"] == "nosniff"
    names = _names(recorded_spans)
    assert "hot_read" in names
    assert "content.get" not in names


async def test_a_cached_first_page_is_answered_before_the_router(
    client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    author = await authed_user(client)
    await publish(client, author)
    first = await client.get("/api/v1/content", params={"limit": 5})
    recorded_spans.clear()

    hit = await client.get("/api/v1/content", params={"limit": 5})

    assert hit.headers["cache-status"] == "inkwell; hit"
    assert hit.content == first.content
    assert "content.list" not in _names(recorded_spans)


async def test_the_hot_answer_is_measured_under_the_route_template(
    client: httpx.AsyncClient,
) -> None:
    item, _ = await _cached_item(client)
    for _ in range(3):
        assert (await client.get(f"/api/v1/content/{item['id']}")).status_code == 200

    metrics = (await client.get("/metrics")).text

    assert 'http_route="/api/v1/content/{content_id}"' in metrics
    assert str(item["id"]) not in metrics


async def test_a_write_is_seen_by_the_next_read_after_hot_hits(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    item = await publish(client, author)
    for _ in range(2):
        await client.get(f"/api/v1/content/{item['id']}")
    patched = await client.patch(
        f"/api/v1/content/{item['id']}", json={"title": "A new title"}, headers=author["headers"]
    )
    assert patched.status_code == 200

    after = await client.get(f"/api/v1/content/{item['id']}")

    assert after.json()["title"] == "A new title"


async def test_requests_with_credentials_go_through_the_route(
    client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    item, _ = await _cached_item(client)
    recorded_spans.clear()

    forged = await client.get(
        f"/api/v1/content/{item['id']}", headers={"Authorization": "Bearer forged"}
    )

    assert "hot_read" not in _names(recorded_spans)
    assert forged.status_code in (200, 401)  # whatever the route decides, not the hot path


async def test_what_the_hot_path_does_not_know_is_the_route_s_to_answer(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    await publish(client, author)
    await client.get("/api/v1/content")

    assert_problem(await client.get("/api/v1/content?limit=0"), 422, "validation_error")
    assert_problem(await client.get("/api/v1/content?limit=101"), 422, "validation_error")
    assert_problem(await client.get("/api/v1/content/not-an-id"), 422, "validation_error")
    padded = await client.get("/api/v1/content?limit=020")
    assert padded.status_code == 200
    assert len(padded.json()["items"]) >= 1
    feed_like = await client.get("/api/v1/content/slug/no-such-slug")
    assert_problem(feed_like, 404, "content_not_found")


async def test_a_draft_is_never_answered_by_the_hot_path(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    draft = await publish(client, author, status="draft")
    own = await client.get(f"/api/v1/content/{draft['id']}", headers=author["headers"])
    assert own.status_code == 200

    anonymous = await client.get(f"/api/v1/content/{draft['id']}")

    assert_problem(anonymous, 404, "content_not_found")


async def test_hot_answers_are_rate_limited_like_any_other(
    make_client: Callable[..., Any],
) -> None:
    async with make_client(rate_limit_enabled=True, rate_limit_default="2/hour") as client:
        # the anonymous reader has spent 1 of 2 (the author is counted apart)
        item, _ = await _cached_item(client)
        hit = await client.get(f"/api/v1/content/{item['id']}")
        assert hit.headers["cache-status"] == "inkwell; hit"
        assert hit.headers["ratelimit-policy"] == '"default";q=2;w=3600'

        limited = await client.get(f"/api/v1/content/{item['id']}")

        assert_problem(limited, 429, "rate_limited")


async def test_a_profile_is_answered_before_the_router_and_never_from_a_cache(
    client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    author = await authed_user(client)
    await publish(client, author)
    path = f"/api/v1/users/{author['id']}"
    through_route = await client.get(path, headers=author["headers"])  # credentials: the route
    recorded_spans.clear()

    hot = await client.get(path)

    assert hot.status_code == 200
    assert hot.content == through_route.content
    assert hot.headers["content-type"] == "application/json"
    assert "cache-status" not in hot.headers
    assert hot.headers["x-content-type-options"] == "nosniff"
    assert _answered_by_the_hot_read(recorded_spans, "users.get")
    renamed = await client.patch(
        "/api/v1/users/me", json={"display_name": "Renamed"}, headers=author["headers"]
    )
    assert renamed.status_code == 200
    assert (await client.get(path)).json()["display_name"] == "Renamed"  # the very next read
    assert (await client.get(path.upper().replace("/API/V1/USERS/", "/api/v1/users/"))).json()[
        "display_name"
    ] == "Renamed"


async def test_an_unknown_profile_is_the_route_s_404_answered_with_one_query(
    client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    reader = await authed_user(client)
    path = "/api/v1/users/00000000-0000-4000-8000-000000000000"
    through_route = await client.get(path, headers=reader["headers"])
    recorded_spans.clear()

    hot = await client.get(path)

    assert_problem(hot, 404, "user_not_found")
    assert hot.headers["content-type"] == through_route.headers["content-type"]
    without_ids = ("request_id",)
    assert {k: v for k, v in hot.json().items() if k not in without_ids} == {
        k: v for k, v in through_route.json().items() if k not in without_ids
    }
    assert _answered_by_the_hot_read(recorded_spans, "users.get")


async def test_a_profile_the_hot_path_cannot_answer_is_the_route_s(
    client: httpx.AsyncClient,
) -> None:
    assert_problem(await client.get("/api/v1/users/not-an-id"), 422, "validation_error")
    assert_problem(await client.get("/api/v1/users/me"), 401, "not_authenticated")
