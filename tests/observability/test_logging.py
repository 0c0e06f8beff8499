"""Logs: one JSON object per line with the request's ids, an access line, no secrets."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from loguru import logger

from src.core.context import correlation_id_var, request_id_var
from src.observability.logging import (
    AccessRecord,
    LineWriter,
    _patch,
    access_line,
    configure_logging,
    flush_logs,
    render_access_json,
    render_json,
)
from src.slices.signup.commands import SignUp
from tests.helpers import signup_body

BCRYPT_HASH = re.compile(r"\$2[abxy]?\$\d{2}\$")
ID_FIELDS = ("request_id", "correlation_id", "trace_id", "span_id")


def json_lines(output: str) -> list[dict[str, Any]]:
    lines = [line for line in output.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line must be one JSON object


async def test_signup_and_login_never_log_passwords_hashes_or_tokens(
    make_client: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    body = signup_body(password="s3cret-Passw0rd-never-logged")
    forged_token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW5vdC1sb2dnZWQ"
    capsys.readouterr()
    async with make_client(log_level="DEBUG") as client:
        created = await client.post("/api/v1/signup", json=body)
        assert created.status_code == 201
        duplicate = await client.post(
            "/api/v1/signup", json=body, headers={"Authorization": f"Bearer {forged_token}"}
        )
        assert duplicate.status_code == 409
        login_route = any(
            getattr(route, "path", None) == "/api/v1/auth/login" for route in client.app.routes
        )
        tokens: list[str] = [forged_token]
        if login_route:
            login = await client.post(
                "/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}
            )
            assert login.status_code == 200, login.text
            tokens += [login.json()["access_token"], login.json()["refresh_token"]]
            await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tokens[1]}"})
    output = capsys.readouterr().out

    lines = json_lines(output)
    assert any(line.get("event") == "http.access" for line in lines)
    assert body["password"] not in output
    assert BCRYPT_HASH.search(output) is None
    for token in tokens:
        assert token not in output
        assert token.split(".")[2] not in output
    assert "Bearer" not in output
    assert "authorization" not in output.lower()


async def test_every_line_carries_the_request_ids_and_the_callers_trace(
    client_ids: dict[str, str], make_client: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    async with make_client(log_level="DEBUG") as client:
        response = await client.post(
            "/api/v1/signup",
            json=signup_body(),
            headers={
                "X-Request-ID": client_ids["request_id"],
                "X-Correlation-ID": client_ids["correlation_id"],
                "traceparent": f"00-{client_ids['trace_id']}-{client_ids['parent_id']}-01",
            },
        )
        assert response.status_code == 201
    lines = json_lines(capsys.readouterr().out)

    assert lines
    for line in lines:
        assert set(ID_FIELDS) <= set(line), line
    request_lines = [line for line in lines if line["request_id"] == client_ids["request_id"]]
    access = [line for line in request_lines if line.get("event") == "http.access"]
    assert len(access) == 1
    (entry,) = access
    assert entry["correlation_id"] == client_ids["correlation_id"]
    assert entry["trace_id"] == client_ids["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{16}", entry["span_id"])
    assert entry["span_id"] != client_ids["parent_id"]
    assert entry["method"] == "POST"
    assert entry["route"] == "/api/v1/signup"
    assert entry["status"] == 201
    assert isinstance(entry["duration_ms"], float | int)
    assert entry["duration_ms"] >= 0
    assert "client" in entry


@pytest.fixture
def client_ids() -> dict[str, str]:
    return {
        "request_id": f"req-{uuid.uuid4().hex}",
        "correlation_id": f"corr-{uuid.uuid4().hex}",
        "trace_id": uuid.uuid4().hex,
        "parent_id": uuid.uuid4().hex[:16],
    }


async def test_a_crash_is_logged_with_its_stack_and_answered_without_it(
    make_client: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def crash(self: SignUp, command: Any) -> Any:
        raise RuntimeError("kaboom-internal-detail")

    monkeypatch.setattr(SignUp, "_sign_up", crash)
    capsys.readouterr()
    async with make_client() as client:
        response = await client.post("/api/v1/signup", json=signup_body())
    lines = json_lines(capsys.readouterr().out)

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "kaboom" not in response.text
    assert "Traceback" not in response.text
    errors = [line for line in lines if line["level"] == "ERROR" and "error" in line]
    assert errors, lines
    (logged,) = [e for e in errors if e["request_id"] == response.headers["x-request-id"]]
    assert logged["error"]["type"] == "RuntimeError"
    assert "Traceback" in logged["error"]["stack"]
    assert "kaboom-internal-detail" in logged["error"]["stack"]


async def test_stdlib_loggers_are_routed_through_the_json_sink(
    make_client: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    async with make_client():
        logging.getLogger("uvicorn.error").warning("stdlib says hello")
        logging.getLogger("some.library").error("library says hello")
    lines = json_lines(capsys.readouterr().out)
    messages = {line["message"]: line for line in lines}
    assert {"stdlib says hello", "library says hello"} <= set(messages)
    for line in (messages["stdlib says hello"], messages["library says hello"]):
        assert set(ID_FIELDS) <= set(line)
    assert messages["stdlib says hello"]["logger_name"] == "uvicorn.error"


class StalledStream(io.StringIO):
    """A stdout that stops taking writes until released, as a stuck log collector does."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()
        self.entered = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.released.wait(10)
        return super().write(text)


