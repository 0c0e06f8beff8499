"""accounts: roles viewer/creator/admin, account state, password changes, sessions

* `users.role`: today's `user` becomes `creator` (who may publish), the default for new rows
  is `creator`, and a check constraint keeps the column to the three roles.
* `users.is_active` (deactivated accounts cannot log in and their tokens are refused) and
  `users.password_changed_at`; `users_read` carries `is_active` too.
* `sessions`: one row per login, for refresh-token rotation and revocation.

Downgrading maps `creator` and `viewer` back to `user` (the only non-admin role before) and
drops the sessions: tokens issued since carry a session id the older code ignores.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from src.core.tables import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLES = "role IN ('viewer', 'creator', 'admin')"


def _rename_role(table: str, old: tuple[str, ...], new: str) -> None:
    rows = sa.table(table, sa.column("role", sa.String))
    op.execute(sa.update(rows).where(rows.c.role.in_(old)).values(role=new))


def upgrade() -> None:
    _rename_role("users", ("user",), "creator")
    _rename_role("users_read", ("user",), "creator")
    with op.batch_alter_table("users") as batch:
        batch.alter_column(
            "role",
            existing_type=sa.String(16),
            existing_nullable=False,
            server_default="creator",
        )
        batch.add_column(
            sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch.add_column(sa.Column("password_changed_at", UTCDateTime(), nullable=True))
        batch.create_check_constraint(op.f("ck_users_role"), _ROLES)
    with op.batch_alter_table("users_read") as batch:
        batch.add_column(
            sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("refresh_token_id", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("refreshed_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_reason", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_sessions_user_id", table_name="sessions")
    op.drop_table("sessions")
    with op.batch_alter_table("users_read") as batch:
        batch.drop_column("is_active")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("ck_users_role"), type_="check")
        batch.drop_column("password_changed_at")
        batch.drop_column("is_active")
        batch.alter_column(
            "role", existing_type=sa.String(16), existing_nullable=False, server_default="user"
        )
    _rename_role("users", ("creator", "viewer"), "user")
    _rename_role("users_read", ("creator", "viewer"), "user")
