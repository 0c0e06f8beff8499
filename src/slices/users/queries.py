"""Queries of the users slice: primary-key and keyset reads of `users_read`, read engine only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from opentelemetry import trace
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from src.core.errors import NotFound
from src.core.pagination import CursorCodec
from src.core.tables import users_read
from src.slices.users.schemas import UserPage, UserPublic

tracer = trace.get_tracer(__name__)

_PUBLIC_COLUMNS = (
    users_read.c.id,
    users_read.c.name,
    users_read.c.display_name,
    users_read.c.country,
    users_read.c.state,
    users_read.c.content_count,
    users_read.c.created_at,
)


class UserNotFound(NotFound):
    code, detail = "user_not_found", "No user has this id."


@dataclass(frozen=True, slots=True)
class GetUser:
    engine: AsyncEngine

    async def execute(self, user_id: uuid.UUID) -> UserPublic:
        with tracer.start_as_current_span("users.get") as span:
            span.set_attribute("user.id", str(user_id))
            async with self.engine.connect() as connection:
                row = (
                    await connection.execute(
                        select(*_PUBLIC_COLUMNS).where(users_read.c.id == user_id)
                    )
                ).first()
            if row is None:
                raise UserNotFound()
            return UserPublic.model_validate(row)


@dataclass(frozen=True, slots=True)
class ListUsers:
    engine: AsyncEngine
    cursors: CursorCodec

    async def execute(self, limit: int, cursor: str | None) -> UserPage:
        with tracer.start_as_current_span("users.list") as span:
            span.set_attribute("page.limit", limit)
            query = select(*_PUBLIC_COLUMNS).order_by(
                users_read.c.created_at.desc(), users_read.c.id.desc()
            )
            if cursor:
                after = self.cursors.decode(cursor)
                query = query.where(tuple_(users_read.c.created_at, users_read.c.id) < after)
            async with self.engine.connect() as connection:
                rows = (await connection.execute(query.limit(limit + 1))).all()
            items = [UserPublic.model_validate(row) for row in rows[:limit]]
            next_cursor = None
            if len(rows) > limit:
                last = items[-1]
                next_cursor = self.cursors.encode(last.created_at, last.id)
            return UserPage(items=items, next_cursor=next_cursor)
