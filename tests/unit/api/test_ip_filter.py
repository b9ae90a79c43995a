"""IpFilter without a server: screening, remembered verdicts, loading and re-reading the stored rules."""

from __future__ import annotations

import asyncio
from typing import Any

from polyroute.api.ip_filter import SETTING, IpFilter
from polyroute.core.ip_rules import IpRules
from tests.unit.api.test_auth import DictSettingsStore


def scope(client: str | None) -> dict[str, Any]:
    return {"type": "http", "path": "/v1/models", "headers": [], "client": (client, 1) if client else None}


def test_screen_with_empty_rules_lets_everything_through() -> None:
    ip_filter = IpFilter(DictSettingsStore())
    assert ip_filter.screen(scope("203.0.113.1")) is None
    assert ip_filter.screen(scope(None)) is None


def test_screen_refusals_carry_the_verdict_code() -> None:
    ip_filter = IpFilter(DictSettingsStore())
    ip_filter.apply(IpRules.parse({"allow": ["10.0.0.0/8"], "block": ["10.6.0.0/16"]}))
    blocked = ip_filter.screen(scope("10.6.1.1"))
    assert blocked is not None and blocked.code == "ip_blocked" and blocked.status_code == 403
    outside = ip_filter.screen(scope("192.0.2.1"))
    assert outside is not None and outside.code == "ip_not_allowed"
    unknown = ip_filter.screen(scope(None))
    assert unknown is not None and unknown.code == "ip_not_allowed"
    assert ip_filter.screen(scope("10.7.1.1")) is None


def test_apply_forgets_verdicts_remembered_under_the_old_rules() -> None:
    ip_filter = IpFilter(DictSettingsStore())
    ip_filter.apply(IpRules.parse({"block": ["192.0.2.0/24"]}))
    assert ip_filter.screen(scope("192.0.2.1")) is not None
    ip_filter.apply(IpRules.parse({"block": ["198.51.100.0/24"]}))
    assert ip_filter.screen(scope("192.0.2.1")) is None
    assert ip_filter.screen(scope("198.51.100.1")) is not None


def test_screen_remembers_a_bounded_number_of_addresses() -> None:
    ip_filter = IpFilter(DictSettingsStore())
    ip_filter.apply(IpRules.parse({"block": ["10.0.0.0/8"]}))
    for n in range(5000):
        ip_filter.screen(scope(f"10.0.{n // 256}.{n % 256}"))
    assert len(ip_filter._verdicts) <= 4096
    assert ip_filter.screen(scope("10.0.0.1")) is not None


async def test_load_reads_the_store_and_ignores_invalid_stored_rules() -> None:
    store = DictSettingsStore()
    ip_filter = IpFilter(store)
    await store.put(SETTING, {"allow": [], "block": ["192.0.2.0/24"]})
    await ip_filter.load()
    assert ip_filter.rules.to_json() == {"allow": [], "block": ["192.0.2.0/24"]}
    await store.put(SETTING, {"block": ["not a network"]})
    await ip_filter.load()
    assert ip_filter.rules.to_json() == {"allow": [], "block": ["192.0.2.0/24"]}
    await store.delete(SETTING)
    await ip_filter.load()
    assert ip_filter.rules.is_empty


async def test_started_filter_picks_up_stored_changes_and_survives_store_failures() -> None:
    store = DictSettingsStore()
    ip_filter = IpFilter(store, interval_s=0.01)
    ip_filter.start()
    try:
        await store.put(SETTING, {"block": ["192.0.2.0/24"]})
        for _ in range(200):
            if ip_filter.screen(scope("192.0.2.1")) is not None:
                break
            await asyncio.sleep(0.01)
        assert ip_filter.screen(scope("192.0.2.1")) is not None

        async def broken(name: str) -> None:
            raise OSError("database is gone")

        store.get = broken  # type: ignore[method-assign]
        await asyncio.sleep(0.05)
        assert ip_filter.screen(scope("192.0.2.1")) is not None  # the rules in force stay
    finally:
        await ip_filter.aclose()
    await ip_filter.aclose()
