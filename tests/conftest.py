"""Test harness: every API test runs on both backends.

* `sqlite`: the embedded default (a fresh SQLite file per session, in-process cache and
  rate-limit storage).
* `postgres`: real PostgreSQL + Redis. The suite creates its own database
  (`inkwell_test_<random>`) on `TEST_DATABASE_URL`'s server and drops only that one; Redis keys
  get a prefix unique to each test, removed at the end. Skipped when the servers are
  unreachable — except with `CI=true`, where that is an error.

Each test gets its own application (own engines, caches, metrics registry) and starts from
empty tables, so no test depends on another's data.

Tracing is configured once for the test process, as `inkwell serve` configures it once per
worker: one tracer provider whose spans go to an in-memory exporter (`recorded_spans`),
emptied before every test. That OTLP export works end to end is proven against a real server
process (tests/observability/test_tracing.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from src.cli import migrate
from src.core.tables import contents_search, metadata
from src.main import create_app
from src.observability.logging import flush_logs
from src.observability.tracing import configure_tracing
from src.settings import Settings

TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"
CHECK_READ_MODELS = os.environ.get("CHECK_READ_MODELS", "").lower() == "true"
RUN_ID = uuid.uuid4().hex[:10]

BASE_SETTINGS: dict[str, Any] = {
    "app_env": "test",
    "bcrypt_rounds": 4,
    "log_level": "WARNING",
    "log_format": "json",
    "rate_limit_enabled": False,
    "jwt_secret": "test-secret-that-is-long-enough-for-hs256-0123456789",
    # Three test processes on two cores can keep a burst of 100 SQLite reads queued on the
    # pool for more than the production 5 s; the tests about pool timeouts set their own.
    "db_pool_timeout_seconds": 30,
    # A loaded CI machine can take seconds to accept a new PostgreSQL connection; the tests
    # that are about connect timeouts set their own.
    "db_connect_timeout_seconds": 10,
    # The same machine can keep a Redis answer waiting on a busy event loop for more than the
    # production 0.5 s; a timeout there turns the cache off for a second and the tests about
    # the cache see every read reach the database. The outage tests set their own.
    "redis_timeout_seconds": 5,
    # /ready opens a fresh connection per engine on a new app; the production 1 s can pass
    # before a loaded machine accepts it. The tests about probe timeouts set their own.
    "ready_check_timeout_seconds": 10,
}


# One tracer provider for the whole test process, before any application is built.
SPANS = InMemorySpanExporter()
configure_tracing(Settings.model_validate(BASE_SETTINGS), span_processor=SimpleSpanProcessor(SPANS))


_session_loop: asyncio.AbstractEventLoop | None = None


@pytest.fixture(scope="session", autouse=True)
async def _remember_the_session_loop() -> None:
    global _session_loop
    _session_loop = asyncio.get_running_loop()


def _print_every_task() -> None:
    for task in asyncio.all_tasks():
        print(f"--- {task!r}", file=sys.stderr)
        task.print_stack(file=sys.stderr)


@pytest.fixture(autouse=True)
def _tasks_printed_before_the_timeout(request: pytest.FixtureRequest) -> Iterator[None]:
    """pytest-timeout prints the threads' stacks, but a hung coroutine waits in the loop's
    select(): every task's stack is printed shortly before the timeout, to say what it awaits."""
    timeout = float(request.config.getini("timeout") or 0)
    loop = _session_loop
    if timeout <= 30 or loop is None:
        yield
        return
    timer = threading.Timer(timeout - 20, lambda: loop.call_soon_threadsafe(_print_every_task))
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


@pytest.fixture(autouse=True)
def recorded_spans() -> InMemorySpanExporter:
    """The spans finished during this test (the exporter is emptied before each test)."""
    SPANS.clear()
    return SPANS


@dataclass
class Backend:
    name: str
    database_url: str
    redis_url: str | None

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgres"

    def settings(self, **overrides: Any) -> Settings:
        values = {
            **BASE_SETTINGS,
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            **overrides,
        }
        return Settings.model_validate(values)


async def _reachable_postgres() -> str | None:
    engine = create_async_engine(TEST_DATABASE_URL, connect_args={"timeout": 3})
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return None
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    finally:
        await engine.dispose()


async def _reachable_redis() -> str | None:
    import redis.asyncio as redis

    client = redis.from_url(TEST_REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
        return None
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    finally:
        await client.aclose()


async def _create_database(name: str) -> str:
    admin = create_async_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)


async def _drop_database(name: str) -> None:
    admin = create_async_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def _forget_redis_keys(prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.from_url(TEST_REDIS_URL)
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=500):
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "inkwell.db"
        url = f"sqlite+aiosqlite:///{path}"
        await asyncio.to_thread(migrate, url)
        yield Backend("sqlite", url, None)
        return
    problems = [p for p in (await _reachable_postgres(), await _reachable_redis()) if p]
    if problems:
        message = "PostgreSQL/Redis unreachable: " + "; ".join(problems)
        if IN_CI:
            pytest.fail(message + " (CI requires both backends)")
        pytest.skip(message)
    name = f"inkwell_test_{RUN_ID}"
    url = await _create_database(name)
    try:
        await asyncio.to_thread(migrate, url)
        yield Backend("postgres", url, TEST_REDIS_URL)
    finally:
        await _drop_database(name)
        await _forget_redis_keys(f"inkwell-test-{RUN_ID}:")


async def _empty_tables(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
                await connection.execute(text(f"TRUNCATE {names} CASCADE"))
            else:
                # SQLite's full-text table is keyed on contents_read's rowids, which a fresh
                # table hands out again: it is emptied with it.
                await connection.execute(delete(contents_search))
                for table in reversed(metadata.sorted_tables):
                    await connection.execute(delete(table))
    finally:
        await engine.dispose()


_test_counter = 0


@asynccontextmanager
async def running_app(backend: Backend, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An application with its lifespan running, and an httpx client bound to it."""
    global _test_counter
    _test_counter += 1
    overrides.setdefault("redis_key_prefix", f"inkwell-test-{RUN_ID}:{_test_counter}:")
    app = create_app(backend.settings(**overrides))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://inkwell.test"
            ) as client:
                client.app = app  # type: ignore[attr-defined]
                yield client
    finally:
        # Log lines are written by a thread: the test's own are out before it reads its output.
        flush_logs()


async def _assert_read_models_match(database_url: str) -> None:
    from src.read_models import rebuild_read_models

    engine = create_async_engine(database_url)
    try:
        report = await rebuild_read_models(engine, check=True)
    finally:
        await engine.dispose()
    assert report.clean, f"read models drifted from the write tables: {report.differences}"


@pytest.fixture
async def make_client(backend: Backend) -> Callable[..., Any]:
    """`async with make_client(SETTING=value) as client:` for tests that change settings."""
    await _empty_tables(backend.database_url)
    return lambda **overrides: running_app(backend, **overrides)


@pytest.fixture
async def client(
    make_client: Callable[..., Any], backend: Backend
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh application on empty tables.

    With `CHECK_READ_MODELS=true`, each test that used it ends with `rebuild-read-models
    --check` on what it wrote through the API: the incremental projections must equal a
    rebuild after every test.
    """
    async with make_client() as http:
        yield http
    if CHECK_READ_MODELS:
        await _assert_read_models_match(backend.database_url)
