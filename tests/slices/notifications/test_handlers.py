"""The notifications handlers, called directly with a unit of work as the delivery code calls
them: one notification per follower and event, never two for a replayed event, none for a
repeated follow."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from src.core.db.uow import command_transaction
from src.core.identity import Principal
from src.core.tables import follows, notifications, users, utcnow
from src.main import build_handlers
from src.slices.content.commands import CreateContent, CreateContentCommand
from src.slices.content.events import ContentPublished, ContentState
from src.slices.notifications.handlers import (
    CONTENT_PUBLISHED,
    NEW_FOLLOWER,
    on_content_published,
    on_user_followed,
)
from src.slices.users.events import UserFollowed
from tests.helpers import authed_user, content_body, follow
from tests.slices.notifications.helpers import (
    deliver,
    deliver_recorded,
    meta,
    record_events,
    resources_of,
)


@pytest.fixture
async def client(quiet_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """These tests are the delivery: no runner delivers the events a second time."""
    return quiet_client


async def _create(client: httpx.AsyncClient, author: dict[str, Any]) -> ContentState:
    resources = resources_of(client)
    actor = Principal(uuid.UUID(author["id"]), uuid.UUID(author["sid"]), "creator")
    body = content_body()
    async with command_transaction(resources.unit_of_work()) as uow:
        command = CreateContentCommand(actor, body["title"], body["content"])
        item: ContentState = await CreateContent(uow, resources.cache).execute(command)
    return item


async def _rows(client: httpx.AsyncClient) -> list[Any]:
    engine = resources_of(client).database.write_engine
    async with engine.connect() as connection:
        return list(
            (await connection.execute(select(notifications).order_by(notifications.c.id))).all()
        )


async def _count(client: httpx.AsyncClient) -> int:
    engine = resources_of(client).database.write_engine
    async with engine.connect() as connection:
        query = select(func.count()).select_from(notifications)
        return int((await connection.execute(query)).scalar())


def test_the_handlers_are_registered_under_their_names() -> None:
    handlers = build_handlers()
    assert {CONTENT_PUBLISHED, NEW_FOLLOWER} <= handlers.names
    assert handlers.for_event(ContentPublished) == [(CONTENT_PUBLISHED, on_content_published)]
    assert handlers.for_event(UserFollowed) == [(NEW_FOLLOWER, on_user_followed)]


async def test_a_publication_notifies_each_follower_once(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    followers = [await authed_user(client) for _ in range(3)]
    bystander = await authed_user(client)
    for follower in followers:
        await follow(client, follower, author)
    item = await _create(client, author)
    await deliver(client, ContentPublished(item=item), meta())
    rows = await _rows(client)
    assert sorted(str(row.recipient_id) for row in rows) == sorted(f["id"] for f in followers)
    assert bystander["id"] not in {str(row.recipient_id) for row in rows}
    for row in rows:
        assert row.type == "content_published"
        assert (row.actor_id, row.actor_name, row.actor_display_name) == (
            item.author_id,
            item.author_name,
            item.author_display_name,
        )
        assert (row.content_id, row.content_title, row.content_slug) == (
            item.id,
            item.title,
            item.slug,
        )
        assert row.read_at is None


async def test_a_replayed_publication_adds_nothing(client: httpx.AsyncClient) -> None:
    author, follower = await authed_user(client), await authed_user(client)
    await follow(client, follower, author)
    event = ContentPublished(item=await _create(client, author))
    same = meta()
    for _ in range(3):
        await deliver(client, event, same)
    rows = await _rows(client)
    assert len(rows) == 1


async def test_each_publication_is_its_own_notification(client: httpx.AsyncClient) -> None:
    author, follower = await authed_user(client), await authed_user(client)
    await follow(client, follower, author)
    for _ in range(2):
        await deliver(client, ContentPublished(item=await _create(client, author)), meta())
    assert await _count(client) == 2


async def test_an_author_without_followers_notifies_nobody(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    await deliver(client, ContentPublished(item=await _create(client, author)), meta())
    assert await _count(client) == 0


async def test_a_publication_reaches_many_followers(client: httpx.AsyncClient) -> None:
    """More followers than one insert batch holds."""
    author = await authed_user(client)
    resources = resources_of(client)
    # Followers as rows of `follows` only: the handler reads nothing else of them.
    many = [uuid.uuid4() for _ in range(1_234)]
    now = utcnow()
    async with resources.database.write_engine.begin() as connection:
        await connection.execute(
            users.insert(),
            [
                {
                    "id": user_id,
                    "name": "Reader",
                    "email": f"{user_id.hex}@example.com",
                    "password_hash": "x",
                    "display_name": "Reader",
                    "created_at": now,
                    "updated_at": now,
                }
                for user_id in many
            ],
        )
        await connection.execute(
            follows.insert(),
            [
                {"follower_id": user_id, "followee_id": uuid.UUID(author["id"]), "created_at": now}
                for user_id in many
            ],
        )
    event, same = ContentPublished(item=await _create(client, author)), meta()
    await deliver(client, event, same)
    await deliver(client, event, same)
    assert await _count(client) == len(many)


async def test_a_follow_notifies_the_followed_once_even_when_replayed(
    client: httpx.AsyncClient,
) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    log = record_events(client)
    await follow(client, reader, author)
    (followed,) = log.of_type(UserFollowed)
    same = meta()
    for _ in range(3):
        await deliver(client, followed, same)
    (row,) = await _rows(client)
    assert row.type == "new_follower"
    assert str(row.recipient_id) == author["id"]
    assert (str(row.actor_id), row.actor_name, row.actor_display_name) == (
        reader["id"],
        reader["name"],
        reader["display_name"],
    )
    assert row.content_id is None
    assert row.created_at == same.committed_at


async def test_a_repeated_follow_makes_no_second_new_follower(client: httpx.AsyncClient) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    log = record_events(client)
    for _ in range(3):
        await follow(client, reader, author)
    assert len(log.of_type(UserFollowed)) == 1
    await deliver_recorded(client, log)
    assert await _count(client) == 1


async def test_follow_unfollow_follow_notifies_twice(client: httpx.AsyncClient) -> None:
    """Each follow that begins is news to the followed (a new follow event each time)."""
    reader, author = await authed_user(client), await authed_user(client)
    log = record_events(client)
    url = f"/api/v1/users/{author['id']}/follow"
    for method in ("PUT", "DELETE", "PUT"):
        response = await client.request(method, url, headers=reader["headers"])
        assert response.status_code == 204, response.text
    await deliver_recorded(client, log)
    assert await _count(client) == 2
