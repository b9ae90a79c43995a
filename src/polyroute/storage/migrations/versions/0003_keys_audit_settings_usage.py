"""Create api_key, audit_log and gateway_setting; add token, cost and estimate columns to request_log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_USAGE_COLUMNS = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "estimated")


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("display", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("models", sa.Text(), nullable=False),
        sa.Column("limits", sa.Text(), nullable=False),
        sa.Column("budget", sa.Text(), nullable=False),
        sa.Column("ips", sa.Text(), nullable=False),
        sa.Column("no_log", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("rotated_from", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_key"),
    )
    op.create_index("ix_api_key_digest", "api_key", ["digest"], unique=True)
    op.create_index("ix_api_key_created_at", "api_key", ["created_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("ip", sa.Text(), nullable=True),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "gateway_setting",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_gateway_setting"),
    )
    # Plain ALTER TABLE ADD COLUMN on both dialects: nullable columns touch no row, and the one NOT NULL
    # column has a constant default, which Postgres 11+ keeps in the catalogue instead of rewriting the table.
    op.add_column("request_log", sa.Column("cache_read_tokens", sa.BigInteger(), nullable=True))
    op.add_column("request_log", sa.Column("cache_write_tokens", sa.BigInteger(), nullable=True))
    op.add_column("request_log", sa.Column("reasoning_tokens", sa.BigInteger(), nullable=True))
    op.add_column("request_log", sa.Column("cost_usd", sa.Double(), nullable=True))
    op.add_column("request_log", sa.Column("estimated", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    # SQLite before 3.35 has no DROP COLUMN; batch mode copies the table there and is plain ALTERs on Postgres.
    with op.batch_alter_table("request_log") as batch:
        for name in reversed(_USAGE_COLUMNS):
            batch.drop_column(name)
    op.drop_table("gateway_setting")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_api_key_created_at", table_name="api_key")
    op.drop_index("ix_api_key_digest", table_name="api_key")
    op.drop_table("api_key")
