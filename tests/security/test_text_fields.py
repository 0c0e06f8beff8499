"""SQL metacharacters and Unicode edge cases in every text field of every request body.

SQL metacharacters are data: they are stored and returned verbatim (every query is
parameterised) and the tables survive. NUL (PostgreSQL cannot store it), lone surrogates (not
UTF-8), bidirectional overrides (spoofed display) and 10 kB strings are refused with a 422
naming the field — or, at login, with the same 401 as any other wrong credentials. No answer is
a 500, and no answer echoes a password or token.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import authed_user, publish, signup_body
from tests.security.hostile import PAYLOADS, assert_refused, post_json

CLASSES = list(PAYLOADS)
PASSWORD = "correct horse battery"


def _signup_value(field: str, payload: str) -> str:
    if field == "email":
        return f"ada{payload}@example.com"
    if field == "phone_number":
        return f"+234801{payload}"
    if field == "password":
        return f"pass {payload} word"
    return f"Ada {payload} Lovelace"


# field -> the status each payload class gets (in CLASSES order)
SIGNUP_OUTCOMES = {
    "name": (201, 422, 422, 422, 422),
    "display_name": (201, 422, 422, 422, 422),
    "country": (201, 422, 422, 422, 422),
    "state": (201, 422, 422, 422, 422),
    "email": (422, 422, 422, 422, 422),
    "password": (201, 422, 422, 201, 422),  # a password may hold any text but NUL / surrogates
    "phone_number": (422, 422, 422, 422, 422),
}
SIGNUP_CASES = [
    pytest.param(field, kind, status, id=f"{field}-{kind}")
    for field, statuses in SIGNUP_OUTCOMES.items()
    for kind, status in zip(CLASSES, statuses, strict=True)
]


@pytest.mark.parametrize(("field", "kind", "status"), SIGNUP_CASES)
async def test_signup_text_fields(
    client: httpx.AsyncClient, field: str, kind: str, status: int
) -> None:
    value = _signup_value(field, PAYLOADS[kind])
    body = signup_body(**{"password": PASSWORD, field: value})
    response = await post_json(client, "/api/v1/signup", body)
    assert body["password"] not in response.text
    if status == 201:
        assert response.status_code == 201, response.text
        created = response.json()
        if field != "password":
            assert created[field] == value  # stored verbatim, not interpreted
        profile = await client.get(f"/api/v1/users/{created['id']}")
        assert profile.status_code == 200  # the users table is still there
        return
    problem = assert_refused(response, 422, "validation_error", secrets=(value,))
    assert [e["pointer"] for e in problem["errors"]] == [f"/{field}"]


async def test_an_email_with_sql_metacharacters_signs_up_and_logs_in(
    client: httpx.AsyncClient,
) -> None:
    email = "o'brien+1=1--@example.com"  # valid RFC 5322 atext, hostile to string-built SQL
    response = await post_json(
        client, "/api/v1/signup", signup_body(email=email, password=PASSWORD)
    )
    assert response.status_code == 201, response.text
    login = await post_json(client, "/api/v1/auth/login", {"email": email, "password": PASSWORD})
    assert login.status_code == 200


LOGIN_CASES = [
    pytest.param(field, kind, id=f"{field}-{kind}")
    for field in ("email", "password")
    for kind in CLASSES
]


@pytest.mark.parametrize(("field", "kind"), LOGIN_CASES)
async def test_login_text_fields(client: httpx.AsyncClient, field: str, kind: str) -> None:
    body = {"email": "ada@example.com", "password": PASSWORD}
    body[field] = PAYLOADS[kind] + body[field]
    response = await post_json(client, "/api/v1/auth/login", body)
    secrets = (body["password"],)
    if kind in ("10kB", "lone-surrogate"):  # over the documented maximum; not a string at all
        problem = assert_refused(response, 422, "validation_error", secrets=secrets)
        assert [e["pointer"] for e in problem["errors"]] == [f"/{field}"]
    else:  # e.g. a NUL reaches no database query: an unknown account, like any other
        assert_refused(response, 401, "invalid_credentials", secrets=secrets)
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("field", ["username", "password"])
async def test_login_form_with_nul_is_401_not_a_database_error(
    client: httpx.AsyncClient, field: str
) -> None:
    form = {"username": "ada@example.com", "password": PASSWORD}
    form[field] = "ada\x00" + form[field]
    response = await client.post("/api/v1/auth/token", data=form)
    assert_refused(response, 401, "invalid_credentials", secrets=(form["password"],))


@pytest.mark.parametrize("kind", CLASSES)
async def test_refresh_token_field(client: httpx.AsyncClient, kind: str) -> None:
    token = PAYLOADS[kind] + "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"
    response = await post_json(client, "/api/v1/auth/refresh", {"refresh_token": token})
    if kind in ("10kB", "lone-surrogate"):
        problem = assert_refused(response, 422, "validation_error", secrets=(token,))
        assert [e["pointer"] for e in problem["errors"]] == ["/refresh_token"]
    else:
        assert_refused(response, 401, "invalid_token", secrets=(token,))


def _content_value(field: str, payload: str) -> str:
    if field == "image":
        return "https://example.com/" + payload.replace(" ", "%20")
    if field == "content":
        return f"Some content {payload} that is long enough."
    return f"Title {payload}"


CONTENT_OUTCOMES = {
    "title": (True, False, False, False, False),
    "content": (True, False, False, False, True),  # 10 kB is within the 50,000 limit
    "image": (True, False, False, False, False),
}
CONTENT_CASES = [
    pytest.param(method, field, kind, accepted, id=f"{method}-{field}-{kind}")
    for method in ("POST", "PATCH")
    for field, outcomes in CONTENT_OUTCOMES.items()
    for kind, accepted in zip(CLASSES, outcomes, strict=True)
]


@pytest.mark.parametrize(("method", "field", "kind", "accepted"), CONTENT_CASES)
async def test_content_text_fields(
    client: httpx.AsyncClient, method: str, field: str, kind: str, accepted: bool
) -> None:
    author = await authed_user(client)
    value = _content_value(field, PAYLOADS[kind])
    body: dict[str, Any] = {field: value}
    if method == "POST":
        path = "/api/v1/content"
        body = {"title": "A title", "content": "Some content, long enough.", **body}
    else:
        path = f"/api/v1/content/{(await publish(client, author))['id']}"
    response = await post_json(client, path, body, author["headers"], method=method)
    token = author["tokens"]["access_token"]
    assert token not in response.text
    if accepted:
        assert response.status_code == (201 if method == "POST" else 200), response.text
        stored = await client.get(f"/api/v1/content/{response.json()['id']}")
        assert stored.json()[field] == value  # returned verbatim, not interpreted
        return
    problem = assert_refused(response, 422, "validation_error", secrets=(token,))
    assert [e["pointer"] for e in problem["errors"]] == [f"/{field}"]
