"""What the in-process latency tools share (`search_latency.py`, `feed_latency.py`,
`bench_scale.py`): a throwaway PostgreSQL database, the application's settings for a
measurement, and the latency summary they all print."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable

import httpx
from _server import PG_ADMIN_URL
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from src.settings import Settings


async def fresh_postgres_database(name: str, *, drop_only: bool = False) -> None:
    """Drop database `name` (the tool's own: the only one it may drop) and create it anew,
    or only drop it (`drop_only`, at the end of a run)."""
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            if not drop_only:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()


def measurement_settings(url: str, redis_url: str | None, redis_prefix: str) -> Settings:
    """The application as measured: no rate limit (one client sends everything), fast
    password hashing for the accounts a tool makes, quiet JSON logs."""
    return Settings.model_validate(
        {
            "database_url": url,
            "redis_url": redis_url,
            "redis_key_prefix": redis_prefix,
            "rate_limit_enabled": False,
            "bcrypt_rounds": 4,
            "log_level": "WARNING",
            "log_format": "json",
        }
    )


def latency_summary(samples: list[float]) -> dict[str, float]:
    """Count, p50, p95 and max of `samples` (seconds), in milliseconds."""
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def timed(
    samples: list[float], request: Callable[[], Awaitable[httpx.Response]]
) -> httpx.Response:
    """`request()`, its duration appended to `samples`; it must answer 200."""
    started = time.perf_counter()
    response = await request()
    samples.append(time.perf_counter() - started)
    assert response.status_code == 200, response.text
    return response
