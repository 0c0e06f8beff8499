"""`make loadtest`: start Inkwell locally, run the Locust scenarios headless, judge the run.

* Backend: PostgreSQL + Redis when both answer on 127.0.0.1:5432 / :6379 (database
  `inkwell_loadtest`, created and migrated with `inkwell migrate` if missing; Redis keys under
  `inkwell-loadtest:`), else the embedded SQLite default (`var/loadtest/inkwell.db`).
  `--backend sqlite|postgres` forces one.
* Rate limiting is off (`RATE_LIMIT_ENABLED=false`): every virtual user comes from 127.0.0.1.
* Reports: `var/loadtest/inkwell_stats.csv` (+ `_failures`, `_exceptions`, `_stats_history`),
  `report.html`, `summary.json` and the server's own log `server.log`.
* The server's RSS (its process and worker children) is sampled once per second.
* Exit status: 0 only when no request failed and the aggregated p95 is within `--p95-ms`
  (`0` disables that check); 1 otherwise; 2 when the server could not be started.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    BIN,
    REDIS_URL,
    ROOT,
    RssSampler,
    create_database,
    forget_redis_prefix,
    free_port,
    inkwell_server,
    reachable,
)

DATABASE = "inkwell_loadtest"
REDIS_PREFIX = "inkwell-loadtest:"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20, help="concurrent virtual users")
    parser.add_argument("--spawn-rate", type=float, default=5, help="users started per second")
    parser.add_argument("--time", default="1m", help="run time: 30s, 5m, 1h30m …")
    parser.add_argument("--p95-ms", type=float, default=500, help="fail above this p95 (0: off)")
    parser.add_argument("--backend", choices=("auto", "postgres", "sqlite"), default="auto")
    parser.add_argument("--bcrypt-rounds", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "loadtest")
    return parser.parse_args(argv)


def choose_backend(requested: str, out: Path) -> tuple[str, dict[str, str]]:
    if requested == "postgres" or (requested == "auto" and reachable(5432) and reachable(6379)):
        url = create_database(DATABASE)
        forget_redis_prefix(REDIS_PREFIX)
        return "postgres", {
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": REDIS_PREFIX,
        }
    out.mkdir(parents=True, exist_ok=True)
    return "sqlite", {"DATABASE_URL": f"sqlite+aiosqlite:///{out / 'inkwell.db'}"}


def read_stats(path: Path) -> tuple[dict[str, str] | None, list[dict[str, str]]]:
    if not path.exists():
        return None, []
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    total = next((row for row in rows if row["Name"] == "Aggregated"), None)
    return total, [row for row in rows if row["Name"] != "Aggregated"]


def number(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "", "N/A") else 0.0
    except ValueError:
        return 0.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    backend, env = choose_backend(args.backend, out)
    env.update(
        RATE_LIMIT_ENABLED="false",
        BCRYPT_ROUNDS=str(args.bcrypt_rounds),
        LOG_LEVEL="INFO",
    )
    port = free_port()
    server = inkwell_server(port, env, out / "server.log")
    print(f"loadtest: Inkwell on {server.url} ({backend}), {args.users} users for {args.time}")
    try:
        server.start()
    except RuntimeError as error:
        print(f"loadtest: {error}", file=sys.stderr)
        return 2
    assert server.process is not None
    prefix = out / "inkwell"
    command = [
        str(BIN / "locust"),
        "-f",
        str(ROOT / "loadtests" / "locustfile.py"),
        "--headless",
        "--host",
        server.url,
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        args.time,
        "--stop-timeout",
        "10",
        "--csv",
        str(prefix),
        "--csv-full-history",
        "--html",
        str(out / "report.html"),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    started = time.monotonic()
    try:
        with RssSampler(server.process.pid) as rss:
            locust = subprocess.run(  # noqa: S603 - our own virtualenv's locust
                command,
                cwd=ROOT,
                env={**os.environ, "LOADTEST_RUN_ID": uuid.uuid4().hex[:8]},
                check=False,
            )
    finally:
        server_status = server.stop()
    elapsed = time.monotonic() - started

    total, routes = read_stats(Path(f"{prefix}_stats.csv"))
    if total is None:
        print("loadtest: Locust wrote no statistics", file=sys.stderr)
        return 1
    summary = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "backend": backend,
        "users": args.users,
        "run_time": args.time,
        "elapsed_seconds": round(elapsed, 1),
        "requests": int(number(total["Request Count"])),
        "failures": int(number(total["Failure Count"])),
        "requests_per_second": round(number(total["Requests/s"]), 1),
        "p50_ms": number(total["50%"]),
        "p95_ms": number(total["95%"]),
        "p99_ms": number(total["99%"]),
        "max_ms": number(total["Max Response Time"]),
        "rss": rss.summary(),
        "locust_exit_status": locust.returncode,
        "server_exit_status": server_status,
        "routes": {
            f"{row['Type']} {row['Name']}": {
                "requests": int(number(row["Request Count"])),
                "failures": int(number(row["Failure Count"])),
                "p50_ms": number(row["50%"]),
                "p95_ms": number(row["95%"]),
                "p99_ms": number(row["99%"]),
            }
            for row in routes
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    print()
    print(f"{'route':<48} {'requests':>9} {'fail':>5} {'p50':>6} {'p95':>6} {'p99':>6}")
    for name, figures in summary["routes"].items():
        print(
            f"{name:<48} {figures['requests']:>9} {figures['failures']:>5} "
            f"{figures['p50_ms']:>6.0f} {figures['p95_ms']:>6.0f} {figures['p99_ms']:>6.0f}"
        )
    print(
        f"{'total':<48} {summary['requests']:>9} {summary['failures']:>5} "
        f"{summary['p50_ms']:>6.0f} {summary['p95_ms']:>6.0f} {summary['p99_ms']:>6.0f}"
    )
    memory = summary["rss"]
    if memory:
        print(
            f"RSS (MiB): start {memory['start_mib']}, peak {memory['peak_mib']}, end "
            f"{memory['end_mib']} (drift {memory['drift_percent']}%; after warm-up "
            f"{memory['after_warmup_mib']} -> end {memory['steady_drift_percent']}%)"
        )
    print(f"{summary['requests_per_second']} requests/s; reports in {out}")

    problems = []
    if summary["failures"]:
        problems.append(f"{summary['failures']} failed requests")
    if locust.returncode not in (0, 1):
        problems.append(f"locust exited with {locust.returncode}")
    if args.p95_ms and summary["p95_ms"] > args.p95_ms:
        problems.append(f"p95 {summary['p95_ms']:.0f} ms > {args.p95_ms:.0f} ms")
    if summary["requests"] == 0:
        problems.append("no requests were made")
    if problems:
        print("loadtest FAILED: " + "; ".join(problems))
        return 1
    print("loadtest passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
