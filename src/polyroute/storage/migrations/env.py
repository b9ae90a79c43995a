"""Alembic environment for polyroute; run through ``polyroute.storage.migrate``, which passes a connection."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from polyroute.storage.tables import metadata


def _run_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; autogenerate must write batch operations for it.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    _connection = context.config.attributes.get("connection")
    if not isinstance(_connection, Connection):
        raise RuntimeError("run migrations with polyroute.storage.migrate.upgrade(url) or `polyroute migrate`")
    _run_online(_connection)
