"""Combos: every strategy from the routing file, nesting, attempt limits, hedging, and the combos API.

Three upstreams ``a``, ``b``, ``c``; each combo test uses its own model ids where live signals
(requests in flight, latency) are involved, so that other tests' traffic cannot tilt the choice.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from polyroute.errors import ConfigError
from polyroute.routing.config import parse_routing_config
from tests.fakes import FakeUpstream, Reply, completion, error_body, text_stream
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY, RunningGateway, start_gateway

MODELS = {
    "a": ["alpha", "slow-a", "busy-a", "pricey"],
    "b": ["beta", "fast-b", "busy-b", "bargain"],
    "c": ["gamma"],
    "duo": ["twin"],
}
KEYS = {"duo": ["sk-duo-first-key", "sk-duo-second-key"]}
"""Providers with several keys (the others have one)."""
COMBOS: dict[str, Any] = {
    "pri": {"strategy": "priority", "models": ["a/alpha", "b/beta"]},
    "rr": {"strategy": "round-robin", "models": ["a/alpha", "b/beta"]},
    "heavy": {"strategy": "weighted", "models": ["a/alpha", "b/beta"], "weights": {"a/alpha": 50, "b/beta": 1}},
    "dice": {"strategy": "random", "models": ["a/alpha", "b/beta"]},
    "idle": {"strategy": "least-busy", "models": ["a/busy-a", "b/busy-b"]},
    "quick": {"strategy": "least-latency", "models": ["a/slow-a", "b/fast-b"]},
    "thrifty": {"strategy": "cheapest", "models": ["a/pricey", "b/bargain"]},
    "race": {"strategy": "hedged", "models": ["a/alpha", "b/beta"], "hedge_delay_ms": 100},
    "race-keys": {"strategy": "hedged", "models": ["duo/twin", "b/beta"], "hedge_delay_ms": 100},
    "inner": {"models": ["a/alpha", "b/beta"]},
    "outer": {"models": ["inner", "c/gamma"]},
    "two": {"models": ["a/alpha", "b/beta", "c/gamma"], "max_attempts": 2},
}
HI: Any = [{"role": "user", "content": "hi"}]


@dataclass
class World:
    gateway: RunningGateway
    fakes: dict[str, FakeUpstream]
    sdk: openai.OpenAI
    admin: httpx.Client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    fakes = {name: FakeUpstream().start() for name in MODELS}
    routing = {
        "providers": [
            {
                "name": name,
                "format": "openai",
                "base_url": fakes[name].base_url,
                "api_keys": KEYS.get(name, [UPSTREAM_KEY]),
                "models": ids,
            }
            for name, ids in MODELS.items()
        ],
        "combos": COMBOS,
        "prices": {"a/pricey": {"input": 10, "output": 30}, "b/bargain": {"input": 0.1, "output": 0.2}},
    }
    gateway = start_gateway(routing, tmp_path_factory.mktemp("combos"))
    sdk = openai.OpenAI(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=15)
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15)
    yield World(gateway, fakes, sdk, admin)
    sdk.close()
    admin.close()
    gateway.stop()
    for fake in fakes.values():
        fake.stop()


@pytest.fixture
def w(world: World) -> Iterator[World]:
    for fake in world.fakes.values():
        fake.reset()
    world.admin.post("/api/resilience/reset").raise_for_status()
    yield world
    world.admin.post("/api/resilience/reset").raise_for_status()


def ask(w: World, model: str, **headers: str) -> Mapping[str, str]:
    """One non-streamed request by name; the answer's headers (the SDK raises on an error status)."""
    raw = w.sdk.chat.completions.with_raw_response.create(model=model, messages=HI, extra_headers=headers or None)
    raw.parse()
    return raw.headers


def provider_of(w: World, model: str) -> str:
    return ask(w, model)["x-polyroute-provider"]


def down(message: str = "down") -> Reply:
    return Reply(status=500, json_body=error_body(message, type_="server_error"))


# --- strategies from the routing file -------------------------------------------------------------


def test_priority_tries_members_in_order(w: World) -> None:
    assert provider_of(w, "pri") == "a"
    w.fakes["a"].push(down())
    headers = ask(w, "pri")
    assert (headers["x-polyroute-provider"], headers["x-polyroute-model"]) == ("b", "beta")
    assert (headers["x-polyroute-attempts"], headers["x-polyroute-fallback"]) == ("2", "true")
    assert (len(w.fakes["a"].received), len(w.fakes["b"].received)) == (2, 1)


