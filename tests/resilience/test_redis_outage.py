"""Redis goes away and comes back while Inkwell runs (a real Redis behind a TCP proxy).

While it is gone the service degrades instead of failing: reads come from the database,
writes succeed, rate limiting goes on counting in process, `/ready` stays 200 but says
"degraded" naming redis (the pod stays in the Service) and `/health` stays 200. When it returns
everything recovers without a restart, and no cache entry written before the outage is served
after a write made during it — Redis keeps its data across the cut, so a missed invalidation
would show.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from tests.conftest import Backend, running_app
from tests.helpers import authed_user, publish
from tests.resilience.servers import TcpProxy, inkwell_cli

pytestmark = pytest.mark.slow

RATE_LIMIT = 40


def _app(
    pg_database: str, proxy: TcpProxy, **overrides: Any
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    backend = Backend("postgres", pg_database, f"redis://127.0.0.1:{proxy.port}/0")
    settings: dict[str, Any] = {
        "redis_timeout_seconds": 0.3,
        "ready_check_timeout_seconds": 0.5,
        "rate_limit_enabled": True,
        "rate_limit_default": f"{RATE_LIMIT}/hour",
        # Anonymous reads come each from its own address (`_anonymous`): the tests poll, and
        # a shared budget would answer 429 to the probes instead of what they look for.
        "trusted_proxies": ["127.0.0.0/8"],
        **overrides,
    }
    return running_app(backend, **settings)


_addresses = itertools.count(1)


def _anonymous() -> dict[str, str]:
    """The headers of an anonymous reader not seen before (a client behind the trusted proxy)."""
    n = next(_addresses)
    return {"X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}


async def _eventually(
    probe: Callable[[], Awaitable[bool]],
    timeout: float = 10,
    what: str = "condition",
    seen: list[str] | None = None,
) -> float:
    """Poll `probe` until it holds; the seconds it took. Fails after `timeout`, with the last
    answers the probe put in `seen`."""
    start = time.monotonic()
    while not await probe():
        assert time.monotonic() - start < timeout, (
            f"{what} not reached within {timeout}s; last seen: {(seen or [])[-8:]}"
        )
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def _since(start: float) -> str:
    return f"+{time.monotonic() - start:.2f}s"


def _cache_status(response: httpx.Response) -> str:
    return response.headers.get("cache-status", "")


async def test_redis_outage_degrades_then_recovers_without_restart(
    pg_database: str, redis_proxy: TcpProxy
) -> None:
    async with _app(pg_database, redis_proxy) as client:
        author = await authed_user(client)
        item = await publish(client, author, title="Before the outage")
        url = f"/api/v1/content/{item['id']}"
        assert _cache_status(await client.get(url, headers=_anonymous())) == "inkwell; fwd=miss"
        assert _cache_status(await client.get(url, headers=_anonymous())) == "inkwell; hit"
        listing = await client.get("/api/v1/content", headers=_anonymous())
        assert listing.status_code == 200

        await redis_proxy.cut()

        # reads come from the database, the cache is bypassed (the local copy, as good as
        # Redis's, is answered until the process has noticed its invalidation channel is gone)
        async def bypassed() -> bool:
            read = await client.get(url, headers=_anonymous())
            assert read.status_code == 200, read.text
            assert read.json()["title"] == "Before the outage"
            return _cache_status(read) == "inkwell; fwd=bypass"

        await _eventually(bypassed, what="the cache bypassed")
        # writes succeed, and the write is visible to the next read
        created = await publish(client, author, title="Written during the outage")
        changed = await client.patch(
            url, json={"title": "Changed during the outage"}, headers=author["headers"]
        )
        assert changed.status_code == 200, changed.text
        assert (await client.get(url, headers=_anonymous())).json()[
            "title"
        ] == "Changed during the outage"
        titles = [
            c["title"]
            for c in (await client.get("/api/v1/content", headers=_anonymous())).json()["items"]
        ]
        assert "Written during the outage" in titles
        # rate limiting goes on in process (the count cannot be shared): never an error
        answers = [
            (await client.get(url, headers=author["headers"])).status_code
            for _ in range(RATE_LIMIT + 5)
        ]
        assert set(answers) <= {200, 429}
        assert 429 in answers
        # probes: still ready (Redis is optional) but degraded, naming redis; alive
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        checks = ready.json()["checks"]
        assert checks["redis"]["status"] == "fail"
        assert checks["database"]["status"] == "ok"
        assert (await client.get("/health")).status_code == 200

        await redis_proxy.restore()
        restored = time.monotonic()

        seen: list[str] = []
        answers: list[str] = []

        async def cached_again() -> bool:
            # A held invalidation may be delivered twice (by the request and by the background
            # retrier): a second DEL after the refill costs one more miss, never a stale read.
            response = await client.get(url, headers=_anonymous())
            seen.append(response.json()["title"])
            answers.append(f"{_since(restored)} {response.status_code} {_cache_status(response)}")
            return _cache_status(response) == "inkwell; hit"

        await _eventually(cached_again, what="the cache back in use", seen=answers)
        assert set(seen) == {"Changed during the outage"}  # never the pre-outage copy
        titles = [
            c["title"]
            for c in (await client.get("/api/v1/content", headers=_anonymous())).json()["items"]
        ]
        assert "Written during the outage" in titles

        async def ready_again() -> bool:
            return (await client.get("/ready")).json()["status"] == "ready"

        await _eventually(ready_again, what='/ready "ready" again')

        # the limiter counts again: headers are back and the limit is enforced
        response = await client.get(url, headers=author["headers"])
        assert response.headers.get("ratelimit-policy") == f'"default";q={RATE_LIMIT};w=3600'
        statuses = [
            (await client.get(url, headers=author["headers"])).status_code
            for _ in range(RATE_LIMIT + 1)
        ]
        assert 429 in statuses
    assert created["title"] == "Written during the outage"
    check = inkwell_cli("rebuild-read-models", "--check", env={"DATABASE_URL": pg_database})
    assert check.returncode == 0, check.stdout + check.stderr


async def test_a_write_while_the_cache_is_marked_down_is_not_lost_when_redis_returns(
    pg_database: str, redis_proxy: TcpProxy
) -> None:
    """Redis is back but this process still avoids it (the retry interval): the invalidation
    of a write made in that window is held and delivered before the cache is used again.
    Without the local tier: a local hit would not touch Redis, and so not mark it down."""
    async with _app(pg_database, redis_proxy, cache_local_ttl_seconds=0) as client:
        author = await authed_user(client)
        item = await publish(client, author, title="Cached before")
        url = f"/api/v1/content/{item['id']}"
        await client.get(url, headers=_anonymous())
        assert _cache_status(await client.get(url, headers=_anonymous())) == "inkwell; hit"

        await redis_proxy.cut()
        assert (
            _cache_status(await client.get(url, headers=_anonymous())) == "inkwell; fwd=bypass"
        )  # marked down
        await redis_proxy.restore()  # Redis is back, still holding the old entry

        changed = await client.patch(
            url, json={"title": "Written while marked down"}, headers=author["headers"]
        )
        assert changed.status_code == 200, changed.text
        seen: list[str] = []

        async def cache_in_use() -> bool:
            response = await client.get(url, headers=_anonymous())
            seen.append(response.json()["title"])
            return _cache_status(response) != "inkwell; fwd=bypass"

        await _eventually(cache_in_use, what="the cache back in use")
        assert set(seen) == {"Written while marked down"}
        assert (await client.get(url, headers=_anonymous())).json()[
            "title"
        ] == "Written while marked down"


async def test_a_write_during_the_outage_reaches_every_process_once_redis_returns(
    pg_database: str, redis_proxy: TcpProxy
) -> None:
    """Two replicas share Redis; one writes during the outage and then gets no more traffic.
    The other must not keep serving the pre-outage entry once Redis is back."""
    async with (
        _app(pg_database, redis_proxy) as writer,
        _app(pg_database, redis_proxy, redis_key_prefix=_prefix_of(writer)) as reader,
    ):
        author = await authed_user(writer)
        item = await publish(writer, author, title="Cached before")
        url = f"/api/v1/content/{item['id']}"
        await reader.get(url, headers=_anonymous())
        assert _cache_status(await reader.get(url, headers=_anonymous())) == "inkwell; hit"

        await redis_proxy.cut()
        changed = await writer.patch(
            url, json={"title": "Written during the outage"}, headers=author["headers"]
        )
        assert changed.status_code == 200, changed.text
        await redis_proxy.restore()
        restored = time.monotonic()

        answers: list[str] = []

        async def reader_fresh() -> bool:
            response = await reader.get(url, headers=_anonymous())
            title = response.json()["title"]
            answers.append(f"{_since(restored)} {title!r} {_cache_status(response)}")
            return bool(
                response.json()["title"] == "Written during the outage"
                and _cache_status(response) != "inkwell; fwd=bypass"
            )

        await _eventually(
            reader_fresh, timeout=5, what="the other process reading the write", seen=answers
        )


def _prefix_of(client: httpx.AsyncClient) -> str:
    return str(client.app.state.settings.redis_key_prefix)  # type: ignore[attr-defined]
