"""contents_read: published items by publication time, with their author, for the feed's walk

The feed of a reader who follows many authors is read by walking the newest published items
and keeping the followed authors' ones; this index is that walk, covering (the author is its
last column, so no row is read to know whose an item is). On PostgreSQL it is built
CONCURRENTLY, outside the migration's transaction, so the table keeps taking writes while it
builds. Downgrading drops it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_contents_read_status_published_at_id_author_id"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            INDEX,
            "contents_read",
            ["status", "published_at", "id", "author_id"],
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="contents_read", postgresql_concurrently=True)
