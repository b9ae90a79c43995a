"""Apply the Alembic migrations in ``migrations/`` to head, with the Alembic config built in code.

Safe on every start: at head it is a no-op, and concurrent callers (several workers starting at once)
are serialised by ``sql.migration_transaction`` on both SQLite and Postgres. All migrations run in one
transaction, so a failed upgrade leaves the schema as it was.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from polyroute.storage.sql import create_engine, migration_transaction

_SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"


async def upgrade(url: str) -> None:
    """Migrate the database at ``url`` (``sqlite+aiosqlite://`` or ``postgresql+asyncpg://``) to head."""
    engine = create_engine(url)
    try:
        async with migration_transaction(engine) as conn:
            await conn.run_sync(_upgrade_to_head)
    finally:
        await engine.dispose()


def upgrade_sync(url: str) -> None:
    """Run ``upgrade(url)`` in a new event loop, for the CLI; must not be called from a running loop."""
    asyncio.run(upgrade(url))


def alembic_config() -> Config:
    """Return the Alembic config for polyroute's migrations (no ``alembic.ini`` needed)."""
    config = Config()
    # ConfigParser interpolates "%"; escape it in case the install path contains one.
    config.set_main_option("script_location", str(_SCRIPT_LOCATION).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def _upgrade_to_head(connection: Connection) -> None:
    config = alembic_config()
    # migrations/env.py runs on this connection, inside the caller's transaction.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
