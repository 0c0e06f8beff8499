"""Queries of the users slice: primary-key and keyset reads of `users_read`, read engine only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
from opentelemetry import trace
from sqlalchemy import bindparam, select

from src.core.db.read import ReadHandle
from src.core.errors.types import InvalidToken
from src.core.identity import Principal
from src.core.pagination import CursorCodec, Keyset, split_page
from src.core.spans import child_span
from src.core.tables import users_read
from src.slices.users.errors import UserNotFound
from src.slices.users.schemas import PrivateProfile, UserPage, UserPublic

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


# The profile: one primary-key row, its summaries already rendered by the users projector
# (`users_read.newest_contents`). Published items only: a draft is its author's alone (and
# theirs at /users/me/content).
_GET_PROFILE = select(*_PUBLIC_COLUMNS, users_read.c.newest_contents).where(
    users_read.c.id == bindparam("user_id")
)


# The same read as text for the driver's own connection: asyncpg prepares it once per
# connection (its statement cache is keyed by this text), sqlite3 caches it likewise.
# SQLAlchemy's per-statement work was most of this read's CPU.
_PROFILE_SQL = (
    "SELECT {user_id}, name, display_name, country, state, content_count, follower_count,"
    " following_count, {user_created}, newest_contents FROM users_read WHERE id = {user}"
)
_ASYNCPG_PROFILE = _PROFILE_SQL.format(user="$1", user_id="id", user_created="created_at")


def _sqlite_uuid(column: str) -> str:
    # Stored as 32 hex digits; the body carries the 8-4-4-4-12 form.
    parts = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
    return " || '-' || ".join(f"substr({column}, {start}, {size})" for start, size in parts)


def _sqlite_stamp(column: str) -> str:
    # Stored as `2026-12-02 12:00:00.123456` (UTC); the body carries what Pydantic writes for
    # the instant: `2026-12-02T12:00:00.123456Z`, and `2026-12-02T12:00:00Z` on a whole second.
    return (
        f"substr({column}, 1, 10) || 'T' || substr({column}, 12, 8) || CASE WHEN"
        f" substr({column}, 21) IN ('', '000000') THEN '' ELSE substr({column}, 20) END || 'Z'"
    )


# SQLite writes the strings the JSON body carries (in its C code, on either connection):
# building UUID and datetime objects from its text in Python cost more than the statement.
_SQLITE_PROFILE = _PROFILE_SQL.format(
    user=":user", user_id=_sqlite_uuid("id"), user_created=_sqlite_stamp("created_at")
)

ProfileRows = Sequence[Sequence[Any]]


async def _asyncpg_profile(driver: Any, user_id: uuid.UUID) -> ProfileRows:
    rows: ProfileRows = await driver.fetch(_ASYNCPG_PROFILE, user_id)
    return rows


async def _sqlite_profile(driver: Any, user_id: uuid.UUID) -> ProfileRows:
    rows: ProfileRows = await driver.execute_fetchall(_SQLITE_PROFILE, {"user": user_id.hex})
    return rows


_DRIVER_PROFILES = {"asyncpg": _asyncpg_profile, "aiosqlite": _sqlite_profile}


def profile_json(rows: ProfileRows) -> bytes:
    """The `UserProfile` body, byte for byte what its Pydantic model would write (field
    order, `Z` timestamps), from the row the read model already holds valid: no model to
    build, and the summaries are embedded as stored."""
    head = rows[0]
    document = {
        "id": head[0],
        "name": head[1],
        "display_name": head[2],
        "country": head[3],
        "state": head[4],
        "content_count": head[5],
        "follower_count": head[6],
        "following_count": head[7],
        "created_at": head[8],
        "contents": orjson.Fragment(head[9]),
    }
    # `default=str`: asyncpg's UUID type writes as the standard form.
    return orjson.dumps(document, option=orjson.OPT_UTC_Z, default=str)


@dataclass(frozen=True, slots=True)
class GetUser:
    """A public profile with the user's newest content summaries (users are never cached:
    profile data must always be fresh)."""

    read: ReadHandle

    async def execute(self, user_id: uuid.UUID) -> bytes:
        """The `UserProfile` JSON body."""
        with child_span(tracer, "users.get") as span:
            span.set_attribute("user.id", str(user_id))
            on_driver = _DRIVER_PROFILES.get(self.read.driver)
            if on_driver is None:
                rows: ProfileRows = await self.read.all(_GET_PROFILE, {"user_id": user_id})
            else:
                rows = await self.read.on_driver(
                    partial(on_driver, user_id=user_id), operation="SELECT", collection="users_read"
                )
            if not rows:
                raise UserNotFound()
            return profile_json(rows)


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
