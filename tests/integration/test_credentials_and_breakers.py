"""Several keys per provider, circuit breakers, the resilience API, and fallback scopes.

The fakes record each request's ``Authorization`` header, which says which key the gateway used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from polyroute.health import ResilienceProfile
from polyroute.upstream.client import credential_id
from tests.fakes import FakeUpstream, Reply, completion, error_body
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY, RunningGateway, start_gateway

K1 = "sk-first-upstream-key-1111111111"
K2 = "sk-second-upstream-key-222222222"
HI: Any = [{"role": "user", "content": "hi"}]
DEFAULT_PROFILE = ResilienceProfile().to_json()


@dataclass
class World:
    gateway: RunningGateway
    keys: FakeUpstream
    """Behind ``fill`` and ``robin`` (two keys each)."""
    first: FakeUpstream
    """Behind ``brk-a`` and ``sa``."""
    second: FakeUpstream
    """Behind ``brk-b`` and ``sb``."""
    sdk: openai.OpenAI
    admin: httpx.Client


def provider(name: str, fake: FakeUpstream, models: list[Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "format": "openai", "base_url": fake.base_url, "models": models, **extra}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    keys, first, second = FakeUpstream().start(), FakeUpstream().start(), FakeUpstream().start()
    wide = {"id": "wide", "capabilities": ["tools"], "context_length": 128_000}
    # An image model that would outrank "wide" if the any scope ignored the model type.
    painter = {"id": "painter", "type": "image", "capabilities": ["tools", "vision"], "context_length": 128_000}
    routing = {
        "providers": [
            provider("fill", keys, ["m1"], api_keys=[K1, K2]),
            provider("robin", keys, ["m2"], api_keys=[K1, K2], credential_strategy="round-robin"),
            provider("brk-a", first, ["shared"], api_key=UPSTREAM_KEY),
            provider("brk-b", second, ["shared"], api_key=UPSTREAM_KEY),
            provider("sa", first, ["solo"], api_key=UPSTREAM_KEY),
            provider("sb", second, [painter, wide], api_key=UPSTREAM_KEY),
        ],
        "aliases": {
            "anyone": {"model": "sa/solo", "fallback_scope": "any"},
            "careful": {"model": "brk-a/shared", "fallback_scope": "configured"},
            "once": {"model": "brk-a/shared", "max_attempts": 1},
        },
    }
    gateway = start_gateway(routing, tmp_path_factory.mktemp("credentials"))
    sdk = openai.OpenAI(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=15)
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15)
    yield World(gateway, keys, first, second, sdk, admin)
    sdk.close()
    admin.close()
    gateway.stop()
    for fake in (keys, first, second):
        fake.stop()


@pytest.fixture
def w(world: World) -> Iterator[World]:
    for fake in (world.keys, world.first, world.second):
        fake.reset()
    world.admin.post("/api/resilience/reset").raise_for_status()
    yield world
    world.admin.put("/api/resilience", json=DEFAULT_PROFILE).raise_for_status()
    world.admin.post("/api/resilience/reset").raise_for_status()


def ask(w: World, model: str, **headers: str) -> Mapping[str, str]:
    """One request; the answer's headers (the SDK raises on an error status)."""
    raw = w.sdk.chat.completions.with_raw_response.create(model=model, messages=HI, extra_headers=headers or None)
    raw.parse()
    return raw.headers


def keys_used(fake: FakeUpstream) -> list[str]:
    return [r.headers["Authorization"].removeprefix("Bearer ") for r in fake.received]


def availability(w: World) -> list[dict[str, Any]]:
    listing = w.admin.get("/api/models/availability")
    assert listing.status_code == 200
    assert K1 not in listing.text and K2 not in listing.text and UPSTREAM_KEY not in listing.text
    data: list[dict[str, Any]] = listing.json()["data"]
    return data


def failing(status: int, message: str, type_: str, **headers: str) -> Reply:
    return Reply(status=status, json_body=error_body(message, type_=type_), headers=dict(headers))


# --- credentials ----------------------------------------------------------------------------------


def test_fill_first_uses_the_first_key(w: World) -> None:
    for _ in range(3):
        assert ask(w, "fill/m1")["x-polyroute-attempts"] == "1"
    assert keys_used(w.keys) == [K1, K1, K1]


