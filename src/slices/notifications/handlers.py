"""The notifications slice's event handlers: the only code that makes notifications.

They run off the outbox, after the producing command has committed, each in its own unit of
work (the event worker's, or the serve process's without Redis), which also records the event
as processed for the handler. On their own too they apply an event once: a row is one
`(event id, recipient)` pair, inserted or nothing (`ON CONFLICT DO NOTHING` on the unique
pair), so a replay of the same event — by the delivery code or anyone — adds nothing, and a
notification's id is derived from that pair, the same on every replay.

What a notification shows of its actor (and of the item) is copied in when it is made: the
names the follower had when they followed (carried by `UserFollowed`), the author's names and
the item's title and slug as published (carried by `ContentPublished`). A later rename does
not rewrite old notifications, as a letter keeps the name it was signed with.

The followers an item's notifications go to are those of the author when the handler runs,
read from `follows` on the primary in the handler's transaction (a handler is a command of
this slice: it reads write tables, never a read table a replica may serve late).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from src.core.db.uow import UnitOfWork
from src.core.events import EventHandlers, EventMeta
from src.core.tables import follows, notifications
from src.slices.content.events import ContentPublished
from src.slices.users.events import UserFollowed

tracer = trace.get_tracer(__name__)

CONTENT_PUBLISHED = "notifications.content_published"
NEW_FOLLOWER = "notifications.new_follower"

# Rows per INSERT for an author with many followers: bounded statements (SQLite allows
# 32,766 bound values; a row binds 12).
_BATCH = 500


def notification_id(event_id: uuid.UUID, recipient_id: uuid.UUID) -> uuid.UUID:
    """The id of the one notification `event_id` makes for `recipient_id` (stable)."""
    return uuid.uuid5(event_id, str(recipient_id))


async def _insert_new(uow: UnitOfWork, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the rows whose (event, recipient) pair is new; how many were inserted."""
    if not rows:
        return 0
    dialect_insert = postgresql.insert if uow.dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(notifications).on_conflict_do_nothing(
        index_elements=["event_id", "recipient_id"]
    )
    inserted = 0
    for start in range(0, len(rows), _BATCH):
        result = await uow.execute(
            statement.values(list(rows[start : start + _BATCH])).returning(notifications.c.id)
        )
        inserted += len(result.all())
    return inserted


async def on_content_published(uow: UnitOfWork, event: ContentPublished, meta: EventMeta) -> None:
    """One `content_published` notification for each follower of the author."""
    item = event.item
    with tracer.start_as_current_span("notifications.content_published") as span:
        span.set_attribute("content.id", str(item.id))
        followers = (
            await uow.execute(
                select(follows.c.follower_id).where(follows.c.followee_id == item.author_id)
            )
        ).scalars()
        rows = [
            {
                "id": notification_id(meta.event_id, follower),
                "recipient_id": follower,
                "event_id": meta.event_id,
                "type": "content_published",
                "actor_id": item.author_id,
                "actor_name": item.author_name,
                "actor_display_name": item.author_display_name,
                "content_id": item.id,
                "content_title": item.title,
                "content_slug": item.slug,
                "created_at": meta.committed_at,
                "read_at": None,
            }
            for follower in followers
        ]
        span.set_attribute("notifications.recipients", len(rows))
        span.set_attribute("notifications.inserted", await _insert_new(uow, rows))


async def on_user_followed(uow: UnitOfWork, event: UserFollowed, meta: EventMeta) -> None:
    """One `new_follower` notification for the followed user (a repeated follow emits no
    event, so it notifies nobody)."""
    with tracer.start_as_current_span("notifications.new_follower") as span:
        span.set_attribute("user.id", str(event.followee_id))
        row = {
            "id": notification_id(meta.event_id, event.followee_id),
            "recipient_id": event.followee_id,
            "event_id": meta.event_id,
            "type": "new_follower",
            "actor_id": event.follower_id,
            "actor_name": event.follower_name,
            "actor_display_name": event.follower_display_name,
            "content_id": None,
            "content_title": None,
            "content_slug": None,
            "created_at": meta.committed_at,
            "read_at": None,
        }
        span.set_attribute("notifications.inserted", await _insert_new(uow, [row]))


def register(handlers: EventHandlers) -> None:
    # The names are recorded with every processed event: never rename them.
    handlers.subscribe(CONTENT_PUBLISHED, ContentPublished, on_content_published)
    handlers.subscribe(NEW_FOLLOWER, UserFollowed, on_user_followed)
