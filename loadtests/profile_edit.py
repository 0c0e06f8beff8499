"""Latency of a display-name edit by an author with 1,000 and with 10,000 content items.

`PATCH /api/v1/users/me` with a new display name rewrites the author's names in every one of
their `contents_read` rows (one UPDATE in the edit's transaction), then — after the commit —
drops each of those items from the cache and bumps the list generation. This measures that
edit, in one process on uvloop (httpx in process, no network between client and server),
against a fresh database of each backend: the embedded SQLite (in-process cache) and
PostgreSQL + Redis (when reachable).

For each size the author's items are created through the content slice's own use case (in
transactions of 1,000), every item is read once so it is cached, then the display name is
edited `--edits` times (alternating names); each edit is timed as a whole (wall and CPU), and
its two costly steps are timed inside it: the projector's UPDATE ... RETURNING of the
author's rows, and the after-commit invalidation of their cached items. An edit of the
country alone (no rename) is the control. Between edits every item is read again, so each
edit invalidates real, cached entries.

    .venv/bin/python loadtests/profile_edit.py [--sizes 1000 10000] [--edits 5] [--backend both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _server import PG_ADMIN_URL, REDIS_URL, create_database, reachable

from src.cli import migrate
from src.core.cache.policy import Cache
from src.core.db.uow import command_transaction
from src.core.identity import Principal
from src.main import create_app
from src.settings import Settings
from src.slices.content import projector
from src.slices.content.commands import CreateContent, CreateContentCommand

SECRET = "profile-edit-benchmark-secret-0123456789abcdef"  # noqa: S105 - a throwaway database
BODY = "A body that is long enough for the content rules, and no longer. " * 4


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    return parser.parse_args()


class Stopwatch:
    """Wall time spent in an awaited step, summed per edit."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, step: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await step(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


@contextlib.asynccontextmanager
async def application(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=300
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def publish(client: httpx.AsyncClient, actor: Principal, count: int) -> list[str]:
    resources = client.app.state.resources  # type: ignore[attr-defined]
    ids: list[str] = []
    for start in range(0, count, 1000):
        async with command_transaction(resources.unit_of_work()) as uow:
            use_case = CreateContent(uow, resources.cache)
            for n in range(start, min(count, start + 1000)):
                item = await use_case.execute(CreateContentCommand(actor, f"Item {n}", BODY))
                ids.append(str(item.id))
    return ids


async def read_all(client: httpx.AsyncClient, ids: list[str]) -> None:
    for start in range(0, len(ids), 100):
        answers = await asyncio.gather(
            *(client.get(f"/api/v1/content/{i}") for i in ids[start : start + 100])
        )
        assert {a.status_code for a in answers} == {200}
    assert (await client.get("/api/v1/content")).status_code == 200


async def measure(name: str, settings: Settings, sizes: list[int], edits: int) -> None:
    update_step, invalidate_step = Stopwatch(), Stopwatch()
    projector.RenameAuthor.__call__ = update_step.wrap(projector.RenameAuthor.__call__)  # type: ignore[method-assign]
    Cache.invalidate = invalidate_step.wrap(Cache.invalidate)  # type: ignore[method-assign]
    print(f"\n{name}")
    print(
        f"  {'items':>6}  {'edit (median)':>13}  {'min':>7}  {'max':>7}  {'CPU':>7}"
        f"  {'UPDATE':>7}  {'invalidate':>10}  {'country only':>12}   (ms)"
    )
    async with application(settings) as client:
        body = {"name": "Ada", "email": f"{uuid.uuid4().hex}@example.com", "password": "x" * 12}
        assert (await client.post("/api/v1/signup", json=body)).status_code == 201
        login = await client.post(
            "/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}
        )
        tokens = login.json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        resources = client.app.state.resources  # type: ignore[attr-defined]
        claims = resources.tokens.decode(tokens["access_token"], "access")
        actor = Principal(claims.subject, claims.session_id, "creator")
        ids: list[str] = []
        for size in sorted(sizes):
            ids += await publish(client, actor, size - len(ids))
            await read_all(client, ids)
            walls, cpus, updates, invalidations = [], [], [], []
            for n in range(edits + 1):
                update_step.seconds = invalidate_step.seconds = 0.0
                cpu, wall = time.process_time(), time.perf_counter()
                response = await client.patch(
                    "/api/v1/users/me", json={"display_name": f"Ada {size}-{n}"}, headers=headers
                )
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                assert response.status_code == 200, response.text
                if n > 0:  # the first edit warms the statement caches
                    walls.append(wall)
                    cpus.append(cpu)
                    updates.append(update_step.seconds)
                    invalidations.append(invalidate_step.seconds)
                await read_all(client, ids)  # every item cached again for the next edit
            sample = await client.get(f"/api/v1/content/{ids[0]}")
            assert sample.json()["author"]["display_name"] == f"Ada {size}-{edits}"
            controls = []
            for n in range(edits):
                control = time.perf_counter()
                country = await client.patch(
                    "/api/v1/users/me", json={"country": f"Land {size}-{n}"}, headers=headers
                )
                controls.append(time.perf_counter() - control)
                assert country.status_code == 200
            ms = [1000 * statistics.median(v) for v in (walls, cpus, updates, invalidations)]
            print(
                f"  {size:>6}  {ms[0]:>13.1f}  {1000 * min(walls):>7.1f}  {1000 * max(walls):>7.1f}"
                f"  {ms[1]:>7.1f}  {ms[2]:>7.1f}  {ms[3]:>10.1f}"
                f"  {1000 * statistics.median(controls):>12.1f}"
            )


def settings_for(database_url: str, redis_url: str | None) -> Settings:
    return Settings.model_validate(
        {
            "app_env": "test",
            "database_url": database_url,
            "redis_url": redis_url,
            "redis_key_prefix": f"inkwell-bench-profile-{uuid.uuid4().hex[:8]}:",
            "jwt_secret": SECRET,
            "bcrypt_rounds": 4,
            "log_level": "WARNING",
            "log_format": "json",
            "rate_limit_enabled": False,
            "content_cache_max_entries": 20_000,
        }
    )


async def drop_database(name: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def forget_redis_keys(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


def main() -> int:
    args = parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{folder}/bench.db"
            migrate(url)
            uvloop.run(
                measure(
                    "SQLite (in-process cache)", settings_for(url, None), args.sizes, args.edits
                )
            )
    if args.backend in ("postgres", "both"):
        if not (reachable(5432) and reachable(6379)):
            print("PostgreSQL or Redis is not reachable: skipping that backend")
            return 2 if args.backend == "postgres" else 0
        name = f"inkwell_bench_profile_{uuid.uuid4().hex[:8]}"
        url = create_database(name)
        settings = settings_for(url, REDIS_URL)
        try:
            uvloop.run(measure("PostgreSQL + Redis", settings, args.sizes, args.edits))
        finally:
            asyncio.run(drop_database(name))
            asyncio.run(forget_redis_keys(settings.redis_key_prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