def test_rate_limited_key_gives_way_to_the_next(w: World) -> None:
    w.keys.push(failing(429, "slow down", "rate_limit_error", **{"Retry-After": "30"}))

    retried = ask(w, "fill/m1")
    following = ask(w, "fill/m1")

    assert (retried["x-polyroute-provider"], retried["x-polyroute-model"]) == ("fill", "m1")
    assert (retried["x-polyroute-attempts"], retried["x-polyroute-fallback"]) == ("2", "false")
    assert (following["x-polyroute-attempts"], following["x-polyroute-fallback"]) == ("1", "false")
    assert keys_used(w.keys) == [K1, K2, K2]
    cooling = [e for e in availability(w) if e["kind"] == "cooldown"]
    assert [(e["deployment"], e["credential"], e["state"]) for e in cooling] == [
        ("fill/m1", credential_id(K1), "cooling")
    ]


def test_round_robin_alternates_keys(w: World) -> None:
    for _ in range(4):
        ask(w, "robin/m2")
    used = keys_used(w.keys)
    assert sorted(used) == [K1, K1, K2, K2]
    assert all(one != two for one, two in zip(used, used[1:], strict=False)), used


def test_session_keeps_its_key_under_round_robin(w: World) -> None:
    for _ in range(3):
        ask(w, "robin/m2", **{"X-Session-Id": "abc"})
        ask(w, "robin/m2")
    used = keys_used(w.keys)
    with_session, without = used[0::2], used[1::2]
    assert len(set(with_session)) == 1, used
    assert set(without) == {K1, K2}  # requests without a session still rotate


def test_refused_key_is_broken_until_cleared(w: World) -> None:
    w.keys.push(failing(401, "invalid api key", "authentication_error"))

    retried = ask(w, "fill/m1")
    assert (retried["x-polyroute-attempts"], retried["x-polyroute-fallback"]) == ("2", "false")
    broken = [e for e in availability(w) if e["kind"] == "broken"]
    assert [(e["provider"], e["credential"], e["state"]) for e in broken] == [("fill", credential_id(K1), "broken")]
    assert broken[0]["last_error"]["status"] == 401
    assert ask(w, "fill/m1")["x-polyroute-attempts"] == "1"  # the broken key is skipped without a call
    assert keys_used(w.keys) == [K1, K2, K2]

    cleared = w.admin.post("/api/models/availability", json={"model": "fill/m1"})
    assert cleared.status_code == 200 and cleared.json()["cleared"] >= 1
    assert [e for e in availability(w) if e["kind"] == "broken"] == []
    ask(w, "fill/m1")
    assert keys_used(w.keys)[-1] == K1


def test_clearing_one_credential_leaves_the_other_broken(w: World) -> None:
    refused = failing(401, "invalid api key", "authentication_error")
    w.keys.push(refused, refused)

    with pytest.raises(openai.APIStatusError) as caught:
        ask(w, "fill/m1")
    assert caught.value.status_code == 503  # both keys refused
    assert sorted(e["credential"] for e in availability(w)) == sorted([credential_id(K1), credential_id(K2)])
    health = {p["provider"]: p for p in w.admin.get("/api/monitoring/health").json()["providers"]}
    assert health["fill"]["status"] == "down"
    assert sorted(health["fill"]["broken_credentials"]) == sorted([credential_id(K1), credential_id(K2)])

    cleared = w.admin.post("/api/models/availability", json={"model": "fill/m1", "credential": credential_id(K2)})
    assert cleared.json()["cleared"] == 1
    assert [e["credential"] for e in availability(w)] == [credential_id(K1)]
    assert ask(w, "fill/m1")["x-polyroute-attempts"] == "1"
    assert keys_used(w.keys) == [K1, K2, K2]


def test_pinned_provider_still_rotates_its_keys(w: World) -> None:
    w.keys.push(failing(429, "slow down", "rate_limit_error", **{"Retry-After": "30"}))
    with httpx.Client(base_url=w.gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15) as http:
        answer = http.post("/v1/providers/fill/chat/completions", json={"model": "m1", "messages": HI})
    assert answer.status_code == 200
    assert (answer.headers["x-polyroute-attempts"], answer.headers["x-polyroute-fallback"]) == ("2", "false")
    assert keys_used(w.keys) == [K1, K2]


# --- circuit breakers and the resilience API ------------------------------------------------------


