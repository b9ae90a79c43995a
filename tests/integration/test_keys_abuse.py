"""Hostile input to the key machinery: floods of invalid keys, malformed credentials, poisoned management bodies.

The floods run the real ``KeyRing`` and ``Authenticator`` over ``SqlKeyStore`` on a temporary SQLite
database, with a wrapper counting how often the store is asked; the rest runs against a live gateway.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from polyroute.api.access import KeyRing
from polyroute.api.key_service import KeyService, KeySpec
from polyroute.core.keys import ApiKey, KeyType
from polyroute.errors import GatewayError
from polyroute.middleware.authentication import Authenticator
from polyroute.storage.audit import SqlAuditLog
from polyroute.storage.base import KeyPage
from polyroute.storage.keys import SqlKeyStore
from polyroute.storage.migrate import upgrade
from polyroute.storage.sql import create_engine
from tests.fakes import FakeUpstream
from tests.gateway_fixtures import ADMIN_KEY, RunningGateway
from tests.server_errors import server_errors_unlogged

FLOOD = 500
MISSING = "missing API key: send it as 'Authorization: Bearer <key>' (or x-api-key, x-goog-api-key)"
CHAT = {"model": "mock/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


class CountingStore:
    """A key store that counts digest lookups and passes everything to the real one."""

    def __init__(self, inner: SqlKeyStore) -> None:
        self.inner = inner
        self.lookups = 0

    async def by_digest(self, digest: str) -> ApiKey | None:
        self.lookups += 1
        return await self.inner.by_digest(digest)

    async def create(self, key: ApiKey) -> None:
        await self.inner.create(key)

    async def get(self, key_id: str) -> ApiKey | None:
        return await self.inner.get(key_id)

    async def list(self, **filters: Any) -> KeyPage:
        return await self.inner.list(**filters)

    async def update(self, key: ApiKey) -> None:
        await self.inner.update(key)

    async def count(self) -> int:
        return await self.inner.count()


class Flood:
    """An authenticator over a counted store, and a valid full key in it."""

    def __init__(self, store: CountingStore, ring: KeyRing, secret: str) -> None:
        self.store = store
        self.ring = ring
        self.authenticator = Authenticator(keys=ring)
        self.secret = secret

    async def check(self, secret: str) -> tuple[int, str] | None:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/chat/completions",
            "headers": [(b"authorization", f"Bearer {secret}".encode())],
            "query_string": b"",
            "client": ("203.0.113.7", 5555),
            "state": {},
        }
        error: GatewayError | None = await self.authenticator.check(scope)
        return None if error is None else (error.status_code, error.code or "")


def random_keys(count: int) -> list[str]:
    return [f"pr_full_{secrets.token_urlsafe(32)}" for _ in range(count)]


async def make_flood(tmp_path: Path, **ring_options: Any) -> AsyncIterator[Flood]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'flood.db'}"
    await upgrade(url)
    engine = create_engine(url)
    try:
        store = CountingStore(SqlKeyStore(engine))
        service = KeyService(store.inner, SqlAuditLog(engine))
        secret, _ = await service.create(KeySpec(type=KeyType.FULL), actor=None, ip=None, now=time.time())
        yield Flood(store, KeyRing(store, **ring_options), secret)
    finally:
        await engine.dispose()


@pytest.fixture
async def flood(tmp_path: Path) -> AsyncIterator[Flood]:
    async for made in make_flood(tmp_path):
        yield made


@pytest.fixture
async def small_flood(tmp_path: Path) -> AsyncIterator[Flood]:
    async for made in make_flood(tmp_path, max_entries=64):
        yield made


# Floods of invalid keys


async def test_sequential_flood_costs_one_lookup_per_distinct_invalid_key(flood: Flood) -> None:
    guesses = random_keys(20)
    verdicts = [await flood.check(guesses[i % 20]) for i in range(FLOOD)]
    assert verdicts == [(401, "invalid_api_key")] * FLOOD
    assert flood.store.lookups == 20
    assert await flood.check(flood.secret) is None  # the valid key still passes, at one more lookup
    assert flood.store.lookups == 21


async def test_concurrent_flood_costs_one_lookup_per_distinct_invalid_key(flood: Flood) -> None:
    guesses = random_keys(20)
    verdicts = await asyncio.gather(*(flood.check(guesses[i % 20]) for i in range(FLOOD)))
    assert verdicts == [(401, "invalid_api_key")] * FLOOD
    assert flood.store.lookups <= 20


async def test_distinct_random_keys_are_looked_up_once_each_then_remembered(flood: Flood) -> None:
    guesses = random_keys(FLOOD)
    first = [await flood.check(guess) for guess in guesses]
    assert set(first) == {(401, "invalid_api_key")}
    assert flood.store.lookups == FLOOD
    again = [await flood.check(guess) for guess in guesses]
    assert set(again) == {(401, "invalid_api_key")}
    assert flood.store.lookups == FLOOD  # every answer is still remembered


async def test_remembered_answers_are_bounded_least_recent_first(small_flood: Flood) -> None:
    guesses = random_keys(FLOOD)
    for guess in guesses:
        assert await small_flood.check(guess) == (401, "invalid_api_key")
    assert small_flood.store.lookups == FLOOD
    for guess in guesses[-64:]:
        await small_flood.check(guess)
    assert small_flood.store.lookups == FLOOD
    await small_flood.check(guesses[0])  # evicted long ago
    assert small_flood.store.lookups == FLOOD + 1


# Malformed credentials against a live gateway


def _post(gateway: RunningGateway, path: str, headers: Any, **options: Any) -> httpx.Response:
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        return http.post(path, json=CHAT, headers=headers, **options)


@pytest.mark.parametrize(
    "headers",
    [
        [("authorization", b"Bearer " + b"A" * 60_000)],
        [("authorization", b"Bearer " + b"pr_full_" + b"x" * 1_000_000)],
        [("x-api-key", b"pr_full_\xff\xfe\x80")],
        [("authorization", b"Bearer \xc3\x28\xa0\xa1" + ADMIN_KEY.encode())],
        [("x-api-key", ADMIN_KEY.encode() + "é".encode())],
        [("x-goog-api-key", ADMIN_KEY.upper().encode())],
    ],
    ids=["60k-header", "1m-header", "invalid-utf8", "utf8-garbage-prefix", "non-ascii-suffix", "wrong-case"],
)
def test_malformed_keys_are_401_invalid_without_echo(
    gateway: RunningGateway, fake_upstream: FakeUpstream, headers: list[tuple[str, bytes]]
) -> None:
    answer = _post(gateway, "/v1/chat/completions", headers)
    assert answer.status_code == 401
    assert answer.json() == {
        "error": {
            "message": "invalid API key",
            "type": "authentication_error",
            "code": "invalid_api_key",
            "param": None,
        }
    }
    assert len(answer.content) < 200
    assert fake_upstream.received == []


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"api-key": ADMIN_KEY}, None),
        ({"Authorization": ADMIN_KEY}, None),
        ({"Authorization": f"Token {ADMIN_KEY}"}, None),
        ({"Authorization": f"Basic {ADMIN_KEY}"}, None),
        ({"Proxy-Authorization": f"Bearer {ADMIN_KEY}"}, None),
        ({"Cookie": f"key={ADMIN_KEY}"}, None),
        ({}, {"key": ADMIN_KEY}),  # ?key= is Gemini's, and only on Gemini's paths
    ],
    ids=["api-key", "no-scheme", "token-scheme", "basic", "proxy-authorization", "cookie", "query-on-openai"],
)
def test_keys_in_the_wrong_place_are_401_missing_with_directions(
    gateway: RunningGateway, fake_upstream: FakeUpstream, headers: dict[str, str], params: dict[str, str] | None
) -> None:
    answer = _post(gateway, "/v1/chat/completions", headers, params=params)
    assert answer.status_code == 401
    assert answer.json()["error"] == {
        "message": MISSING,
        "type": "authentication_error",
        "code": "missing_api_key",
        "param": None,
    }
    assert ADMIN_KEY not in answer.text
    assert fake_upstream.received == []


def test_wrong_header_on_the_anthropic_path_answers_in_anthropic_shape(gateway: RunningGateway) -> None:
    answer = _post(gateway, "/v1/messages", {"api-key": ADMIN_KEY})
    assert answer.status_code == 401
    assert answer.json() == {"type": "error", "error": {"type": "authentication_error", "message": MISSING}}


# Poisoned management bodies


def _snapshot(raw: httpx.Client) -> tuple[int, int]:
    """How many keys exist and how many audit entries there are (both must not move on a refusal)."""
    keys = raw.get("/api/keys", params={"limit": 1}).json()["total"]
    audit = len(raw.get("/api/compliance/audit-log", params={"limit": 10_000}).json()["data"])
    return keys, audit


def names_field(reported: str, field: str) -> bool:
    """Whether an error's ``param`` is ``field`` (or a part of it: ``expires_at.float`` for a union's branch)."""
    return reported == field or reported.startswith(f"{field}.")


BAD_BODIES = [
    ({"limits": {"requests_per_minute": -1}}, "limits.requests_per_minute"),
    ({"limits": {"tokens_per_day": 10**12}}, "limits.tokens_per_day"),
    ({"limits": {"max_concurrent": 1.5}}, "limits.max_concurrent"),
    ({"limits": {"requests_per_hour": "30; DROP TABLE api_key"}}, "limits.requests_per_hour"),
    ({"budget": {"total_usd": -0.01}}, "budget.total_usd"),
    ({"budget": {"daily_usd": 1e300}}, "budget.daily_usd"),
    ({"budget": {"warn_fraction": 7}}, "budget.warn_fraction"),
    ({"metadata": {"blob": "x" * 20_000}}, "metadata"),
    ({"metadata": {f"k{i}": "'; --" * 10 for i in range(400)}}, "metadata"),
    ({"name": "n" * 201}, "name"),
    ({"name": ""}, "name"),
    ({"models": ["mock/*"] * 257}, "models"),
    ({"ips": ["10.0.0.0/8'; DROP TABLE api_key; --"]}, "ips"),
    ({"ips": ["999.1.1.1"]}, "ips"),
    ({"expires_at": -1}, "expires_at"),
    ({"expires_at": "next tuesday"}, "expires_at"),
    ({"type": "root"}, "type"),
    ({"id": "key_chosen_by_caller"}, "id"),
    ({"digest": "0" * 64}, "digest"),
    ({"status": "active"}, "status"),
]


@pytest.mark.parametrize(("body", "param"), BAD_BODIES, ids=[param for _, param in BAD_BODIES])
def test_bad_create_bodies_are_400_naming_the_field_and_store_nothing(
    raw: httpx.Client, body: dict[str, Any], param: str
) -> None:
    before = _snapshot(raw)
    answer = raw.post("/api/keys", json={"type": "full", "name": "ok", **body} if "name" not in body else body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert names_field(error["param"], param)
    assert error["message"].startswith(f"{error['param']}: ")
    assert _snapshot(raw) == before


@pytest.mark.parametrize(
    ("body", "param"), [item for item in BAD_BODIES if item[1] not in ("type", "id", "digest", "status")]
)
def test_bad_patch_bodies_change_nothing(raw: httpx.Client, body: dict[str, Any], param: str) -> None:
    created = raw.post("/api/keys", json={"type": "full", "name": "steady", "limits": {"requests_per_minute": 7}})
    key_id = created.json()["id"]
    before, audit = raw.get(f"/api/keys/{key_id}").json(), _snapshot(raw)
    answer = raw.patch(f"/api/keys/{key_id}", json=body)
    assert answer.status_code == 400
    assert names_field(answer.json()["error"]["param"], param)
    assert raw.get(f"/api/keys/{key_id}").json() == before
    assert _snapshot(raw) == audit


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"'; DROP TABLE api_key; --", "request body is not valid JSON"),
        (b'{"type": "full", "owner": "\\ud800"}', "request body is not valid JSON"),
        (b"[]", "request body must be a JSON object, not list"),
        (b"\xff\xfe{}", "request body is not valid UTF-8"),
        (b"", "request body is empty; expected a JSON object"),
    ],
    ids=["sql", "lone-surrogate", "array", "not-utf8", "empty"],
)
def test_unparseable_create_bodies_are_400(raw: httpx.Client, content: bytes, message: str) -> None:
    before = _snapshot(raw)
    answer = raw.post("/api/keys", content=content, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith(message)
    assert _snapshot(raw) == before


def test_sql_metacharacters_in_ids_and_filters_match_nothing(raw: httpx.Client) -> None:
    before = _snapshot(raw)
    for key_id in ("' OR '1'='1", "key_x'; DROP TABLE api_key; --", "%", "_"):
        quoted = httpx.URL("/api/keys/").join(key_id.replace("%", "%25")).raw_path.decode()
        missing = f"no API key with id {key_id!r}"
        for answer in (
            raw.get(quoted),
            raw.patch(quoted, json={"name": "pwned"}),
            raw.delete(quoted),
            raw.post(f"{quoted}/rotate"),
        ):
            assert (answer.status_code, answer.json()["error"]["message"]) == (404, missing)
    refused = raw.get("/api/keys", params={"type": "full' OR '1'='1"})
    assert (refused.status_code, refused.json()["error"]["param"]) == (400, "type")
    assert _snapshot(raw) == before


def test_metacharacters_inside_json_values_are_stored_verbatim(raw: httpx.Client) -> None:
    metadata = {"q": "1' OR '1'='1", "nul": "a\u0000b", "nested": {"%": ["_", "\\", '"']}, "emoji": "👩‍💻"}
    created = raw.post("/api/keys", json={"type": "full", "metadata": metadata, "models": ["mock/*'--"]})
    assert created.status_code == 201
    shown = raw.get(f"/api/keys/{created.json()['id']}").json()
    assert (shown["metadata"], shown["models"]) == (metadata, ["mock/*'--"])


@pytest.mark.parametrize("method", ["post", "patch"])
def test_text_that_cannot_be_stored_is_a_400(raw: httpx.Client, method: str) -> None:
    with server_errors_unlogged():
        key_id = raw.post("/api/keys", json={"type": "full", "name": "plain"}).json()["id"]
        before = _snapshot(raw)
        if method == "post":
            answer = raw.post("/api/keys", json={"type": "full", "name": "a\u0000b"})
        else:
            answer = raw.patch(f"/api/keys/{key_id}", json={"name": "a\u0000b"})
        assert (answer.status_code, answer.json()["error"]["param"]) == (400, "name")
        assert _snapshot(raw) == before
