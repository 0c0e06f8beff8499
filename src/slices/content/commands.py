"""Content commands: `CreateContent`, `UpdateContent`, `DeleteContent`.

They write `contents`, `tags` and `content_tags` and emit events that the projectors apply to
the read tables in the same transaction; the content caches are invalidated after the commit.
Authorization: only the author or an admin may change or delete. A missing item is 404
*before* ownership is checked, so ids cannot be probed, and so is someone else's draft: to
anyone but its author and admins a draft does not exist.

Slugs are unique and race-safe: the insert claims its slug with `ON CONFLICT (slug) DO
NOTHING` (PostgreSQL waits for a concurrent insert of the same slug to commit or roll back),
and a create that finds its slug taken tries the next number instead of failing.

Authorization comes from the caller's live session (`Principal.role`): viewers may not
create or change content (an author demoted to viewer may still delete their own).
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from opentelemetry import trace
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Row

from src.core.cache.policy import Cache
from src.core.db.uow import UnitOfWork
from src.core.errors.types import Forbidden, InvalidToken, ValidationFailed
from src.core.identity import Principal
from src.core.tables import content_tags, contents, tags, users, utcnow
from src.slices.content.errors import ContentNotFound
from src.slices.content.events import (
    ContentCreated,
    ContentDeleted,
    ContentPublished,
    ContentState,
    ContentUpdated,
)
from src.slices.content.keys import LIST_GENERATION, item_key, slug_key
from src.slices.content.rules import (
    DRAFT,
    PUBLISHED,
    Status,
    normalize_tags,
    numbered_slug,
    slug_base,
)

tracer = trace.get_tracer(__name__)

# Sequential numbers tried after the first free one was taken meanwhile (concurrent creates
# of one title); past them the item's own id makes the slug unique.
_SLUG_ATTEMPTS = 50


class Unchanged(enum.Enum):
    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


@dataclass(frozen=True, slots=True)
class CreateContentCommand:
    """A new item by `actor`; `tags` are normalized by the command (any raw spelling)."""

    actor: Principal
    title: str
    body: str
    image: str | None = None
    tags: Sequence[str] = ()
    status: Status = PUBLISHED


@dataclass(frozen=True, slots=True)
class UpdateContentCommand:
    actor: Principal
    content_id: uuid.UUID
    title: str | None = None  # None: unchanged (a title cannot be removed)
    body: str | None = None  # None: unchanged
    image: str | Unchanged | None = UNCHANGED  # None removes the image
    tags: Sequence[str] | None = None  # None: unchanged; () removes every tag
    status: Status | None = None  # None: unchanged


@dataclass(frozen=True, slots=True)
class DeleteContentCommand:
    actor: Principal
    content_id: uuid.UUID


def _valid_tags(raw: Sequence[str]) -> tuple[str, ...]:
    try:
        return normalize_tags(raw)
    except ValueError as error:
        raise ValidationFailed(errors=[{"pointer": "/tags", "detail": str(error)}]) from error


def _valid_status(status: str) -> Status:
    if status == DRAFT:
        return DRAFT
    if status == PUBLISHED:
        return PUBLISHED
    raise ValidationFailed(
        errors=[{"pointer": "/status", "detail": "must be 'draft' or 'published'"}]
    )


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
        if row.status == DRAFT:
            raise ContentNotFound()  # someone else's draft does not exist for them
        raise Forbidden("Only the author or an admin may change this content.")
    return row


def _on_conflict_do_nothing(uow: UnitOfWork, table: Any, column: str) -> Any:
    """`INSERT … ON CONFLICT (column) DO NOTHING` for the unit's backend."""
    dialect_insert = postgresql.insert if uow.dialect == "postgresql" else sqlite.insert
    return dialect_insert(table).on_conflict_do_nothing(index_elements=[column])


async def _claim_slug(uow: UnitOfWork, title: str, values: dict[str, Any]) -> str:
    """Insert the `contents` row under the first free slug its title gives; that slug."""
    base = slug_base(title)
    highest = (
        await uow.execute(
            select(func.max(contents.c.slug_number)).where(contents.c.slug_base == base)
        )
    ).scalar()
    number = (highest or 0) + 1
    statement = _on_conflict_do_nothing(uow, contents, "slug")
    for _ in range(_SLUG_ATTEMPTS):
        slug = numbered_slug(base, number)
        claimed = await uow.execute(
            statement.values(**values, slug=slug, slug_base=base, slug_number=number)
        )
        if cast(CursorResult[Any], claimed).rowcount == 1:
            return slug
        # Taken meanwhile (a concurrent create of the same title), or by another title's
        # slug that happens to read `base-<number>`: the next number.
        number += 1
    number = uuid.UUID(str(values["id"])).int % 10**9 + 10**9  # unique with the item's id
    slug = numbered_slug(base, number)
    await uow.execute(
        insert(contents).values(**values, slug=slug, slug_base=base, slug_number=number)
    )
    return slug


