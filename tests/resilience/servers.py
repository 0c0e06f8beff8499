"""Private servers for the fault tests: PostgreSQL clusters (and streaming replicas), Redis,
a TCP proxy the test can cut, and the Inkwell server as a real process.

Nothing here touches the machine's shared PostgreSQL or Redis: every server runs from a
temporary directory on a free loopback port and is stopped (and its directory removed) by the
fixture that started it, also when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_available() -> bool:
    return (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()


def _as_postgres(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def private_tempdir(prefix: str) -> Path:
    """A temporary directory the PostgreSQL binaries may write to (also when run as root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    return path


def _run(args: list[str], timeout: float = 60) -> None:
    result = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout.decode(errors='replace')}\n{result.stderr.decode(errors='replace')}"
        )


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in `data`, listening on 127.0.0.1:`port`."""

    data: Path
    port: int
    log: Path
    running: bool = False

    @classmethod
    def initialise(cls, root: Path) -> PostgresServer:
        server = cls(root / "data", free_port(), root / "postgres.log")
        _run(
            _as_postgres(
                [str(PG_BIN / "initdb"), "-D", str(server.data), "-A", "trust", "-U", "postgres",
                 "-E", "UTF8", "--no-sync"]
            )
        )  # fmt: skip
        server.configure(
            listen_addresses="'127.0.0.1'",
            unix_socket_directories=f"'{root}'",
            fsync="off",
            full_page_writes="off",
            max_connections="100",
            wal_level="replica",
            max_wal_senders="5",
            hot_standby="on",
            shared_preload_libraries="'pg_stat_statements'",
            log_min_messages="warning",
        )
        return server

    def configure(self, **settings: str) -> None:
        """Append settings to postgresql.auto.conf (read last: they win)."""
        lines = "".join(f"{name} = {value}\n" for name, value in settings.items())
        with (self.data / "postgresql.auto.conf").open("a") as sink:
            sink.write(lines)

    def start(self) -> None:
        _run(
            _as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                 "-t", "30", "-o", f"-p {self.port}", "start"]
            )
        )  # fmt: skip
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        if not self.running:
            return
        _run(
            _as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "30", "-m", mode,
                 "stop"]
            )
        )  # fmt: skip
        self.running = False

    def stop_quietly(self) -> None:
        try:
            self.stop("immediate")
        except Exception:
            pid_file = self.data / "postmaster.pid"
            with contextlib.suppress(Exception):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)

    def url(self, database: str = "postgres", driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def base_backup(self, root: Path) -> PostgresServer:
        """A streaming replica of this (running) server, in `root`, not yet started."""
        replica = PostgresServer(root / "data", free_port(), root / "postgres.log")
        _run(
            _as_postgres(
                [str(PG_BIN / "pg_basebackup"), "-D", str(replica.data), "-h", "127.0.0.1",
                 "-p", str(self.port), "-U", "postgres", "-R", "-X", "stream", "--no-sync",
                 "-c", "fast"]
            )
        )  # fmt: skip
        replica.configure(unix_socket_directories=f"'{root}'")
        return replica


@contextlib.contextmanager
def running_postgres(
    prefix: str, create: Callable[[Path], PostgresServer]
) -> Iterator[PostgresServer]:
    """A PostgreSQL server made by `create` in a private folder, stopped and removed after."""
    root = private_tempdir(prefix)
    server: PostgresServer | None = None
    try:
        server = create(root)
        server.start()
        yield server
    finally:
        if server is not None:
            server.stop_quietly()
        shutil.rmtree(root, ignore_errors=True)


def postgres_cluster() -> contextlib.AbstractContextManager[PostgresServer]:
    return running_postgres("inkwell-pg-", PostgresServer.initialise)


async def pg_execute(dsn: str, sql: str, *args: Any) -> list[Any]:
    """Run one statement on `dsn` (a plain postgresql:// DSN) and return its rows."""
    import asyncpg

    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def create_database(server: PostgresServer, name: str) -> str:
    """Create `name` on the private server, migrate it, and return its SQLAlchemy URL."""
    from src.cli import migrate

    await pg_execute(server.dsn(), f'CREATE DATABASE "{name}"')
    url = server.url(name)
    await asyncio.to_thread(migrate, url)
    return url


# --- Redis ---------------------------------------------------------------------------------------


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    assert REDIS_SERVER is not None
    root = Path(tempfile.mkdtemp(prefix="inkwell-redis-"))
    port = free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            assert process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield RedisServer(port, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        shutil.rmtree(root, ignore_errors=True)


# --- a TCP proxy the test controls -------------------------------------------------------------


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target`; `cut()` simulates the server vanishing.

    * `cut()`: every open connection is reset and the port is closed (connection refused), as
      when the server process dies.
    * `blackhole()`: open connections stay up but nothing is forwarded any more, and new
      connections are accepted and then ignored, as in a network partition.
    * `restore()`: forwarding resumes on the same port.
    """

    target: int
    port: int = 0
    mode: str = "open"
    _server: asyncio.Server | None = None
    _links: set[asyncio.Task[None]] = field(default_factory=set)
    _transports: set[asyncio.Transport] = field(default_factory=set)

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.mode = "open"
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = writer.transport
        self._transports.add(client)  # type: ignore[arg-type]
        if self.mode != "open":
            return  # blackhole: hold the connection, forward nothing
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            client.abort()
            return
        self._transports.add(up_writer.transport)  # type: ignore[arg-type]
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except asyncio.CancelledError:
            pass
        finally:
            self._links.discard(task)
            for transport in (client, up_writer.transport):
                transport.abort()
                self._transports.discard(transport)  # type: ignore[arg-type]

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                while self.mode == "blackhole":
                    await asyncio.sleep(0.05)
                if self.mode != "open":
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()

    def _reset_all(self) -> None:
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def cut(self) -> None:
        self.mode = "cut"
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._reset_all()
        await asyncio.sleep(0)

    def blackhole(self) -> None:
        self.mode = "blackhole"

    async def restore(self) -> None:
        if self.mode == "blackhole":
            self._reset_all()  # what was held during the partition is lost, as it would be
        self.mode = "open"
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def close(self) -> None:
        self.mode = "closed"
        if self._server is not None:
            self._server.close()
            self._server = None
        self._reset_all()
        await asyncio.sleep(0.01)  # the pumps see their connections end and finish


# --- Inkwell as a real server process ----------------------------------------------------------


@dataclass
class _ChildProcess:
    """A child process of ours that answers `/health` on `port` once it is up."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _launch(self, argv: list[str], env: dict[str, str], timeout: float) -> None:
        env["PYTHONPATH"] = str(PROJECT_ROOT)
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                argv, cwd=PROJECT_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.output()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            assert time.monotonic() < deadline, "the process did not start:\n" + self.output()
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Make sure the process is gone (used in `finally`)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


@dataclass
class InkwellProcess(_ChildProcess):
    """`python -m uvicorn --factory src.main:create_served_app` on a free port."""

    factory: str = "src.main:create_served_app"

    def start(self, timeout: float = 30) -> InkwellProcess:
        env = {**os.environ, **self.env, "HOST": "127.0.0.1", "PORT": str(self.port)}
        for name in ("REDIS_URL", "READ_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
            if name not in self.env:
                env.pop(name, None)
        argv = [
            sys.executable, "-m", "uvicorn", "--factory", self.factory,
            "--host", "127.0.0.1", "--port", str(self.port), "--loop", "uvloop",
            "--http", "httptools", "--no-access-log", "--timeout-graceful-shutdown", "30",
        ]  # fmt: skip
        self._launch(argv, env, timeout)
        return self


def inkwell_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `inkwell ARGS` as a separate process (the operator's view)."""
    return subprocess.run(
        [sys.executable, "-m", "src.cli", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class WorkerProcess(_ChildProcess):
    """`inkwell worker` (with the test handlers of tests/resilience/event_apps.py) as a real
    process, its probes on a free WORKER_PORT."""

    def start(self, timeout: float = 30) -> WorkerProcess:
        env = {**os.environ, **self.env, "HOST": "127.0.0.1", "WORKER_PORT": str(self.port)}
        self._launch([sys.executable, "-m", "tests.resilience.event_apps"], env, timeout)
        return self
