"""publishing: slugs, drafts, tags and full-text search

Write side: `contents` gets its slug (unique; with the base and number that make it), status
and first-publication time; `tags` and `content_tags` hold the tags. Read side:
`contents_read` gets the same columns, the tag list and (PostgreSQL) a `tsvector` with a GIN
index; `content_tags_read` and `tags_read` serve lists by tag and the tag counts; on SQLite an
FTS5 table `contents_search` indexes titles and bodies.

Existing content is published (`published_at` = `created_at`) and gets unique slugs from its
titles, oldest first.

Downgrading refuses while drafts exist: the schema before this revision cannot keep anything
private, so whether those drafts are published or deleted is the operator's decision.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from src.core.tables import SearchVector, UTCDateTime
from src.slices.content.rules import numbered_slug, slug_base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_contents = sa.table(
    "contents",
    sa.column("id", sa.Uuid),
    sa.column("title", sa.String),
    sa.column("status", sa.String),
    sa.column("created_at", UTCDateTime),
    sa.column("slug", sa.String),
    sa.column("slug_base", sa.String),
    sa.column("slug_number", sa.Integer),
    sa.column("published_at", UTCDateTime),
)
_contents_read = sa.table(
    "contents_read",
    sa.column("id", sa.Uuid),
    sa.column("title", sa.Text),
    sa.column("body", sa.Text),
    sa.column("slug", sa.String),
    sa.column("tags", sa.JSON),
    sa.column("created_at", UTCDateTime),
    sa.column("published_at", UTCDateTime),
    sa.column("search", SearchVector),
)


def _backfill_slugs(connection: sa.Connection) -> None:
    """Unique slugs for the existing items, in creation order (the first keeps the bare one)."""
    rows = connection.execute(
        sa.select(_contents.c.id, _contents.c.title).order_by(
            _contents.c.created_at, _contents.c.id
        )
    ).all()
    highest: dict[str, int] = {}
    used: set[str] = set()
    updates = []
    for content_id, title in rows:
        base = slug_base(title)
        number = highest.get(base, 0) + 1
        while numbered_slug(base, number) in used:  # another title's `base-<number>`
            number += 1
        slug = numbered_slug(base, number)
        highest[base] = number
        used.add(slug)
        updates.append({"row_id": content_id, "new_slug": slug, "base": base, "number": number})
    if updates:
        connection.execute(
            sa.update(_contents)
            .where(_contents.c.id == sa.bindparam("row_id"))
            .values(
                slug=sa.bindparam("new_slug"),
                slug_base=sa.bindparam("base"),
                slug_number=sa.bindparam("number"),
            ),
            updates,
        )
    connection.execute(sa.update(_contents).values(published_at=_contents.c.created_at))


def _backfill_read_model(connection: sa.Connection, dialect: str) -> None:
    slug_of = (
        sa.select(_contents.c.slug).where(_contents.c.id == _contents_read.c.id).scalar_subquery()
    )
    values: dict[str, object] = {
        "slug": slug_of,
        "tags": sa.literal_column("'[]'"),
        "published_at": _contents_read.c.created_at,
    }
    if dialect == "postgresql":
        english: sa.ColumnElement[object] = sa.literal_column("'english'::regconfig")
        values["search"] = sa.func.setweight(
            sa.func.to_tsvector(english, _contents_read.c.title), sa.literal_column("'A'")
        ).op("||")(
            sa.func.setweight(
                sa.func.to_tsvector(english, _contents_read.c.body), sa.literal_column("'B'")
            )
        )
    connection.execute(sa.update(_contents_read).values(**values))


# The full-text table as this revision made it (0015 adds prefix indexes).
CONTENTS_SEARCH_DDL = (
    "CREATE VIRTUAL TABLE contents_search USING fts5("
    "title, body, tokenize = 'unicode61 remove_diacritics 2')"
)


def upgrade() -> None:
    connection = op.get_bind()
    dialect = connection.dialect.name

    # --- contents: slug, status, published_at --------------------------------------------
    with op.batch_alter_table("contents") as batch:
        batch.add_column(sa.Column("slug", sa.String(80), nullable=True))
        batch.add_column(sa.Column("slug_base", sa.String(80), nullable=True))
        batch.add_column(sa.Column("slug_number", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("status", sa.String(16), server_default="published", nullable=False)
        )
        batch.add_column(sa.Column("published_at", UTCDateTime(), nullable=True))
    _backfill_slugs(connection)
    with op.batch_alter_table("contents") as batch:
        batch.alter_column("slug", existing_type=sa.String(80), nullable=False)
        batch.alter_column("slug_base", existing_type=sa.String(80), nullable=False)
        batch.alter_column("slug_number", existing_type=sa.Integer(), nullable=False)
        batch.create_unique_constraint(op.f("uq_contents_slug"), ["slug"])
        batch.create_index("ix_contents_slug_base_slug_number", ["slug_base", "slug_number"])

    # --- tags -------------------------------------------------------------------------------
    op.create_table(
        "tags",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(30), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tags")),
        sa.UniqueConstraint("name", name=op.f("uq_tags_name")),
    )
    op.create_table(
        "content_tags",
        sa.Column("content_id", sa.Uuid(), nullable=False),
        sa.Column("tag_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["content_id"], ["contents.id"], name=op.f("fk_content_tags_content_id_contents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tag_id"], ["tags.id"], name=op.f("fk_content_tags_tag_id_tags"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("content_id", "tag_id", name=op.f("pk_content_tags")),
    )  # fmt: skip
    op.create_index("ix_content_tags_tag_id", "content_tags", ["tag_id"])

    # --- contents_read: the same columns, the tag list, the search vector --------------------
    with op.batch_alter_table("contents_read") as batch:
        batch.add_column(sa.Column("slug", sa.String(80), nullable=True))
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("status", sa.String(16), server_default="published", nullable=False)
        )
        batch.add_column(sa.Column("published_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("search", SearchVector, nullable=True))
    _backfill_read_model(connection, dialect)
    with op.batch_alter_table("contents_read") as batch:
        batch.alter_column("slug", existing_type=sa.String(80), nullable=False)
        batch.alter_column("tags", existing_type=sa.JSON(), nullable=False)
        batch.drop_index("ix_contents_read_created_at_id")
        batch.create_index("ix_contents_read_slug", ["slug"], unique=True)
        batch.create_index("ix_contents_read_status_created_at_id", ["status", "created_at", "id"])
        batch.create_index(
            "ix_contents_read_author_id_status_created_at_id",
            ["author_id", "status", "created_at", "id"],
        )
    if dialect == "postgresql":
        op.create_index(
            "ix_contents_read_search", "contents_read", ["search"], postgresql_using="gin"
        )

    # --- lists by tag, tag counts ------------------------------------------------------------
    op.create_table(
        "content_tags_read",
        sa.Column("tag", sa.String(30), nullable=False),
        sa.Column("content_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tag", "content_id", name=op.f("pk_content_tags_read")),
    )
    op.create_index(
        "ix_content_tags_read_tag_created_at_content_id",
        "content_tags_read",
        ["tag", "created_at", "content_id"],
    )
    op.create_index(
        "ix_content_tags_read_tag_author_id_created_at_content_id",
        "content_tags_read",
        ["tag", "author_id", "created_at", "content_id"],
    )
    op.create_index("ix_content_tags_read_content_id", "content_tags_read", ["content_id"])
    op.create_table(
        "tags_read",
        sa.Column("name", sa.String(30), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tags_read")),
    )
    op.create_index("ix_tags_read_count", "tags_read", ["count"])

    # --- SQLite full-text index: an entry per item, referenced by its contents_read.search -
    if dialect == "sqlite":
        op.execute(CONTENTS_SEARCH_DDL)
        op.execute(
            "INSERT INTO contents_search (rowid, title, body) "
            "SELECT rowid, title, body FROM contents_read"
        )
        op.execute("UPDATE contents_read SET search = rowid")
        op.create_index("ix_contents_read_search_entry", "contents_read", ["search"])


def downgrade() -> None:
    connection = op.get_bind()
    dialect = connection.dialect.name
    drafts = connection.execute(
        sa.select(sa.func.count()).select_from(_contents).where(_contents.c.status != "published")
    ).scalar()
    if drafts:
        raise RuntimeError(
            f"{drafts} draft(s) exist: the schema before revision 0006 cannot keep them "
            "private. Publish or delete them before downgrading."
        )
    if dialect == "sqlite":
        op.drop_index("ix_contents_read_search_entry", table_name="contents_read")
        op.execute("DROP TABLE contents_search")
    op.drop_index("ix_tags_read_count", table_name="tags_read")
    op.drop_table("tags_read")
    op.drop_index("ix_content_tags_read_content_id", table_name="content_tags_read")
    op.drop_index(
        "ix_content_tags_read_tag_author_id_created_at_content_id",
        table_name="content_tags_read",
    )
    op.drop_index("ix_content_tags_read_tag_created_at_content_id", table_name="content_tags_read")
    op.drop_table("content_tags_read")
    if dialect == "postgresql":
        op.drop_index("ix_contents_read_search", table_name="contents_read")
    with op.batch_alter_table("contents_read") as batch:
        batch.drop_index("ix_contents_read_author_id_status_created_at_id")
        batch.drop_index("ix_contents_read_status_created_at_id")
        batch.drop_index("ix_contents_read_slug")
        batch.create_index("ix_contents_read_created_at_id", ["created_at", "id"])
        batch.drop_column("search")
        batch.drop_column("published_at")
        batch.drop_column("status")
        batch.drop_column("tags")
        batch.drop_column("slug")
    op.drop_index("ix_content_tags_tag_id", table_name="content_tags")
    op.drop_table("content_tags")
    op.drop_table("tags")
    with op.batch_alter_table("contents") as batch:
        batch.drop_index("ix_contents_slug_base_slug_number")
        batch.drop_constraint(op.f("uq_contents_slug"), type_="unique")
        batch.drop_column("published_at")
        batch.drop_column("status")
        batch.drop_column("slug_number")
        batch.drop_column("slug_base")
        batch.drop_column("slug")
