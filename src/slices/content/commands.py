"""Content commands: `CreateContent`, `UpdateContent`, `DeleteContent`.

They write `contents` and emit events that the projectors apply to `contents_read` and
`users_read.content_count` in the same transaction; the content caches are invalidated after
the commit. Authorization comes from the caller's live session (`Principal.role`): viewers may
not create or change content (an author demoted to viewer may still delete their own); only
the author or an admin may change or delete it; a missing item is 404 *before* ownership is
checked, so ids cannot be probed.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Row

from src.core.cache.policy import Cache
from src.core.db.uow import UnitOfWork
from src.core.errors.types import Forbidden, InvalidToken
from src.core.identity import Principal
from src.core.tables import contents, users, utcnow
from src.slices.content.errors import ContentNotFound
from src.slices.content.events import ContentCreated, ContentDeleted, ContentState, ContentUpdated
from src.slices.content.keys import LIST_GENERATION, item_key

tracer = trace.get_tracer(__name__)


class Unchanged(enum.Enum):
    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


@dataclass(frozen=True, slots=True)
class CreateContentCommand:
    actor: Principal
    title: str
    body: str
    image: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateContentCommand:
    actor: Principal
    content_id: uuid.UUID
    title: str | None = None  # None: unchanged (a title cannot be removed)
    body: str | None = None  # None: unchanged
    image: str | Unchanged | None = UNCHANGED  # None removes the image


@dataclass(frozen=True, slots=True)
class DeleteContentCommand:
    actor: Principal
    content_id: uuid.UUID


async def _author(uow: UnitOfWork, user_id: uuid.UUID) -> Row[Any]:
    row = (
        await uow.execute(
            select(users.c.id, users.c.name, users.c.display_name).where(users.c.id == user_id)
        )
    ).first()
    if row is None:  # a valid token whose account no longer exists
        raise InvalidToken()
    return row


async def _owned_content(uow: UnitOfWork, actor: Principal, content_id: uuid.UUID) -> Row[Any]:
    """The content row, locked for this transaction, if the actor may change it."""
    query = select(contents).where(contents.c.id == content_id)
    if uow.dialect == "postgresql":
        query = query.with_for_update()
    row = (await uow.execute(query)).first()
    if row is None:
        raise ContentNotFound()
    if row.author_id != actor.user_id and not actor.is_admin:
        raise Forbidden("Only the author or an admin may change this content.")
    return row


@dataclass(frozen=True, slots=True)
class CreateContent:
    uow: UnitOfWork
    cache: Cache

    async def execute(self, command: CreateContentCommand) -> ContentState:
        with tracer.start_as_current_span("content.create") as span:
            content_id = uuid.uuid4()
            span.set_attribute("content.id", str(content_id))
            span.set_attribute("user.id", str(command.actor.user_id))
            if not command.actor.may_publish:
                raise Forbidden("Viewers may not publish content.")
            now = utcnow()
            author = await _author(self.uow, command.actor.user_id)
            await self.uow.execute(
                insert(contents).values(
                    id=content_id,
                    author_id=author.id,
                    title=command.title,
                    body=command.body,
                    image=command.image,
                    created_at=now,
                    updated_at=now,
                )
            )
            item = ContentState(
                id=content_id,
                author_id=author.id,
                author_name=author.name,
                author_display_name=author.display_name,
                title=command.title,
                body=command.body,
                image=command.image,
                created_at=now,
                updated_at=now,
            )
            self.uow.emit(ContentCreated(item=item))
            self.uow.after_commit(lambda: self.cache.invalidate(generations=(LIST_GENERATION,)))
            return item


@dataclass(frozen=True, slots=True)
class UpdateContent:
    uow: UnitOfWork
    cache: Cache

    async def execute(self, command: UpdateContentCommand) -> ContentState:
        with tracer.start_as_current_span("content.update") as span:
            content_id = command.content_id
            span.set_attribute("content.id", str(content_id))
            span.set_attribute("user.id", str(command.actor.user_id))
            row = await _owned_content(self.uow, command.actor, content_id)
            if not command.actor.may_publish:  # editing is publishing new words
                raise Forbidden("Viewers may not change content; they may delete their own.")
            changes: dict[str, Any] = {"updated_at": utcnow()}
            if command.title is not None:
                changes["title"] = command.title
            if command.body is not None:
                changes["body"] = command.body
            if command.image is not UNCHANGED:
                changes["image"] = command.image
            await self.uow.execute(
                update(contents).where(contents.c.id == content_id).values(**changes)
            )
            author = (
                await self.uow.execute(
                    select(users.c.name, users.c.display_name).where(users.c.id == row.author_id)
                )
            ).one()
            before = ContentState(
                id=content_id,
                author_id=row.author_id,
                author_name=author.name,
                author_display_name=author.display_name,
                title=row.title,
                body=row.body,
                image=row.image,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
            item = dataclasses.replace(before, **changes)
            self.uow.emit(ContentUpdated(item=item))
            self.uow.after_commit(
                lambda: self.cache.invalidate(item_key(content_id), generations=(LIST_GENERATION,))
            )
            return item


@dataclass(frozen=True, slots=True)
class DeleteContent:
    uow: UnitOfWork
    cache: Cache

    async def execute(self, command: DeleteContentCommand) -> None:
        with tracer.start_as_current_span("content.delete") as span:
            content_id = command.content_id
            span.set_attribute("content.id", str(content_id))
            span.set_attribute("user.id", str(command.actor.user_id))
            row = await _owned_content(self.uow, command.actor, content_id)
            await self.uow.execute(delete(contents).where(contents.c.id == content_id))
            self.uow.emit(ContentDeleted(content_id=content_id, author_id=row.author_id))
            self.uow.after_commit(
                lambda: self.cache.invalidate(item_key(content_id), generations=(LIST_GENERATION,))
            )
