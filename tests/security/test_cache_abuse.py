"""What a client can do to the read cache from outside: spell one page many ways, ask for huge
pages, ask for ids that do not exist, read while someone writes."""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from src.core.cache.backends import MemoryBackend, RedisBackend
from src.core.db.read import ReadHandle
from src.slices.content.keys import list_key
from tests.helpers import assert_problem, authed_user, publish

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def backend_of(client: httpx.AsyncClient) -> Any:
    return client.app.state.resources.cache.backend  # type: ignore[attr-defined]


async def cache_keys(client: httpx.AsyncClient) -> list[str]:
    backend = backend_of(client)
    if isinstance(backend, MemoryBackend):
        return list(backend._entries)
    assert isinstance(backend, RedisBackend)
    prefix = backend._key("")
    found = [key async for key in backend._client.scan_iter(match=prefix + "*")]
    return [key.decode().removeprefix(prefix) for key in found]


def lenient(text: str) -> bytes:
    """How a lenient decoder reads a base64url part (junk dropped, padding optional)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def other_spellings(cursor: str) -> list[str]:
    """Texts that a lenient base64 decoder turns into the very same cursor bytes."""
    payload, signature = cursor.split(".")
    variants = [
        f"{payload}!!!!.{signature}",
        f"{payload}!!!!!!!!.{signature}",
        f"{payload}.{signature}==",
        f"{payload}=.{signature}",
        f"{payload[:4]}\n{payload[4:]}.{signature}",
    ]
    if len(lenient(payload)) % 3:  # the last character carries unused bits: set one
        last = _ALPHABET.index(payload[-1])
        variants.append(f"{payload[:-1]}{_ALPHABET[last | 1]}.{signature}")
    same = []
    for variant in variants:
        try:
            parts = [part.replace("!", "").replace("\n", "") for part in variant.split(".")]
            decoded = [lenient(part) for part in parts]
        except (binascii.Error, ValueError):
            continue
        if decoded == [lenient(payload), lenient(signature)] and variant != cursor:
            same.append(variant)
    return same


async def a_next_cursor(client: httpx.AsyncClient) -> str:
    author = await authed_user(client)
    for _ in range(3):
        await publish(client, author)
    page = (await client.get("/api/v1/content", params={"limit": 1})).json()
    cursor: str = page["next_cursor"]
    return cursor


async def test_a_cursor_in_another_spelling_is_422(client: httpx.AsyncClient) -> None:
    cursor = await a_next_cursor(client)
    assert (await client.get("/api/v1/content", params={"cursor": cursor})).status_code == 200
    spellings = other_spellings(cursor)
    assert len(spellings) >= 4
    for spelling in spellings:
        response = await client.get("/api/v1/content", params={"cursor": spelling})
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["parameter"] == "cursor", spelling


async def test_list_pages_are_cached_by_position_not_by_the_cursor_text(
    client: httpx.AsyncClient,
) -> None:
    cursor = await a_next_cursor(client)
    assert (await client.get("/api/v1/content", params={"cursor": cursor})).status_code == 200
    position = client.app.state.resources.cursors.decode(cursor)  # type: ignore[attr-defined]
    expected = list_key(None, 20, position)
    assert any(key.startswith(expected + "@") for key in await cache_keys(client))


async def test_the_in_process_cache_is_bounded_by_bytes(make_client: Callable[..., Any]) -> None:
    """Every `limit` from 1 to 30 is a different page of the same three long items."""
    budget = 300_000
    async with make_client(redis_url=None, content_cache_max_bytes=budget) as client:
        author = await authed_user(client)
        for _ in range(3):
            await publish(client, author, content="x" * 40_000)
        for limit in range(1, 31):
            response = await client.get("/api/v1/content", params={"limit": limit})
            assert response.status_code == 200
        backend = backend_of(client)
        assert isinstance(backend, MemoryBackend)
        assert 0 < backend.bytes_used <= budget
        # the most recent pages are the ones kept
        again = await client.get("/api/v1/content", params={"limit": 30})
        assert again.headers["cache-status"] == "inkwell; hit"


async def fill_tokens(client: httpx.AsyncClient) -> int:
    backend = backend_of(client)
    if isinstance(backend, MemoryBackend):
        return backend.fill_tokens
    return len([key for key in await cache_keys(client) if key.endswith(":fill")])


@pytest.mark.slow
async def test_reads_of_unknown_ids_leave_nothing_behind(client: httpx.AsyncClient) -> None:
    # 1,000 misses in bursts of 100: enough for any per-miss leak (a fill token, a negative
    # entry) to show, without making the suite pay for 5,000.
    for _ in range(10):
        responses = await asyncio.gather(
            *(client.get(f"/api/v1/content/{uuid.uuid4()}") for _ in range(100))
        )
        assert {response.status_code for response in responses} == {404}
    assert await fill_tokens(client) == 0
    assert [key for key in await cache_keys(client) if key.startswith("content:")] == []


class Gate:
    """Holds the first read of the content read model after it has read the row, until let go."""

    def __init__(self) -> None:
        self.loaded = asyncio.Event()
        self.release = asyncio.Event()
        self.armed = True

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = ReadHandle.first

        async def first(handle: ReadHandle, statement: Any, parameters: Any = None) -> Any:
            row = await original(handle, statement, parameters)
            if self.armed:
                self.armed = False
                self.loaded.set()
                await self.release.wait()
            return row

        monkeypatch.setattr(ReadHandle, "first", first)


async def test_a_read_that_starts_after_a_write_never_gets_the_value_from_before_it(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    author = await authed_user(client)
    item = await publish(client, author, title="before the edit")
    url = f"/api/v1/content/{item['id']}"
    gate = Gate()
    gate.install(monkeypatch)
    early = asyncio.create_task(client.get(url))
    await gate.loaded.wait()  # a reader has loaded the row and not answered yet
    edit = await client.patch(url, json={"title": "after the edit"}, headers=author["headers"])
    assert edit.status_code == 200
    # Without the fix this read joins the early load and waits for it: the wait times out.
    late = await asyncio.wait_for(client.get(url), 10)
    assert late.json()["title"] == "after the edit"
    gate.release.set()
    assert (await early).json()["title"] == "before the edit"
    assert (await client.get(url)).json()["title"] == "after the edit"
