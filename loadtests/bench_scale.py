"""`make bench-scale`: does a read cost the same at 1,000,000 items as at 10,000?

A measurement, not a test: it prints figures and asserts nothing about them (its exit status
says only whether every request succeeded).

For each backend (the embedded SQLite default; PostgreSQL + Redis) and each size:

1. A fresh database (a temporary SQLite file; the PostgreSQL database `inkwell_scale_bench`,
   dropped at the end, Redis keys under `inkwell-scale-bench:`), migrated.
2. Seeds, straight into the write tables: `--users` users (100,000), of whom the first 10,000
   are authors; `--sizes` content items (10,000, then 1,000,000) spread over the authors, one
   in ten a draft, 0-3 of 60 tags each, short bodies drawn from a 400-word vocabulary; when the
   follows table exists, five follows per user and one reader following 1,000 authors (a
   second reader is one of the users with their five). Then
   `rebuild-read-models` projects the read tables (set-based: one INSERT … SELECT each), the
   database is ANALYZEd (and VACUUMed on PostgreSQL) and, on SQLite, its write-ahead log
   checkpointed.
3. Serves the application in-process (httpx over ASGI: the whole middleware stack, no socket)
   and times `--requests` sequential requests of each read, every one a cache miss (the list
   generation is bumped before each list request, outside the timed part):
   first page, a page 50 pages deep (behind its cursor), a tag filter, a one-word search,
   the reader's feed and the second reader's (when the route exists) and a user profile
   (never cached).
4. Captures the SQL each read ran through SQLAlchemy and prints its plan (`EXPLAIN` on
   PostgreSQL, `EXPLAIN QUERY PLAN` on SQLite) — the plans quoted in docs/performance.md come
   from here. The profile's one primary-key statement runs on the driver's connection, which
   no SQLAlchemy event sees: it has no captured plan.
5. Prints p50 / p95 per read and size, the ratio of the largest size's p50 to the smallest's,
   and writes `var/bench-scale.json`.

Run: `.venv/bin/python loadtests/bench_scale.py [--backend sqlite|postgres|both]
[--sizes 10000,1000000] [--users 100000] [--requests 100]`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
from sqlalchemy import Table, event, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _inprocess import fresh_postgres_database, latency_summary, measurement_settings
from _server import REDIS_URL, ROOT, database_url, forget_redis_prefix, reachable
from search_latency import WORDS

from src.cli import migrate
from src.core import tables
from src.core.tables import content_tags, contents, tags, users
from src.main import create_app
from src.read_models import rebuild_read_models
from src.settings import Settings
from src.slices.content.keys import LIST_GENERATION

PG_DATABASE = "inkwell_scale_bench"
REDIS_PREFIX = "inkwell-scale-bench:"
TAGS = [f"topic-{n}" for n in range(60)]
AUTHORS = 10_000
READER_FOLLOWS = 1_000
FOLLOWS_PER_USER = 5
READER_EMAIL = "reader@example.com"
FEW_FOLLOWS_EMAIL = "few-follows@example.com"  # the second reader: the seed's five follows
READER_PASSWORD = "scale-bench-reader"  # noqa: S105 - a throwaway account in a throwaway database
CHUNK = 5_000


def _chunks(rows: Iterator[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _insert(engine: AsyncEngine, table: Table, rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    for batch in _chunks(rows):
        async with engine.begin() as connection:
            await connection.execute(insert(table), batch)
        count += len(batch)
    return count


async def _seed(url: str, items: int, user_count: int) -> dict[str, Any]:
    rng = random.Random(20261202)
    authors = min(AUTHORS, user_count // 2)
    now = dt.datetime.now(dt.UTC)
    user_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(user_count)]
    reader, few_follows = user_ids[-1], user_ids[-2]
    tag_ids = {name: uuid.uuid4() for name in TAGS}
    reader_hash = bcrypt.hashpw(READER_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    engine = create_async_engine(url)
    started = time.perf_counter()

    def user_rows() -> Iterator[dict[str, Any]]:
        for n, user_id in enumerate(user_ids):
            is_reader = user_id == reader
            email = READER_EMAIL if is_reader else f"user{n}@example.com"
            if user_id == few_follows:
                email = FEW_FOLLOWS_EMAIL
            yield {
                "id": user_id,
                "name": "Reader" if is_reader else f"User {n}",
                "email": email,
                "password_hash": reader_hash if user_id in (reader, few_follows) else "not-a-login",
                "display_name": "Reader" if is_reader else f"User {n}",
                "role": "creator" if n < authors else "viewer",
                "created_at": now - dt.timedelta(seconds=user_count - n),
                "updated_at": now,
            }

    def content_rows() -> Iterator[dict[str, Any]]:
        for n in range(items):
            created = now - dt.timedelta(seconds=items - n)
            status = "draft" if n % 10 == 9 else "published"
            yield {
                "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "author_id": user_ids[rng.randrange(authors)],
                "slug": f"item-{n}",
                "slug_base": f"item-{n}",
                "slug_number": 1,
                "title": " ".join(rng.choices(WORDS, k=rng.randint(3, 6))).capitalize(),
                "body": " ".join(rng.choices(WORDS, k=rng.randint(8, 16))) + ".",
                "image": None,
                "status": status,
                "published_at": created if status == "published" else None,
                "created_at": created,
                "updated_at": created,
            }

    content_ids: list[uuid.UUID] = []

    def remembered(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            content_ids.append(row["id"])
            yield row

    def tag_rows() -> Iterator[dict[str, Any]]:
        for content_id in content_ids:
            for name in rng.sample(TAGS, k=rng.randint(0, 3)):
                yield {"content_id": content_id, "tag_id": tag_ids[name]}

    follows_table: Table | None = getattr(tables, "follows", None)

    def follow_rows() -> Iterator[dict[str, Any]]:
        for follower in user_ids[:-1]:
            for followee in {user_ids[rng.randrange(authors)] for _ in range(FOLLOWS_PER_USER)}:
                if followee != follower:
                    yield {"follower_id": follower, "followee_id": followee, "created_at": now}
        for followee in rng.sample(user_ids[:authors], min(READER_FOLLOWS, authors)):
            yield {"follower_id": reader, "followee_id": followee, "created_at": now}

    try:
        counts = {"users": await _insert(engine, users, user_rows())}
        async with engine.begin() as connection:
            await connection.execute(
                insert(tags), [{"id": i, "name": name} for name, i in tag_ids.items()]
            )
        counts["contents"] = await _insert(engine, contents, remembered(content_rows()))
        counts["content_tags"] = await _insert(engine, content_tags, tag_rows())
        if follows_table is not None:
            counts["follows"] = await _insert(engine, follows_table, follow_rows())
        written = time.perf_counter() - started
        started = time.perf_counter()
        await rebuild_read_models(engine)
        projected = time.perf_counter() - started
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql":
                # VACUUM too: it sets the visibility map, without which every index-only scan
                # fetches the heap. A running database gets that from autovacuum, which a
                # machine may have turned off (this one has) and which lags a bulk load anyway.
                await connection.execute(text("VACUUM (ANALYZE)"))
            else:
                await connection.execute(text("ANALYZE"))
            if engine.dialect.name == "sqlite":
                # The seed is one huge transaction: until it is checkpointed, every page read
                # searches a write-ahead log of millions of frames (a running service
                # checkpoints as it commits; a bench that only reads never would).
                await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        await engine.dispose()
    return {
        "rows": counts,
        "write_seconds": round(written, 1),
        "rebuild_seconds": round(projected, 1),
        "profile_id": str(user_ids[authors // 2]),
    }


class _Statements:
    """The SQL the read engine ran during one request: what the plans are taken of."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.seen: list[tuple[str, Any]] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.seen.append((statement, parameters))


