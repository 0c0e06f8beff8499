"""Server CPU per request for the cached reads, on PostgreSQL + Redis, for any source tree.

Starts one Inkwell process (uvicorn, uvloop, httptools, `APP_ENV=production`, JSON logs to a
file, metrics on, rate limiting on with a limit no run reaches) from `--root` (default: this
checkout; point it at an export of another commit to compare), seeds one author with 25 items,
warms the cache, then for each target and round drives `loadgen.py` for `--duration` seconds
and divides the server process's CPU time (user + system, psutil) by the requests served.
Rounds alternate the targets; the medians are printed as one JSON line. The machine may be
shared: compare trees by alternating runs of this script, never by one run each.

    python loadtests/cpu_per_request.py [--root DIR] [--rounds 3] [--duration 8]
                                        [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import psutil

HERE = Path(__file__).resolve().parent
PG = "postgresql://postgres@127.0.0.1:5432"
UNREACHABLE_LIMIT = "1000000000/minute"


def _request(url: str, method: str = "GET", body: Any = None, token: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read() or b"null")


async def _fresh_database(name: str) -> None:
    connection = await asyncpg.connect(f"{PG}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=HERE.parent)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--database", default="inkwell_cpu_per_request")
    args = parser.parse_args()
    root = args.root.resolve()
    asyncio.run(_fresh_database(args.database))
    database_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{args.database}"
    port = 18000 + os.getpid() % 1000
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "APP_ENV": "production",
        "LOG_FORMAT": "json",
        "DATABASE_URL": database_url,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "REDIS_KEY_PREFIX": f"inkwell-cpu-{uuid.uuid4().hex[:8]}:",
        "JWT_SECRET": "cpu-per-request-secret-0123456789abcdef0123456789abcdef",
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_DEFAULT": UNREACHABLE_LIMIT,
        "RATE_LIMIT_AUTH": UNREACHABLE_LIMIT,
        "SHUTDOWN_DRAIN_SECONDS": "0",
    }
    subprocess.run(
        [sys.executable, "-m", "src.cli", "migrate"], cwd=root, env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    # The server's own log (JSON access lines), kept for a look after the run.
    log = tempfile.NamedTemporaryFile(prefix="inkwell-cpu-", suffix=".log", delete=False)  # noqa: SIM115
    server = subprocess.Popen(  # noqa: S603 - our own interpreter

        [sys.executable, "-m", "uvicorn", "--factory", "src.main:create_served_app",
         "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
         "--no-access-log"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                _request(base + "/health")
                break
            except OSError:
                time.sleep(0.1)
        email = f"cpu-{uuid.uuid4().hex[:8]}@example.com"
        signup = {"email": email, "password": "correct-horse-battery", "name": "cpu",
                  "display_name": "CPU"}  # fmt: skip
        _request(base + "/api/v1/signup", "POST", signup)
        tokens = _request(
            base + "/api/v1/auth/login", "POST", {"email": email, "password": signup["password"]}
        )
        token = tokens["access_token"]
        item = None
        for n in range(25):
            body = {"title": f"Item {n}", "content": "Body " * 50}
            item = _request(base + "/api/v1/content", "POST", body, token)
        assert item is not None
        targets = {
            "content": f"{base}/api/v1/content/{item['id']}",
            "list": f"{base}/api/v1/content",
        }
        for url in targets.values():
            for _ in range(5):
                _request(url)
        process = psutil.Process(server.pid)
        figures: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, url in targets.items():
                before = process.cpu_times()
                result = subprocess.run(  # noqa: S603 - our own interpreter and script
                    [sys.executable, str(HERE / "loadgen.py"), url,
                     "--connections", str(args.connections), "--duration", str(args.duration)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                after = process.cpu_times()
                line = next(x for x in result.stdout.splitlines() if x.startswith("BENCH_RESULT"))
                stats = json.loads(line.split(" ", 1)[1])
                assert stats["errors"] == 0, stats
                cpu = (after.user - before.user) + (after.system - before.system)
                figures[name].append(cpu / stats["requests"] * 1e6)
        print(
            json.dumps(
                {
                    "root": str(root),
                    "cpu_us_per_request": {
                        name: round(statistics.median(values), 1)
                        for name, values in figures.items()
                    },
                    "rounds": figures,
                }
            )
        )
    finally:
        server.terminate()
        server.wait(30)
        log.close()


if __name__ == "__main__":
    main()
