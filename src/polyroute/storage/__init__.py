"""Persistence: the request log (``base`` protocols, ``sql`` for SQLite/Postgres, ``batch`` buffering, ``migrate``)."""
