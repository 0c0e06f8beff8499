"""SQLAlchemy metadata: the write tables, the read tables and the idempotency records.

Commands write the normalized write tables (`users`, `sessions`, `contents`); projectors keep
the denormalized read tables (`users_read`, `contents_read`) in step inside the same
transaction; queries read only the read tables. Every query has an index (see the `Index`
entries).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    true,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores `timestamptz`; SQLite stores a fixed-width text form that sorts in time
    order (which keyset pagination relies on). Values always come back aware, in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        moment: dt.datetime = value
        if moment.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC-aware values")
        moment = moment.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return moment.replace(tzinfo=None)
        return moment

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        moment: dt.datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """Now, in UTC, at the microsecond precision both backends store."""
    return dt.datetime.now(dt.UTC)


# --- write side ---------------------------------------------------------------------------

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("email", String(320), nullable=False, unique=True),
    Column("phone_number", String(16), nullable=True, unique=True),
    Column("password_hash", String(100), nullable=False),
    Column("country", String(100), nullable=True),
    Column("state", String(100), nullable=True),
    Column("display_name", String(100), nullable=False),
    Column("role", String(16), nullable=False, server_default="creator"),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    # When the password was last changed; NULL while it is still the one chosen at signup.
    Column("password_changed_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("role IN ('viewer', 'creator', 'admin')", name="role"),
)

# One row per login. Its access and refresh tokens carry its id (`sid`); `refresh_token_id` is
# the `jti` of the one refresh token that may still be exchanged (each refresh rotates it). A
# session ends when `revoked_at` is set (logout, a replayed refresh token, a password change,
# deactivation) or when `expires_at` (that of its newest refresh token) has passed.
sessions = Table(
    "sessions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("refresh_token_id", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("refreshed_at", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_reason", String(32), nullable=True),
    Index("ix_sessions_user_id", "user_id"),
)

contents = Table(
    "contents",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("author_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("image", String(2048), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_contents_author_id", "author_id"),
)

# --- read side ----------------------------------------------------------------------------

users_read = Table(
    "users_read",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("email", String(320), nullable=False),
    Column("phone_number", String(16), nullable=True),
    Column("display_name", String(100), nullable=False),
    Column("country", String(100), nullable=True),
    Column("state", String(100), nullable=True),
    Column("role", String(16), nullable=False),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    Column("content_count", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_users_read_created_at_id", "created_at", "id"),
)

contents_read = Table(
    "contents_read",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("author_id", Uuid, nullable=False),
    Column("author_name", String(100), nullable=False),
    Column("author_display_name", String(100), nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("image", String(2048), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_contents_read_created_at_id", "created_at", "id"),
    Index("ix_contents_read_author_id_created_at_id", "author_id", "created_at", "id"),
)

# --- idempotency -------------------------------------------------------------------------

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("scope", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # in_progress | completed
    Column("lock_token", String(32), nullable=True),
    Column("locked_at", UTCDateTime, nullable=True),
    Column("response_status", Integer, nullable=True),
    Column("response_headers", Text, nullable=True),  # JSON: [[name, value], …]
    Column("response_body", LargeBinary, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_idempotency_records_expires_at", "expires_at"),
)

# Rebuilt in this order (a content row copies its author's names from the users side).
READ_TABLES: tuple[Table, ...] = (users_read, contents_read)
