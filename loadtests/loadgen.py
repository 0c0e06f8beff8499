"""A small HTTP/1.1 load generator for `make bench` when `wrk` is not installed, and the
`/health` prober that runs beside the signup load.

Keep-alive connections on asyncio streams (no client library on the hot path), each sending
its next request as soon as the previous answer is read, for a fixed time. Prints one line:
`BENCH_RESULT {"requests", "duration_us", "p50_us", "p99_us", "errors"}` like the wrk scripts.

    python loadtests/loadgen.py URL --connections 64 --duration 10 [--signup NONCE]
                                [--interval-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
    uvloop = None  # type: ignore[assignment]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        parts = urlsplit(args.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.args = args
        self.latencies: list[float] = []
        self.errors = 0
        self.counter = 0

    def request(self, worker: int) -> bytes:
        host = f"{self.host}:{self.port}"
        if self.args.signup is None:
            return f"GET {self.path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self.counter += 1
        body = json.dumps(
            {
                "name": "Bench User",
                "email": f"bench-{self.args.signup}-{worker}-{self.counter}@example.com",
                "password": "correct horse battery staple",
            }
        ).encode()
        head = (
            f"POST /api/v1/signup HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def worker(self, index: int, deadline: float) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        interval = self.args.interval_ms / 1000
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(self.request(index))
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                self.latencies.append(time.perf_counter() - started)
                if status >= 400:
                    self.errors += 1
                if interval:
                    await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.errors += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def main(self) -> dict[str, int]:
        started = time.perf_counter()
        deadline = started + self.args.duration
        await asyncio.gather(*(self.worker(i, deadline) for i in range(self.args.connections)))
        elapsed = time.perf_counter() - started
        return {
            "requests": len(self.latencies),
            "duration_us": int(elapsed * 1e6),
            "p50_us": int(percentile(self.latencies, 0.50) * 1e6),
            "p99_us": int(percentile(self.latencies, 0.99) * 1e6),
            "errors": self.errors,
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--signup", metavar="NONCE", help="POST unique signups instead of GET")
    parser.add_argument("--interval-ms", type=float, default=0, help="pause between requests")
    args = parser.parse_args()
    run = Run(args)
    result = uvloop.run(run.main()) if uvloop is not None else asyncio.run(run.main())
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
