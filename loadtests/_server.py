"""Starting and stopping local Inkwell (and other uvicorn) processes for the load tools.

Shared by `run.py` (Locust) and `bench.py`. Only 127.0.0.1 is ever used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get(
    "LOADTEST_PG_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("LOADTEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def reachable(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def create_database(name: str, *, recreate: bool = False) -> str:
    """Create PostgreSQL database `name` (ours: the only one we may drop) and migrate it."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def create() -> None:
        admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                if recreate:
                    await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                exists = await connection.scalar(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                )
                if not exists:
                    await connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await admin.dispose()

    asyncio.run(create())
    url = database_url(name)
    subprocess.run(
        [sys.executable, "-m", "src.cli", "migrate"],
        check=True,
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)},
    )
    return url


def forget_redis_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


@dataclass
class Server:
    """A child process serving HTTP on 127.0.0.1:`port`."""

    name: str
    argv: list[str]
    port: int
    env: dict[str, str]
    log_path: Path
    cwd: Path = ROOT
    process: subprocess.Popen[bytes] | None = None
    _log: object = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/health", timeout: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self._log = log
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and scripts
            self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + ready_path, timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {ready_path} within {timeout}s")

    def stop(self, timeout: float = 30.0) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
        return process.returncode


def inkwell_server(
    port: int, env: dict[str, str], log_path: Path, source: Path = ROOT, name: str = "inkwell"
) -> Server:
    """`inkwell serve` from the source tree `source` (this checkout unless told otherwise).

    Run as `python -m src.cli` with `source` first on the path, not through the `inkwell`
    script: that one imports whichever tree the virtualenv was installed from.
    """
    full_env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "APP_ENV": "development",
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(source),
        **env,
    }
    argv = [sys.executable, "-m", "src.cli", "serve"]
    return Server(name, argv, port, full_env, log_path, cwd=source)


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[None]:
    started: list[Server] = []
    try:
        for server in servers:
            server.start()
            started.append(server)
        yield
    finally:
        for server in reversed(started):
            server.stop()


@dataclass
class RssSampler:
    """Samples the resident memory of a process and its children once per `interval`."""

    pid: int
    interval: float = 1.0
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def rss(self) -> int:
        try:
            process = psutil.Process(self.pid)
            total = process.memory_info().rss
            for child in process.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            return total
        except psutil.Error:
            return 0

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            value = self.rss()
            if value:
                self.samples.append((time.monotonic() - start, value))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self, warmup_fraction: float = 0.1) -> dict[str, float]:
        """Start, peak and end in MiB; `steady_drift_percent` compares the end with the
        first sample after the warm-up (pools, caches and lazy imports fill in the first
        seconds of any run)."""
        if not self.samples:
            return {}
        values = [value for _, value in self.samples]
        mib = 2**20
        warm_index = min(len(values) - 1, int(len(values) * warmup_fraction))
        warm = values[warm_index]
        steady_peak = max(values[warm_index:])
        return {
            "samples": len(values),
            "start_mib": round(values[0] / mib, 1),
            "peak_mib": round(max(values) / mib, 1),
            "end_mib": round(values[-1] / mib, 1),
            "after_warmup_mib": round(warm / mib, 1),
            "drift_percent": round((values[-1] - values[0]) / values[0] * 100, 1),
            "steady_drift_percent": round((values[-1] - warm) / warm * 100, 1),
            "steady_peak_percent": round((steady_peak - warm) / warm * 100, 1),
        }
