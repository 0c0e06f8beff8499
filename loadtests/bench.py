"""`make bench`: Inkwell against the framework's ceiling and bcrypt, in one run, one machine.

1. Starts (a) `loadtests/ceiling.py` — bare FastAPI returning a small JSON object — and (b)
   Inkwell (`inkwell serve`) on PostgreSQL + Redis with every middleware, JSON access logs
   (to `var/bench/server.log`), metrics and tracing on without an exporter endpoint; one
   uvicorn worker each (uvloop, httptools). Rate limiting stays *on* with a limit no run can
   reach (`RATE_LIMIT_DEFAULT` / `RATE_LIMIT_AUTH` = 1000000000/minute), so its Redis round
   trips are part of the figures but it never throttles.
2. Seeds one author with 25 published items (a full first page, a profile with 20 summaries)
   in a fresh database `inkwell_bench` (Redis keys under `inkwell-bench:`), and warms the cache.
3. Drives each target with `wrk` (one thread, `--connections`) when it is installed, else with
   `loadtests/loadgen.py` at the same concurrency, alternating ceiling and Inkwell runs for
   `--rounds` rounds; the table shows each target's median.
4. Alternates, for `--rounds` rounds, bcrypt alone (same `BCRYPT_ROUNDS`, a thread pool of
   `nproc`) and signups under the same load tool while a prober reads `/health` every 20 ms.
5. Prints one table and writes `var/bench.json`. Exits 1 when any request failed, 2 when
   PostgreSQL or Redis is not reachable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bcrypt
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
DATABASE = "inkwell_bench"
REDIS_PREFIX = "inkwell-bench:"
UNREACHABLE_LIMIT = "1000000000/minute"
TARGETS = {  # name -> (DESIGN.md target ratio, description)
    "content": (0.60, "GET /api/v1/content/{id} (cached)"),
    "user": (0.40, "GET /api/v1/users/{id} (read model)"),
    "list": (None, "GET /api/v1/content (first page)"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per GET run")
    parser.add_argument("--signup-duration", type=float, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--signup-connections", type=int, default=0, help="0: 4 × nproc")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bcrypt-rounds", type=int, default=12)
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--rate-limit",
        choices=("on", "off"),
        default="on",
        help="on: the limiter runs with an unreachable limit; off: RATE_LIMIT_ENABLED=false",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench.json")
    return parser.parse_args()


# --- load tools ---------------------------------------------------------------------------------


def _result(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith("BENCH_RESULT "):
            raw = json.loads(line.removeprefix("BENCH_RESULT "))
            seconds = raw["duration_us"] / 1e6
            return {
                "requests": raw["requests"],
                "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
                "p50_ms": round(raw["p50_us"] / 1000, 2),
                "p99_ms": round(raw["p99_us"] / 1000, 2),
                "errors": raw["errors"],
            }
    raise RuntimeError(f"the load tool printed no result:\n{output}")


class Driver:
    def __init__(self, tool: str, scratch: Path) -> None:
        self.tool = tool
        self.scratch = scratch
        scratch.mkdir(parents=True, exist_ok=True)

    def _script(self, name: str) -> Path:
        path = self.scratch / f"{name}.lua"
        path.write_text(
            (HERE / "wrk" / f"{name}.lua").read_text() + (HERE / "wrk" / "report.lua").read_text()
        )
        return path

    def command(
        self, url: str, connections: int, duration: float, signup: str | None = None
    ) -> list[str]:
        if self.tool == "wrk":
            script = self._script("signup" if signup else "get")
            command = [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration:g}s",
                "--timeout",
                "30s",
                "-s",
                str(script),
                url,
            ]
            return [*command, "--", signup] if signup else command
        command = [
            sys.executable,
            str(HERE / "loadgen.py"),
            url,
            f"--connections={connections}",
            f"--duration={duration:g}",
        ]
        return [*command, f"--signup={signup}"] if signup else command

    def run(
        self,
        url: str,
        connections: int,
        duration: float,
        signup: str | None = None,
        server: Server | None = None,
    ) -> dict[str, Any]:
        """The load tool's figures; with `server`, also its CPU per request (`cpu_us`)."""
        before = server_cpu(server) if server is not None else 0.0
        done = subprocess.run(  # noqa: S603 - wrk or our own script
            self.command(url, connections, duration, signup),
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=False,
        )
        result = _result(done.stdout + done.stderr)
        if server is not None and result.get("requests"):
            spent = server_cpu(server) - before
            result["cpu_us"] = round(spent / result["requests"] * 1e6, 1)
        return result