def test_consecutive_failures_open_the_breaker(w: World) -> None:
    changed = w.admin.put("/api/resilience", json={"failure_threshold": 2, "open_s": 60})
    assert changed.status_code == 200, changed.text
    profile = w.admin.get("/api/resilience").json()["profile"]
    assert (profile["failure_threshold"], profile["open_s"]) == (2, 60.0)
    assert profile["cooldown_base_s"] == DEFAULT_PROFILE["cooldown_base_s"]  # fields left out keep their value

    w.first.push(failing(500, "boom one", "server_error"), failing(500, "boom two", "server_error"))
    for _ in range(2):
        answer = ask(w, "brk-a/shared")
        assert (answer["x-polyroute-provider"], answer["x-polyroute-attempts"]) == ("brk-b", "2")

    before = time.time()
    breakers = [e for e in availability(w) if e["kind"] == "breaker"]
    assert [(e["deployment"], e["state"]) for e in breakers] == [("brk-a/shared", "open")]
    assert before + 50 < breakers[0]["until"] <= before + 61
    assert breakers[0]["last_error"]["status"] == 500
    assert "boom two" in breakers[0]["last_error"]["message"]

    skipped = ask(w, "brk-a/shared")
    assert (skipped["x-polyroute-provider"], skipped["x-polyroute-attempts"]) == ("brk-b", "1")
    assert len(w.first.received) == 2  # no network call while open

    health = w.admin.get("/api/monitoring/health").json()
    by_name = {p["provider"]: p for p in health["providers"]}
    assert by_name["brk-a"]["status"] in ("degraded", "down")
    assert by_name["brk-a"]["open"] == ["brk-a/shared"]
    assert by_name["brk-b"]["status"] == "ok"
    assert health["status"] == "degraded"

    assert w.admin.post("/api/resilience/reset").status_code == 200
    assert [e for e in availability(w) if e["kind"] == "breaker"] == []
    closed = ask(w, "brk-a/shared")
    assert (closed["x-polyroute-provider"], closed["x-polyroute-attempts"]) == ("brk-a", "1")
    assert len(w.first.received) == 3
    health = w.admin.get("/api/monitoring/health").json()
    assert {p["provider"]: p["status"] for p in health["providers"]}["brk-a"] == "ok"


def test_reset_of_one_deployment(w: World) -> None:
    w.admin.put("/api/resilience", json={"failure_threshold": 1}).raise_for_status()
    w.first.push(failing(500, "boom", "server_error"))
    ask(w, "brk-a/shared")
    assert [e["deployment"] for e in availability(w) if e["state"] == "open"] == ["brk-a/shared"]
    other = w.admin.post("/api/resilience/reset", json={"deployment": "brk-b/shared"})
    assert other.json()["reset"] == 0
    assert [e["deployment"] for e in availability(w) if e["state"] == "open"] == ["brk-a/shared"]
    one = w.admin.post("/api/resilience/reset", json={"deployment": "brk-a/shared"})
    assert one.json()["reset"] == 1
    assert availability(w) == []


def test_half_open_breaker_lets_one_probe_through(w: World) -> None:
    w.admin.put("/api/resilience", json={"failure_threshold": 1, "open_s": 0.5}).raise_for_status()

    def state() -> list[tuple[str, float | None]]:
        return [(e["state"], e["until"]) for e in availability(w) if e["deployment"] == "brk-a/shared"]

    w.first.push(failing(500, "boom", "server_error"))
    assert ask(w, "brk-a/shared")["x-polyroute-provider"] == "brk-b"
    assert [s for s, _ in state()] == ["open"]
    time.sleep(0.55)
    assert state() == [("half_open", None)]

    w.first.push(failing(500, "still down", "server_error"))  # the probe fails: open again, for twice as long
    assert ask(w, "brk-a/shared")["x-polyroute-attempts"] == "2"
    [(reopened, until)] = state()
    assert reopened == "open" and until is not None and 0.7 < until - time.time() <= 1.0
    time.sleep(until - time.time() + 0.05)

    w.first.push(Reply(json_body=completion("probe"), delay_s=0.5))
    probe: dict[str, Mapping[str, str]] = {}
    prober = threading.Thread(target=lambda: probe.update(headers=ask(w, "brk-a/shared")))
    prober.start()
    deadline = time.monotonic() + 5
    while len(w.first.received) < 3:
        assert time.monotonic() < deadline, "the probe never reached the upstream"
        time.sleep(0.01)
    during = ask(w, "brk-a/shared")  # the probe is claimed: this one goes elsewhere without a call
    prober.join(10)
    assert (during["x-polyroute-provider"], during["x-polyroute-attempts"]) == ("brk-b", "1")
    assert (probe["headers"]["x-polyroute-provider"], probe["headers"]["x-polyroute-attempts"]) == ("brk-a", "1")
    assert len(w.first.received) == 3
    assert state() == []  # the successful probe closed the breaker


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"failure_threshold": -1}, "failure_threshold"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": "3"}, "failure_threshold"),
        ({"open_s": -5}, "open_s"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"breaker_mood": "grumpy"}, "breaker_mood"),
    ],
    ids=["negative", "zero", "string", "negative-seconds", "rate-above-one", "unknown-field"],
)
def test_invalid_profile_is_refused(w: World, body: dict[str, Any], named: str) -> None:
    refused = w.admin.put("/api/resilience", json=body)
    assert refused.status_code == 400
    assert named in refused.json()["error"]["message"]
    assert w.admin.get("/api/resilience").json()["profile"] == DEFAULT_PROFILE


