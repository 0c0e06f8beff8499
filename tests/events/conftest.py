"""Applications with test-only event handlers, and ways to watch their delivery."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from src.core.db.uow import UnitOfWork
from src.core.events import EventHandlers, EventMeta
from src.core.tables import outbox, processed_events
from src.main import create_app
from src.slices.content.events import ContentPublished
from src.slices.signup.events import UserSignedUp
from tests.conftest import RUN_ID, Backend, _empty_tables

_apps = itertools.count(1)


@dataclass
class Calls:
    """What the test handlers saw: `(handler, event_id, event)` per call that committed or
    raised."""

    seen: list[tuple[str, uuid.UUID, Any]] = field(default_factory=list)

    def of(self, handler: str) -> list[tuple[str, uuid.UUID, Any]]:
        return [call for call in self.seen if call[0] == handler]


def recording(name: str, calls: Calls) -> Callable[[UnitOfWork, Any, EventMeta], Awaitable[None]]:
    async def handle(uow: UnitOfWork, event: Any, meta: EventMeta) -> None:
        await uow.execute(text("SELECT 1"))  # a handler writes through its unit of work
        calls.seen.append((name, meta.event_id, event))

    return handle


def failing(name: str, calls: Calls) -> Callable[[UnitOfWork, Any, EventMeta], Awaitable[None]]:
    async def handle(uow: UnitOfWork, event: Any, meta: EventMeta) -> None:
        calls.seen.append((name, meta.event_id, event))
        raise RuntimeError("this handler always fails")

    return handle


def handlers_for_tests(calls: Calls) -> EventHandlers:
    """`test.signed_up` and `test.published` record; `test.poison` fails on signups of users
    whose name starts with "Poison"."""
    handlers = EventHandlers()
    handlers.subscribe("test.signed_up", UserSignedUp, recording("test.signed_up", calls))
    handlers.subscribe("test.published", ContentPublished, recording("test.published", calls))
    fail = failing("test.poison", calls)

    async def poison(uow: UnitOfWork, event: UserSignedUp, meta: EventMeta) -> None:
        if event.name.startswith("Poison"):
            await fail(uow, event, meta)

    handlers.subscribe("test.poison", UserSignedUp, poison)
    return handlers


@asynccontextmanager
async def app_with_handlers(
    backend: Backend, handlers: EventHandlers, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    overrides.setdefault("redis_key_prefix", f"inkwell-test-{RUN_ID}:events{next(_apps)}:")
    app = create_app(backend.settings(**overrides), handlers=handlers)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://inkwell.test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
async def embedded(backend: Backend, calls: Calls) -> AsyncIterator[httpx.AsyncClient]:
    """The embedded default on this backend's database (no Redis: the serve process
    delivers), with the test handlers."""
    await _empty_tables(backend.database_url)
    async with app_with_handlers(
        backend, handlers_for_tests(calls), redis_url=None, event_max_attempts=3
    ) as client:
        yield client


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Wait until `check()` holds (the deadline only turns a hang into a failure)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def fetch(client: httpx.AsyncClient, statement: Any) -> list[Any]:
    engine = client.app.state.resources.database.write_engine  # type: ignore[attr-defined]
    async with engine.connect() as connection:
        return list((await connection.execute(statement)).mappings())


async def outbox_rows(client: httpx.AsyncClient) -> list[Any]:
    return await fetch(client, select(outbox).order_by(outbox.c.position))


async def processed(client: httpx.AsyncClient) -> list[tuple[str, uuid.UUID]]:
    rows = await fetch(client, select(processed_events))
    return sorted((row["handler"], row["event_id"]) for row in rows)


def sample(client: httpx.AsyncClient, name: str, labels: dict[str, str] | None = None) -> float:
    registry = client.app.state.runtime.metrics.registry  # type: ignore[attr-defined]
    value = registry.get_sample_value(name, labels or {})
    return float(value or 0.0)