def test_a_stalled_stdout_drops_counted_lines_and_never_blocks_the_logger() -> None:
    stream = StalledStream()
    writer = LineWriter(capacity=5)
    writer.configure(render_json, lambda: stream)
    sink = logger.add(writer, format="", level="INFO")
    try:
        logger.info("first")
        assert stream.entered.wait(10)  # the writer thread is now stuck in write()
        for index in range(50):
            logger.info(f"line {index}")  # returns at once: 5 queued, 45 dropped
        stream.released.set()
        writer.flush()
    finally:
        logger.remove(sink)
        writer.close()
    lines = json_lines(stream.getvalue())
    messages = [line["message"] for line in lines]

    assert messages[:6] == ["first"] + [f"line {index}" for index in range(5)]
    (dropped,) = [line for line in lines if line.get("event") == "log.dropped"]
    assert dropped["dropped"] == 45
    assert dropped["level"] == "WARNING"
    assert writer.dropped_total == 45


class RecordedStream(io.StringIO):
    """A stdout that remembers each write the writer made, and says when the first one came."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.first = threading.Event()

    def write(self, text: str) -> int:
        self.writes.append(text)
        self.first.set()
        return super().write(text)


def test_lines_handed_over_while_the_writer_pauses_are_written_together() -> None:
    # The writer wakes once per batch, not once per line: a wake-up per request cost the loop
    # GIL hand-offs. The pause is long here so that the test's own scheduling cannot split it.
    stream = RecordedStream()
    writer = LineWriter(pause=0.5)
    writer.configure(render_json, lambda: stream)
    this_thread = threading.get_ident()  # only this test's lines, not another thread's
    sink = logger.add(
        writer, format="", level="INFO", filter=lambda r: r["thread"].id == this_thread
    )
    try:
        logger.info("first")
        assert stream.first.wait(10)  # written; the writer now pauses
        for index in range(20):
            logger.info(f"line {index}")
            time.sleep(0.002)  # lines arrive apart, as requests do: the writer could wake
        writer.flush()
    finally:
        logger.remove(sink)
        writer.close()
    messages = [[line["message"] for line in json_lines(text)] for text in stream.writes]

    assert messages == [["first"], [f"line {index}" for index in range(20)]]


def test_the_access_line_is_the_object_loguru_would_have_written() -> None:
    # The edge's access line skips loguru; readers of the logs must not see the difference.
    records: list[Any] = []
    sink = logger.add(lambda message: records.append(message.record), format="", level="DEBUG")
    request_token = request_id_var.set("req-1")
    correlation_token = correlation_id_var.set("corr-1")
    try:
        logger.bind(
            event="http.access",
            method="GET",
            route="/api/v1/content/{content_id}",
            status=200,
            duration_ms=0.42,
            client="10.0.0.7",
        ).info("{} {} {}", "GET", "/api/v1/content/{content_id}", 200)
    finally:
        logger.remove(sink)
        request_id_var.reset(request_token)
        correlation_id_var.reset(correlation_token)
    (record,) = records
    _patch(record)
    fields = ("GET", "/api/v1/content/{content_id}", 200, 0.42, "10.0.0.7")
    access = AccessRecord(
        (record["time"].timestamp(), "INFO", record["name"], *fields, "req-1", "corr-1", 0, 0)
    )

    assert render_access_json(access) == render_json(record)


def test_access_lines_follow_the_log_level(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        configure_logging("WARNING", "json")
        capsys.readouterr()
        access_line("INFO", __name__, "GET", "/api/v1/content", 200, 0.5, None)
        flush_logs()
        assert capsys.readouterr().out == ""
        configure_logging("DEBUG", "json")
        access_line("DEBUG", __name__, "GET", "/health", 200, 0.5, None)
        flush_logs()
        (line,) = json_lines(capsys.readouterr().out)
        assert (line["event"], line["route"], line["level"]) == ("http.access", "/health", "DEBUG")
    finally:
        configure_logging("INFO", "json")


def test_uvicorn_builds_no_access_line_of_its_own() -> None:
    # uvicorn formats its access line whenever its logger has a handler anywhere up the tree,
    # even a disabled one; the edge writes the access line, so uvicorn must find none.
    configure_logging("INFO", "json")

    assert not logging.getLogger("uvicorn.access").hasHandlers()