def test_resilience_routes_need_an_admin_key(w: World) -> None:
    created = w.admin.post("/api/keys", json={"type": "full", "name": "not-admin"})
    plain = {"Authorization": f"Bearer {created.json()['key']}"}
    with httpx.Client(base_url=w.gateway.url, headers=plain, timeout=15) as http:
        assert http.put("/api/resilience", json={"failure_threshold": 1}).status_code == 403
        assert http.post("/api/resilience/reset").status_code == 403
        assert http.get("/api/models/availability").status_code == 403
    assert w.admin.get("/api/resilience").json()["profile"] == DEFAULT_PROFILE


# --- fallback scopes ------------------------------------------------------------------------------


def test_any_scope_falls_back_to_another_text_model(w: World) -> None:
    w.first.push(failing(500, "solo down", "server_error"), failing(500, "solo down", "server_error"))

    answer = ask(w, "anyone")

    assert (answer["x-polyroute-provider"], answer["x-polyroute-model"]) == ("sb", "wide")
    assert (answer["x-polyroute-attempts"], answer["x-polyroute-fallback"]) == ("2", "true")
    assert [r.json()["model"] for r in w.second.received] == ["wide"]
    # Without the any scope, nothing else serves "solo".
    with pytest.raises(openai.APIStatusError) as caught:
        ask(w, "sa/solo")
    assert caught.value.status_code == 502
    assert len(w.second.received) == 1


def test_configured_scope_of_an_alias_stays_on_its_model(w: World) -> None:
    w.first.push(failing(500, "a down", "server_error"), failing(500, "a down", "server_error"))

    with pytest.raises(openai.APIStatusError) as caught:
        ask(w, "careful")
    assert caught.value.status_code == 502
    assert w.second.received == []
    widened = ask(w, "brk-a/shared")  # the same deployment by its own name: the default scope
    assert (widened["x-polyroute-provider"], widened["x-polyroute-attempts"]) == ("brk-b", "2")


def test_alias_max_attempts_is_honoured(w: World) -> None:
    w.first.push(failing(500, "a down", "server_error"))
    with pytest.raises(openai.APIStatusError) as caught:
        ask(w, "once")
    assert caught.value.status_code == 502
    assert w.second.received == []


def test_key_fallback_scope_wins(w: World) -> None:
    created = w.admin.post("/api/keys", json={"type": "full", "name": "narrow", "fallback_scope": "configured"})
    assert created.status_code == 201, created.text
    assert created.json()["fallback_scope"] == "configured"
    narrow = {"Authorization": f"Bearer {created.json()['key']}"}
    w.first.push(*(failing(500, "down", "server_error") for _ in range(2)))
    with httpx.Client(base_url=w.gateway.url, headers=narrow, timeout=15) as http:
        plain = http.post("/v1/chat/completions", json={"model": "brk-a/shared", "messages": HI})
        aliased = http.post("/v1/chat/completions", json={"model": "anyone", "messages": HI})  # alias says any
    assert (plain.status_code, aliased.status_code) == (502, 502)
    assert w.second.received == []
    assert len(w.first.received) == 2


def test_global_configured_scope(tmp_path: Path) -> None:
    first, second = FakeUpstream().start(), FakeUpstream().start()
    routing = {
        "providers": [
            provider("x", first, ["shared"], api_key=UPSTREAM_KEY),
            provider("y", second, ["shared"], api_key=UPSTREAM_KEY),
        ],
        "aliases": {"wider": {"model": "x/shared", "fallback_scope": "same_model"}},
        "routing": {"fallback_scope": "configured"},
    }
    gateway = start_gateway(routing, tmp_path)
    try:
        with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15) as http:
            assert http.get("/api/resilience").json()["fallback"]["scope"] == "configured"
            first.push(failing(500, "x down", "server_error"), failing(500, "x down", "server_error"))
            narrow = http.post("/v1/chat/completions", json={"model": "x/shared", "messages": HI})
            assert narrow.status_code == 502
            assert second.received == []
            wide = http.post("/v1/chat/completions", json={"model": "wider", "messages": HI})
            assert wide.status_code == 200
            assert (wide.headers["x-polyroute-provider"], wide.headers["x-polyroute-attempts"]) == ("y", "2")
    finally:
        gateway.stop()
        first.stop()
        second.stop()
