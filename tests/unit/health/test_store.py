"""The pieces under the implementations: entry records, the local store's index, rate windows, the buses, the log."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyroute.health import EntryKind, LastError, SharedChangeBus
from polyroute.health.entries import Breaker, Broken, Cooldown, Entry, EntryKey, decode, encode, key_of, member_of
from polyroute.health.listener import ThrottledLog
from polyroute.health.store import HealthStore
from polyroute.health.window import RateWindows

T0 = 1_700_000_000.0
ERROR = LastError(status=503, message="overloaded \u2013 try later", at=T0 + 0.1)
ENTRIES: list[tuple[EntryKind, Entry]] = [
    (EntryKind.COOLDOWN, Cooldown(until=T0 + 2, strikes=2, expires_at=T0 + 62, last_error=ERROR)),
    (EntryKind.BROKEN, Broken(until=T0 + 600, expires_at=T0 + 600)),
    (EntryKind.BREAKER, Breaker(failures=5, opens=2, open_until=T0 + 60, probe_until=None, expires_at=T0 + 9e4)),
    (
        EntryKind.BREAKER,
        Breaker(failures=1, opens=0, open_until=None, probe_until=None, expires_at=T0, last_error=ERROR),
    ),
]


@pytest.mark.parametrize(("kind", "entry"), ENTRIES)
def test_entry_records_round_trip_byte_for_byte(kind: EntryKind, entry: Entry) -> None:
    raw = encode(entry)
    assert decode(kind, raw) == entry
    assert encode(decode(kind, raw)) == raw


def test_breaker_record_accepts_null_times_and_rejects_fractional_counts() -> None:
    entry = ENTRIES[3][1]
    assert decode(EntryKind.BREAKER, encode(entry)) == entry
    with pytest.raises(ValueError, match="failures"):
        decode(EntryKind.BREAKER, encode(entry).replace(b'"failures":1', b'"failures":1.5'))


def test_no_entry_encodes_empty() -> None:
    assert encode(None) == b""
    assert decode(EntryKind.COOLDOWN, b"") is None
    assert decode(EntryKind.COOLDOWN, None) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b"not json",
        b'{"until": 1}',
        b'{"until": "1", "expires_at": 2}',
        b'{"until": true, "expires_at": 2}',
        b'{"until": 1, "expires_at": 2, "extra": 3}',
        b'{"until": 1, "expires_at": 2, "last_error": {"status": "x", "message": "", "at": 1}}',
        b'{"until": 1, "expires_at": 2, "last_error": "boom"}',
    ],
)
def test_malformed_records_raise_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode(EntryKind.BROKEN, raw)


@given(subject=st.text(), credential=st.text(), kind=st.sampled_from(list(EntryKind)))
def test_keys_round_trip_whatever_the_labels_contain(kind: EntryKind, subject: str, credential: str) -> None:
    key = EntryKey(kind, subject, credential)
    assert key_of(member_of(key)) == key
    assert key_of(member_of(key).encode()) == key


@pytest.mark.parametrize("member", ['["cooldown", "a"]', '["nope", "a", "b"]', "{}", '["breaker", 1, ""]'])
def test_malformed_keys_raise_value_error(member: str) -> None:
    with pytest.raises(ValueError):
        key_of(member)


def test_store_index_follows_puts_and_deletes() -> None:
    store = HealthStore()
    cooldown_key = EntryKey(EntryKind.COOLDOWN, "p/m", "k1")
    broken_key = EntryKey(EntryKind.BROKEN, "q", "k1")
    store.put(cooldown_key, ENTRIES[0][1])
    store.put(cooldown_key, ENTRIES[0][1])
    assert store.has_label("p/m")
    assert store.wait_s("p/m", "k1", lambda: T0) == 2.0
    store.put(broken_key, ENTRIES[1][1])
    assert store.wait_s("q/x", "k1", lambda: T0) == 600.0
    store.put(cooldown_key, None)
    store.put(cooldown_key, None)
    assert not store.has_label("p/m")
    store.replace_all([])
    assert store.wait_s("q/x", "k1", lambda: T0) == 0.0
    assert store.keys(T0) == []


def test_store_wait_s_reads_no_clock_for_unknown_deployments() -> None:
    def clock() -> float:
        raise AssertionError("the clock was read")

    assert HealthStore().wait_s("p/m", "k1", clock) == 0.0


def test_store_drops_expired_entries_on_read() -> None:
    store = HealthStore()
    key = EntryKey(EntryKind.BROKEN, "q", "k1")
    store.put(key, ENTRIES[1][1])
    assert store.get(key, T0 + 599) is not None
    assert store.get(key, T0 + 600) is None
    assert store.keys(T0) == []


def test_rate_window_counts_the_last_window_s_in_whole_seconds() -> None:
    windows = RateWindows()
    assert windows.record("p/m", T0, window_s=10, failed=True) == (1, 1)
    assert windows.record("p/m", T0 + 0.5, window_s=10, failed=False) == (2, 1)
    assert windows.record("p/m", T0 + 9.9, window_s=10, failed=False) == (3, 1)
    assert windows.record("p/m", T0 + 10, window_s=10, failed=True) == (2, 1)
    assert windows.record("p/n", T0 + 10, window_s=10, failed=True) == (1, 1)
    windows.forget("p/m")
    assert windows.record("p/m", T0 + 10, window_s=10, failed=False) == (1, 0)
    windows.clear()
    assert windows.record("p/n", T0 + 10, window_s=10, failed=False) == (1, 0)


async def test_shared_bus_sends_delivers_locally_and_redelivers_what_it_saw() -> None:
    sent: list[str] = []
    seen: list[str] = []

    async def send(topic: str) -> None:
        sent.append(topic)

    bus = SharedChangeBus(send)
    bus.subscribe(seen.append)
    await bus.publish("combos")
    await bus.receive("pricing")
    assert (sent, seen) == (["combos"], ["combos", "pricing"])
    await bus.redeliver_seen()
    assert seen == ["combos", "pricing", "combos", "pricing"]


def test_throttled_log_holds_back_repeats_and_counts_them(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    now = [0.0]
    log = ThrottledLog(every_s=10, clock=lambda: now[0])
    for _ in range(3):
        log.warning("redis gone (%s)", "a")
    log.warning("other (%s)", "b")
    assert [record.getMessage() for record in caplog.records] == ["redis gone (a)", "other (b)"]
    now[0] = 10.0
    log.warning("redis gone (%s)", "c")
    log.warning("redis gone (%s)", "d")
    assert [record.getMessage() for record in caplog.records][2:] == ["redis gone (c) (2 more like it held back)"]
