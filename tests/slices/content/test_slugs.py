"""Slugs: derived from the title once, unique (also under concurrent creates), readable."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest

from tests.helpers import assert_problem, authed_user, publish

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Hello, World!", "hello-world"),
        ("Crème Brûlée à la carte", "creme-brulee-a-la-carte"),
        ("Straße, Œuvre & Smørrebrød", "strasse-oeuvre-smorrebrod"),
        ("  C++ -- the   GOOD parts  ", "c-the-good-parts"),
        ("Ｆｕｌｌ ｗｉｄｔｈ ２０２６", "full-width-2026"),
        ("日本語のタイトル", "untitled"),
        ("!!! ???", "untitled"),
    ],
)
async def test_the_slug_comes_from_the_title(
    client: httpx.AsyncClient, title: str, slug: str
) -> None:
    author = await authed_user(client)
    assert (await publish(client, author, title=title))["slug"] == slug


async def test_a_long_title_gives_at_most_80_characters_cut_between_words(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    title = " ".join(["publishing"] * 19)  # 208 characters
    slug = (await publish(client, author, title=title[:200]))["slug"]
    assert len(slug) <= 80
    assert SLUG.fullmatch(slug)
    assert slug == "-".join(["publishing"] * 7)  # 76 characters: an eighth word would not fit
    assert (await publish(client, author, title=title[:200]))["slug"] == slug + "-2"


async def test_a_number_still_fits_in_80_characters(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    word = "a" * 90
    assert (await publish(client, author, title=word))["slug"] == "a" * 80
    assert (await publish(client, author, title=word))["slug"] == "a" * 78 + "-2"


async def test_a_taken_slug_gets_the_next_number(client: httpx.AsyncClient) -> None:
    alice, bob = await authed_user(client), await authed_user(client)
    slugs = [
        (await publish(client, author, title="Same Title"))["slug"]
        for author in (alice, bob, alice)
    ]
    assert slugs == ["same-title", "same-title-2", "same-title-3"]


async def test_a_number_taken_by_another_title_is_skipped(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    assert (await publish(client, author, title="Hello 2"))["slug"] == "hello-2"
    assert (await publish(client, author, title="Hello"))["slug"] == "hello"
    assert (await publish(client, author, title="Hello"))["slug"] == "hello-3"


async def test_concurrent_creates_with_one_title_get_distinct_slugs(
    client: httpx.AsyncClient,
) -> None:
    authors = [await authed_user(client) for _ in range(4)]
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/v1/content",
                json={"title": "Breaking News", "content": "Something happened today."},
                headers=authors[i % len(authors)]["headers"],
            )
            for i in range(12)
        )
    )
    assert [r.status_code for r in responses] == [201] * 12, [r.text for r in responses]
    slugs = {r.json()["slug"] for r in responses}
    assert slugs == {"breaking-news", *(f"breaking-news-{n}" for n in range(2, 13))}


async def test_the_slug_never_changes_when_the_title_does(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    content = await publish(client, author, title="First Title")
    edited = await client.patch(
        f"/api/v1/content/{content['id']}",
        json={"title": "A Completely Different Title"},
        headers=author["headers"],
    )
    assert edited.status_code == 200
    assert edited.json()["slug"] == "first-title"
    by_slug = await client.get("/api/v1/content/slug/first-title")
    assert by_slug.json()["title"] == "A Completely Different Title"
    assert_problem(
        await client.get("/api/v1/content/slug/a-completely-different-title"),
        404,
        "content_not_found",
    )


async def test_get_by_slug_answers_like_get_by_id_and_is_cached(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    content = await publish(client, author, title="Readable Address", tags=["web"])
    by_id = await client.get(f"/api/v1/content/{content['id']}")
    first = await client.get("/api/v1/content/slug/readable-address")
    second = await client.get("/api/v1/content/slug/readable-address")
    assert first.status_code == 200
    assert first.content == by_id.content
    assert first.json() == content
    assert first.headers["cache-status"] == "inkwell; fwd=miss"
    assert second.headers["cache-status"] == "inkwell; hit"


async def test_an_edit_and_a_delete_reach_the_slug_read_at_once(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    content = await publish(client, author, title="Cached By Slug")
    url = "/api/v1/content/slug/cached-by-slug"
    await client.get(url)
    assert (await client.get(url)).headers["cache-status"] == "inkwell; hit"
    await client.patch(
        f"/api/v1/content/{content['id']}", json={"tags": ["fresh"]}, headers=author["headers"]
    )
    assert (await client.get(url)).json()["tags"] == ["fresh"]
    await client.delete(f"/api/v1/content/{content['id']}", headers=author["headers"])
    assert_problem(await client.get(url), 404, "content_not_found")


@pytest.mark.parametrize(
    "slug", ["Upper-Case", "double--dash", "-leading", "trailing-", "under_score", "x" * 81]
)
async def test_a_malformed_slug_is_422(client: httpx.AsyncClient, slug: str) -> None:
    problem = assert_problem(
        await client.get(f"/api/v1/content/slug/{slug}"), 422, "validation_error"
    )
    assert problem["errors"][0]["parameter"] == "slug"


async def test_an_unknown_slug_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/content/slug/nothing-{uuid.uuid4().hex}")
    assert_problem(response, 404, "content_not_found")
