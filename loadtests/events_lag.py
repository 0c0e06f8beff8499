"""Event delivery figures: lag at a steady rate, one worker's throughput, a SIGKILL's cost.

On PostgreSQL + Redis (`inkwell serve` records, one `inkwell worker` delivers) and on the
embedded default (SQLite, the serve process delivers), with one measuring handler
(loadtests/event_apps.py) that stores each event's commit-to-handled lag:

1. steady: `--rate` events/s (each a `PATCH /api/v1/users/me`, one `ProfileUpdated`) for
   `--seconds`, open loop; lag p50 / p99 / max;
2. throughput: with the deliverer stopped, `--backlog` events are committed (by the users
   slice's own use case, in batches), then the deliverer starts: handled events / s between
   the first and the last handling;
3. SIGKILL (PostgreSQL + Redis): the worker is killed during a steady run and started again at
   once; the entries it held wait `EVENT_CLAIM_SECONDS` (`--claim-seconds`) before the new
   worker claims them: the worst lag of that run is what the SIGKILL cost.

It prints figures and asserts nothing.

    .venv/bin/python loadtests/events_lag.py [--backend both|postgres|sqlite] [--rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtests._server import (
    BIN,
    PG_ADMIN_URL,
    REDIS_URL,
    ROOT,
    Server,
    database_url,
    forget_redis_prefix,
    free_port,
)
from loadtests.event_apps import LAG_DDL
from src.cli import migrate

SECRET = "events-lag-secret-that-is-long-enough-0123456789"  # noqa: S105 - a local run
USERS = 20


class Lags:
    def __init__(self, url: str) -> None:
        self.url = url

    async def rows(self) -> list[tuple[float, float]]:
        sql = "SELECT lag_ms, handled_at FROM load_lag"
        if self.url.startswith("sqlite"):
            path = self.url.removeprefix("sqlite+aiosqlite:///")

            def read() -> list[tuple[float, float]]:
                with sqlite3.connect(path) as connection:
                    return [tuple(r) for r in connection.execute(sql)]  # type: ignore[misc]

            return await asyncio.to_thread(read)
        import asyncpg

        connection = await asyncpg.connect(self.url.replace("+asyncpg", ""))
        try:
            return [(r[0], r[1]) for r in await connection.fetch(sql)]
        finally:
            await connection.close()

    async def execute(self, sql: str) -> None:
        if self.url.startswith("sqlite"):
            path = self.url.removeprefix("sqlite+aiosqlite:///")
            with sqlite3.connect(path) as connection:
                connection.execute(sql)
            return
        import asyncpg

        connection = await asyncpg.connect(self.url.replace("+asyncpg", ""))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    async def wait_for(self, count: int, timeout: float = 120) -> list[tuple[float, float]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.rows()
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.25)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def summary(lags: list[float]) -> str:
    return (
        f"n={len(lags)} p50={statistics.median(lags):.1f} ms p99={percentile(lags, 0.99):.1f} ms "
        f"max={max(lags):.1f} ms"
    )


async def users(base: str) -> list[dict[str, str]]:
    headers = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for n in range(USERS):
            body = {"name": f"Load {n}", "email": f"load.{n}.{uuid.uuid4().hex[:6]}@example.com",
                    "password": "correct horse battery"}  # fmt: skip
            answer = await client.post("/api/v1/signup", json=body)
            assert answer.status_code == 201, answer.text
            credentials = {"email": body["email"], "password": body["password"]}
            login = await client.post("/api/v1/auth/login", json=credentials)
            headers.append({"Authorization": f"Bearer {login.json()['access_token']}"})
    return headers


async def steady(base: str, headers: list[dict[str, str]], rate: float, seconds: float) -> int:
    """Open loop: one PATCH every 1/rate s, whatever the answers take; events committed."""
    sent = 0
    failures = 0
    tasks: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def one(n: int) -> None:
            nonlocal failures
            try:
                answer = await client.patch(
                    "/api/v1/users/me",
                    json={"display_name": f"Name {n} {uuid.uuid4().hex[:6]}"},
                    headers=headers[n % len(headers)],
                )
            except httpx.TransportError:
                failures += 1
                return
            if answer.status_code != 200:
                failures += 1

        start = time.monotonic()
        total = int(rate * seconds)
        for n in range(total):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.gather(*tasks)
        achieved = sent / (time.monotonic() - start)
    print(f"  sent {sent} updates at {achieved:.0f}/s ({failures} failed)")
    return sent - failures


async def backlog(database_url: str, count: int) -> None:
    """Commit `count` ProfileUpdated events as the users slice would (outbox rows included)."""
    from src.core.db.engines import create_engine
    from src.core.db.uow import SqlUnitOfWork, command_transaction
    from src.core.tables import utcnow
    from src.main import build_dispatcher, build_recorder
    from src.settings import Settings
    from src.slices.users.events import ProfileUpdated

    settings = Settings(database_url=database_url, jwt_secret=SECRET)
    engine = create_engine(database_url, settings, "write")
    recorder = build_recorder()
    dispatcher = build_dispatcher()
    try:
        for start in range(0, count, 500):
            # Not projected (the users do not exist): only the recorder is wanted here.
            async with command_transaction(
                SqlUnitOfWork(engine, type(dispatcher)(), (recorder,))
            ) as uow:
                for _ in range(min(500, count - start)):
                    uow.emit(
                        ProfileUpdated(
                            user_id=uuid.uuid4(),
                            name="n",
                            display_name="d",
                            phone_number=None,
                            country=None,
                            state=None,
                            updated_at=utcnow(),
                            changed=frozenset({"display_name"}),
                        )
                    )
    finally:
        await engine.dispose()


async def recreate_database(name: str) -> str:
    """Drop (ours) and create PostgreSQL database `name`, migrated by this checkout's code."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    url = database_url(name)
    await asyncio.to_thread(migrate, url)
    return url


