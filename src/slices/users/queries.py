"""Queries of the users slice: primary-key and keyset reads of `users_read`, read engine only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from opentelemetry import trace
from sqlalchemy import bindparam, select, true

from src.core.db.read import ReadHandle
from src.core.errors.types import InvalidToken
from src.core.identity import Principal
from src.core.pagination import CursorCodec, Keyset, split_page
from src.core.tables import contents_read, users_read
from src.slices.users.errors import UserNotFound
from src.slices.users.schemas import (
    PrivateProfile,
    UserPage,
    UserProfile,
    UserPublic,
)

tracer = trace.get_tracer(__name__)

_PUBLIC_COLUMNS = (
    users_read.c.id,
    users_read.c.name,
    users_read.c.display_name,
    users_read.c.country,
    users_read.c.state,
    users_read.c.content_count,
    users_read.c.follower_count,
    users_read.c.following_count,
    users_read.c.created_at,
)
_NEWEST_FIRST = Keyset(users_read.c.created_at, users_read.c.id)


NEWEST_CONTENTS = 20


# Built once: a statement's construction costs more than its (cached) compilation.
# Published items only: a draft is its author's alone (and theirs at /users/me/content).
_NEWEST = (
    select(
        contents_read.c.id,
        contents_read.c.slug,
        contents_read.c.title,
        contents_read.c.created_at,
    )
    .where(
        contents_read.c.author_id == bindparam("user_id"),
        contents_read.c.status == "published",
    )
    .order_by(contents_read.c.created_at.desc(), contents_read.c.id.desc())
    .limit(NEWEST_CONTENTS)
    .subquery("newest")
)
# One round trip: the profile row joined to its newest summaries (one row per summary, or
# one row with NULL summary columns for a user who has published nothing).
_GET_PROFILE = (
    select(
        *_PUBLIC_COLUMNS,
        _NEWEST.c.id.label("content_id"),
        _NEWEST.c.slug.label("content_slug"),
        _NEWEST.c.title.label("content_title"),
        _NEWEST.c.created_at.label("content_created_at"),
    )
    .select_from(users_read.outerjoin(_NEWEST, true()))
    .where(users_read.c.id == bindparam("user_id"))
    .order_by(_NEWEST.c.created_at.desc(), _NEWEST.c.id.desc())
)


@dataclass(frozen=True, slots=True)
class GetUser:
    """A public profile with the user's newest content summaries (users are never cached:
    profile data must always be fresh)."""

    read: ReadHandle

    async def execute(self, user_id: uuid.UUID) -> bytes:
        """The `UserProfile` JSON body."""
        with tracer.start_as_current_span("users.get") as span:
            span.set_attribute("user.id", str(user_id))
            rows = await self.read.all(_GET_PROFILE, {"user_id": user_id})
            if not rows:
                raise UserNotFound()
            contents = [
                {
                    "id": row.content_id,
                    "slug": row.content_slug,
                    "title": row.content_title,
                    "created_at": row.content_created_at,
                }
                for row in rows
                if row.content_id is not None
            ]
            profile = UserProfile.model_validate({**rows[0]._mapping, "contents": contents})
            return profile.model_dump_json().encode()


@dataclass(frozen=True, slots=True)
class GetMyProfile:
    read: ReadHandle

    async def execute(self, principal: Principal) -> PrivateProfile:
        with tracer.start_as_current_span("users.me") as span:
            span.set_attribute("user.id", str(principal.user_id))
            row = await self.read.first(
                select(users_read).where(users_read.c.id == principal.user_id)
            )
            if row is None:  # the token is genuine but the account is gone
                raise InvalidToken()
            return PrivateProfile.model_validate(row)


@dataclass(frozen=True, slots=True)
class ListUsers:
    read: ReadHandle
    cursors: CursorCodec

    async def execute(self, limit: int, cursor: str | None) -> UserPage:
        with tracer.start_as_current_span("users.list") as span:
            span.set_attribute("page.limit", limit)
            after = self.cursors.decode(cursor) if cursor else None
            rows = await self.read.all(_NEWEST_FIRST.page(select(*_PUBLIC_COLUMNS), after, limit))
            page, next_cursor = split_page(rows, limit, self.cursors)
            return UserPage(
                items=[UserPublic.model_validate(row) for row in page], next_cursor=next_cursor
            )
