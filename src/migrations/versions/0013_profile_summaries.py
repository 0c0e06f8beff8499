"""users_read.newest_contents: the profile's summaries stored as the JSON it answers with

The profile read joined `users_read` to the author's newest published items, sorted them and
rendered each one; it now reads one column the users projector keeps. Existing rows are
filled here from `contents`, rendered as the projector renders them. `contents` trades its
index on `author_id` for one on `(author_id, created_at, id)`, which answers both the
foreign key's look-ups and the projector's "newest of this author". Downgrading drops the
column and restores the old index.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from src.core.tables import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEWEST_CONTENTS = 20  # what the profile carried when this revision was written


def upgrade() -> None:
    with op.batch_alter_table("users_read") as batch:
        batch.add_column(
            sa.Column("newest_contents", sa.Text(), server_default="[]", nullable=False)
        )
    op.create_index(
        "ix_contents_author_id_created_at_id", "contents", ["author_id", "created_at", "id"]
    )
    op.drop_index("ix_contents_author_id", table_name="contents")
    _fill_newest_contents()


def _fill_newest_contents() -> None:
    # The projector's rendering as of this revision, kept here so that a later change to it
    # (or to the tables) does not change what this migration writes.
    contents = sa.table(
        "contents",
        sa.column("id", sa.Uuid()),
        sa.column("author_id", sa.Uuid()),
        sa.column("slug", sa.String()),
        sa.column("title", sa.String()),
        sa.column("status", sa.String()),
        sa.column("created_at", UTCDateTime()),
    )
    users_read = sa.table("users_read", sa.column("id", sa.Uuid()), sa.column("newest_contents"))

    rank = (
        sa.func.row_number()
        .over(
            partition_by=contents.c.author_id,
            order_by=(contents.c.created_at.desc(), contents.c.id.desc()),
        )
        .label("rank")
    )
    ranked = (
        sa.select(
            contents.c.author_id,
            contents.c.id,
            contents.c.slug,
            contents.c.title,
            contents.c.created_at,
            rank,
        )
        .where(contents.c.status == "published")
        .subquery()
    )
    newest = (
        sa.select(
            ranked.c.author_id, ranked.c.id, ranked.c.slug, ranked.c.title, ranked.c.created_at
        )
        .where(ranked.c.rank <= NEWEST_CONTENTS)
        .order_by(ranked.c.author_id, ranked.c.rank)
    )
    by_author: dict[Any, list[dict[str, Any]]] = {}
    for author_id, content_id, slug, title, created_at in op.get_bind().execute(newest):
        by_author.setdefault(author_id, []).append(
            {"id": content_id, "slug": slug, "title": title, "created_at": created_at}
        )
    if by_author:
        op.get_bind().execute(
            sa.update(users_read)
            .where(users_read.c.id == sa.bindparam("author"))
            .values(newest_contents=sa.bindparam("document")),
            [
                {
                    "author": author,
                    "document": orjson.dumps(
                        summaries, option=orjson.OPT_UTC_Z, default=str
                    ).decode(),
                }
                for author, summaries in by_author.items()
            ],
        )


def downgrade() -> None:
    op.create_index("ix_contents_author_id", "contents", ["author_id"])
    op.drop_index("ix_contents_author_id_created_at_id", table_name="contents")
    with op.batch_alter_table("users_read") as batch:
        batch.drop_column("newest_contents")