async def _plans(engine: AsyncEngine, statements: list[tuple[str, Any]]) -> list[str]:
    out: list[str] = []
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    async with engine.connect() as connection:
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            if engine.dialect.name == "sqlite":
                cursor = await driver.execute(prefix + statement, parameters)
                rows = await cursor.fetchall()
                out.append("\n".join(" | ".join(str(c) for c in row) for row in rows))
            else:
                rows = await driver.fetch(prefix + statement, *parameters)
                out.append("\n".join(row[0] for row in rows))
    return out


async def _bearer(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    login = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": READER_PASSWORD}
    )
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _measure(
    settings: Settings, seeded: dict[str, Any], requests: int, explain: bool
) -> dict[str, Any]:
    app = create_app(settings)
    results: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        resources = app.state.resources
        cache = resources.cache
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            reader, few_follows = [
                await _bearer(client, email) for email in (READER_EMAIL, FEW_FOLLOWS_EMAIL)
            ]
            page = (await client.get("/api/v1/content", params={"limit": 20})).json()
            deep_cursor = page["next_cursor"]
            for _ in range(48):  # the cursor of page 50 (or of the last page, if fewer)
                await cache.invalidate(generations=(LIST_GENERATION,))
                page = (
                    await client.get("/api/v1/content", params={"limit": 20, "cursor": deep_cursor})
                ).json()
                if page["next_cursor"] is None:
                    break
                deep_cursor = page["next_cursor"]
            rng = random.Random(3)
            reads: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
                "first page": lambda: client.get("/api/v1/content", params={"limit": 20}),
                "page 50": lambda: client.get(
                    "/api/v1/content", params={"limit": 20, "cursor": deep_cursor}
                ),
                "tag": lambda: client.get(
                    "/api/v1/content", params={"limit": 20, "tag": rng.choice(TAGS)}
                ),
                "search": lambda: client.get(
                    "/api/v1/content", params={"limit": 20, "q": rng.choice(WORDS[100:])}
                ),
                "profile": lambda: client.get(f"/api/v1/users/{seeded['profile_id']}"),
            }
            if "/api/v1/content/feed" in app.openapi()["paths"]:
                reads["feed"] = lambda: client.get(
                    "/api/v1/content/feed", params={"limit": 20}, headers=reader
                )
                reads["feed, 5 followed"] = lambda: client.get(
                    "/api/v1/content/feed", params={"limit": 20}, headers=few_follows
                )
            statements = _Statements(resources.database.read_engine)
            for name, read in reads.items():
                samples: list[float] = []
                for n in range(requests + 20):
                    await cache.invalidate(generations=(LIST_GENERATION,))
                    statements.seen.clear()
                    started = time.perf_counter()
                    response = await read()
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200:
                        raise RuntimeError(f"{name}: {response.status_code} {response.text}")
                    if n >= 20:  # warm-up: connections, statement caches
                        samples.append(elapsed)
                results[name] = latency_summary(samples)
                if explain:
                    results[name]["plans"] = await _plans(
                        resources.database.read_engine, list(statements.seen)
                    )
    return results


