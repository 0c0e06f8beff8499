"""contents (write) and contents_read (read model)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from src.core.tables import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("image", sa.String(2048), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_contents_author_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contents")),
    )  # fmt: skip
    op.create_index("ix_contents_author_id", "contents", ["author_id"])
    op.create_table(
        "contents_read",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("author_name", sa.String(100), nullable=False),
        sa.Column("author_display_name", sa.String(100), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("image", sa.String(2048), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contents_read")),
    )
    op.create_index("ix_contents_read_created_at_id", "contents_read", ["created_at", "id"])
    op.create_index(
        "ix_contents_read_author_id_created_at_id",
        "contents_read",
        ["author_id", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_contents_read_author_id_created_at_id", table_name="contents_read")
    op.drop_index("ix_contents_read_created_at_id", table_name="contents_read")
    op.drop_table("contents_read")
    op.drop_index("ix_contents_author_id", table_name="contents")
    op.drop_table("contents")
