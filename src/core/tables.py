"""SQLAlchemy metadata: the write tables, the read tables and the idempotency records.

Commands write the normalized write tables (`users`, `sessions`, `contents`, `tags`,
`content_tags`, `follows`, `conversations`, `messages`);
projectors keep the denormalized read tables (`users_read`, `contents_read`,
`content_tags_read`, `tags_read`, `follows_read`, and on SQLite the full-text table
`contents_search`) in step inside the same transaction; queries read only the read tables.
Every query has an index (see the `Index` entries).

`notifications` is made from events, not from write tables: its rows are inserted only by the
notifications slice's event handlers (off the outbox, after the producing command committed),
so `rebuild-read-models` leaves it alone; its recipient's own commands mark rows read.

Full-text search uses each engine's own machinery: on PostgreSQL a `tsvector` column of
`contents_read` with a GIN index; on SQLite an FTS5 virtual table, which that column points
into. What exists on one backend only is declared so (`only_on`, `sqlite_search_tables`),
and the comparison of these definitions with the migrations stays exact on both.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
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
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.schema import SchemaItem

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


def only_on(dialect: str, index: Index) -> Index:
    """`index` exists on `dialect` alone (e.g. a GIN index): created there, expected there."""
    index.info["only_on"] = dialect
    return index.ddl_if(dialect=dialect)


# How an item is found by full-text search: on PostgreSQL its text-search document itself;
# on SQLite the rowid of its entry in the FTS5 table `contents_search` (a stored reference,
# so it survives VACUUM and table rebuilds, which renumber implicit rowids).
SearchVector = TSVECTOR().with_variant(Integer(), "sqlite")


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
    # The slug is `slug_base` for the first item that asks for it, else `slug_base-<number>`;
    # the pair lets a create find the next free number with one index probe.
    Column("slug", String(80), nullable=False, unique=True),
    Column("slug_base", String(80), nullable=False),
    Column("slug_number", Integer, nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("image", String(2048), nullable=True),
    Column("status", String(16), nullable=False, server_default="published"),
    # When the item was first published; kept through a later unpublish (answers show null
    # while it is a draft).
    Column("published_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # An author's items newest first: their profile's summaries are rewritten from it.
    Index("ix_contents_author_id_created_at_id", "author_id", "created_at", "id"),
    Index("ix_contents_slug_base_slug_number", "slug_base", "slug_number"),
)

tags = Table(
    "tags",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(30), nullable=False, unique=True),
)

content_tags = Table(
    "content_tags",
    metadata,
    Column(
        "content_id",
        Uuid,
        ForeignKey("contents.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag_id", Uuid, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_content_tags_tag_id", "tag_id"),
)

# Who follows whom: one row per (follower, followee). The primary key answers "whom X
# follows"; the followee index answers "who follows X" (a publication's notifications).
follows = Table(
    "follows",
    metadata,
    Column("follower_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("followee_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_follows_followee_id_follower_id", "followee_id", "follower_id"),
)

# A conversation with the AI assistant, private to its owner. `message_count` and
# `updated_at` move with every exchange (most recently active first is the list's order);
# `title` stays NULL until the client names it or the first message does.
conversations = Table(
    "conversations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=True),
    Column("message_count", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # the owner's list, most recently active first (read backwards)
    Index("ix_conversations_owner_id_updated_at_id", "owner_id", "updated_at", "id"),
)

# One message of a conversation. `position` numbers them 1, 2, … within their conversation in
# the order they were written (the exchange that writes them takes its numbers from the
# conversation's `message_count`, in the same statement that raises it), so "oldest first"
# and "the newest N" are one index range each, whatever the clocks say.
messages = Table(
    "messages",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "conversation_id",
        Uuid,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("position", Integer, nullable=False),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("role IN ('user', 'assistant')", name="role"),
    Index("ix_messages_conversation_id_position", "conversation_id", "position", unique=True),
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
    Column("follower_count", Integer, nullable=False, server_default="0"),
    Column("following_count", Integer, nullable=False, server_default="0"),
    # The profile's `contents` member as the JSON text the answer carries (the users projector).
    Column("newest_contents", Text, nullable=False, server_default="[]"),
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
    Column("slug", String(80), nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("image", String(2048), nullable=True),
    Column("tags", JSON, nullable=False),  # alphabetical list of names
    Column("status", String(16), nullable=False, server_default="published"),
    Column("published_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # PostgreSQL: title (weight A) and body (weight B); SQLite: the FTS5 entry's rowid
    Column("search", SearchVector, nullable=True),
    Index("ix_contents_read_slug", "slug", unique=True),
    # public lists: published items, newest first (optionally by author)
    Index("ix_contents_read_status_created_at_id", "status", "created_at", "id"),
    Index(
        "ix_contents_read_author_id_status_created_at_id",
        "author_id",
        "status",
        "created_at",
        "id",
    ),
    # an author's own items, drafts included
    Index("ix_contents_read_author_id_created_at_id", "author_id", "created_at", "id"),
    # the feed of a reader who follows many: the newest published items and their authors
    Index(
        "ix_contents_read_status_published_at_id_author_id",
        "status",
        "published_at",
        "id",
        "author_id",
    ),
    # the feed: each followed author's published items, most recently published first
    Index(
        "ix_contents_read_author_id_status_published_at_id",
        "author_id",
        "status",
        "published_at",
        "id",
    ),
    only_on("postgresql", Index("ix_contents_read_search", "search", postgresql_using="gin")),
    only_on("sqlite", Index("ix_contents_read_search_entry", "search")),
)

# One row per (tag, published item): lists filtered by tag page through this index.
content_tags_read = Table(
    "content_tags_read",
    metadata,
    Column("tag", String(30), primary_key=True),
    Column("content_id", Uuid, primary_key=True),
    Column("author_id", Uuid, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_content_tags_read_tag_created_at_content_id", "tag", "created_at", "content_id"),
    Index(
        "ix_content_tags_read_tag_author_id_created_at_content_id",
        "tag",
        "author_id",
        "created_at",
        "content_id",
    ),
    Index("ix_content_tags_read_content_id", "content_id"),
)

# How many published items carry each tag (rows exist only while the count is positive).
tags_read = Table(
    "tags_read",
    metadata,
    Column("name", String(30), primary_key=True),
    Column("count", Integer, nullable=False),
    Index("ix_tags_read_count", "count"),
)

# The content slice's copy of `follows` (kept by its projector in the follow's transaction):
# the feed reads whom its caller follows without touching the users slice's write table.
follows_read = Table(
    "follows_read",
    metadata,
    Column("follower_id", Uuid, primary_key=True),
    Column("followee_id", Uuid, primary_key=True),
)

# SQLite's full-text index of `contents_read` (title, body), kept by the content projector:
# an FTS5 virtual table; each item's entry is the rowid its `contents_read.search` holds.
# Virtual tables cannot be declared in `metadata` (SQLAlchemy would create a plain table, and
# PostgreSQL has none): migration 0006 creates it on SQLite only (0015 rebuilds it with prefix
# indexes, `CONTENTS_SEARCH_DDL` below), and this description,
# outside `metadata`, lets queries and the rebuild address it.
sqlite_search_metadata = MetaData()
contents_search = Table(
    "contents_search",
    sqlite_search_metadata,
    Column("rowid", Integer, primary_key=True),
    Column("title", Text),
    Column("body", Text),
)
# unicode61 folds case and drops diacritics, so "cafe" finds "Café". Every search word is a
# prefix (`"pyth"*`); without an index of that prefix's length FTS5 merges the posting list
# of every token it starts, all of it, whatever LIMIT follows (2 ms for a common word at 1M
# items). The prefix indexes make words of 2-10 characters one posting list read lazily,
# newest first, for ≈ 5.6 times the full-text index's size; longer words take the merge.
# What migration 0015 made: tests compare a migrated database with it.
CONTENTS_SEARCH_DDL = (
    "CREATE VIRTUAL TABLE contents_search USING fts5("
    "title, body, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3 4 5 6 7 8 9 10')"
)
_FTS5_SHADOW_SUFFIXES = ("data", "idx", "content", "docsize", "config")


def sqlite_search_tables() -> frozenset[str]:
    """The FTS5 table and the shadow tables SQLite keeps for it: present on SQLite only, and
    not part of `metadata` (see `contents_search`)."""
    name = contents_search.name
    return frozenset({name, *(f"{name}_{suffix}" for suffix in _FTS5_SHADOW_SUFFIXES)})


def exists_on(item: SchemaItem, name: str | None, type_: str, dialect: str) -> bool:
    """Whether a schema object belongs on `dialect`, for comparing these definitions with a
    migrated database (Alembic's `include_object`): objects declared `only_on` another
    dialect and the SQLite full-text tables are left out of the comparison elsewhere."""
    if type_ == "table" and name in sqlite_search_tables():
        return False
    only = getattr(item, "info", {}).get("only_on") if item is not None else None
    return only is None or only == dialect


# --- notifications ---------------------------------------------------------------------

# One row per (event, recipient), made by the notifications slice's handlers from a domain
# event; the unique pair makes a replayed event insert nothing. The actor's names (and the
# item's title and slug) are copied in as they were when the event happened.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("recipient_id", Uuid, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("type", String(32), nullable=False),
    Column("actor_id", Uuid, nullable=False),
    Column("actor_name", String(100), nullable=False),
    Column("actor_display_name", String(100), nullable=False),
    Column("content_id", Uuid, nullable=True),
    Column("content_title", String(200), nullable=True),
    Column("content_slug", String(80), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("read_at", UTCDateTime, nullable=True),
    CheckConstraint("type IN ('content_published', 'new_follower')", name="type"),
    Index("ix_notifications_event_id_recipient_id", "event_id", "recipient_id", unique=True),
    # the recipient's list, newest first
    Index("ix_notifications_recipient_id_created_at_id", "recipient_id", "created_at", "id"),
    # the unread ones (list and count): read_at IS NULL is a range of this index
    Index(
        "ix_notifications_recipient_id_read_at_created_at_id",
        "recipient_id",
        "read_at",
        "created_at",
        "id",
    ),
)


# --- AI usage ----------------------------------------------------------------------------

# One row per user and UTC day: the tokens charged that day (provider usage, or the text's
# length / 4 offline), and the lease of the one AI call the user may have in flight
# (`lease_id` until `lease_expires_at`; see src/core/ai/budget.py).
ai_usage = Table(
    "ai_usage",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("tokens", BigInteger, nullable=False, server_default="0"),
    Column("lease_id", String(32), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
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

# --- events: the outbox and what each handler has applied --------------------------------

# Every domain event a command emits, inserted in the command's transaction (so an event exists
# exactly when its effect does). `position` orders delivery; `delivered_at` is when the event
# was handled in-process (embedded default) or relayed to the Redis stream (with REDIS_URL);
# delivered rows are purged soon after. A row whose handlers kept failing is kept with
# `dead_at` and its last error, never retried again.
outbox = Table(
    "outbox",
    metadata,
    Column(
        "position",
        BigInteger().with_variant(Integer(), "sqlite"),  # SQLite's rowid alias: INTEGER
        primary_key=True,
        autoincrement=True,
    ),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("event_type", String(100), nullable=False),
    Column("aggregate_id", String(64), nullable=True),
    Column("payload", JSON, nullable=False),
    Column("traceparent", String(55), nullable=True),
    Column("tracestate", String(512), nullable=True),
    Column("committed_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("dead_at", UTCDateTime, nullable=True),
    # What the runner and the relay read: the undelivered rows, in order; and the purge.
    Index("ix_outbox_delivered_at_position", "delivered_at", "position"),
    # Never hand out a purged row's position again (SQLite reuses the highest rowid).
    sqlite_autoincrement=True,
)

# `(handler, event_id)` is recorded in the handler's own transaction: a redelivered event is a
# no-op for a handler that has applied it.
processed_events = Table(
    "processed_events",
    metadata,
    Column("handler", String(100), primary_key=True),
    Column("event_id", Uuid, primary_key=True),
    Column("processed_at", UTCDateTime, nullable=False),
    Index("ix_processed_events_processed_at", "processed_at"),
)


# Rebuilt in this order (a content row copies its author's names from the users side).
READ_TABLES: tuple[Table, ...] = (
    users_read,
    contents_read,
    content_tags_read,
    tags_read,
    follows_read,
)