def run_size(
    backend: str, items: int, user_count: int, requests: int, explain: bool
) -> dict[str, Any]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="inkwell-scale-") as folder:  # GBs at 1M
            url = f"sqlite+aiosqlite:///{folder}/inkwell.db"
            migrate(url)
            seeded = asyncio.run(_seed(url, items, user_count))
            measured = asyncio.run(
                _measure(measurement_settings(url, None, REDIS_PREFIX), seeded, requests, explain)
            )
            return {**seeded, **measured}
    asyncio.run(fresh_postgres_database(PG_DATABASE))
    url = database_url(PG_DATABASE)
    redis_url = REDIS_URL if reachable(6379) else None
    try:
        migrate(url)
        seeded = asyncio.run(_seed(url, items, user_count))
        measured = asyncio.run(
            _measure(measurement_settings(url, redis_url, REDIS_PREFIX), seeded, requests, explain)
        )
        return {**seeded, "redis": redis_url is not None, **measured}
    finally:
        asyncio.run(fresh_postgres_database(PG_DATABASE, drop_only=True))
        if redis_url:
            forget_redis_prefix(REDIS_PREFIX)


READS = ["first page", "page 50", "tag", "search", "feed", "feed, 5 followed", "profile"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--sizes", default="10000,1000000", help="content items, comma-separated")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=100, help="requests per read and size")
    parser.add_argument("--no-explain", action="store_true", help="skip the query plans")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench-scale.json")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    report: dict[str, Any] = {
        "sizes": sizes,
        "users": args.users,
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "backends": {},
    }
    for backend in backends:
        if backend == "postgres" and not reachable(5432):
            print("PostgreSQL is not reachable on 127.0.0.1:5432", file=sys.stderr)
            return 2
        report["backends"][backend] = {
            str(size): run_size(backend, size, args.users, args.requests, not args.no_explain)
            for size in sizes
        }
    smallest, largest = str(sizes[0]), str(sizes[-1])
    for backend, by_size in report["backends"].items():
        print(f"\n{backend}: ms p50 / p95 by content items ({args.users} users)")
        print(f"{'':18}" + "".join(f"{size:>20}" for size in by_size) + f"{'ratio p50':>12}")
        for read in READS:
            if read not in by_size[smallest]:
                continue
            cells = "".join(
                f"{figures[read]['p50_ms']:>10} / {figures[read]['p95_ms']:<7}"
                for figures in by_size.values()
            )
            ratio = by_size[largest][read]["p50_ms"] / by_size[smallest][read]["p50_ms"]
            print(f"{read:18}{cells}{ratio:>12.2f}")
        for size, figures in by_size.items():
            print(
                f"  {size} items: seeded in {figures['write_seconds']} s, "
                f"read models rebuilt in {figures['rebuild_seconds']} s, rows {figures['rows']}"
            )
        if not args.no_explain:
            for read in READS:
                if read in by_size[largest]:
                    print(f"\n--- {backend}, {largest} items, {read}:")
                    print("\n\n".join(by_size[largest][read]["plans"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
