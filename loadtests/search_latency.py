"""Search latency on a realistic collection: `GET /api/v1/content?q=…` p50 / p95 per backend.

A measurement, not a test: it prints figures and asserts nothing about them.

1. Creates a fresh database per backend — a temporary SQLite file; on PostgreSQL the database
   `inkwell_search_bench` (dropped at the end; Redis keys under `inkwell-search-bench:`) —
   and migrates it.
2. Writes `--items` items (default 10,000) by 100 authors straight into the write tables:
   titles of 3-8 words and bodies of 60-240 words drawn from a 400-word English vocabulary
   with Zipf-like frequencies (so some words are in most items and many in few), up to 4 tags
   each, one item in ten a draft. Then `rebuild-read-models` projects them (the same read
   models incremental projection produces: `--check` proves them equal), and PostgreSQL is
   ANALYZEd.
3. Serves the application in-process (httpx over ASGI: the whole middleware stack, no
   socket) and times sequential requests:
   * `1 word` / `2 words`: distinct searches, so every one misses the cache and runs the
     query (relevance ranking of every match, first page of 20);
   * `+ tag`: a one-word search narrowed by a tag; `page 2`: the next page through the
     cursor; `common word`: the word in the most items (the worst case: rank them all);
   * `cached`: a repeated search (a cache hit).
4. Prints one table (ms) and writes `var/search-latency.json`.

Run: `.venv/bin/python loadtests/search_latency.py [--backend sqlite|postgres|both]`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _inprocess import fresh_postgres_database, latency_summary, measurement_settings, timed
from _server import REDIS_URL, ROOT, database_url, forget_redis_prefix, reachable

from src.cli import migrate
from src.core.tables import content_tags, contents, tags, users
from src.main import create_app
from src.read_models import rebuild_read_models
from src.settings import Settings
from src.slices.content.keys import LIST_GENERATION
from src.slices.content.rules import numbered_slug, slug_base

PG_DATABASE = "inkwell_search_bench"
REDIS_PREFIX = "inkwell-search-bench:"
_VOCABULARY = """
time year people way day man thing woman life child world school state family student
group country problem hand part place case week company system program question work
government number night point home water room mother area money story fact month lot right
study book eye job word business issue side kind head house service friend father power hour
game line end member law car city community name president team minute idea kid body
information back parent face others level office door health person art war history party
result change morning reason research girl guy moment air teacher force education foot boy
age policy process music market sense nation plan college interest death experience effect
class control care field development role effort rate heart drug show leader light voice wife
police mind price report decision son view relationship town road arm difference value building
action model season society tax director position player record paper space ground form event
official matter center couple site project activity star table need court oil situation cost
industry figure street image phone data picture practice piece land product doctor wall patient
worker news test movie north love support technology step baby computer type attention film
tree source organization hair window evidence population site garden running runner runs ran
python database search index query cache server network protocol packet kernel thread process
compiler function variable pointer memory garbage collector library framework module package
recipe kitchen bread butter flour sugar coffee espresso tea orchard apple orange lemon river
mountain valley forest ocean island harbor lighthouse bridge tunnel railway station airport
journey travel voyage map compass winter summer spring autumn rain snow storm thunder sun moon
planet galaxy telescope rocket orbit satellite engine battery solar wind energy climate carbon
music guitar piano violin drum song melody rhythm concert opera theater dance painting sculpture
poetry novel chapter author editor publisher draft article essay review comment reader writer
garden flower rose tulip seed soil harvest farmer market village castle king queen knight dragon
"""
WORDS = _VOCABULARY.split()
TAGS = [f"topic-{n}" for n in range(60)]


def _zipf_weights(count: int) -> list[float]:
    return [1.0 / (rank + 1) ** 0.9 for rank in range(count)]


def _sentence(rng: random.Random, weights: list[float], words: int) -> str:
    return " ".join(rng.choices(WORDS, weights=weights, k=words))


async def _seed(url: str, items: int) -> dict[str, Any]:
    rng = random.Random(20261208)
    weights = _zipf_weights(len(WORDS))
    now = dt.datetime.now(dt.UTC)
    authors = [uuid.uuid4() for _ in range(100)]
    tag_ids = {name: uuid.uuid4() for name in TAGS}
    engine = create_async_engine(url)
    slugs: dict[str, int] = {}
    taken: set[str] = set()
    content_rows: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    for n in range(items):
        created = now - dt.timedelta(seconds=items - n)
        title = _sentence(rng, weights, rng.randint(3, 8)).capitalize()
        base = slug_base(title)
        number = slugs.get(base, 0) + 1
        while numbered_slug(base, number) in taken:
            number += 1
        slugs[base] = number
        slug = numbered_slug(base, number)
        taken.add(slug)
        status = "draft" if n % 10 == 9 else "published"
        content_id = uuid.uuid4()
        content_rows.append(
            {
                "id": content_id,
                "author_id": authors[n % len(authors)],
                "slug": slug,
                "slug_base": base,
                "slug_number": number,
                "title": title,
                "body": _sentence(rng, weights, rng.randint(60, 240)) + ".",
                "image": None,
                "status": status,
                "published_at": created if status == "published" else None,
                "created_at": created,
                "updated_at": created,
            }
        )
        for name in rng.sample(TAGS[:20] if n % 2 else TAGS, k=rng.randint(0, 4)):
            tag_rows.append({"content_id": content_id, "tag_id": tag_ids[name]})
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(users),
                [
                    {
                        "id": author,
                        "name": f"Author {i}",
                        "email": f"author{i}@example.com",
                        "password_hash": "not-a-login",
                        "display_name": f"Author {i}",
                        "role": "creator",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i, author in enumerate(authors)
                ],
            )
            await connection.execute(
                insert(tags), [{"id": i, "name": name} for name, i in tag_ids.items()]
            )
            for start in range(0, len(content_rows), 1000):
                await connection.execute(insert(contents), content_rows[start : start + 1000])
            await connection.execute(insert(content_tags), tag_rows)
        started = time.perf_counter()
        await rebuild_read_models(engine)
        projected = time.perf_counter() - started
        report = await rebuild_read_models(engine, check=True)
        if engine.dialect.name == "postgresql":
            async with engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
    return {"rebuild_seconds": round(projected, 2), "check_clean": report.clean}


def _queries(rng: random.Random, count: int, words: int) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        query = " ".join(rng.sample(WORDS, k=words))
        if query not in seen:
            seen.add(query)
            out.append(query)
    return out


async def _measure(settings: Settings, repeats: int) -> dict[str, Any]:
    rng = random.Random(7)
    app = create_app(settings)
    results: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def search(**params: Any) -> httpx.Response:
                return await client.get("/api/v1/content", params=params)

            for warm in _queries(random.Random(1), 20, 1):  # connections, statement caches
                await search(q=warm + " warm")
            matches: list[int] = []
            for label, words in (("1 word", 1), ("2 words", 2)):
                samples: list[float] = []
                for query in _queries(rng, repeats, words):
                    response = await timed(samples, lambda q=query: search(q=q))
                    matches.append(len(response.json()["items"]))
                results[label] = latency_summary(samples)
            samples = []
            for query in _queries(rng, repeats, 1):
                tag = rng.choice(TAGS[:20])
                await timed(samples, lambda q=query, t=tag: search(q=q, tag=t))
            results["+ tag"] = latency_summary(samples)
            samples = []
            for query in _queries(rng, repeats, 1):
                first = (await search(q=query)).json()
                if first["next_cursor"]:
                    cursor = first["next_cursor"]
                    await timed(samples, lambda q=query, c=cursor: search(q=q, cursor=c))
            results["page 2"] = latency_summary(samples)
            samples = []
            cache = app.state.resources.cache
            for _ in range(repeats):  # the most frequent word, the list cache emptied each time
                await cache.invalidate(generations=(LIST_GENERATION,))
                await timed(samples, lambda: search(q=WORDS[0]))
            results["common word"] = latency_summary(samples)
            samples = []
            await search(q="lighthouse harbor")
            for _ in range(repeats):
                await timed(samples, lambda: search(q="lighthouse harbor"))
            results["cached"] = latency_summary(samples)
            results["first_page_items_mean"] = round(statistics.mean(matches), 1)
    return results


def run_backend(name: str, items: int, repeats: int) -> dict[str, Any]:
    if name == "sqlite":
        folder = tempfile.mkdtemp(prefix="inkwell-search-")
        url = f"sqlite+aiosqlite:///{folder}/inkwell.db"
        migrate(url)
        seeded = asyncio.run(_seed(url, items))
        return {
            **seeded,
            **asyncio.run(_measure(measurement_settings(url, None, REDIS_PREFIX), repeats)),
        }
    asyncio.run(fresh_postgres_database(PG_DATABASE))
    url = database_url(PG_DATABASE)
    redis_url = REDIS_URL if reachable(6379) else None
    try:
        migrate(url)
        seeded = asyncio.run(_seed(url, items))
        measured = asyncio.run(
            _measure(measurement_settings(url, redis_url, REDIS_PREFIX), repeats)
        )
        return {**seeded, "redis": redis_url is not None, **measured}
    finally:
        asyncio.run(fresh_postgres_database(PG_DATABASE, drop_only=True))
        if redis_url:
            forget_redis_prefix(REDIS_PREFIX)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=200, help="requests per measurement")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    report: dict[str, Any] = {
        "items": args.items,
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "backends": {},
    }
    for name in backends:
        if name == "postgres" and not reachable(5432):
            print("PostgreSQL is not reachable on 127.0.0.1:5432", file=sys.stderr)
            return 2
        report["backends"][name] = run_backend(name, args.items, args.repeats)
    rows = ["1 word", "2 words", "+ tag", "page 2", "common word", "cached"]
    print(f"search latency, {args.items} items, ms (p50 / p95)")
    print(f"{'':14}" + "".join(f"{name:>22}" for name in backends))
    for row in rows:
        figures = [report["backends"][name][row] for name in backends]
        cells = "".join(f"{f['p50_ms']:>11} / {f['p95_ms']:<8}" for f in figures)
        print(f"{row:14}{cells}")
    for name in backends:
        figures = report["backends"][name]
        print(
            f"{name}: rebuild {figures['rebuild_seconds']} s, check clean: "
            f"{figures['check_clean']}, mean items on a first page "
            f"{figures['first_page_items_mean']}"
        )
    out = ROOT / "var" / "search-latency.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
