"""idempotency_records: store the replayed headers of an answer as one list

The stored answer of a keyed request now keeps every header that belongs to it (Content-Type,
Location, Cache-Control) instead of one column per header; records written before are
converted in both directions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_records = sa.table(
    "idempotency_records",
    sa.column("scope", sa.String),
    sa.column("key", sa.String),
    sa.column("response_content_type", sa.String),
    sa.column("response_location", sa.String),
    sa.column("response_headers", sa.Text),
)


def upgrade() -> None:
    with op.batch_alter_table("idempotency_records") as batch:
        batch.add_column(sa.Column("response_headers", sa.Text(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            _records.c.scope,
            _records.c.key,
            _records.c.response_content_type,
            _records.c.response_location,
        )
    ).all()
    for scope, key, content_type, location in rows:
        headers = [["content-type", content_type]] if content_type else []
        if location:
            headers.append(["location", location])
        connection.execute(
            sa.update(_records)
            .where(_records.c.scope == scope, _records.c.key == key)
            .values(response_headers=json.dumps(headers))
        )
    with op.batch_alter_table("idempotency_records") as batch:
        batch.drop_column("response_content_type")
        batch.drop_column("response_location")


def downgrade() -> None:
    with op.batch_alter_table("idempotency_records") as batch:
        batch.add_column(sa.Column("response_content_type", sa.String(255), nullable=True))
        batch.add_column(sa.Column("response_location", sa.String(2048), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_records.c.scope, _records.c.key, _records.c.response_headers)
    ).all()
    for scope, key, raw in rows:
        headers = dict(json.loads(raw or "[]"))
        connection.execute(
            sa.update(_records)
            .where(_records.c.scope == scope, _records.c.key == key)
            .values(
                response_content_type=headers.get("content-type"),
                response_location=headers.get("location"),
            )
        )
    with op.batch_alter_table("idempotency_records") as batch:
        batch.drop_column("response_headers")
