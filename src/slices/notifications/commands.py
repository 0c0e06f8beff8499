"""Commands of the notifications slice: the recipient marks their notifications read.

Rows are made only by the handlers (`handlers.py`); the one thing a request changes is
`read_at`, and only on the caller's own rows (every statement names the recipient, so another
user's id is as unknown as an id that was never made). Marking is idempotent: a notification
keeps the moment it was first read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from opentelemetry import trace
from sqlalchemy import func, update

from src.core.db.uow import UnitOfWork
from src.core.identity import Principal
from src.core.tables import notifications, utcnow
from src.slices.notifications.errors import NotificationNotFound

tracer = trace.get_tracer(__name__)


@dataclass(frozen=True, slots=True)
class MarkNotificationReadCommand:
    actor: Principal
    notification_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class MarkNotificationRead:
    uow: UnitOfWork

    async def execute(self, command: MarkNotificationReadCommand) -> None:
        with tracer.start_as_current_span("notifications.mark_read") as span:
            span.set_attribute("user.id", str(command.actor.user_id))
            span.set_attribute("notification.id", str(command.notification_id))
            # One statement: the caller's row gets `read_at` unless it has one already.
            marked = await self.uow.execute(
                update(notifications)
                .where(
                    notifications.c.id == command.notification_id,
                    notifications.c.recipient_id == command.actor.user_id,
                )
                .values(read_at=func.coalesce(notifications.c.read_at, utcnow()))
                .returning(notifications.c.id)
            )
            if marked.first() is None:
                raise NotificationNotFound()


@dataclass(frozen=True, slots=True)
class MarkAllNotificationsReadCommand:
    actor: Principal


@dataclass(frozen=True, slots=True)
class MarkAllNotificationsRead:
    uow: UnitOfWork

    async def execute(self, command: MarkAllNotificationsReadCommand) -> int:
        """How many notifications were unread."""
        with tracer.start_as_current_span("notifications.mark_all_read") as span:
            span.set_attribute("user.id", str(command.actor.user_id))
            marked = await self.uow.execute(
                update(notifications)
                .where(
                    notifications.c.recipient_id == command.actor.user_id,
                    notifications.c.read_at.is_(None),
                )
                .values(read_at=utcnow())
                .returning(notifications.c.id)
            )
            count = len(marked.all())
            span.set_attribute("notifications.marked", count)
            return count
