from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.helpers import assert_problem, sign_up, signup_body


async def test_signup_creates_user_and_answers_201_with_location(client: httpx.AsyncClient) -> None:
    body = signup_body(
        email="Grace.Hopper@Example.COM",
        phone_number="+2348012345678",
        country="Nigeria",
        state="Lagos",
        display_name="Amazing Grace",
    )
    response = await client.post("/api/v1/signup", json=body)

    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) == {
        "id",
        "name",
        "email",
        "display_name",
        "phone_number",
        "country",
        "state",
        "role",
        "is_active",
        "created_at",
    }
    assert user["email"] == "grace.hopper@example.com"
    assert user["display_name"] == "Amazing Grace"
    assert user["role"] == "creator"  # SIGNUP_ROLE's default
    assert user["is_active"] is True
    assert response.headers["location"] == f"/api/v1/users/{user['id']}"
    assert uuid.UUID(user["id"])
    assert user["created_at"].endswith(("Z", "+00:00"))


async def test_display_name_defaults_to_name(client: httpx.AsyncClient) -> None:
    user = await sign_up(client, name="Alan Turing")
    assert user["display_name"] == "Alan Turing"


async def test_display_name_needs_no_letter_and_empty_means_the_name(
    client: httpx.AsyncClient,
) -> None:
    assert (await sign_up(client, display_name="2001"))["display_name"] == "2001"
    assert (await sign_up(client, name="Grace", display_name=""))["display_name"] == "Grace"


async def test_signup_never_returns_password_or_hash(client: httpx.AsyncClient) -> None:
    body = signup_body()
    response = await client.post("/api/v1/signup", json=body)
    assert body["password"] not in response.text
    assert "$2b$" not in response.text
    assert "password" not in response.json()


async def test_new_user_is_readable_from_the_read_model(client: httpx.AsyncClient) -> None:
    user = await sign_up(client, country="Kenya")
    response = await client.get(f"/api/v1/users/{user['id']}")
    assert response.status_code == 200
    public = response.json()
    assert public["id"] == user["id"]
    assert public["country"] == "Kenya"
    assert public["content_count"] == 0


async def test_duplicate_email_is_409_email_taken_case_insensitively(
    client: httpx.AsyncClient,
) -> None:
    user = await sign_up(client)
    response = await client.post("/api/v1/signup", json=signup_body(email=user["email"].upper()))
    problem = assert_problem(response, 409, "email_taken")
    assert problem["detail"] == "A user with this email already exists."


async def test_duplicate_phone_is_409_phone_taken(client: httpx.AsyncClient) -> None:
    await sign_up(client, phone_number="+14155550100")
    response = await client.post("/api/v1/signup", json=signup_body(phone_number="+14155550100"))
    assert_problem(response, 409, "phone_taken")


async def test_concurrent_signups_with_one_email_give_one_201_and_409s(
    client: httpx.AsyncClient,
) -> None:
    email = f"race.{uuid.uuid4().hex[:8]}@example.com"
    responses = await asyncio.gather(
        *(client.post("/api/v1/signup", json=signup_body(email=email)) for _ in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 49, statuses
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == "email_taken"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "12345"),
        ("name", "x" * 101),
        ("email", "not-an-email"),
        ("password", "short"),
        ("password", "é" * 37),  # 74 UTF-8 bytes
        ("phone_number", "08012345678"),
        ("phone_number", "+123"),
        ("phone_number", "+1234567890123456"),
        ("display_name", "y" * 101),
        ("country", "c" * 101),
        ("state", "s" * 101),
        ("name", "Ada\u0000Lovelace"),
        ("name", "Ada\u202eLovelace"),
    ],
)
async def test_invalid_field_is_422_with_json_pointer(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    response = await client.post("/api/v1/signup", json=signup_body(**{field: value}))
    problem = assert_problem(response, 422, "validation_error")
    assert {"pointer": f"/{field}"}.items() <= problem["errors"][0].items()


async def test_password_of_exactly_72_bytes_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/signup", json=signup_body(password="é" * 36))
    assert response.status_code == 201, response.text


async def test_missing_fields_are_listed(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/signup", json={})
    problem = assert_problem(response, 422, "validation_error")
    pointers = {error["pointer"] for error in problem["errors"]}
    assert pointers == {"/name", "/email", "/password"}


async def test_unknown_fields_such_as_role_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/signup", json=signup_body(role="admin"))
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["pointer"] == "/role"


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/signup", content=b'{"name": "x",', headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"] == [{"pointer": "", "detail": "Not valid JSON."}]


async def test_signup_outcomes_are_counted(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    await client.post("/api/v1/signup", json=signup_body(email=user["email"]))
    await client.post("/api/v1/signup", json={"name": "no email"})
    metrics = (await client.get("/metrics")).text
    assert 'signup_requests_total{status="success"} 1.0' in metrics
    assert 'signup_requests_total{status="duplicate"} 1.0' in metrics
    assert 'signup_requests_total{status="invalid"} 1.0' in metrics