def test_round_robin_alternates(w: World) -> None:
    answered = [provider_of(w, "rr") for _ in range(6)]
    assert set(answered) == {"a", "b"}
    assert all(first != second for first, second in zip(answered, answered[1:], strict=False)), answered


def test_weighted_prefers_the_heavy_member(w: World) -> None:
    counts = Counter(provider_of(w, "heavy") for _ in range(40))
    # b goes first with probability 1/51 per request; 10 of 40 would be a one-in-10^9 event.
    assert counts["a"] >= 30, counts


def test_random_uses_every_member(w: World) -> None:
    counts = Counter(provider_of(w, "dice") for _ in range(30))
    assert set(counts) == {"a", "b"}, counts


def test_least_busy_avoids_the_member_with_a_request_in_flight(w: World) -> None:
    w.fakes["a"].push(Reply(events=text_stream([f" {i}" for i in range(40)]), event_delay_s=0.1))
    held = w.sdk.chat.completions.with_raw_response.create(model="idle", messages=HI, stream=True)
    stream = held.parse()
    try:
        assert held.headers["x-polyroute-provider"] == "a"
        next(iter(stream))  # the slow answer has begun: a has one request in flight
        assert provider_of(w, "idle") == "b"
    finally:
        stream.close()
    assert w.fakes["a"].closed_early.wait(5)  # the gateway let go of the slow upstream when the client left
    deadline = time.monotonic() + 5
    while provider_of(w, "idle") != "a":  # once nothing is in flight, the configured order stands again
        assert time.monotonic() < deadline, "a stayed busy after its request ended"


def test_least_latency_prefers_the_faster_member(w: World) -> None:
    assert provider_of(w, "quick") == "a"  # no latency known yet: the configured order
    for _ in range(3):
        w.fakes["a"].push(Reply(json_body=completion(model="slow-a"), delay_s=0.3))
        ask(w, "a/slow-a")
        ask(w, "b/fast-b")
    answered = [provider_of(w, "quick") for _ in range(3)]
    assert answered == ["b", "b", "b"]
    assert [r.json()["model"] for r in w.fakes["a"].received] == ["slow-a"] * 4


def test_cheapest_picks_the_lower_price(w: World) -> None:
    headers = ask(w, "thrifty")
    assert (headers["x-polyroute-provider"], headers["x-polyroute-model"]) == ("b", "bargain")
    assert w.fakes["a"].received == []


