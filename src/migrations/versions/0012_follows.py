"""follows: who follows whom, its read copy and counts, the feed's index, notifications

`follows` (write side) and `follows_read` (the content slice's copy, for the feed) are new, as
is `notifications` (made by event handlers). `users_read` gains `follower_count` and
`following_count` (0 for every existing user: nobody follows anyone yet), and `contents_read`
an index per author by publication time for the feed. Downgrading drops them all, every follow
and notification with them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from src.core.tables import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "follows",
        sa.Column("follower_id", sa.Uuid(), nullable=False),
        sa.Column("followee_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["follower_id"],
            ["users.id"],
            name=op.f("fk_follows_follower_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["followee_id"],
            ["users.id"],
            name=op.f("fk_follows_followee_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("follower_id", "followee_id", name=op.f("pk_follows")),
    )
    op.create_index("ix_follows_followee_id_follower_id", "follows", ["followee_id", "follower_id"])
    op.create_table(
        "follows_read",
        sa.Column("follower_id", sa.Uuid(), nullable=False),
        sa.Column("followee_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("follower_id", "followee_id", name=op.f("pk_follows_read")),
    )
    with op.batch_alter_table("users_read") as batch:
        batch.add_column(
            sa.Column("follower_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("following_count", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_index(
        "ix_contents_read_author_id_status_published_at_id",
        "contents_read",
        ["author_id", "status", "published_at", "id"],
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recipient_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=False),
        sa.Column("actor_name", sa.String(100), nullable=False),
        sa.Column("actor_display_name", sa.String(100), nullable=False),
        sa.Column("content_id", sa.Uuid(), nullable=True),
        sa.Column("content_title", sa.String(200), nullable=True),
        sa.Column("content_slug", sa.String(80), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("read_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "type IN ('content_published', 'new_follower')", name=op.f("ck_notifications_type")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(
        "ix_notifications_event_id_recipient_id",
        "notifications",
        ["event_id", "recipient_id"],
        unique=True,
    )
    op.create_index(
        "ix_notifications_recipient_id_created_at_id",
        "notifications",
        ["recipient_id", "created_at", "id"],
    )
    op.create_index(
        "ix_notifications_recipient_id_read_at_created_at_id",
        "notifications",
        ["recipient_id", "read_at", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_recipient_id_read_at_created_at_id", table_name="notifications")
    op.drop_index("ix_notifications_recipient_id_created_at_id", table_name="notifications")
    op.drop_index("ix_notifications_event_id_recipient_id", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_contents_read_author_id_status_published_at_id", table_name="contents_read")
    with op.batch_alter_table("users_read") as batch:
        batch.drop_column("following_count")
        batch.drop_column("follower_count")
    op.drop_table("follows_read")
    op.drop_index("ix_follows_followee_id_follower_id", table_name="follows")
    op.drop_table("follows")
