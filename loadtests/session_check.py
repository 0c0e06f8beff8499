"""What the per-request session check costs an authenticated request, in µs of CPU.

Every authenticated request looks its session up on the primary (`src/core/identity.py`). This
measures, in one process on uvloop, against a fresh database of each backend (PostgreSQL when
reachable, and the embedded SQLite):

1. the check alone, `live_principal()`, as shipped: a prepared statement on the driver's own
   connection from the write engine's pool (held between checks);
2. the same statement through SQLAlchemy Core on a pooled autocommit connection (the
   alternative it replaces), and verifying the JWT alone (what every request paid before);
3. a whole authenticated request, `GET /api/v1/users/me` through every middleware in process,
   with the check and with the check replaced by the JWT's claims: the difference is the
   check's share of a request.

CPU is `time.process_time()` over many iterations (all threads, so aiosqlite's worker thread
counts too), divided by the iterations; wall time is shown beside it. Numbers from a machine
shared with other work are noisy: compare lines of one run, not runs.

    .venv/bin/python loadtests/session_check.py [--iterations 3000] [--backend sqlite|postgres]
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
from src.core import identity
from src.core.identity import Principal
from src.main import create_app
from src.settings import Settings

SECRET = "session-check-benchmark-secret-0123456789abcdef"  # noqa: S105 - a throwaway database


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3, help="median of this many loops")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    return parser.parse_args()


async def per_call(
    call: Callable[[], Awaitable[Any]], iterations: int, rounds: int
) -> tuple[float, float]:
    """(median µs of CPU, median µs of wall time) per call."""
    for _ in range(min(200, iterations)):
        await call()
    cpu, wall = [], []
    for _ in range(rounds):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for _ in range(iterations):
            await call()
        cpu.append((time.process_time() - cpu_start) / iterations * 1e6)
        wall.append((time.perf_counter() - wall_start) / iterations * 1e6)
    return statistics.median(cpu), statistics.median(wall)


@contextlib.asynccontextmanager
async def application(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def measure(name: str, settings: Settings, iterations: int, rounds: int) -> None:
    async with application(settings) as client:
        body = {"name": "Bench", "email": f"{uuid.uuid4().hex}@example.com", "password": "x" * 12}
        assert (await client.post("/api/v1/signup", json=body)).status_code == 201
        credentials = {"email": body["email"], "password": body["password"]}
        login = await client.post("/api/v1/auth/login", json=credentials)
        tokens = login.json()
        resources = client.app.state.resources  # type: ignore[attr-defined]
        primary = resources.database.primary
        engine = primary.engine
        claims = resources.tokens.decode(tokens["access_token"], "access")
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}

        async def check() -> None:
            assert await identity.live_principal(primary, claims) is not None

        async def core() -> None:
            assert await identity._core_look_up(engine, claims) is not None

        async def jwt_only() -> None:
            resources.tokens.decode(tokens["access_token"], "access")

        async def me() -> None:
            response = await client.get("/api/v1/users/me", headers=headers)
            assert response.status_code == 200

        lines = [
            ("session check, driver prepared statement (shipped)", check),
            ("session check, SQLAlchemy Core", core),
            ("JWT verification alone", jwt_only),
        ]
        results = {label: await per_call(call, iterations, rounds) for label, call in lines}

        # Inside real requests: the CPU spent while the check runs (nothing else is in flight).
        shipped = identity.live_principal
        spent: list[float] = []

        async def timed(*args: Any) -> Principal | None:
            started = time.process_time()
            try:
                return await shipped(*args)
            finally:
                spent.append(time.process_time() - started)

        async def without_check(_engine: Any, token: Any) -> Principal:
            return Principal(token.subject, token.session_id, "creator")

        with_check: list[tuple[float, float]] = []
        without: list[tuple[float, float]] = []
        for _ in range(rounds):  # alternated, so drift on a busy machine hits both alike
            identity.live_principal = timed  # type: ignore[assignment]
            with_check.append(await per_call(me, iterations, 1))
            identity.live_principal = without_check  # type: ignore[assignment]
            without.append(await per_call(me, iterations, 1))
        identity.live_principal = shipped
        in_request = statistics.median(spent) * 1e6
    results["GET /api/v1/users/me (whole request, in process)"] = _median(with_check)
    results["GET /api/v1/users/me, the check replaced by the claims"] = _median(without)
    print(f"\n{name}: µs per call (median of {rounds} × {iterations})")
    for label, (cpu, wall) in results.items():
        print(f"  {label:56s} CPU {cpu:7.1f}   wall {wall:7.1f}")
    print(f"  {'the check inside those requests':56s} CPU {in_request:7.1f}")
    delta = _median(with_check)[0] - _median(without)[0]
    print(f"  {'request with the check minus without':56s} CPU {delta:7.1f}")


def _median(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(c for c, _ in samples), statistics.median(w for _, w in samples)


def settings_for(database_url: str, redis_url: str | None) -> Settings:
    return Settings.model_validate(
        {
            "app_env": "test",
            "database_url": database_url,
            "redis_url": redis_url,
            "redis_key_prefix": f"inkwell-bench-sessions-{uuid.uuid4().hex[:8]}:",
            "jwt_secret": SECRET,
            "bcrypt_rounds": 4,
            "log_level": "WARNING",
            "log_format": "json",
            "rate_limit_enabled": False,
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


def main() -> int:
    args = parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{folder}/bench.db"
            migrate(url)
            uvloop.run(measure("SQLite", settings_for(url, None), args.iterations, args.rounds))
    if args.backend in ("postgres", "both"):
        if not (reachable(5432) and reachable(6379)):
            print("PostgreSQL or Redis is not reachable: skipping that backend")
            return 2 if args.backend == "postgres" else 0
        name = f"inkwell_bench_sessions_{uuid.uuid4().hex[:8]}"
        url = create_database(name)
        try:
            settings = settings_for(url, REDIS_URL)
            uvloop.run(measure("PostgreSQL + Redis", settings, args.iterations, args.rounds))
        finally:
            asyncio.run(drop_database(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
