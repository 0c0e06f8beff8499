"""Keeps `users_read` in step with the write side, inside the command's transaction.

`users_read.newest_contents` holds the profile's `contents` member as the JSON text the
answer carries: the author's newest `NEWEST_CONTENTS` published summaries, newest first. The
profile read then is one primary-key row with no join, sort or per-summary decoding (it was
most of that read's cost). Any change to an item that is or was published rewrites it from
the write table, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, ScalarSelect, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from src.core.events import EventDispatcher
from src.core.tables import contents, follows, users, users_read
from src.slices.content.events import (
    ContentCreated,
    ContentDeleted,
    ContentState,
    ContentUpdated,
    published_change,
)
from src.slices.signup.events import UserSignedUp
from src.slices.users.events import (
    PasswordChanged,
    ProfileUpdated,
    RoleChanged,
    UserDeactivated,
    UserFollowed,
    UserReactivated,
    UserUnfollowed,
)


def content_count(user_id: ColumnElement[uuid.UUID]) -> ScalarSelect[int]:
    """What `users_read.content_count` counts, from the write tables."""
    return (
        select(func.count())
        .select_from(contents)
        .where(contents.c.author_id == user_id, contents.c.status == "published")
        .scalar_subquery()
    )


def follower_count(user_id: ColumnElement[uuid.UUID]) -> ScalarSelect[int]:
    """What `users_read.follower_count` counts, from the write tables."""
    return (
        select(func.count())
        .select_from(follows)
        .where(follows.c.followee_id == user_id)
        .scalar_subquery()
    )


def following_count(user_id: ColumnElement[uuid.UUID]) -> ScalarSelect[int]:
    """What `users_read.following_count` counts, from the write tables."""
    return (
        select(func.count())
        .select_from(follows)
        .where(follows.c.follower_id == user_id)
        .scalar_subquery()
    )


async def on_user_signed_up(connection: AsyncConnection, event: UserSignedUp) -> None:
    await connection.execute(
        insert(users_read).values(
            id=event.user_id,
            name=event.name,
            email=event.email,
            phone_number=event.phone_number,
            display_name=event.display_name,
            country=event.country,
            state=event.state,
            role=event.role,
            is_active=True,
            content_count=0,
            newest_contents="[]",
            follower_count=0,
            following_count=0,
            created_at=event.created_at,
            updated_at=event.created_at,
        )
    )


NEWEST_CONTENTS = 20

_SUMMARY_COLUMNS = (contents.c.id, contents.c.slug, contents.c.title, contents.c.created_at)
_PUBLISHED_NEWEST_FIRST = (contents.c.created_at.desc(), contents.c.id.desc())
_NEWEST_OF_AUTHOR = (
    select(*_SUMMARY_COLUMNS)
    .where(contents.c.author_id == bindparam("author_id"), contents.c.status == "published")
    .order_by(*_PUBLISHED_NEWEST_FIRST)
    .limit(NEWEST_CONTENTS)
)


def newest_contents_json(summaries: Iterable[Sequence[Any]]) -> str:
    """`[{id, slug, title, created_at}…]` as the answer carries it (`Z` timestamps, as the
    Pydantic models write them) from `(id, slug, title, created_at)` rows, newest first."""
    document = [
        {"id": row[0], "slug": row[1], "title": row[2], "created_at": row[3]} for row in summaries
    ]
    return orjson.dumps(document, option=orjson.OPT_UTC_Z, default=str).decode()


# `content_count` counts published items: each content event moves it by what the change did
# to the item's visibility (create or publish +1, unpublish or delete of a published item -1).
# The newest summaries change with any change to an item that is or was published (its title
# or slug too); a draft's edits touch neither.


async def _project_content(
    connection: AsyncConnection,
    before: ContentState | None,
    after: ContentState | None,
) -> None:
    item = after or before
    if item is None or not any(state.is_published for state in (before, after) if state):
        return
    author = users_read.c.id == item.author_id
    # The count first: its UPDATE takes the author's row lock, so a concurrent change of the
    # same author's items commits before the newest are read below (each statement of a
    # READ COMMITTED transaction sees what committed before it began). Read first, the two
    # would each write a list without the other's item.
    change = published_change(before, after)
    await connection.execute(
        update(users_read).where(author).values(content_count=users_read.c.content_count + change)
    )
    newest = (await connection.execute(_NEWEST_OF_AUTHOR, {"author_id": item.author_id})).all()
    await connection.execute(
        update(users_read).where(author).values(newest_contents=newest_contents_json(newest))
    )


async def on_content_created(connection: AsyncConnection, event: ContentCreated) -> None:
    await _project_content(connection, None, event.item)


async def on_content_updated(connection: AsyncConnection, event: ContentUpdated) -> None:
    await _project_content(connection, event.previous, event.item)


async def on_content_deleted(connection: AsyncConnection, event: ContentDeleted) -> None:
    await _project_content(connection, event.item, None)


async def _change(
    connection: AsyncConnection, user_id: uuid.UUID, at: dt.datetime, **values: Any
) -> None:
    await connection.execute(
        update(users_read).where(users_read.c.id == user_id).values(**values, updated_at=at)
    )


async def on_profile_updated(connection: AsyncConnection, event: ProfileUpdated) -> None:
    await _change(
        connection,
        event.user_id,
        event.updated_at,
        name=event.name,
        display_name=event.display_name,
        phone_number=event.phone_number,
        country=event.country,
        state=event.state,
    )


async def on_role_changed(connection: AsyncConnection, event: RoleChanged) -> None:
    await _change(connection, event.user_id, event.changed_at, role=event.role)


async def on_user_deactivated(connection: AsyncConnection, event: UserDeactivated) -> None:
    await _change(connection, event.user_id, event.changed_at, is_active=False)


async def on_user_reactivated(connection: AsyncConnection, event: UserReactivated) -> None:
    await _change(connection, event.user_id, event.changed_at, is_active=True)


async def on_password_changed(connection: AsyncConnection, event: PasswordChanged) -> None:
    await _change(connection, event.user_id, event.changed_at)


# Follows move both counts by one: the events are emitted only when a row was made or
# removed, so the counts stay exact under concurrent (and repeated) follows.


async def _count_follow(connection: AsyncConnection, follower: Any, followee: Any, by: int) -> None:
    await connection.execute(
        update(users_read)
        .where(users_read.c.id == followee)
        .values(follower_count=users_read.c.follower_count + by)
    )
    await connection.execute(
        update(users_read)
        .where(users_read.c.id == follower)
        .values(following_count=users_read.c.following_count + by)
    )


async def on_user_followed(connection: AsyncConnection, event: UserFollowed) -> None:
    await _count_follow(connection, event.follower_id, event.followee_id, 1)


async def on_user_unfollowed(connection: AsyncConnection, event: UserUnfollowed) -> None:
    await _count_follow(connection, event.follower_id, event.followee_id, -1)


def register(dispatcher: EventDispatcher) -> None:
    dispatcher.subscribe(UserSignedUp, on_user_signed_up)
    dispatcher.subscribe(ContentCreated, on_content_created)
    dispatcher.subscribe(ContentUpdated, on_content_updated)
    dispatcher.subscribe(ContentDeleted, on_content_deleted)
    dispatcher.subscribe(ProfileUpdated, on_profile_updated)
    dispatcher.subscribe(RoleChanged, on_role_changed)
    dispatcher.subscribe(UserDeactivated, on_user_deactivated)
    dispatcher.subscribe(UserReactivated, on_user_reactivated)
    dispatcher.subscribe(PasswordChanged, on_password_changed)
    dispatcher.subscribe(UserFollowed, on_user_followed)
    dispatcher.subscribe(UserUnfollowed, on_user_unfollowed)


async def rebuild(connection: AsyncConnection) -> None:
    """Refill `users_read` from `users` (the caller has emptied it)."""
    await _rebuild_rows(connection)
    await _rebuild_newest_contents(connection)


# Rebuilding every author's summaries: the newest few of each in one ordered pass (a window
# function keeps the rest in the database), rendered here exactly as projection renders them.
_REBUILD_BATCH = 5_000


async def _rebuild_newest_contents(connection: AsyncConnection) -> None:
    rank = (
        func.row_number()
        .over(partition_by=contents.c.author_id, order_by=_PUBLISHED_NEWEST_FIRST)
        .label("rank")
    )
    ranked = (
        select(contents.c.author_id, *_SUMMARY_COLUMNS, rank)
        .where(contents.c.status == "published")
        .subquery()
    )
    newest = (
        select(ranked.c.author_id, ranked.c.id, ranked.c.slug, ranked.c.title, ranked.c.created_at)
        .where(ranked.c.rank <= NEWEST_CONTENTS)
        .order_by(ranked.c.author_id, ranked.c.rank)
    )
    store = (
        update(users_read)
        .where(users_read.c.id == bindparam("author"))
        .values(newest_contents=bindparam("document"))
    )
    pending: list[dict[str, Any]] = []
    author: Any = None
    summaries: list[Sequence[Any]] = []
    async for row in await connection.stream(newest):
        if row[0] != author:
            if summaries:
                pending.append({"author": author, "document": newest_contents_json(summaries)})
            author, summaries = row[0], []
        summaries.append(row[1:])
        if len(pending) >= _REBUILD_BATCH:
            await connection.execute(store, pending)
            pending = []
    if summaries:
        pending.append({"author": author, "document": newest_contents_json(summaries)})
    if pending:
        await connection.execute(store, pending)


async def _rebuild_rows(connection: AsyncConnection) -> None:
    await connection.execute(
        insert(users_read).from_select(
            [
                "id",
                "name",
                "email",
                "phone_number",
                "display_name",
                "country",
                "state",
                "role",
                "is_active",
                "content_count",
                "follower_count",
                "following_count",
                "created_at",
                "updated_at",
            ],
            select(
                users.c.id,
                users.c.name,
                users.c.email,
                users.c.phone_number,
                users.c.display_name,
                users.c.country,
                users.c.state,
                users.c.role,
                users.c.is_active,
                content_count(users.c.id),
                follower_count(users.c.id),
                following_count(users.c.id),
                users.c.created_at,
                users.c.updated_at,
            ),
        )
    )