def server_cpu(server: Server) -> float:
    """Seconds of CPU (user + system) of the server's process and its children so far."""
    assert server.process is not None
    process = psutil.Process(server.process.pid)
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def start_prober(url: str, duration: float, interval_ms: float = 20) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own script
        [
            sys.executable,
            str(HERE / "loadgen.py"),
            url,
            "--connections=1",
            f"--duration={duration:g}",
            f"--interval-ms={interval_ms:g}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


# --- bcrypt alone ---------------------------------------------------------------------------


def bcrypt_throughput(rounds: int, workers: int, duration: float) -> float:
    """Hashes per second with `workers` threads hashing continuously for `duration`."""
    salt = bcrypt.gensalt(rounds)
    deadline = time.perf_counter() + duration

    def hash_until_deadline() -> tuple[int, float]:
        count = 0
        while time.perf_counter() < deadline:
            bcrypt.hashpw(b"correct horse battery staple", salt)
            count += 1
        return count, time.perf_counter()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda _: hash_until_deadline(), range(workers)))
    finished = max(end for _, end in results)
    return sum(count for count, _ in results) / (finished - started)


# --- seeding ----------------------------------------------------------------------------------


def call(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[Any, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read() or b"null"), answer.headers


def seed(base: str) -> dict[str, str]:
    email = f"bench-author-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"  # noqa: S105 - a throwaway bench account
    user, _ = call("POST", f"{base}/api/v1/signup", {"name": "Bench Author", "email": email,
                                                       "password": password})  # fmt: skip
    tokens, _ = call("POST", f"{base}/api/v1/auth/login", {"email": email, "password": password})
    content_id = ""
    for number in range(25):
        item, _ = call(
            "POST",
            f"{base}/api/v1/content",
            {"title": f"Bench article {number}", "content": "Benchmark body text. " * 40},
            tokens["access_token"],
        )
        content_id = item["id"]
    for _ in range(2):  # the second read must be a cache hit
        _, headers = call("GET", f"{base}/api/v1/content/{content_id}")
        call("GET", f"{base}/api/v1/content")
    if headers.get("Cache-Status") != "inkwell; hit":
        raise RuntimeError(f"the content cache is not hitting: {headers.get('Cache-Status')}")
    return {"user_id": user["id"], "content_id": content_id}


# --- the run ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def start_all(ceiling: Server, inkwell: Server) -> None:
    ceiling.start(ready_path="/")
    try:
        inkwell.start()
    except BaseException:
        ceiling.stop()
        raise


def main() -> int:
    args = parse_args()
    if not (reachable(5432) and reachable(6379)):
        print(
            "bench: PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are required; "
            "start them (see README 'Running against PostgreSQL and Redis') and retry.",
            file=sys.stderr,
        )
        return 2
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    cores = os.cpu_count() or 1
    signup_connections = args.signup_connections or 4 * cores
    scratch = ROOT / "var" / "bench"
    driver = Driver(tool, scratch)

    print(f"bench: database {DATABASE} (fresh), Redis prefix {REDIS_PREFIX}, tool {tool}")
    url = create_database(DATABASE, recreate=True)
    forget_redis_prefix(REDIS_PREFIX)
    ceiling = Server(
        "ceiling",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "ceiling:app",
            "--app-dir",
            str(HERE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port := free_port()),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        port,
        dict(os.environ),
        scratch / "ceiling.log",
    )
    inkwell = inkwell_server(
        free_port(),
        {
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": REDIS_PREFIX,
            "RATE_LIMIT_ENABLED": "true" if args.rate_limit == "on" else "false",
            "RATE_LIMIT_DEFAULT": UNREACHABLE_LIMIT,
            "RATE_LIMIT_AUTH": UNREACHABLE_LIMIT,
            "BCRYPT_ROUNDS": str(args.bcrypt_rounds),
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "APP_ENV": "production",
            "JWT_SECRET": uuid.uuid4().hex * 2,
        },
        scratch / "server.log",
    )
    results: dict[str, Any] = {
        "machine": machine(),
        "tool": tool,
        "connections": args.connections,
        "rate_limit": args.rate_limit,
        "runs": {},
    }
    runs: dict[str, list[dict[str, Any]]] = {"ceiling": [], "content": [], "user": [], "list": []}
    start_all(ceiling, inkwell)
    try:
        ids = seed(inkwell.url)
        urls = {
            "ceiling": ceiling.url + "/",
            "content": f"{inkwell.url}/api/v1/content/{ids['content_id']}",
            "user": f"{inkwell.url}/api/v1/users/{ids['user_id']}",
            "list": f"{inkwell.url}/api/v1/content",
        }
        for target in urls.values():  # warm-up: connections, pools, caches
            driver.run(target, args.connections, 2)
        for round_number in range(1, args.rounds + 1):
            for name in ("ceiling", "content", "ceiling", "user", "ceiling", "list"):
                figures = driver.run(urls[name], args.connections, args.duration)
                runs[name].append(figures)
                print(f"  round {round_number} {name:<8} {figures}")

        # bcrypt alone and signups alternate too; each signup run has /health probed beside it
        hash_rates: list[float] = []
        signups: list[dict[str, Any]] = []
        healths: list[dict[str, Any]] = []
        for round_number in range(1, args.rounds + 1):
            hash_rates.append(bcrypt_throughput(args.bcrypt_rounds, cores, args.signup_duration))
            prober = start_prober(inkwell.url + "/health", args.signup_duration)
            signups.append(
                driver.run(
                    inkwell.url,
                    signup_connections,
                    args.signup_duration,
                    signup=uuid.uuid4().hex[:8],
                )
            )
            healths.append(_result(prober.communicate(timeout=args.signup_duration + 60)[0]))
            print(
                f"  round {round_number} bcrypt alone {hash_rates[-1]:.2f}/s; "
                f"signup {signups[-1]}; /health beside it {healths[-1]}"
            )
        runs["signup"] = signups
        runs["health"] = healths
        hashes = statistics.median(hash_rates)
    finally:
        inkwell.stop()
        ceiling.stop()
    results["runs"] = {**runs, "bcrypt_alone": hash_rates}

    ceiling_rps = statistics.median(run["rps"] for run in runs["ceiling"])
    rows: list[dict[str, Any]] = []

    def median_of(name: str) -> dict[str, Any]:
        return {
            key: statistics.median(run[key] for run in runs[name])
            for key in ("rps", "p50_ms", "p99_ms")
        } | {"errors": sum(run["errors"] for run in runs[name])}

    ceiling_row = median_of("ceiling")
    rows.append({"name": "ceiling: bare FastAPI GET /", **ceiling_row, "ratio": 1.0,
                 "target": None})  # fmt: skip
    for name, (target, label) in TARGETS.items():
        row = median_of(name)
        rows.append({"name": label, **row, "ratio": row["rps"] / ceiling_rps, "target": target})
    rows.append({"name": f"bcrypt alone ({cores} threads, {args.bcrypt_rounds} rounds)",
                 "rps": round(hashes, 2), "p50_ms": None, "p99_ms": None, "errors": 0,
                 "ratio": None, "target": None})  # fmt: skip
    signup = median_of("signup")
    rows.append({"name": "POST /api/v1/signup (vs bcrypt alone)", **signup,
                 "ratio": signup["rps"] / hashes, "target": 0.85})  # fmt: skip
    health = median_of("health")
    rows.append({"name": "GET /health while signups saturate the CPU", **health,
                 "ratio": None, "target": None, "p99_target_ms": 50})  # fmt: skip
    results["table"] = rows

    print()
    print(
        f"{results['machine']['date']} · commit {results['machine']['commit']} · "
        f"{cores} cores ({results['machine']['cpu_model']}), "
        f"{results['machine']['memory_gib']} GiB · {tool}, {args.connections} connections, "
        f"{args.duration:g} s × {args.rounds} rounds (medians), rate limiting {args.rate_limit}"
    )
    print()
    print(
        f"| {'target':<46} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'ratio':>6} | "
        f"{'budget':<10} |"
    )
    print(f"|{'-' * 48}|{'-' * 9}:|{'-' * 8}:|{'-' * 8}:|{'-' * 7}:|{'-' * 12}|")
    failed_requests = 0
    for row in rows:
        failed_requests += row["errors"] or 0
        ratio = f"{row['ratio']:.0%}" if row["ratio"] is not None else ""
        budget = ""
        if row.get("target") is not None:
            ok = row["ratio"] >= row["target"]
            budget = f">= {row['target']:.0%} {'ok' if ok else 'MISS'}"
        if row.get("p99_target_ms") is not None:
            ok = row["p99_ms"] < row["p99_target_ms"]
            budget = f"p99 < {row['p99_target_ms']} {'ok' if ok else 'MISS'}"
        p50 = f"{row['p50_ms']:.2f}" if row["p50_ms"] is not None else ""
        p99 = f"{row['p99_ms']:.2f}" if row["p99_ms"] is not None else ""
        print(
            f"| {row['name']:<46} | {row['rps']:>8.1f} | {p50:>7} | {p99:>7} | {ratio:>6} | "
            f"{budget:<10} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {args.out}")
    if failed_requests:
        print(f"bench: {failed_requests} requests failed; see var/bench/server.log")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