def api_server(env: dict[str, str], log: Path, embedded: bool) -> Server:
    port = free_port()
    factory = "event_apps:create_app" if embedded else "src.main:create_served_app"
    argv = [str(BIN / "python"), "-m", "uvicorn", "--factory", factory, "--app-dir",
            str(ROOT / "loadtests"), "--host", "127.0.0.1", "--port", str(port), "--loop",
            "uvloop", "--http", "httptools", "--no-access-log"]  # fmt: skip
    return Server("inkwell", argv, port, {**env, "PORT": str(port)}, log)


def worker_server(env: dict[str, str], log: Path) -> Server:
    port = free_port()
    argv = [str(BIN / "python"), str(ROOT / "loadtests" / "event_apps.py")]
    return Server("worker", argv, port, {**env, "WORKER_PORT": str(port)}, log)


async def run_backend(backend: str, args: argparse.Namespace, out: Path) -> None:
    print(f"== {backend}")
    prefix = f"inkwell-events-lag-{uuid.uuid4().hex[:6]}:"
    if backend == "postgres":
        url = await recreate_database("inkwell_events_lag")
    else:
        path = out / "events_lag.db"
        path.unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
        await asyncio.to_thread(migrate, url)
    lags = Lags(url)
    await lags.execute(LAG_DDL)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": url,
        "APP_ENV": "production",
        "JWT_SECRET": SECRET,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_ENABLED": "false",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "HOST": "127.0.0.1",
        "EVENT_CLAIM_SECONDS": str(args.claim_seconds),
    }
    embedded = backend == "sqlite"
    if not embedded:
        env |= {"REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": prefix}
    api = api_server(env, out / f"api-{backend}.log", embedded)
    worker = None if embedded else worker_server(env, out / f"worker-{backend}.log")
    deliverer = api if worker is None else worker
    try:
        api.start()
        if worker is not None:
            worker.start()
        headers = await users(api.url)
        # 1. steady rate
        handled = len(await lags.rows())
        sent = await steady(api.url, headers, args.rate, args.seconds)
        rows = await lags.wait_for(handled + sent)
        print(f"  steady {args.rate:.0f}/s lag: {summary([r[0] for r in rows[handled:]])}")
        # 2. throughput of one deliverer on a backlog
        deliverer.stop()
        before = len(await lags.rows())
        await backlog(url, args.backlog)
        deliverer.start()
        rows = await lags.wait_for(before + args.backlog, timeout=300)
        times = sorted(r[1] for r in rows[before:])
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        span = times[-1] - times[0]
        print(f"  throughput: {len(times)} events in {span:.2f} s = {rate:.0f} events/s")
        # 3. SIGKILL of the worker during a steady run
        if worker is not None and not args.no_kill:
            before = len(await lags.rows())

            async def kill_soon() -> None:
                await asyncio.sleep(2.0)
                assert worker.process is not None
                worker.process.send_signal(signal.SIGKILL)
                worker.process.wait()
                killed = time.monotonic()
                worker.start()
                print(f"  worker SIGKILLed and restarted in {time.monotonic() - killed:.2f} s")

            killer = asyncio.create_task(kill_soon())
            try:
                sent = await steady(api.url, headers, args.rate, 6.0)
            finally:
                await killer  # never leave a restarted worker behind the clean-up below
            rows = await lags.wait_for(before + sent, timeout=args.claim_seconds + 120)
            window = [r[0] for r in rows[before:]]
            print(
                f"  with a SIGKILL (EVENT_CLAIM_SECONDS={args.claim_seconds:g}): {summary(window)}"
            )
    finally:
        for server in (worker, api):
            if server is not None:
                server.stop()
        if not embedded:
            forget_redis_prefix(prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["both", "postgres", "sqlite"], default="both")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--claim-seconds", type=float, default=30.0)
    parser.add_argument("--no-kill", action="store_true", help="skip the SIGKILL run")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="inkwell-events-lag-"))
    print(f"logs in {out}")
    backends = ["postgres", "sqlite"] if args.backend == "both" else [args.backend]
    for backend in backends:
        asyncio.run(run_backend(backend, args, out))


if __name__ == "__main__":
    main()
