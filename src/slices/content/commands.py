"""Content commands: `CreateContent`, `UpdateContent`, `DeleteContent`.

They write `contents`, emit events that the projectors apply to `contents_read` and
`users_read.content_count` in the same transaction, and invalidate the content caches after
the commit. Authorization: only the author or an admin may change or delete; a missing
content is 404 *before* ownership is checked, so ids cannot be probed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Row

from src.core.cache import Cache
from src.core.db import UnitOfWork, UnitOfWorkFactory
from src.core.errors import Forbidden, InvalidToken
from src.core.identity import Principal
from src.core.tables import contents, users, utcnow
from src.slices.content.errors import ContentNotFound
from src.slices.content.events import ContentCreated, ContentDeleted, ContentUpdated
from src.slices.content.keys import LIST_GENERATION, item_key
from src.slices.content.schemas import Author, Content, ContentCreate, ContentUpdate

tracer = trace.get_tracer(__name__)


async def _author(uow: UnitOfWork, user_id: uuid.UUID) -> Row[Any]:
    row = (
        await uow.execute(
            select(users.c.id, users.c.name, users.c.display_name, users.c.role).where(
                users.c.id == user_id
            )
        )
    ).first()
    if row is None:  # a valid token whose account no longer exists
        raise InvalidToken()
    return row


async def _owned_content(uow: UnitOfWork, principal: Principal, content_id: uuid.UUID) -> Row[Any]:
    """The content row, locked for this transaction, if the principal may change it."""
    query = select(contents).where(contents.c.id == content_id)
    if uow.engine.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await uow.execute(query)).first()
    if row is None:
        raise ContentNotFound()
    if row.author_id != principal.user_id:
        caller = await _author(uow, principal.user_id)
        if caller.role != "admin":
            raise Forbidden("Only the author or an admin may change this content.")
    return row


@dataclass(frozen=True, slots=True)
class CreateContent:
    unit_of_work: UnitOfWorkFactory
    cache: Cache

    async def execute(self, principal: Principal, data: ContentCreate) -> Content:
        with tracer.start_as_current_span("content.create") as span:
            content_id = uuid.uuid4()
            span.set_attribute("content.id", str(content_id))
            span.set_attribute("user.id", str(principal.user_id))
            now = utcnow()
            async with self.unit_of_work() as uow:
                author = await _author(uow, principal.user_id)
                await uow.execute(
                    insert(contents).values(
                        id=content_id,
                        author_id=author.id,
                        title=data.title,
                        body=data.content,
                        image=data.image,
                        created_at=now,
                        updated_at=now,
                    )
                )
                uow.emit(
                    ContentCreated(
                        content_id=content_id,
                        author_id=author.id,
                        author_name=author.name,
                        author_display_name=author.display_name,
                        title=data.title,
                        body=data.content,
                        image=data.image,
                        created_at=now,
                    )
                )
                uow.after_commit(lambda: self.cache.invalidate(generations=(LIST_GENERATION,)))
                await uow.commit()
            return Content(
                id=content_id,
                title=data.title,
                content=data.content,
                image=data.image,
                author=Author(id=author.id, name=author.name, display_name=author.display_name),
                created_at=now,
                updated_at=now,
            )


@dataclass(frozen=True, slots=True)
class UpdateContent:
    unit_of_work: UnitOfWorkFactory
    cache: Cache

    async def execute(
        self, principal: Principal, content_id: uuid.UUID, changes: ContentUpdate
    ) -> Content:
        with tracer.start_as_current_span("content.update") as span:
            span.set_attribute("content.id", str(content_id))
            span.set_attribute("user.id", str(principal.user_id))
            async with self.unit_of_work() as uow:
                row = await _owned_content(uow, principal, content_id)
                fields = changes.model_fields_set
                title = changes.title if "title" in fields and changes.title else row.title
                body = changes.content if "content" in fields and changes.content else row.body
                image = changes.image if "image" in fields else row.image
                now = utcnow()
                await uow.execute(
                    update(contents)
                    .where(contents.c.id == content_id)
                    .values(title=title, body=body, image=image, updated_at=now)
                )
                uow.emit(
                    ContentUpdated(
                        content_id=content_id, title=title, body=body, image=image, updated_at=now
                    )
                )
                author = (
                    await uow.execute(
                        select(users.c.id, users.c.name, users.c.display_name).where(
                            users.c.id == row.author_id
                        )
                    )
                ).one()
                uow.after_commit(
                    lambda: self.cache.invalidate(
                        item_key(content_id), generations=(LIST_GENERATION,)
                    )
                )
                await uow.commit()
            return Content(
                id=content_id,
                title=title,
                content=body,
                image=image,
                author=Author(id=author.id, name=author.name, display_name=author.display_name),
                created_at=row.created_at,
                updated_at=now,
            )


@dataclass(frozen=True, slots=True)
class DeleteContent:
    unit_of_work: UnitOfWorkFactory
    cache: Cache

    async def execute(self, principal: Principal, content_id: uuid.UUID) -> None:
        with tracer.start_as_current_span("content.delete") as span:
            span.set_attribute("content.id", str(content_id))
            span.set_attribute("user.id", str(principal.user_id))
            async with self.unit_of_work() as uow:
                row = await _owned_content(uow, principal, content_id)
                await uow.execute(delete(contents).where(contents.c.id == content_id))
                uow.emit(ContentDeleted(content_id=content_id, author_id=row.author_id))
                uow.after_commit(
                    lambda: self.cache.invalidate(
                        item_key(content_id), generations=(LIST_GENERATION,)
                    )
                )
                await uow.commit()
