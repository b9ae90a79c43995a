"""Shared pytest configuration; fixture modules are registered as plugins.

Under CI, hypothesis runs derandomized so a run is repeatable; local runs keep exploring new examples.
"""

from __future__ import annotations

import os

from hypothesis import settings

pytest_plugins = ["tests.storage_fixtures", "tests.redis_fixtures", "tests.gateway_fixtures"]

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI", "").strip().lower() not in ("", "0", "false"):
    settings.load_profile("ci")
