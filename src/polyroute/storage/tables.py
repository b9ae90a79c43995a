"""SQLAlchemy Core table definitions; ``migrations/versions`` must create exactly these.

Times (``created_at``, ``at``, ...) are a float of Unix seconds (``DOUBLE PRECISION`` on Postgres,
``REAL`` on SQLite), not a ``DateTime``: stored and compared the same way on both dialects, they
round-trip ``time.time()`` exactly and avoid SQLite's timezone-less text timestamps. Structured values
are JSON in ``Text`` columns, not JSON/JSONB: they are never queried inside, and read back as written.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Double, Index, Integer, MetaData, Table, Text, false

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias); Postgres gets BIGSERIAL.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

request_log = Table(
    "request_log",
    metadata,
    # A surrogate key, because request ids come from clients and may repeat; a duplicate must not
    # make a whole batch fail.
    Column("seq", _ROW_ID, primary_key=True, autoincrement=True),
    Column("id", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("key_id", Text, nullable=True),
    Column("endpoint", Text, nullable=False),
    Column("requested_model", Text, nullable=True),
    Column("provider", Text, nullable=True),
    Column("upstream_model", Text, nullable=True),
    Column("status", Integer, nullable=False),
    Column("latency_ms", Double, nullable=False),
    Column("ttft_ms", Double, nullable=True),
    Column("prompt_tokens", BigInteger, nullable=True),
    Column("completion_tokens", BigInteger, nullable=True),
    Column("is_stream", Boolean, nullable=False),
    Column("error_code", Text, nullable=True),
    Column("client_format", Text, nullable=True),
    Column("upstream_format", Text, nullable=True),
    Column("dropped_fields", Text, nullable=True),
    Column("cache_read_tokens", BigInteger, nullable=True),
    Column("cache_write_tokens", BigInteger, nullable=True),
    Column("reasoning_tokens", BigInteger, nullable=True),
    Column("cost_usd", Double, nullable=True),
    # A constant server default, so adding the column to a full table rewrites nothing (Postgres 11+, SQLite).
    Column("estimated", Boolean, nullable=False, server_default=false()),
    Column("attempts", Integer, nullable=True),
    Column("fallback", Boolean, nullable=False, server_default=false()),
    Index(None, "created_at"),
    # (key_id, created_at) serves both "rows of key K" and "rows of key K in a time range".
    Index(None, "key_id", "created_at"),
)

stored_response = Table(
    "stored_response",
    metadata,
    # Ids are minted by the gateway ("resp_..."), so they are unique and serve as the key.
    Column("id", Text, primary_key=True),
    Column("created_at", Double, nullable=False),
    Column("key_id", Text, nullable=True),
    Column("model", Text, nullable=False),
    # JSON as text: stored and returned verbatim, never queried inside, so no JSON/JSONB type.
    Column("input_items", Text, nullable=False),
    Column("response", Text, nullable=False),
    # Lookups go by id (the primary key); created_at serves the retention purge.
    Index(None, "created_at"),
)

api_key = Table(
    "api_key",
    metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("digest", Text, nullable=False),
    Column("display", Text, nullable=False),
    Column("name", Text, nullable=True),
    Column("owner", Text, nullable=True),
    Column("metadata", Text, nullable=False),
    Column("models", Text, nullable=False),
    Column("limits", Text, nullable=False),
    Column("budget", Text, nullable=False),
    Column("ips", Text, nullable=False),
    Column("no_log", Boolean, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=True),
    Column("revoked_at", Double, nullable=True),
    Column("rotated_from", Text, nullable=True),
    Column("fallback_scope", Text, nullable=True),
    # Every authenticated request looks its key up by digest; unique, so a secret names one key.
    Index(None, "digest", unique=True),
    # Listing is newest first.
    Index(None, "created_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),
    Column("actor", Text, nullable=True),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=True),
    Column("ip", Text, nullable=True),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
    Index(None, "at"),
)

gateway_setting = Table(
    "gateway_setting",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Double, nullable=False),
)
