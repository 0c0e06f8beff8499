"""Server CPU per request: the cost of a read, measured where it is paid.

A measurement, not a test. Throughput on a busy machine says as much about the neighbours as
about the server; the CPU the server process itself spends per answered request does not. For
each target this starts one server process (one uvicorn worker, uvloop + httptools), drives it
with `loadgen.py` for `--duration` seconds at `--connections`, and divides the process's own
CPU time (user + system, from psutil, children included) by the requests answered.

Targets: the ceiling (`ceiling.py`: bare FastAPI returning a content-shaped JSON object), and
Inkwell on the embedded SQLite default and on PostgreSQL + Redis (production settings: JSON
access log, metrics, the rate limiter on with a limit no run reaches, no OTLP endpoint):
a cached content item, the cached first page of the content list, and a user profile.

Rounds alternate the targets (`--rounds`, medians reported), so a neighbour's burst spreads
over all of them. The "share" column is the ceiling's CPU per request divided by the read's:
the budget of docs/performance.md in CPU terms.

Run: `.venv/bin/python loadtests/cpu_per_request.py [--backend sqlite|postgres|both]`.
"""

from __future__ import annotations

import argparse
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

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    REDIS_URL,
    ROOT,
    Server,
    create_database,
    forget_redis_prefix,
    free_port,
    inkwell_server,
    reachable,
)

HERE = Path(__file__).resolve().parent
PG_DATABASE = "inkwell_cpu_bench"
REDIS_PREFIX = "inkwell-cpu-bench:"
UNREACHABLE_LIMIT = "1000000000/minute"


def _call(method: str, url: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read() or b"null")


def _seed(base: str) -> dict[str, str]:
    """One author with 25 items (a full first page), both reads warmed into the cache."""
    email = f"cpu-bench-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"  # noqa: S105 - a throwaway bench account
    user = _call("POST", f"{base}/api/v1/signup", {"name": "Bench", "email": email,
                                                   "password": password})  # fmt: skip
    token = _call("POST", f"{base}/api/v1/auth/login", {"email": email, "password": password})
    item: dict[str, Any] = {}
    for number in range(25):
        item = _call(
            "POST",
            f"{base}/api/v1/content",
            {"title": f"Bench article {number}", "content": "Benchmark body text. " * 40},
            token["access_token"],
        )
    for _ in range(2):
        _call("GET", f"{base}/api/v1/content/{item['id']}")
        _call("GET", f"{base}/api/v1/content")
    return {
        "item": f"/api/v1/content/{item['id']}",
        "first page": "/api/v1/content",
        "profile": f"/api/v1/users/{user['id']}",
    }


def _cpu_seconds(pid: int) -> float:
    process = psutil.Process(pid)
    times = process.cpu_times()
    total = times.user + times.system
    for child in process.children(recursive=True):
        child_times = child.cpu_times()
        total += child_times.user + child_times.system
    return float(total)


def _drive(server: Server, path: str, connections: int, duration: float) -> dict[str, float]:
    assert server.process is not None
    before = _cpu_seconds(server.process.pid)
    done = subprocess.run(  # noqa: S603 - our own script
        [
            sys.executable,
            str(HERE / "loadgen.py"),
            server.url + path,
            f"--connections={connections}",
            f"--duration={duration:g}",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
    )
    spent = _cpu_seconds(server.process.pid) - before
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line.removeprefix("BENCH_RESULT "))
            if result["errors"]:
                raise RuntimeError(f"{path}: {result['errors']} failed requests")
            return {
                "cpu_us": spent / result["requests"] * 1e6,
                "rps": result["requests"] / (result["duration_us"] / 1e6),
            }
    raise RuntimeError(f"loadgen printed no result:\n{done.stdout}{done.stderr}")


def _ceiling(scratch: Path) -> Server:
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "ceiling:app", "--app-dir", str(HERE),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", "uvloop",
        "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return Server("ceiling", argv, port, dict(os.environ), scratch / "ceiling.log")


def _inkwell(backend: str, scratch: Path) -> Server:
    env = {
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_DEFAULT": UNREACHABLE_LIMIT,
        "RATE_LIMIT_AUTH": UNREACHABLE_LIMIT,
        "BCRYPT_ROUNDS": "4",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "APP_ENV": "production",
        "JWT_SECRET": uuid.uuid4().hex * 2,
    }
    if backend == "sqlite":
        from src.cli import migrate

        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/inkwell.db"
        migrate(env["DATABASE_URL"])
    else:
        env["DATABASE_URL"] = create_database(PG_DATABASE, recreate=True)
        env["REDIS_URL"] = REDIS_URL
        env["REDIS_KEY_PREFIX"] = REDIS_PREFIX
        forget_redis_prefix(REDIS_PREFIX)
    return inkwell_server(free_port(), env, scratch / f"inkwell-{backend}.log")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "cpu-per-request.json")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if "postgres" in backends and not (reachable(5432) and reachable(6379)):
        print("PostgreSQL or Redis is not reachable", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="inkwell-cpu-"))
    servers = {"ceiling": _ceiling(scratch), **{b: _inkwell(b, scratch) for b in backends}}
    samples: dict[str, list[float]] = {}
    try:
        for server in servers.values():
            server.start(ready_path="/" if server.name == "ceiling" else "/health")
        paths = {backend: _seed(servers[backend].url) for backend in backends}
        for _ in range(args.rounds):
            samples.setdefault("ceiling", []).append(
                _drive(servers["ceiling"], "/", args.connections, args.duration)["cpu_us"]
            )
            for backend in backends:
                for read, path in paths[backend].items():
                    figures = _drive(servers[backend], path, args.connections, args.duration)
                    samples.setdefault(f"{backend} {read}", []).append(figures["cpu_us"])
    finally:
        for server in servers.values():
            server.stop()
        if "postgres" in backends:
            forget_redis_prefix(REDIS_PREFIX)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ceiling = medians["ceiling"]
    print(f"server CPU per request, µs (median of {args.rounds} rounds; {time.ctime()})")
    for name, value in medians.items():
        share = "" if name == "ceiling" else f"   share {ceiling / value:6.1%}"
        runs = " ".join(f"{v:.0f}" for v in samples[name])
        print(f"  {name:24} {value:8.0f}{share}   ({runs})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"medians_us": medians, "samples_us": samples}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
