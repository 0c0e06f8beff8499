"""Memory after 50,000 GETs of random unknown ids: does a miss leave anything behind?

A measurement, not a test: it prints figures and asserts nothing about them (exit status 1
only when an answer was not the expected 404).

Starts `inkwell serve` (one worker, production-like: JSON access log, metrics, the rate
limiter on with a limit no run reaches) on the embedded SQLite default and, when they answer,
on PostgreSQL + Redis (database `inkwell_unknown_ids`, Redis keys under
`inkwell-unknown-ids:`); sends `--warmup` (5,000) GETs of random unknown content ids to fill
pools, caches and lazy imports, samples the server's RSS, then `--requests` (50,000) more from
`--connections` (32) keep-alive connections, sampling RSS once a second, and reports the RSS
after the warm-up, the peak and the end, and the drift (end vs after warm-up) in percent.

Run: `.venv/bin/python loadtests/unknown_ids.py [--backend sqlite|postgres|both]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    REDIS_URL,
    ROOT,
    RssSampler,
    create_database,
    forget_redis_prefix,
    free_port,
    inkwell_server,
    reachable,
)

PG_DATABASE = "inkwell_unknown_ids"
REDIS_PREFIX = "inkwell-unknown-ids:"
UNREACHABLE_LIMIT = "1000000000/minute"


async def _misses(url: str, count: int, connections: int) -> int:
    """Send `count` GETs of random unknown ids; how many did not answer 404."""
    wrong = 0
    remaining = count
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def connection() -> None:
            nonlocal remaining, wrong
            while remaining > 0:
                remaining -= 1
                answer = await client.get(f"/api/v1/content/{uuid.uuid4()}")
                if answer.status_code != 404:
                    wrong += 1

        await asyncio.gather(*(connection() for _ in range(connections)))
    return wrong


def run_backend(backend: str, warmup: int, requests: int, connections: int) -> dict[str, Any]:
    env = {
        "RATE_LIMIT_DEFAULT": UNREACHABLE_LIMIT,
        "RATE_LIMIT_AUTH": UNREACHABLE_LIMIT,
        "LOG_LEVEL": "INFO",
    }
    if backend == "sqlite":
        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/inkwell.db"
        from src.cli import migrate

        migrate(env["DATABASE_URL"])
    else:
        env["DATABASE_URL"] = create_database(PG_DATABASE, recreate=True)
        env["REDIS_URL"] = REDIS_URL
        env["REDIS_KEY_PREFIX"] = REDIS_PREFIX
    log = Path(tempfile.mkdtemp(prefix="inkwell-unknown-ids-")) / "server.log"
    server = inkwell_server(free_port(), env, log)
    server.start()
    try:
        assert server.process is not None
        wrong = asyncio.run(_misses(server.url, warmup, connections))
        with RssSampler(server.process.pid, interval=1.0) as sampler:
            wrong += asyncio.run(_misses(server.url, requests, connections))
        figures = sampler.summary(warmup_fraction=0.0)
    finally:
        server.stop()
        if backend == "postgres":
            forget_redis_prefix(REDIS_PREFIX)
    return {"not_404": wrong, **figures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "unknown-ids.json")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if "postgres" in backends and not (reachable(5432) and reachable(6379)):
        if args.backend == "postgres":
            print("PostgreSQL or Redis is not reachable", file=sys.stderr)
            return 2
        backends = ["sqlite"]
    report = {
        backend: run_backend(backend, args.warmup, args.requests, args.connections)
        for backend in backends
    }
    print(f"RSS over {args.requests} GETs of unknown ids (after {args.warmup} to warm up), MiB")
    for backend, figures in report.items():
        print(
            f"{backend:10} after warm-up {figures['start_mib']:>7}  peak {figures['peak_mib']:>7}"
            f"  end {figures['end_mib']:>7}  drift {figures['drift_percent']:>5} %"
            f"  (not 404: {figures['not_404']})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(figures["not_404"] for figures in report.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
