"""Keeps `contents_read` in step with `contents`, inside the command's transaction."""

from __future__ import annotations

import dataclasses

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from src.core.events import EventDispatcher
from src.core.tables import contents, contents_read, users
from src.slices.content.events import ContentCreated, ContentDeleted, ContentUpdated


async def on_content_created(connection: AsyncConnection, event: ContentCreated) -> None:
    await connection.execute(insert(contents_read).values(**dataclasses.asdict(event.item)))


async def on_content_updated(connection: AsyncConnection, event: ContentUpdated) -> None:
    item = event.item
    await connection.execute(
        update(contents_read)
        .where(contents_read.c.id == item.id)
        .values(title=item.title, body=item.body, image=item.image, updated_at=item.updated_at)
    )


async def on_content_deleted(connection: AsyncConnection, event: ContentDeleted) -> None:
    await connection.execute(delete(contents_read).where(contents_read.c.id == event.content_id))


def register(dispatcher: EventDispatcher) -> None:
    dispatcher.subscribe(ContentCreated, on_content_created)
    dispatcher.subscribe(ContentUpdated, on_content_updated)
    dispatcher.subscribe(ContentDeleted, on_content_deleted)


async def rebuild(connection: AsyncConnection) -> None:
    """Refill `contents_read` from `contents` and the authors' names (the caller emptied it)."""
    source = select(
        contents.c.id,
        contents.c.author_id,
        users.c.name,
        users.c.display_name,
        contents.c.title,
        contents.c.body,
        contents.c.image,
        contents.c.created_at,
        contents.c.updated_at,
    ).join(users, users.c.id == contents.c.author_id)
    await connection.execute(
        insert(contents_read).from_select(
            [
                "id",
                "author_id",
                "author_name",
                "author_display_name",
                "title",
                "body",
                "image",
                "created_at",
                "updated_at",
            ],
            source,
        )
    )