# --- hedging --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_hedged_combo_answers_from_the_faster_member(w: World, stream: bool) -> None:
    slow, fast = w.fakes["a"], w.fakes["b"]
    slow.push(Reply(delay_s=3.0, events=text_stream(["slow"]) if stream else None, json_body=completion("slow")))
    fast.push(Reply(events=text_stream(["fast"])) if stream else Reply(json_body=completion("fast")))

    started = time.monotonic()
    if stream:
        streamed = w.sdk.chat.completions.with_raw_response.create(model="race", messages=HI, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
        headers = streamed.headers
    else:
        raw = w.sdk.chat.completions.with_raw_response.create(model="race", messages=HI)
        text = raw.parse().choices[0].message.content or ""
        headers = raw.headers
    elapsed = time.monotonic() - started

    assert text == "fast"
    assert headers["x-polyroute-provider"] == "b"
    assert elapsed < 1.5, elapsed
    assert (len(slow.received), len(fast.received)) == (1, 1)
    # The slow upstream saw its connection closed while it was still stalling (it would only finish at 3 s).
    assert slow.closed_early.wait(1.0)
    assert not slow.stream_completed.is_set()


def test_hedge_starts_the_second_member_even_when_the_first_has_several_keys(w: World) -> None:
    """The hedge goes to the next member, not to the first member again with its next key."""
    slow, fast = w.fakes["duo"], w.fakes["b"]
    slow.push(*(Reply(delay_s=3.0, json_body=completion("slow", model="twin")) for _ in KEYS["duo"]))
    fast.push(Reply(json_body=completion("fast")))

    started = time.monotonic()
    raw = w.sdk.chat.completions.with_raw_response.create(model="race-keys", messages=HI)
    text = raw.parse().choices[0].message.content
    elapsed = time.monotonic() - started

    assert (text, raw.headers["x-polyroute-provider"]) == ("fast", "b")
    assert elapsed < 1.5, elapsed
    assert len(slow.received) == 1


# --- nesting and limits ---------------------------------------------------------------------------


def test_nested_combo_expands_in_place(w: World) -> None:
    assert provider_of(w, "outer") == "a"
    w.fakes["a"].push(down())
    w.fakes["b"].push(down())
    headers = ask(w, "outer")
    assert (headers["x-polyroute-provider"], headers["x-polyroute-attempts"]) == ("c", "3")
    assert [r.json()["model"] for r in w.fakes["c"].received] == ["gamma"]


def test_combo_max_attempts_is_honoured(w: World) -> None:
    w.fakes["a"].push(down("a down"))
    w.fakes["b"].push(down("b down"))
    with pytest.raises(openai.APIStatusError) as caught:
        ask(w, "two")
    assert caught.value.status_code == 503
    details = caught.value.response.json()["error"]["details"]
    assert (details["total_attempts"], details["tried_models"]) == (2, ["a/alpha", "b/beta"])
    assert w.fakes["c"].received == []


def test_cycle_in_routing_file_is_refused() -> None:
    routing = {
        "providers": [{"name": "a", "format": "openai", "base_url": "http://127.0.0.1:9/v1", "models": ["alpha"]}],
        "combos": {
            "first": {"models": ["second", "a/alpha"]},
            "second": {"models": ["third"]},
            "third": {"models": ["first"]},
        },
    }
    with pytest.raises(ConfigError) as caught:
        parse_routing_config(routing, {})
    assert caught.value.problems == ["combos.first: cycle first -> second -> third -> first"]


def test_unknown_member_in_routing_file_is_refused() -> None:
    routing = {
        "providers": [{"name": "a", "format": "openai", "base_url": "http://127.0.0.1:9/v1", "models": ["alpha"]}],
        "combos": {"broken": {"models": ["a/alpha", "nowhere"]}},
    }
    with pytest.raises(ConfigError) as caught:
        parse_routing_config(routing, {})
    assert any(p.startswith("combos.broken.models[1]:") and "'nowhere'" in p for p in caught.value.problems)


# --- the combos API -------------------------------------------------------------------------------


def test_combo_set_through_the_api_routes_requests(w: World) -> None:
    created = w.admin.put("/api/combos/backwards", json={"strategy": "priority", "models": ["c/gamma", "a/alpha"]})
    assert created.status_code == 201, created.text
    try:
        assert provider_of(w, "backwards") == "c"
        listed = {c["name"]: c for c in w.admin.get("/api/combos").json()["data"]}
        assert listed["backwards"]["source"] == "api"
        assert listed["backwards"]["models"] == ["c/gamma", "a/alpha"]
        assert listed["pri"]["source"] == "config"
        changed = w.admin.put("/api/combos/backwards", json={"models": ["b/beta"]})
        assert changed.status_code == 200
        assert provider_of(w, "backwards") == "b"
    finally:
        deleted = w.admin.delete("/api/combos/backwards")
    assert deleted.status_code == 200
    assert "backwards" not in {c["name"] for c in w.admin.get("/api/combos").json()["data"]}
    with pytest.raises(openai.NotFoundError):
        ask(w, "backwards")
    assert w.admin.delete("/api/combos/backwards").status_code == 404


def test_api_refuses_unknown_members_and_cycles(w: World) -> None:
    unknown = w.admin.put("/api/combos/lost", json={"models": ["a/alpha", "nowhere"]})
    assert unknown.status_code == 400
    assert "nowhere" in unknown.json()["error"]["message"]
    assert w.admin.put("/api/combos/loop-x", json={"models": ["a/alpha"]}).status_code == 201
    assert w.admin.put("/api/combos/loop-y", json={"models": ["loop-x"]}).status_code == 201
    try:
        cycle = w.admin.put("/api/combos/loop-x", json={"models": ["loop-y"]})
        assert cycle.status_code == 400
        message = cycle.json()["error"]["message"]
        assert "cycle" in message and "loop-x" in message and "loop-y" in message
        # Through the routing file's combos too: outer (file) -> inner (would be overridden) -> outer.
        through_file = w.admin.put("/api/combos/inner", json={"models": ["outer"]})
        assert through_file.status_code == 400
        assert "cycle" in through_file.json()["error"]["message"]
        assert provider_of(w, "outer") == "a"
        assert provider_of(w, "loop-x") == "a"  # the refused change left the combo as it was
    finally:
        w.admin.delete("/api/combos/loop-y")
        w.admin.delete("/api/combos/loop-x")
    assert w.admin.delete("/api/combos/lost").status_code == 404


@pytest.mark.parametrize(
    ("name", "body", "named"),
    [
        ("a/alpha", {"models": ["b/beta"]}, "a/alpha"),
        ("mixed", {"models": ["a/alpha"], "weights": {"b/beta": 2}}, "weights"),
        ("double", {"models": ["a/alpha", "a/alpha"]}, "listed twice"),
        ("wait", {"models": ["a/alpha"], "hedge_delay_ms": 50}, "hedge_delay_ms"),
        ("fresh", {"models": []}, "models"),
    ],
    ids=["provider-model-name", "weight-of-non-member", "member-twice", "hedge-delay-not-hedged", "no-members"],
)
def test_api_refuses_invalid_combos(w: World, name: str, body: dict[str, Any], named: str) -> None:
    refused = w.admin.put(f"/api/combos/{name}", json=body)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert named in error["message"] or named == error["param"], error
    assert name not in {c["name"] for c in w.admin.get("/api/combos").json()["data"]}


def test_routing_file_combo_cannot_be_deleted_through_the_api(w: World) -> None:
    refused = w.admin.delete("/api/combos/pri")
    assert refused.status_code == 400
    assert "routing file" in refused.json()["error"]["message"]
    assert provider_of(w, "pri") == "a"


def test_api_changes_survive_a_restart(tmp_path: Path) -> None:
    fake = FakeUpstream().start()
    routing = {
        "providers": [{"name": "a", "format": "openai", "base_url": fake.base_url, "models": ["alpha", "omega"]}],
    }
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        first = start_gateway(routing, tmp_path)
        with httpx.Client(base_url=first.url, headers=auth, timeout=15) as http:
            assert http.put("/api/combos/kept", json={"models": ["a/omega", "a/alpha"]}).status_code == 201
            assert http.put("/api/resilience", json={"failure_threshold": 7}).status_code == 200
        first.stop()
        second = start_gateway(routing, tmp_path)
        try:
            with httpx.Client(base_url=second.url, headers=auth, timeout=15) as http:
                listed = {c["name"]: c for c in http.get("/api/combos").json()["data"]}
                assert (listed["kept"]["models"], listed["kept"]["source"]) == (["a/omega", "a/alpha"], "api")
                assert http.get("/api/resilience").json()["profile"]["failure_threshold"] == 7
                answer = http.post("/v1/chat/completions", json={"model": "kept", "messages": HI})
                assert answer.headers["x-polyroute-model"] == "omega"
        finally:
            second.stop()
    finally:
        fake.stop()


def test_combos_api_needs_an_admin_key(w: World) -> None:
    created = w.admin.post("/api/keys", json={"type": "full", "name": "plain"})
    assert created.status_code == 201, created.text
    plain = {"Authorization": f"Bearer {created.json()['key']}"}
    with httpx.Client(base_url=w.gateway.url, headers=plain, timeout=15) as http:
        assert http.get("/api/combos").status_code == 403
        assert http.put("/api/combos/mine", json={"models": ["a/alpha"]}).status_code == 403
        assert http.delete("/api/combos/pri").status_code == 403
        # The same key may still use a combo.
        answer = http.post("/v1/chat/completions", json={"model": "pri", "messages": HI})
        assert answer.status_code == 200
    assert "mine" not in {c["name"] for c in w.admin.get("/api/combos").json()["data"]}


def test_combos_are_listed_as_models_with_their_strategy_and_members(w: World) -> None:
    listed = {m.id: m.model_dump() for m in w.sdk.models.list()}
    assert listed["outer"]["combo"] == "priority"
    assert listed["outer"]["members"] == ["inner", "c/gamma"]
    assert listed["race"]["combo"] == "hedged"
    assert listed["race"]["owned_by"] == "polyroute"
    assert listed["a/alpha"].get("combo") is None  # ordinary models are not combos
