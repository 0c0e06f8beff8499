"""With WEB_CONCURRENCY > 1, `/metrics` aggregates every worker's samples."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.probes.test_sigterm_drain import PROJECT_ROOT, free_port

pytestmark = pytest.mark.slow
REQUESTS = 60


def health_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == "http_server_request_duration_seconds":
            return sum(
                s.value
                for s in family.samples
                if s.name.endswith("_count") and s.labels["http_route"] == "/health"
            )
    return 0.0


async def test_two_workers_report_one_aggregated_count(tmp_path: Path) -> None:
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "READ_DATABASE_URL")},
        "APP_ENV": "test",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'inkwell.db'}",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "src.cli", "serve"],
            cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)

        async def one() -> int:  # a fresh connection each time, so both workers get some
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                return (await client.get("/health")).status_code

        statuses = await asyncio.gather(*(one() for _ in range(REQUESTS)))
        assert set(statuses) == {200}
        served_by = {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("histogram_*.db")}
        assert len(served_by) == 2, "both workers should have served requests"
        for _ in range(4):  # whichever worker answers the scrape, the sum is the same
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                scrape = await client.get("/metrics")
            assert health_count(scrape.text) == REQUESTS + 1  # + the start-up poll
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "Traceback" not in log.read_text(), log.read_text()
