"""`make bench`: Inkwell against the framework's ceiling and bcrypt, in one run, one machine.

1. Starts (a) `loadtests/ceiling.py` — bare FastAPI returning a small JSON object — and (b)
   Inkwell (`inkwell serve` from this checkout) three times: on PostgreSQL + Redis, on the
   embedded SQLite default, and on PostgreSQL + Redis with traces exported over OTLP/HTTP
   (every request sampled, `OTEL_TRACES_SAMPLER=always_on`) to a local receiver in its own
   process (`loadtests/otlp_sink.py`). Each with every middleware, JSON access logs (to
   `var/bench/server-<variant>.log`), metrics on; one uvicorn worker each (uvloop,
   httptools). Rate limiting stays *on* with a limit no run can reach (`RATE_LIMIT_DEFAULT`
   / `RATE_LIMIT_AUTH` = 1000000000/minute), so its cost is part of the figures but it never
   throttles. `--backend postgres|sqlite|otlp` runs one of them alone.
2. Seeds each with one author and 25 published items (a full first page, a profile with 20
   summaries) on fresh databases (`inkwell_bench`, `inkwell_bench_otlp`, a new SQLite file;
   Redis keys under `inkwell-bench:`), and warms the caches.
3. Drives each target with `wrk` (one thread, `--connections`) when it is installed, else with
   `loadtests/loadgen.py` at the same concurrency: for each target the ceiling, then every
   variant, for `--rounds` rounds; the table shows medians. Around each run the server's CPU
   time (psutil, user + system) is read: CPU per request is that over the requests served.
4. Alternates, for `--rounds` rounds, bcrypt alone (same `BCRYPT_ROUNDS`, a thread pool of
   `nproc`) and signups on each backend under the same load tool while a prober reads
   `/health` every 20 ms.
5. Prints one table (a column group per variant) and writes `var/bench.json`. Exits 1 when any
   request failed, 2 when PostgreSQL or Redis is needed and not reachable.
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
    "user": (0.40, "GET /api/v1/users/{id} (not cached)"),
    "list": (0.50, "GET /api/v1/content (first page, cached)"),
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
    parser.add_argument(
        "--backend",
        choices=("both", "postgres", "sqlite", "otlp"),
        default="both",
        help="both: PostgreSQL + Redis, the embedded SQLite, and PostgreSQL + Redis with OTLP on",
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


VARIANTS = {  # name -> label: the same code on each backend, and with traces exported
    "postgres": "PostgreSQL + Redis",
    "sqlite": "embedded SQLite",
    "otlp": "PostgreSQL + Redis, OTLP export on",
}


def start_otlp_sink() -> tuple[subprocess.Popen[str], str]:
    sink = subprocess.Popen(  # noqa: S603 - our own script
        [sys.executable, str(HERE / "otlp_sink.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert sink.stdout is not None
    line = sink.stdout.readline()
    if not line.startswith("OTLP_SINK "):
        sink.kill()
        raise RuntimeError(f"the OTLP receiver did not start: {line}")
    return sink, line.split()[1]


def stop_otlp_sink(sink: subprocess.Popen[str]) -> dict[str, Any]:
    sink.terminate()
    output = sink.communicate(timeout=30)[0]
    for line in output.splitlines():
        if line.startswith("OTLP_SINK_RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("OTLP_SINK_RESULT "))
            return result
    return {"spans": None, "exports": None}


def inkwell_variant(
    variant: str, args: argparse.Namespace, scratch: Path, otlp_url: str | None
) -> Server:
    env = {
        "RATE_LIMIT_ENABLED": "true" if args.rate_limit == "on" else "false",
        "RATE_LIMIT_DEFAULT": UNREACHABLE_LIMIT,
        "RATE_LIMIT_AUTH": UNREACHABLE_LIMIT,
        "BCRYPT_ROUNDS": str(args.bcrypt_rounds),
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "APP_ENV": "production",
        "JWT_SECRET": uuid.uuid4().hex * 2,
    }
    if variant == "sqlite":
        database = scratch / "inkwell-bench.db"
        for leftover in scratch.glob("inkwell-bench.db*"):
            leftover.unlink()
        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    else:
        name = DATABASE if variant == "postgres" else f"{DATABASE}_{variant}"
        env |= {
            "DATABASE_URL": create_database(name, recreate=True),
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": f"{REDIS_PREFIX}{variant}:",
        }
    if variant == "otlp":
        assert otlp_url is not None
        env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url, "OTEL_TRACES_SAMPLER": "always_on"}
    return inkwell_server(free_port(), env, scratch / f"server-{variant}.log", name=variant)


def main() -> int:
    args = parse_args()
    variants = ["postgres", "sqlite", "otlp"] if args.backend == "both" else [args.backend]
    if variants != ["sqlite"] and not (reachable(5432) and reachable(6379)):
        print(
            "bench: PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are required; "
            "start them (see README 'Running against PostgreSQL and Redis') and retry, "
            "or run the embedded default alone with --backend sqlite.",
            file=sys.stderr,
        )
        return 2
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    cores = os.cpu_count() or 1
    signup_connections = args.signup_connections or 4 * cores
    scratch = ROOT / "var" / "bench"
    scratch.mkdir(parents=True, exist_ok=True)
    driver = Driver(tool, scratch)

    print(f"bench: {', '.join(VARIANTS[v] for v in variants)}; databases {DATABASE}* (fresh), "
          f"Redis prefix {REDIS_PREFIX}; tool {tool}")  # fmt: skip
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
    sink, otlp_url = start_otlp_sink() if "otlp" in variants else (None, None)
    servers = {variant: inkwell_variant(variant, args, scratch, otlp_url) for variant in variants}
    results: dict[str, Any] = {
        "machine": machine(),
        "tool": tool,
        "connections": args.connections,
        "rate_limit": args.rate_limit,
        "variants": {variant: VARIANTS[variant] for variant in variants},
    }
    runs: dict[str, list[dict[str, Any]]] = {"ceiling": []}
    runs |= {f"{variant}:{target}": [] for variant in variants for target in TARGETS}
    signup_variants = [variant for variant in variants if variant != "otlp"]
    started: list[Server] = []
    hash_rates: list[float] = []
    try:
        for server in (ceiling, *servers.values()):
            server.start(ready_path="/" if server is ceiling else "/health")
            started.append(server)
        urls: dict[str, str] = {"ceiling": ceiling.url + "/"}
        for variant, server in servers.items():
            ids = seed(server.url)
            urls |= {
                f"{variant}:content": f"{server.url}/api/v1/content/{ids['content_id']}",
                f"{variant}:user": f"{server.url}/api/v1/users/{ids['user_id']}",
                f"{variant}:list": f"{server.url}/api/v1/content",
            }
        for target in urls.values():  # warm-up: connections, pools, caches
            driver.run(target, args.connections, 2)
        for round_number in range(1, args.rounds + 1):
            # The ceiling before each target, and the variants of a target back to back, so a
            # shift in the shared machine's load falls on every column alike.
            for target in TARGETS:
                for name in ("ceiling", *(f"{variant}:{target}" for variant in variants)):
                    server = ceiling if name == "ceiling" else servers[name.partition(":")[0]]
                    figures = driver.run(urls[name], args.connections, args.duration, server=server)
                    runs[name].append(figures)
                    print(f"  round {round_number} {name:<16} {figures}")

        # bcrypt alone and signups alternate too; each signup run has /health probed beside it
        for variant in signup_variants:
            runs[f"{variant}:signup"], runs[f"{variant}:health"] = [], []
        for round_number in range(1, args.rounds + 1):
            hash_rates.append(bcrypt_throughput(args.bcrypt_rounds, cores, args.signup_duration))
            print(f"  round {round_number} bcrypt alone {hash_rates[-1]:.2f}/s")
            for variant in signup_variants:
                server = servers[variant]
                prober = start_prober(server.url + "/health", args.signup_duration)
                runs[f"{variant}:signup"].append(
                    driver.run(
                        server.url,
                        signup_connections,
                        args.signup_duration,
                        signup=uuid.uuid4().hex[:8],
                        server=server,
                    )
                )
                health = _result(prober.communicate(timeout=args.signup_duration + 60)[0])
                runs[f"{variant}:health"].append(health)
                print(
                    f"  round {round_number} {variant} signup {runs[f'{variant}:signup'][-1]}; "
                    f"/health beside it {health}"
                )
    finally:
        for server in reversed(started):
            server.stop()
        if sink is not None:
            results["otlp_receiver"] = stop_otlp_sink(sink)
    results["runs"] = {**runs, "bcrypt_alone": hash_rates}
    results["table"] = table(runs, variants, signup_variants, hash_rates)
    print_table(results, args, cores)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {args.out}")
    failed = sum(run.get("errors", 0) for name, list_ in runs.items() for run in list_
                 if name != "ceiling")  # fmt: skip
    if failed:
        print(f"bench: {failed} requests failed; see var/bench/server-*.log")
        return 1
    return 0


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [key for key in ("rps", "p50_ms", "p99_ms", "cpu_us") if all(key in r for r in runs)]
    return {key: statistics.median(run[key] for run in runs) for key in keys} | {
        "errors": sum(run["errors"] for run in runs)
    }


def table(
    runs: dict[str, list[dict[str, Any]]],
    variants: list[str],
    signup_variants: list[str],
    hash_rates: list[float],
) -> list[dict[str, Any]]:
    """One row per target; in each, one cell per variant (medians, ratio to the ceiling)."""
    ceiling = _median(runs["ceiling"])
    rows: list[dict[str, Any]] = [
        {"name": "ceiling: bare FastAPI GET /", "target": None,
         "cells": {"ceiling": {**ceiling, "ratio": 1.0}}},
    ]  # fmt: skip
    for target, (ratio_target, label) in TARGETS.items():
        cells = {}
        for variant in variants:
            cell = _median(runs[f"{variant}:{target}"])
            cells[variant] = {**cell, "ratio": cell["rps"] / ceiling["rps"]}
        rows.append({"name": label, "target": ratio_target, "cells": cells})
    hashes = statistics.median(hash_rates)
    rows.append({"name": "bcrypt alone (threads = cores)", "target": None,
                 "cells": {"bcrypt": {"rps": round(hashes, 2)}}})  # fmt: skip
    signup_cells = {}
    health_cells = {}
    for variant in signup_variants:
        cell = _median(runs[f"{variant}:signup"])
        # Each signup run against the bcrypt run just before it: the machine's load moves
        # between rounds, and both figures of a round share it.
        pairs = zip(runs[f"{variant}:signup"], hash_rates, strict=True)
        ratios = [run["rps"] / rate for run, rate in pairs]
        signup_cells[variant] = {**cell, "ratio": statistics.median(ratios)}
        health_cells[variant] = _median(runs[f"{variant}:health"])
    rows.append({"name": "POST /api/v1/signup (ratio: to bcrypt alone, per round)", "target": 0.90,
                 "cells": signup_cells})  # fmt: skip
    rows.append({"name": "GET /health p99 while signups saturate the CPU", "target": None,
                 "p99_target_ms": 50, "cells": health_cells})  # fmt: skip
    return rows


def print_table(results: dict[str, Any], args: argparse.Namespace, cores: int) -> None:
    machine_ = results["machine"]
    variants = list(results["variants"])
    print()
    print(
        f"{machine_['date']} · commit {machine_['commit']} · {cores} cores "
        f"({machine_['cpu_model']}), {machine_['memory_gib']} GiB · {results['tool']}, "
        f"{args.connections} connections, {args.duration:g} s × {args.rounds} rounds (medians), "
        f"rate limiting {args.rate_limit}; server CPU per request from psutil"
    )
    print()
    head = "| target | budget |" + "".join(
        f" {results['variants'][v]}: req/s | p99 ms | ratio | CPU µs/req |" for v in variants
    )
    print(head)
    print("|---|---|" + "---:|---:|---:|---:|" * len(variants))
    for row in results["table"]:
        cells = row["cells"]
        budget = ""
        if row.get("target") is not None:
            budget = f">= {row['target']:.0%}"
        if row.get("p99_target_ms") is not None:
            budget = f"p99 < {row['p99_target_ms']} ms"
        line = f"| {row['name']} | {budget} |"
        lone = cells.get("ceiling") or cells.get("bcrypt")
        for variant in variants:
            cell = lone if lone is not None and variant == variants[0] else cells.get(variant)
            if cell is None:
                line += " | | | |"
                continue
            ratio = f"{cell['ratio']:.0%}" if "ratio" in cell else ""
            # The budget holds without OTLP export; that column says what tracing costs.
            if row.get("target") is not None and "ratio" in cell and variant != "otlp":
                ratio += " ok" if cell["ratio"] >= row["target"] else " MISS"
            p99 = f"{cell['p99_ms']:.2f}" if cell.get("p99_ms") is not None else ""
            if row.get("p99_target_ms") is not None and cell.get("p99_ms") is not None:
                p99 += " ok" if cell["p99_ms"] < row["p99_target_ms"] else " MISS"
            cpu = f"{cell['cpu_us']:.0f}" if cell.get("cpu_us") is not None else ""
            line += f" {cell['rps']:.1f} | {p99} | {ratio} | {cpu} |"
        print(line)
    receiver = results.get("otlp_receiver")
    if receiver:
        print(f"\nOTLP receiver: {receiver['spans']} spans in {receiver['exports']} exports")


if __name__ == "__main__":
    sys.exit(main())
