"""Text that looks like something it is not: invisible characters, line separators in one-line
fields, URLs that are markup, bodies that are only whitespace, empty strings standing for
"nothing" — and e-mail spellings that sign up but would not log in."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import assert_problem, authed_user, content_body, signup_body
from tests.security.hostile import post_json

INVISIBLE = {
    "zero-width-space": "\u200b\u200ba",
    "zero-width-joiner-alone": "\u200da",
    "word-joiner": "Ada\u2060Lovelace",
    "bom": "\ufeffAda",
    "arabic-letter-mark": "A\u061cda",
    "soft-hyphen": "Ada\u00adLovelace",
    "line-separator": "Ada\u2028Lovelace",
    "paragraph-separator": "Ada\u2029Lovelace",
    "tag-character": "Ada\U000e0041",
}
ONE_LINE_SIGNUP_FIELDS = ("name", "display_name", "country", "state")


@pytest.mark.parametrize("field", ONE_LINE_SIGNUP_FIELDS)
@pytest.mark.parametrize("kind", sorted(INVISIBLE))
async def test_one_line_signup_fields_refuse_invisible_and_separator_characters(
    client: httpx.AsyncClient, field: str, kind: str
) -> None:
    response = await post_json(client, "/api/v1/signup", signup_body(**{field: INVISIBLE[kind]}))
    problem = assert_problem(response, 422, "validation_error")
    assert [error["pointer"] for error in problem["errors"]] == [f"/{field}"]


@pytest.mark.parametrize("kind", sorted(INVISIBLE))
async def test_a_content_title_refuses_invisible_and_separator_characters(
    client: httpx.AsyncClient, kind: str
) -> None:
    author = await authed_user(client)
    body = content_body(title=f"Title {INVISIBLE[kind]}")
    response = await post_json(client, "/api/v1/content", body, headers=author["headers"])
    problem = assert_problem(response, 422, "validation_error")
    assert [error["pointer"] for error in problem["errors"]] == ["/title"]


@pytest.mark.parametrize(
    "name",
    [
        "Ada \U0001f469\u200d\U0001f4bb",  # woman technologist: an emoji joined by ZWJ
        "\u062e\u0627\u0646\u0647\u200c\u0647\u0627",  # Persian "khane-ha": a ZWNJ between letters
        "Zoë Ångström",
    ],
)
async def test_joiners_inside_words_and_emoji_are_text(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await post_json(client, "/api/v1/signup", signup_body(name=name))
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name


@pytest.mark.parametrize(
    "image",
    [
        "https://example.com:99999/a.png",
        "https://example.com:0/a.png",
        "https://example.com:http/a.png",
        'https://example.com/a.png"><script>alert(1)</script>',
        "https://example.com/<img src=x onerror=alert(1)>",
        "https://exa mple.com/a.png",
        "https://ex_ample.com/a.png",
        "https://user:secret@example.com/a.png",
        "https://good.example@evil.example/a.png",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "//example.com/a.png",
        "https://[::1/a.png",
        "https://bücher.example/a.png",
    ],
)
async def test_an_image_must_be_a_plain_http_url(client: httpx.AsyncClient, image: str) -> None:
    author = await authed_user(client)
    body = content_body(image=image)
    response = await post_json(client, "/api/v1/content", body, headers=author["headers"])
    problem = assert_problem(response, 422, "validation_error")
    assert [error["pointer"] for error in problem["errors"]] == ["/image"]
    assert "<script>" not in response.text


@pytest.mark.parametrize(
    "image",
    [
        "https://example.com/a.png",
        "http://cdn.example.com:8080/img/a%20b.png?w=200&h=100#top",
        "https://xn--bcher-kva.example/a.png",
        "https://203.0.113.5/a.png",
        "https://[2001:db8::1]:8443/a.png",
    ],
)
async def test_plain_http_urls_are_images(client: httpx.AsyncClient, image: str) -> None:
    author = await authed_user(client)
    body = content_body(image=image)
    response = await post_json(client, "/api/v1/content", body, headers=author["headers"])
    assert response.status_code == 201, response.text
    assert response.json()["image"] == image


@pytest.mark.parametrize(
    "text", [" " * 20, "\n\t \r\n" * 5, "\u200b" * 12, "  short   \n  "], ids=repr
)
async def test_a_body_of_whitespace_is_under_the_minimum(
    client: httpx.AsyncClient, text: str
) -> None:
    author = await authed_user(client)
    response = await post_json(
        client, "/api/v1/content", content_body(content=text), headers=author["headers"]
    )
    problem = assert_problem(response, 422, "validation_error")
    assert [error["pointer"] for error in problem["errors"]] == ["/content"]


async def test_a_body_of_ten_visible_characters_is_enough(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    response = await post_json(
        client, "/api/v1/content", content_body(content="  0123456789  "), headers=author["headers"]
    )
    assert response.status_code == 201, response.text


async def test_empty_optional_strings_are_stored_as_null(client: httpx.AsyncClient) -> None:
    body = signup_body(country="", state="   ", phone_number="", display_name="")
    created = await post_json(client, "/api/v1/signup", body)
    assert created.status_code == 201, created.text
    user = created.json()
    assert (user["country"], user["state"], user["phone_number"]) == (None, None, None)
    assert user["display_name"] == user["name"]
    public = (await client.get(f"/api/v1/users/{user['id']}")).json()
    assert (public["country"], public["state"]) == (None, None)


async def test_an_empty_image_is_no_image(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    created = await post_json(
        client,
        "/api/v1/content",
        content_body(image="https://example.com/a.png"),
        headers=author["headers"],
    )
    assert created.status_code == 201
    url = f"/api/v1/content/{created.json()['id']}"
    cleared = await post_json(client, url, {"image": ""}, headers=author["headers"], method="PATCH")
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["image"] is None
    assert (await client.get(url)).json()["image"] is None


# --- one e-mail normalization for signup and login ----------------------------------------------


async def log_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await post_json(client, "/api/v1/auth/login", {"email": email, "password": password})


@pytest.mark.parametrize(
    "spelling",
    [
        "ada.{n}@\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com",  # full-width EXAMPLE
        "\uff41\uff44\uff41.{n}@example.com",  # full-width local part
        "  Ada.{n}@Example.COM  ",
        "ada.{n}@example.com",
    ],
    ids=["full-width-domain", "full-width-local-part", "case-and-spaces", "plain"],
)
async def test_whatever_spelling_signed_up_also_logs_in(
    client: httpx.AsyncClient, spelling: str
) -> None:
    n = id(spelling) % 100_000
    email = spelling.format(n=n)
    body = signup_body(email=email)
    created = await post_json(client, "/api/v1/signup", body)
    assert created.status_code == 201, created.text
    assert created.json()["email"] == f"ada.{n}@example.com"
    for attempt in (email, f"ada.{n}@example.com", f"ADA.{n}@EXAMPLE.COM"):
        response = await log_in(client, attempt, body["password"])
        assert response.status_code == 200, (attempt, response.text)
    token = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": body["password"]}
    )
    assert token.status_code == 200, token.text
    again = await post_json(client, "/api/v1/signup", signup_body(email=f"ADA.{n}@example.com"))
    assert_problem(again, 409, "email_taken")


async def test_a_display_name_form_is_not_an_address(client: httpx.AsyncClient) -> None:
    body = signup_body()
    form = f"Ada Lovelace <{body['email']}>"
    refused = await post_json(client, "/api/v1/signup", {**body, "email": form})
    problem = assert_problem(refused, 422, "validation_error")
    assert [error["pointer"] for error in problem["errors"]] == ["/email"]
    assert (await post_json(client, "/api/v1/signup", body)).status_code == 201
    # the same string at login is an unknown e-mail, never a way around the address
    assert_problem(await log_in(client, form, body["password"]), 401, "invalid_credentials")
