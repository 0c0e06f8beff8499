"""Queries of the notifications slice: the caller's own notifications, newest first.

Only ever the caller's rows (`recipient_id` is the caller, in every statement), through the
read handle: one keyset page over `(recipient_id, created_at, id)` — or, for `unread=true`,
over `(recipient_id, read_at, created_at, id)` with `read_at IS NULL` — and one count over the
unread range of that second index. Not cached: a notification is read by one person, and
marking it read must show on the next read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from sqlalchemy import func, select

from src.core.db.read import ReadHandle
from src.core.identity import Principal
from src.core.pagination import CursorCodec, Keyset, split_page
from src.core.tables import notifications
from src.slices.notifications.schemas import NotificationPage

tracer = trace.get_tracer(__name__)

_NEWEST_FIRST = Keyset(notifications.c.created_at, notifications.c.id)
_COLUMNS = tuple(column for column in notifications.c if column.name != "event_id")


def _item(row: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row.id,
        "type": row.type,
        "actor": {
            "id": row.actor_id,
            "name": row.actor_name,
            "display_name": row.actor_display_name,
        },
        "created_at": row.created_at,
        "read_at": row.read_at,
    }
    if row.content_id is not None:
        item["content"] = {
            "id": row.content_id,
            "title": row.content_title,
            "slug": row.content_slug,
        }
    return item


@dataclass(frozen=True, slots=True)
class ListNotifications:
    read: ReadHandle
    cursors: CursorCodec

    async def execute(
        self, recipient: Principal, unread_only: bool, limit: int, cursor: str | None
    ) -> bytes:
        """The `NotificationPage` JSON body."""
        with tracer.start_as_current_span("notifications.list") as span:
            span.set_attribute("user.id", str(recipient.user_id))
            span.set_attribute("page.limit", limit)
            after = self.cursors.decode(cursor) if cursor else None  # 422 before any I/O
            mine = notifications.c.recipient_id == recipient.user_id
            unread = notifications.c.read_at.is_(None)
            query = select(*_COLUMNS).where(mine)
            if unread_only:
                query = query.where(unread)
            rows = await self.read.all(_NEWEST_FIRST.page(query, after, limit))
            unread_count = await self.read.scalar(
                select(func.count()).select_from(notifications).where(mine, unread)
            )
            page, next_cursor = split_page(rows, limit, self.cursors)
            body = NotificationPage.model_validate(
                {
                    "items": [_item(row) for row in page],
                    "next_cursor": next_cursor,
                    "unread_count": unread_count,
                }
            )
            return body.model_dump_json().encode()
