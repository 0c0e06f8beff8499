"""SIGTERM on a real server process: readiness flips at once, requests keep being served for
the drain period, in-flight requests finish, and the process ends cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import signup_body

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Long enough that the probes sent right after SIGTERM are answered inside the drain even when
# the server is slowed by a loaded machine (past the drain, the listener is closed).
DRAIN_SECONDS = 4.0

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'inkwell.db'}",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "BCRYPT_ROUNDS": "6",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "JWT_SECRET": "drain-test-secret-long-enough-for-hs256-0123456789",
    }
    for name in ("REDIS_URL", "READ_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "WEB_CONCURRENCY"):
        env.pop(name, None)
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "src.cli", "serve"],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(PROJECT_ROOT)},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    running = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, running.output()
            try:
                if httpx.get(f"{running.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start:\n" + running.output()
            time.sleep(0.1)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Outcome:
    started: float
    finished: float
    status: int | None
    error: str | None = None


async def request_stream(
    client: httpx.AsyncClient, outcomes: list[Outcome], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            response = await client.post("/api/v1/signup", json=signup_body())
            outcomes.append(Outcome(started, time.monotonic(), response.status_code))
        except httpx.HTTPError as error:
            outcomes.append(Outcome(started, time.monotonic(), None, repr(error)))


async def test_sigterm_drains_then_stops_cleanly(server: Server) -> None:
    outcomes: list[Outcome] = []
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=8)
    async with (
        httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as stream_client,
        httpx.AsyncClient(base_url=server.url, timeout=5) as probe_client,
    ):
        assert (await probe_client.get("/ready")).status_code == 200
        streams = [
            asyncio.create_task(request_stream(stream_client, outcomes, stop)) for _ in range(8)
        ]
        await asyncio.sleep(0.5)  # requests are flowing

        sigterm_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.1)
        ready = await probe_client.get("/ready")
        health = await probe_client.get("/health")
        await asyncio.sleep(DRAIN_SECONDS * 0.6)  # still inside the drain
        stop.set()
        await asyncio.gather(*streams)

    exit_code = await asyncio.to_thread(server.process.wait, 30)
    output = server.output()

    assert ready.status_code == 503, ready.text
    assert ready.json()["status"] == "not_ready"
    assert ready.json().get("draining") is True
    assert health.status_code == 200  # liveness is unaffected: the pod is not restarted
    in_flight = [o for o in outcomes if o.started < sigterm_at < o.finished]
    during_drain = [o for o in outcomes if o.started > sigterm_at]
    assert in_flight, "no request was in flight when SIGTERM arrived"
    assert during_drain, "no request was sent during the drain"
    failed = [o for o in outcomes if o.status != 201]
    assert failed == [], failed[:5]
    assert exit_code in (0, -signal.SIGTERM), output
    assert "Traceback" not in output, output
    assert "draining" in output


async def test_no_log_line_is_lost_when_sigterm_stops_the_server(server: Server) -> None:
    # Lines are written by a thread off the event loop; the ones still queued at SIGTERM must
    # reach stdout before the process exits.
    run = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for index in range(200):
            answer = await client.get(
                f"/api/v1/users/{uuid.uuid4()}", headers={"X-Request-ID": f"{run}-{index}"}
            )
            assert answer.status_code == 404
    server.process.send_signal(signal.SIGTERM)
    exit_code = await asyncio.to_thread(server.process.wait, 30)
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]

    assert exit_code in (0, -signal.SIGTERM)
    access = {
        line["request_id"]
        for line in lines
        if line.get("event") == "http.access" and line["request_id"].startswith(run)
    }
    assert access == {f"{run}-{index}" for index in range(200)}
    assert "Finished server process" in lines[-1]["message"], lines[-3:]
