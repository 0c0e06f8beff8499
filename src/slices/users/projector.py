"""Keeps `users_read` in step with the write side, inside the command's transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from src.core.events import EventDispatcher
from src.core.tables import contents, follows, users, users_read
from src.slices.content.events import (
    ContentCreated,
    ContentDeleted,
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
            follower_count=0,
            following_count=0,
            created_at=event.created_at,
            updated_at=event.created_at,
        )
    )


# `content_count` counts published items: each content event moves it by what the change did
# to the item's visibility (create or publish +1, unpublish or delete of a published item -1).


async def _count_published(connection: AsyncConnection, author_id: Any, change: int) -> None:
    if change:
        await connection.execute(
            update(users_read)
            .where(users_read.c.id == author_id)
            .values(content_count=users_read.c.content_count + change)
        )


async def on_content_created(connection: AsyncConnection, event: ContentCreated) -> None:
    await _count_published(connection, event.item.author_id, published_change(None, event.item))


async def on_content_updated(connection: AsyncConnection, event: ContentUpdated) -> None:
    change = published_change(event.previous, event.item)
    await _count_published(connection, event.item.author_id, change)


async def on_content_deleted(connection: AsyncConnection, event: ContentDeleted) -> None:
    await _count_published(connection, event.item.author_id, published_change(event.item, None))


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
