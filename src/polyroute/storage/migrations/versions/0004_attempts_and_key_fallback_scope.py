"""Record attempts and fallback per request; a fallback scope per key.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("request_log", sa.Column("attempts", sa.Integer(), nullable=True))
    op.add_column("request_log", sa.Column("fallback", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("api_key", sa.Column("fallback_scope", sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite before 3.35 has no DROP COLUMN; batch mode copies the table there and is plain ALTERs on Postgres.
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("fallback")
        batch.drop_column("attempts")
    with op.batch_alter_table("api_key") as batch:
        batch.drop_column("fallback_scope")
