"""What a hostile client can do to a connection, against a real `inkwell serve`: huge heads,
silence, slowloris, bodies that stop, too many sockets, broken framing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import Backend
from tests.security.served import (
    Served,
    assert_server_problem,
    inkwell_serve,
    parse,
    read_answer,
    read_until_closed,
)

pytestmark = pytest.mark.slow

HEAD_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
KEEPALIVE_TIMEOUT = 1.0
MAX_HEAD = 32 * 1024


@pytest.fixture(scope="module")
def server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with inkwell_serve(
        backend,
        tmp_path_factory.mktemp("served"),
        HTTP_HEADER_TIMEOUT_SECONDS=str(HEAD_TIMEOUT),
        HTTP_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        HTTP_KEEPALIVE_TIMEOUT_SECONDS=str(KEEPALIVE_TIMEOUT),
        HTTP_MAX_HEADER_BYTES=str(MAX_HEAD),
    ) as served:
        yield served


def test_a_128_mib_header_is_431_and_health_stays_responsive(server: Served) -> None:
    process = psutil.Process(server.process.pid)
    rss_before = process.memory_info().rss
    health: list[tuple[int, float]] = []

    def poll_health() -> None:
        with httpx.Client(base_url=server.url, timeout=5) as probe:
            for _ in range(5):
                started = time.monotonic()
                status = probe.get("/health").status_code
                health.append((status, time.monotonic() - started))

    sock = server.connect()
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: inkwell.test\r\nX-Big: ")
    prober = threading.Thread(target=poll_health)
    prober.start()
    sent = 0
    chunk = b"a" * 65536
    try:
        while sent < 128 * 2**20:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:  # the server has answered and closed: the rest is not read at all
        pass
    answer = parse(read_until_closed(sock))
    sock.close()
    prober.join()
    problem = assert_server_problem(answer, 431, "request_header_fields_too_large")
    assert str(MAX_HEAD) in problem["detail"]
    assert [status for status, _ in health] == [200] * 5  # each within its 5 s timeout
    assert process.memory_info().rss - rss_before < 64 * 2**20
    assert (httpx.get(f"{server.url}/health", timeout=5)).status_code == 200


def test_a_head_just_under_the_limit_is_served(server: Served) -> None:
    filler = "a" * (MAX_HEAD - 200)
    response = httpx.get(f"{server.url}/health", headers={"X-Filler": filler}, timeout=5)
    assert response.status_code == 200


def test_a_silent_socket_is_answered_408_and_closed(server: Served) -> None:
    sock = server.connect()
    started = time.monotonic()
    answer = parse(read_until_closed(sock))
    held = time.monotonic() - started
    sock.close()
    assert_server_problem(answer, 408, "request_timeout")
    assert HEAD_TIMEOUT * 0.8 <= held < HEAD_TIMEOUT + 8


def test_slowloris_one_header_line_at_a_time_is_cut_at_the_head_timeout(server: Served) -> None:
    sock = server.connect()
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: inkwell.test\r\n")
    started = time.monotonic()
    lines = 0
    try:
        for lines in range(1, 41):  # 20 s of headers, if nobody stopped it
            sock.sendall(b"X-Slow-%d: still here\r\n" % lines)
            time.sleep(0.5)
            if time.monotonic() - started > HEAD_TIMEOUT + 1:
                break
    except OSError:
        pass
    answer = parse(read_until_closed(sock))
    held = time.monotonic() - started
    sock.close()
    assert_server_problem(answer, 408, "request_timeout")
    assert held < HEAD_TIMEOUT + 8
    assert lines < 40


def test_a_body_that_stops_arriving_is_cut_at_the_body_timeout(server: Served) -> None:
    sock = server.connect()
    sock.sendall(
        b"POST /api/v1/signup HTTP/1.1\r\nHost: inkwell.test\r\nContent-Type: application/json"
        b'\r\nContent-Length: 100\r\n\r\n{"name": '
    )
    started = time.monotonic()
    answer = parse(read_until_closed(sock))
    held = time.monotonic() - started
    sock.close()
    problem = assert_server_problem(answer, 408, "request_timeout")
    assert problem["instance"] == "/api/v1/signup"
    assert BODY_TIMEOUT * 0.8 <= held < BODY_TIMEOUT + 8


def test_an_idle_keep_alive_connection_is_closed(server: Served) -> None:
    sock = server.connect()
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: inkwell.test\r\n\r\n")
    assert read_answer(sock).status == 200
    started = time.monotonic()
    assert read_until_closed(sock) == b""
    # uvicorn's own default (5 s) would not do: the setting reaches the server
    assert time.monotonic() - started < KEEPALIVE_TIMEOUT + 3
    sock.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost inkwell.test\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST /api/v1/signup HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on the plain port
    ],
    ids=["header-without-colon", "two-content-lengths", "bad-chunk-size", "tls-on-http"],
)
def test_malformed_framing_is_a_400_problem_with_the_security_headers(
    server: Served, request_bytes: bytes
) -> None:
    sock = server.connect()
    sock.sendall(request_bytes)
    answer = parse(read_until_closed(sock))
    sock.close()
    assert_server_problem(answer, 400, "bad_request")


def test_connections_per_worker_are_bounded(backend: Backend, tmp_path: Path) -> None:
    with inkwell_serve(backend, tmp_path, HTTP_MAX_CONNECTIONS="4") as server:
        held = [server.connect() for _ in range(4)]
        try:
            time.sleep(0.3)  # the server has seen them all
            extra = server.connect()
            answer = parse(read_until_closed(extra))
            extra.close()
            assert_server_problem(answer, 503, "service_unavailable")
            assert answer.headers["retry-after"] == "1"
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 10
        while True:  # once the server has seen them go, there is room again
            status = httpx.get(f"{server.url}/health", timeout=5).status_code
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200
