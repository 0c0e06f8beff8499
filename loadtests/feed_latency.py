"""Feed latency for a reader who follows many authors: `GET /api/v1/content/feed` p50 / p95.

A measurement, not a test: it prints figures (and the query plans) and asserts nothing.

1. Creates a fresh database per backend — a temporary SQLite file; on PostgreSQL the database
   `inkwell_feed_bench` (dropped at the end; Redis keys under `inkwell-feed-bench:`) — and
   migrates it.
2. Signs a reader up through the API, then writes the feed's read models straight in:
   `follows_read` (the reader follows `--authors` authors, default 1,000) and `contents_read`
   (`--items` items, default 100,000: nine in ten by the followed authors, spread over a year
   of publication times; the rest by 200 authors the reader does not follow; one item in ten
   a draft). PostgreSQL is ANALYZEd (and VACUUMed, for index-only scans).
3. Serves the application in-process (httpx over ASGI: the whole middleware stack, the
   session check included, no socket) and times sequential requests of 20 items:
   * `first page`; `page 2` (through the first page's cursor);
   * `deep page`: a cursor positioned halfway down the feed (item ~45,000);
   * `few authors`: a second reader following 10 of the same authors, first page (what the
     feed costs when the follow list is short).
4. Prints one table (ms), the plan of the first-page statement on each backend (`EXPLAIN
   ANALYZE` on PostgreSQL, `EXPLAIN QUERY PLAN` on SQLite), and writes
   `var/feed-latency.json`.

Run: `.venv/bin/python loadtests/feed_latency.py [--backend sqlite|postgres|both]`.
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
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's `src`

from _inprocess import fresh_postgres_database, latency_summary, measurement_settings, timed
from _server import REDIS_URL, ROOT, database_url, forget_redis_prefix, reachable

from src.cli import migrate
from src.core.tables import contents_read, follows_read
from src.main import create_app
from src.settings import Settings
from src.slices.content.queries import _FEED_STATEMENTS

PG_DATABASE = "inkwell_feed_bench"
REDIS_PREFIX = "inkwell-feed-bench:"
PAGE = 20
OTHER_AUTHORS = 200
FEW = 10
_BODY = "Some words that make a body long enough to look like an article. " * 8
_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def _reader(client: httpx.AsyncClient, n: int) -> tuple[uuid.UUID, dict[str, str]]:
    body = {
        "name": f"Feed Reader {n}",
        "email": f"feed.reader.{n}.{uuid.uuid4().hex[:8]}@example.com",
        "password": "correct horse battery",
    }
    created = await client.post("/api/v1/signup", json=body)
    assert created.status_code == 201, created.text
    login = await client.post(
        "/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    return uuid.UUID(created.json()["id"]), {"Authorization": f"Bearer {token}"}


def _items(rng: random.Random, authors: list[uuid.UUID], count: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        at = _EPOCH + dt.timedelta(seconds=rng.randrange(365 * 24 * 3600))
        draft = rng.random() < 0.1
        item_id = uuid.uuid4()
        rows.append(
            {
                "id": item_id,
                "author_id": rng.choice(authors),
                "author_name": "An Author",
                "author_display_name": "An Author",
                "slug": f"item-{n}-{item_id.hex[:6]}",
                "title": f"Item number {n}",
                "body": _BODY,
                "image": None,
                "tags": [],
                "status": "draft" if draft else "published",
                "published_at": None if draft else at,
                "created_at": at,
                "updated_at": at,
                "search": None,
            }
        )
    return rows


async def _seed(
    connection: AsyncConnection,
    readers: tuple[uuid.UUID, uuid.UUID],
    authors: int,
    items: int,
) -> list[dict[str, Any]]:
    """The follows and items; the followed authors' published items, newest first."""
    rng = random.Random(11)
    followed = [uuid.uuid4() for _ in range(authors)]
    others = [uuid.uuid4() for _ in range(OTHER_AUTHORS)]
    many, few = readers
    follows = [{"follower_id": many, "followee_id": author} for author in followed]
    follows += [{"follower_id": few, "followee_id": author} for author in followed[:FEW]]
    await connection.execute(insert(follows_read), follows)
    mine = _items(rng, followed, items * 9 // 10)
    rows = mine + _items(rng, others, items - len(mine))
    for start in range(0, len(rows), 2_000):
        await connection.execute(insert(contents_read), rows[start : start + 2_000])
    published = [row for row in mine if row["status"] == "published"]
    return sorted(published, key=lambda row: (row["published_at"], row["id"]), reverse=True)


async def _plan(
    connection: AsyncConnection, reader: uuid.UUID, after: tuple[Any, Any] | None = None
) -> list[str]:
    """The plan of a page's statement, exactly as the query compiles it."""
    dialect = connection.dialect.name
    statement = _FEED_STATEMENTS[(dialect, after is not None)]
    compiled = statement.compile(dialect=connection.dialect)
    given: dict[str, Any] = {"reader": reader, "limit": PAGE + 1}
    if after is not None:
        given["after_at"], given["after_id"] = after
    values = compiled.construct_params(given)
    processors = compiled._bind_processors
    positional = []
    for name in compiled.positiontup or ():
        value = values[name]
        processor = processors.get(name)
        positional.append(processor(value) if processor else value)
    if dialect == "postgresql":
        explain = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
    else:
        explain = "EXPLAIN QUERY PLAN "
    result = await connection.exec_driver_sql(explain + str(compiled), tuple(positional))
    if dialect == "postgresql":
        return [row[0] for row in result]
    return [f"{'  ' * _depth(row)}{row[-1]}" for row in result]


_parents: dict[int, int] = {}


def _depth(row: Any) -> int:
    node, parent = row[0], row[1]
    _parents[node] = 0 if parent == 0 else _parents.get(parent, 0) + 1
    return _parents[node]


async def _measure(settings: Settings, authors: int, items: int, repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            many, many_headers = await _reader(client, 1)
            few, few_headers = await _reader(client, 2)
            engine = app.state.resources.database.write_engine
            started = time.perf_counter()
            async with engine.begin() as connection:
                feed = await _seed(connection, (many, few), authors, items)
            results["seed_seconds"] = round(time.perf_counter() - started, 1)
            if engine.dialect.name == "postgresql":
                async with engine.connect() as connection:
                    autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                    await autocommit.execute(text("VACUUM ANALYZE contents_read"))
                    await autocommit.execute(text("VACUUM ANALYZE follows_read"))

            async def page(headers: dict[str, str], **params: Any) -> httpx.Response:
                return await client.get("/api/v1/content/feed", params=params, headers=headers)

            for _ in range(20):  # connections, statement caches
                await page(many_headers, limit=PAGE)
            samples: list[float] = []
            for _ in range(repeats):
                first = await timed(samples, lambda: page(many_headers, limit=PAGE))
            results["first page"] = latency_summary(samples)
            got = [item["id"] for item in first.json()["items"]]
            assert got == [str(row["id"]) for row in feed[:PAGE]], "the feed is not newest first"
            cursor = first.json()["next_cursor"]
            samples = []
            for _ in range(repeats):
                await timed(samples, lambda: page(many_headers, limit=PAGE, cursor=cursor))
            results["page 2"] = latency_summary(samples)
            middle = feed[len(feed) // 2]
            deep = app.state.resources.cursors.encode(middle["published_at"], middle["id"])
            samples = []
            for _ in range(repeats):
                deep_page = await timed(
                    samples, lambda: page(many_headers, limit=PAGE, cursor=deep)
                )
            expected = [str(row["id"]) for row in feed[len(feed) // 2 + 1 :][:PAGE]]
            assert [item["id"] for item in deep_page.json()["items"]] == expected
            results["deep page"] = latency_summary(samples)
            samples = []
            for _ in range(repeats):
                await timed(samples, lambda: page(few_headers, limit=PAGE))
            results["few authors"] = latency_summary(samples)
            results["feed_items"] = len(feed)
            async with app.state.resources.database.read_engine.connect() as connection:
                results["plan"] = await _plan(connection, many)
                position = (middle["published_at"], middle["id"])
                results["deep_plan"] = await _plan(connection, many, position)
    return results


def run_backend(name: str, authors: int, items: int, repeats: int) -> dict[str, Any]:
    if name == "sqlite":
        folder = tempfile.mkdtemp(prefix="inkwell-feed-")
        url = f"sqlite+aiosqlite:///{folder}/inkwell.db"
        migrate(url)
        return asyncio.run(
            _measure(measurement_settings(url, None, REDIS_PREFIX), authors, items, repeats)
        )
    asyncio.run(fresh_postgres_database(PG_DATABASE))
    url = database_url(PG_DATABASE)
    redis_url = REDIS_URL if reachable(6379) else None
    try:
        migrate(url)
        measured = asyncio.run(
            _measure(measurement_settings(url, redis_url, REDIS_PREFIX), authors, items, repeats)
        )
        return {"redis": redis_url is not None, **measured}
    finally:
        asyncio.run(fresh_postgres_database(PG_DATABASE, drop_only=True))
        if redis_url:
            forget_redis_prefix(REDIS_PREFIX)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--authors", type=int, default=1_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=200, help="requests per measurement")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    report: dict[str, Any] = {
        "authors": args.authors,
        "items": args.items,
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "backends": {},
    }
    for name in backends:
        if name == "postgres" and not reachable(5432):
            print("PostgreSQL is not reachable on 127.0.0.1:5432", file=sys.stderr)
            return 2
        report["backends"][name] = run_backend(name, args.authors, args.items, args.repeats)
    rows = ["first page", "page 2", "deep page", "few authors"]
    print(f"feed latency, {args.authors} followed authors, {args.items} items, ms (p50 / p95)")
    print(f"{'':14}" + "".join(f"{name:>22}" for name in backends))
    for row in rows:
        figures = [report["backends"][name][row] for name in backends]
        cells = "".join(f"{f['p50_ms']:>11} / {f['p95_ms']:<8}" for f in figures)
        print(f"{row:14}{cells}")
    for name in backends:
        print(f"\n{name} plan of the first page:")
        print("\n".join(report["backends"][name]["plan"]))
        print(f"\n{name} plan of the deep page:")
        print("\n".join(report["backends"][name]["deep_plan"]))
    out = ROOT / "var" / "feed-latency.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
