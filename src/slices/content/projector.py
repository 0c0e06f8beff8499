"""Keeps `contents_read` in step with `contents`, inside the command's transaction.

Each row copies its author's name and display name, so a profile edit (`ProfileUpdated`, from
the users slice) rewrites every row of that author here, in the edit's own transaction, with
one UPDATE over the author's index range. The rows it rewrote are exactly the cached items
to drop: it learns their ids from that UPDATE and asks the unit of work to invalidate them
(and every list, by bumping the list generation) once the edit has committed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from src.core.cache.policy import Cache
from src.core.events import AfterCommit, EventDispatcher
from src.core.tables import contents, contents_read, users
from src.slices.content.events import ContentCreated, ContentDeleted, ContentUpdated
from src.slices.content.keys import LIST_GENERATION, item_key
from src.slices.users.events import ProfileUpdated


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


@dataclass(frozen=True, slots=True)
class RenameAuthor:
    """`ProfileUpdated` → the author's names in every one of their rows, then their caches."""

    cache: Cache | None  # None where no cache is kept (the CLI)

    async def __call__(
        self, connection: AsyncConnection, event: ProfileUpdated
    ) -> AfterCommit | None:
        if not event.renamed:
            return None
        rewritten = await connection.execute(
            update(contents_read)
            .where(contents_read.c.author_id == event.user_id)
            .values(author_name=event.name, author_display_name=event.display_name)
            .returning(contents_read.c.id)
        )
        keys = tuple(item_key(content_id) for content_id in rewritten.scalars())
        cache = self.cache
        if cache is None or not keys:
            return None
        return lambda: cache.invalidate(*keys, generations=(LIST_GENERATION,))


def register(dispatcher: EventDispatcher, cache: Cache | None = None) -> None:
    dispatcher.subscribe(ContentCreated, on_content_created)
    dispatcher.subscribe(ContentUpdated, on_content_updated)
    dispatcher.subscribe(ContentDeleted, on_content_deleted)
    dispatcher.subscribe(ProfileUpdated, RenameAuthor(cache))


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