async def _tag_ids(uow: UnitOfWork, names: tuple[str, ...]) -> list[Any]:
    """The ids of tags `names`, creating the ones that do not exist yet (race-safe)."""
    if not names:
        return []
    statement = _on_conflict_do_nothing(uow, tags, "name")
    await uow.execute(statement, [{"id": uuid.uuid4(), "name": name} for name in names])
    rows = (await uow.execute(select(tags.c.id).where(tags.c.name.in_(names)))).all()
    return [row.id for row in rows]


async def _current_tags(uow: UnitOfWork, content_id: uuid.UUID) -> tuple[str, ...]:
    rows = (
        await uow.execute(
            select(tags.c.name)
            .join(content_tags, content_tags.c.tag_id == tags.c.id)
            .where(content_tags.c.content_id == content_id)
            .order_by(tags.c.name)
        )
    ).all()
    return tuple(row.name for row in rows)


async def _set_tags(
    uow: UnitOfWork, content_id: uuid.UUID, before: tuple[str, ...], after: tuple[str, ...]
) -> None:
    removed = sorted(set(before) - set(after))
    added = tuple(sorted(set(after) - set(before)))
    if removed:
        await uow.execute(
            delete(content_tags).where(
                content_tags.c.content_id == content_id,
                content_tags.c.tag_id.in_(select(tags.c.id).where(tags.c.name.in_(removed))),
            )
        )
    tag_ids = await _tag_ids(uow, added)
    if tag_ids:
        await uow.execute(
            insert(content_tags), [{"content_id": content_id, "tag_id": i} for i in tag_ids]
        )


async def _state(uow: UnitOfWork, row: Row[Any]) -> ContentState:
    """The readers' state of `contents` row `row`: its author's names and tags added."""
    author = (
        await uow.execute(
            select(users.c.name, users.c.display_name).where(users.c.id == row.author_id)
        )
    ).one()
    return ContentState(
        id=row.id,
        author_id=row.author_id,
        author_name=author.name,
        author_display_name=author.display_name,
        slug=row.slug,
        title=row.title,
        body=row.body,
        image=row.image,
        tags=await _current_tags(uow, row.id),
        status=row.status,
        published_at=row.published_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


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
            tag_names = _valid_tags(command.tags)
            status = _valid_status(command.status)
            now = utcnow()
            published_at = now if status == PUBLISHED else None
            author = await _author(self.uow, command.actor.user_id)
            slug = await _claim_slug(
                self.uow,
                command.title,
                {
                    "id": content_id,
                    "author_id": author.id,
                    "title": command.title,
                    "body": command.body,
                    "image": command.image,
                    "status": status,
                    "published_at": published_at,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            await _set_tags(self.uow, content_id, (), tag_names)
            item = ContentState(
                id=content_id,
                author_id=author.id,
                author_name=author.name,
                author_display_name=author.display_name,
                slug=slug,
                title=command.title,
                body=command.body,
                image=command.image,
                tags=tag_names,
                status=status,
                published_at=published_at,
                created_at=now,
                updated_at=now,
            )
            self.uow.emit(ContentCreated(item=item))
            if item.is_published:
                self.uow.emit(ContentPublished(item=item))
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
            new_tags = None if command.tags is None else _valid_tags(command.tags)
            status = None if command.status is None else _valid_status(command.status)
            row = await _owned_content(self.uow, command.actor, content_id)
            if not command.actor.may_publish:  # editing is publishing new words
                raise Forbidden("Viewers may not change content; they may delete their own.")
            before = await _state(self.uow, row)
            changes: dict[str, Any] = {"updated_at": utcnow()}
            if command.title is not None:
                changes["title"] = command.title
            if command.body is not None:
                changes["body"] = command.body
            if command.image is not UNCHANGED:
                changes["image"] = command.image
            if status is not None:
                changes["status"] = status
                if status == PUBLISHED and before.published_at is None:
                    changes["published_at"] = changes["updated_at"]
            await self.uow.execute(
                update(contents).where(contents.c.id == content_id).values(**changes)
            )
            if new_tags is not None:
                await _set_tags(self.uow, content_id, before.tags, new_tags)
                changes["tags"] = new_tags
            item = dataclasses.replace(before, **changes)
            self.uow.emit(ContentUpdated(item=item, previous=before))
            if item.is_published and not before.is_published:
                self.uow.emit(ContentPublished(item=item))
            self.uow.after_commit(
                lambda: self.cache.invalidate(
                    item_key(content_id), slug_key(item.slug), generations=(LIST_GENERATION,)
                )
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
            item = await _state(self.uow, row)
            await self.uow.execute(delete(contents).where(contents.c.id == content_id))
            self.uow.emit(ContentDeleted(item=item))
            self.uow.after_commit(
                lambda: self.cache.invalidate(
                    item_key(content_id), slug_key(item.slug), generations=(LIST_GENERATION,)
                )
            )
