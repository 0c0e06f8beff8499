"""Two real Inkwell processes sharing one PostgreSQL database and one Redis."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx

from tests.resilience.servers import InkwellProcess


def inkwell_pair(
    database_url: str, redis_url: str, tmp_path: Path, **env: str
) -> tuple[InkwellProcess, InkwellProcess]:
    prefix = f"inkwell-pair-{uuid.uuid4().hex[:8]}:"
    common = {
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_ENABLED": "false",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "JWT_SECRET": "pair-test-secret-long-enough-for-hs256-0123456789",
        **env,
    }
    return (
        InkwellProcess(env=common, log=tmp_path / "a.log"),
        InkwellProcess(env=common, log=tmp_path / "b.log"),
    )


@contextlib.contextmanager
def running_pair(
    database_url: str, redis_url: str, tmp_path: Path, **env: str
) -> Iterator[tuple[InkwellProcess, InkwellProcess]]:
    """`inkwell_pair(...)`, both started, both stopped at the end whatever happens."""
    a, b = inkwell_pair(database_url, redis_url, tmp_path, **env)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """One sample of the process's /metrics (0 when absent)."""
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def eventually(
    probe: Callable[[], Awaitable[bool]], timeout: float = 10, what: str = "condition"
) -> None:
    start = time.monotonic()
    while not await probe():
        assert time.monotonic() - start < timeout, f"{what} not reached within {timeout}s"
        await asyncio.sleep(0.02)
