"""Server CPU per request for one route, two source trees side by side, alternated.

Starts `inkwell serve` (one uvicorn worker, `APP_ENV=production`, JSON access logs, rate
limiting on with a limit no run reaches, metrics on, no OTLP endpoint) from each source tree
given with `--source` (default: this checkout), each on a database of its own — PostgreSQL +
Redis (a fresh `inkwell_request_cpu_N`, migrated by this checkout) or the embedded SQLite (a
file in a temporary folder, migrated by the tree itself) — seeded alike with one author and 25
published items. Then, for
`--rounds` rounds, drives each server in turn with the load generator (`--connections`,
`--duration`) and divides the server process's CPU time (psutil: user + system, process and
children) over the run by the requests it answered. Alternating the trees round by round
spreads the load of a shared machine over both; the medians are printed.

Compare trees with a `git worktree`/`git archive` of the commit before a change:

    git archive HEAD~1 | tar -x -C /tmp/before
    .venv/bin/python loadtests/request_cpu.py --backend both --source /tmp/before --source .
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

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
from bench import UNREACHABLE_LIMIT, Driver, seed

REDIS_PREFIX = "inkwell-request-cpu:"
ROUTES = {
    "user": "/api/v1/users/{user_id}",
    "content": "/api/v1/content/{content_id}",
    "list": "/api/v1/content",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--source", type=Path, action="append", help="a source tree (repeat)")
    parser.add_argument("--route", choices=tuple(ROUTES), default="user")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=6)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every server, over the defaults above (repeat)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=VALUE[,NAME=VALUE]",
        help="one more server of the first tree with these settings (repeat): what they cost",
    )
    return parser.parse_args()


def server_for(
    backend: str, index: int, source: Path, folder: Path, overrides: dict[str, str]
) -> Server:
    if backend == "postgres":
        url = create_database(f"inkwell_request_cpu_{index}", recreate=True)
    else:  # the embedded default migrates itself at start-up, with the tree's own migrations
        url = f"sqlite+aiosqlite:///{folder}/inkwell-{index}.db"
    env = {
        "DATABASE_URL": url,
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_DEFAULT": UNREACHABLE_LIMIT,
        "RATE_LIMIT_AUTH": UNREACHABLE_LIMIT,
        "BCRYPT_ROUNDS": "4",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "APP_ENV": "production",
        "JWT_SECRET": uuid.uuid4().hex * 2,
    }
    if backend == "postgres":
        env |= {"REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": f"{REDIS_PREFIX}{index}:"}
    env |= overrides
    log = ROOT / "var" / "request-cpu" / f"{backend}-{index}.log"
    name = f"{index}:{source}" + "".join(f" {k}={v}" for k, v in overrides.items())
    return inkwell_server(free_port(), env, log, source=source.resolve(), name=name)


def measure(backend: str, args: argparse.Namespace, sources: list[Path]) -> dict[str, Any]:
    driver = Driver("wrk" if shutil.which("wrk") else "python", ROOT / "var" / "request-cpu")
    samples: dict[str, list[dict[str, Any]]] = {}
    common = dict(setting.split("=", 1) for setting in args.env)
    runs = [(source, common) for source in sources] + [
        (sources[0], common | dict(item.split("=", 1) for item in variant.split(",")))
        for variant in args.variant
    ]
    with tempfile.TemporaryDirectory() as folder:
        servers = [
            server_for(backend, index, source, Path(folder), overrides)
            for index, (source, overrides) in enumerate(runs)
        ]
        started: list[Server] = []
        try:
            paths = {}
            for server in servers:  # each on its own database, seeded alike
                server.start()
                started.append(server)
                paths[server.name] = ROUTES[args.route].format(**seed(server.url))
                samples[server.name] = []
            for server in servers:  # warm-up: connections, pools, prepared statements
                driver.run(server.url + paths[server.name], args.connections, 2)
            for round_number in range(1, args.rounds + 1):
                order = servers if round_number % 2 else list(reversed(servers))
                for server in order:
                    url = server.url + paths[server.name]
                    figures = driver.run(url, args.connections, args.duration, server=server)
                    samples[server.name].append(figures)
                    print(f"  {backend} round {round_number} {server.name}: {figures}")
        finally:
            for server in reversed(started):
                server.stop()
            if backend == "postgres":
                forget_redis_prefix(REDIS_PREFIX)
    return {
        name: {
            "cpu_us": statistics.median(run["cpu_us"] for run in runs),
            "rps": statistics.median(run["rps"] for run in runs),
            "errors": sum(run["errors"] for run in runs),
        }
        for name, runs in samples.items()
    }


def main() -> int:
    args = parse_args()
    sources: list[Path] = args.source or [ROOT]
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if "postgres" in backends and not (reachable(5432) and reachable(6379)):
        print("request_cpu: PostgreSQL or Redis is not reachable", file=sys.stderr)
        return 2
    results = {backend: measure(backend, args, sources) for backend in backends}
    print(f"\n{ROUTES[args.route]}: server CPU per request, medians of {args.rounds} rounds")
    for backend, per_source in results.items():
        for name, figures in per_source.items():
            print(
                f"  {backend:<8} {name:<40} {figures['cpu_us']:8.1f} µs/request "
                f"{figures['rps']:8.1f} req/s  errors {figures['errors']}"
            )
    failed = any(f["errors"] for per in results.values() for f in per.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
