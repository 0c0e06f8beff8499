"""`inkwell serve` as a real process on the test backend, and raw sockets to talk to it.

For what is about the connection itself (framing, timeouts, limits), where an in-process ASGI
client would skip the very layer under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import BASE_SETTINGS, RUN_ID, Backend
from tests.resilience.servers import PROJECT_ROOT, free_port


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self, timeout: float = 15) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def inkwell_serve(backend: Backend, folder: Path, **env: str) -> Iterator[Served]:
    """`inkwell serve` on `backend`'s database (and Redis), with `env` on top."""
    port = free_port()
    variables = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "READ_DATABASE_URL")},
        "APP_ENV": "test",
        "DATABASE_URL": backend.database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "BCRYPT_ROUNDS": str(BASE_SETTINGS["bcrypt_rounds"]),
        "JWT_SECRET": BASE_SETTINGS["jwt_secret"],
        "RATE_LIMIT_ENABLED": "false",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "WEB_CONCURRENCY": "1",
        "PYTHONPATH": str(PROJECT_ROOT),
        **env,
    }
    if backend.redis_url:
        variables["REDIS_URL"] = backend.redis_url
        variables["REDIS_KEY_PREFIX"] = f"inkwell-test-{RUN_ID}:served-{uuid.uuid4().hex[:8]}:"
    variables.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = folder / f"server-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "src.cli", "serve"],
            cwd=folder, env=variables, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    served = Served(process, port, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, served.output()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{served.url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server did not start:\n" + served.output()
            time.sleep(0.1)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or resets it)."""
    received = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def read_answer(sock: socket.socket) -> Answer:
    """One HTTP/1.1 answer with a Content-Length (every answer Inkwell gives has one)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    answer = parse_head(head)
    length = int(answer.headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed mid-answer"
        body += chunk
    answer.body = body[:length]
    return answer


def parse_head(head: bytes) -> Answer:
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split(" ")[1]), headers, b"")


def parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    answer = parse_head(head)
    answer.body = body[: int(answer.headers.get("content-length", len(body)))]
    return answer


def assert_server_problem(answer: Answer, status: int, code: str) -> dict[str, Any]:
    """One of the server's own answers: a problem with the security headers, then close."""
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["connection"] == "close"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    problem: dict[str, Any] = answer.json()
    assert (problem["status"], problem["code"]) == (status, code)
    assert problem["request_id"] == answer.headers["x-request-id"]
    return problem
