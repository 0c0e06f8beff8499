"""The handler tests deliver events themselves: their application runs no event handler of
its own (the embedded runner would otherwise deliver the same events a second time, under
their real ids)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from src.core.events import EventHandlers
from src.main import create_app
from tests.conftest import RUN_ID, Backend

_apps = itertools.count(1)


@pytest.fixture
async def quiet_client(
    make_client: Callable[..., Any], backend: Backend
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh application on empty tables whose events reach no handler."""
    prefix = f"inkwell-test-{RUN_ID}:quiet{next(_apps)}:"
    app = create_app(backend.settings(redis_key_prefix=prefix), handlers=EventHandlers())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://inkwell.test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
