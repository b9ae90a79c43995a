"""Create stored_response; add client_format, upstream_format and dropped_fields to request_log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FORMAT_COLUMNS = ("client_format", "upstream_format", "dropped_fields")


def upgrade() -> None:
    op.create_table(
        "stored_response",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("input_items", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stored_response"),
    )
    op.create_index("ix_stored_response_created_at", "stored_response", ["created_at"])
    # Nullable columns without a default: a plain ALTER TABLE ADD COLUMN on both SQLite and Postgres,
    # which touches no existing row (no table rewrite, no batch copy).
    for name in _FORMAT_COLUMNS:
        op.add_column("request_log", sa.Column(name, sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite before 3.35 has no DROP COLUMN; batch mode copies the table there and is plain ALTERs on Postgres.
    with op.batch_alter_table("request_log") as batch:
        for name in reversed(_FORMAT_COLUMNS):
            batch.drop_column(name)
    op.drop_index("ix_stored_response_created_at", table_name="stored_response")
    op.drop_table("stored_response")
