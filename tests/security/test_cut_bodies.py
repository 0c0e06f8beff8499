"""A command whose body is cut off never runs, with or without an Idempotency-Key, and leaves
the key free: the retry with the whole body and the same key is the one that creates. Against a
real `inkwell serve`, with real sockets that hang up mid-body."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import Backend
from tests.helpers import signup_body
from tests.security.served import Served, inkwell_serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with inkwell_serve(backend, tmp_path_factory.mktemp("served")) as served:
        yield served


@pytest.fixture
def author(server: Served) -> dict[str, str]:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        body = signup_body()
        assert http.post("/api/v1/signup", json=body).status_code == 201
        login = http.post(
            "/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}
        )
        assert login.status_code == 200
    me = httpx.get(
        f"{server.url}/api/v1/users/me",
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
    ).json()
    return {"id": me["id"], "token": login.json()["access_token"]}


def short_content_length(body: bytes) -> bytes:
    """`Content-Length: N+20`, then only the N bytes (valid JSON on their own)."""
    return b"Content-Length: %d\r\n\r\n%s" % (len(body) + 20, body)


def chunked_without_last_chunk(body: bytes) -> bytes:
    """The whole JSON in one chunk, and never the terminating `0` chunk."""
    return b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(body), body)


FRAMINGS = {"short-content-length": short_content_length, "chunked": chunked_without_last_chunk}


def send_and_hang_up(
    server: Served,
    path: str,
    headers: dict[str, str],
    framing: Callable[[bytes], bytes],
    body: bytes,
) -> None:
    head = f"POST {path} HTTP/1.1\r\nHost: inkwell.test\r\nContent-Type: application/json\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    sock = server.connect()
    sock.sendall(head.encode() + framing(body))
    time.sleep(0.3)  # the server has the head and the bytes, and is waiting for the rest
    sock.close()
    time.sleep(0.5)  # and has seen the hang-up


def items_of(server: Served, author_id: str) -> list[dict[str, object]]:
    page = httpx.get(f"{server.url}/api/v1/content", params={"author_id": author_id}, timeout=10)
    items: list[dict[str, object]] = page.json()["items"]
    return items


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "unkeyed"])
def test_a_content_item_cut_off_mid_body_is_not_created(
    server: Served, author: dict[str, str], framing: str, keyed: bool
) -> None:
    body = json.dumps({"title": "Cut off", "content": "0123456789ab"}).encode()
    assert 40 <= len(body) <= 60
    key = {"Idempotency-Key": str(uuid.uuid4())} if keyed else {}
    headers = {"Authorization": f"Bearer {author['token']}", **key}
    send_and_hang_up(server, "/api/v1/content", headers, FRAMINGS[framing], body)
    assert items_of(server, author["id"]) == []
    retry = httpx.post(f"{server.url}/api/v1/content", content=body, headers={
        "Content-Type": "application/json", **headers}, timeout=10)  # fmt: skip
    assert retry.status_code == 201, retry.text
    assert "idempotent-replayed" not in retry.headers
    assert [item["id"] for item in items_of(server, author["id"])] == [retry.json()["id"]]


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_a_signup_cut_off_mid_body_leaves_its_key_free(server: Served, framing: str) -> None:
    body = json.dumps(signup_body(), separators=(",", ":")).encode()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    send_and_hang_up(server, "/api/v1/signup", key, FRAMINGS[framing], body)
    retry = httpx.post(f"{server.url}/api/v1/signup", content=body, headers={
        "Content-Type": "application/json", **key}, timeout=10)  # fmt: skip
    assert retry.status_code == 201, retry.text  # not 409 (created before) nor 422 (key used)
    again = httpx.post(f"{server.url}/api/v1/signup", content=body, headers={
        "Content-Type": "application/json", **key}, timeout=10)  # fmt: skip
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == retry.content


def test_a_client_that_hung_up_is_not_counted_as_a_server_error(server: Served) -> None:
    body = json.dumps(signup_body()).encode()
    send_and_hang_up(
        server, "/api/v1/signup", {"Idempotency-Key": "k-" + uuid.uuid4().hex},
        short_content_length, body,
    )  # fmt: skip
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'http_response_status_code="499",http_route="/api/v1/signup"' in metrics
    assert 'http_response_status_code="500"' not in metrics
