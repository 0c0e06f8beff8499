"""Path ids that are not UUIDs, hostile query parameters, `limit` overflow, forged cursors.

Each is a 422 `validation_error` naming the parameter (a path that escapes its route is a
404 `not_found`); the control tests show the same requests succeed with sane values.
"""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import quote

import httpx
import pytest

from src.core.pagination import CursorCodec
from tests.helpers import authed_user, publish, sign_up
from tests.security.hostile import PAYLOADS, assert_refused

NOT_UUIDS = {
    "word": "not-a-uuid",
    "integer": "1",
    "negative": "-1",
    "sql": quote("' OR '1'='1", safe=""),
    "nul": "%00",
    "lone-surrogate-bytes": "%ED%A0%80",
    "rtl-override": quote("\u202e", safe=""),
    "bad-hex": "00000000-0000-0000-0000-00000000000g",
    "too-long": "0" * 10_000,
}


async def test_non_uuid_path_ids_are_422(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    for name, bad in NOT_UUIDS.items():
        for method, path, parameter in (
            ("GET", f"/api/v1/users/{bad}", "user_id"),
            ("GET", f"/api/v1/content/{bad}", "content_id"),
            ("PATCH", f"/api/v1/content/{bad}", "content_id"),
            ("DELETE", f"/api/v1/content/{bad}", "content_id"),
        ):
            response = await client.request(
                method, path, json={"title": "A new title"}, headers=author["headers"]
            )
            assert response.status_code == 422, (name, method, path[:60])
            problem = assert_refused(response, 422, "validation_error")
            assert [e.get("parameter") for e in problem["errors"]] == [parameter]


async def test_a_path_escaping_its_route_is_404(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/content/..%2F..%2Fusers", "/api/v1/users/x%2F..%2F..%2Fetc%2Fpasswd"):
        assert_refused(await client.get(path), 404, "not_found")


def _query(value: str) -> str:
    return "%ED%A0%80" if value == PAYLOADS["lone-surrogate"] else quote(value, safe="")


QUERY_CASES = [
    pytest.param(path, parameter, kind, id=f"{path.rsplit('/', 1)[1]}-{parameter}-{kind}")
    for path, parameters in (
        ("/api/v1/users", ("cursor", "limit")),
        ("/api/v1/content", ("cursor", "limit", "author_id")),
    )
    for parameter in parameters
    for kind in PAYLOADS
]


@pytest.mark.parametrize(("path", "parameter", "kind"), QUERY_CASES)
async def test_hostile_query_parameters_are_422(
    client: httpx.AsyncClient, path: str, parameter: str, kind: str
) -> None:
    response = await client.get(f"{path}?{parameter}={_query(PAYLOADS[kind])}")
    problem = assert_refused(response, 422, "validation_error")
    assert [e.get("parameter") for e in problem["errors"]] == [parameter]


LIMITS = [
    "0",
    "-1",
    "101",
    "2147483648",
    "9223372036854775808",
    "99999999999999999999999999999999999999",
    "1e3",
    "0x10",
    "1.5",
    "NaN",
    "",
]


@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/content"])
async def test_limit_overflow_and_junk_are_422(client: httpx.AsyncClient, path: str) -> None:
    for limit in LIMITS:
        response = await client.get(path, params={"limit": limit})
        assert response.status_code == 422, limit
        problem = assert_refused(response, 422, "validation_error")
        assert [e.get("parameter") for e in problem["errors"]] == ["limit"]
    assert (await client.get(path, params={"limit": "100"})).status_code == 200


def _forged_cursors(genuine: str) -> dict[str, str]:
    payload, signature = genuine.split(".")
    now = dt.datetime.now(dt.UTC)
    foreign = CursorCodec("another-secret").encode(now, uuid.uuid4())
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    return {
        "signed-with-another-key": foreign,
        "payload-tampered": f"{flipped}.{signature}",
        "signature-dropped": payload,
        "signature-empty": f"{payload}.",
        "extra-segment": f"{genuine}.x",
        "not-base64": "!!!.???",
        "dots-only": "...",
        "json-not-base64": '{"created_at":"2020-01-01"}.AAAA',
        "sql": PAYLOADS["sql"],
        "512-chars": "A" * 256 + "." + "A" * 255,
    }


@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/content"])
async def test_forged_and_garbled_cursors_are_422(client: httpx.AsyncClient, path: str) -> None:
    author = await authed_user(client)
    await sign_up(client)
    for _ in range(3):
        await publish(client, author)
    first = await client.get(path, params={"limit": 1})
    genuine = first.json()["next_cursor"]
    assert (await client.get(path, params={"cursor": genuine})).status_code == 200  # control
    for name, cursor in _forged_cursors(genuine).items():
        response = await client.get(path, params={"cursor": cursor})
        assert response.status_code == 422, name
        problem = assert_refused(response, 422, "validation_error")
        assert [e.get("parameter") for e in problem["errors"]] == ["cursor"], name
