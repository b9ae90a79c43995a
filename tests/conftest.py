"""Shared pytest configuration; fixture modules are registered as plugins."""

from __future__ import annotations

pytest_plugins = ["tests.storage_fixtures", "tests.gateway_fixtures"]
