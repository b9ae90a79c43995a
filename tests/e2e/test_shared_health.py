"""Two gateway processes sharing Redis: a deployment one instance finds dead is skipped by the other,
and profile and combo changes made on one reach the other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.process import ServerProcess
from tests.fakes import FakeUpstream, Reply, error_body
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def backup_upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def pair(
    tmp_path: Path, fake_upstream: FakeUpstream, backup_upstream: FakeUpstream, postgres_url: str, redis_url: str
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    providers = [
        {"name": name, "format": "openai", "base_url": fake.base_url, "api_key": UPSTREAM_KEY, "models": ["gpt-4o"]}
        for name, fake in (("primary", fake_upstream), ("backup", backup_upstream))
    ]
    config = tmp_path / "polyroute.yaml"
    config.write_text(yaml.safe_dump({"providers": providers}))
    env = {"POLYROUTE_ADMIN_KEY": ADMIN_KEY, "POLYROUTE_DATABASE_URL": postgres_url, "POLYROUTE_REDIS_URL": redis_url}
    first = ServerProcess(["--config", str(config)], env, tmp_path / "a")
    servers = [first]
    try:
        first.wait_ready(30)
        second = ServerProcess(["--config", str(config)], env, tmp_path / "b")
        servers.append(second)
        second.wait_ready(30)
        # The Redis server outlives test runs: start from closed breakers and the default profile.
        assert httpx.post(f"{first.url}/api/resilience/reset", headers=ADMIN).status_code == 200
        yield first, second
    finally:
        for server in servers:
            server.close()


def _chat(server: ServerProcess, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json=body or CHAT, headers=ADMIN, timeout=15)


def _wait_for(check: Any, what: str, timeout_s: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_an_open_breaker_on_one_instance_is_skipped_by_the_other(
    pair: tuple[ServerProcess, ServerProcess], fake_upstream: FakeUpstream, backup_upstream: FakeUpstream
) -> None:
    first, second = pair
    profile = httpx.put(f"{first.url}/api/resilience", json={"failure_threshold": 2, "open_s": 120}, headers=ADMIN)
    assert profile.status_code == 200, profile.text
    _wait_for(
        lambda: httpx.get(f"{second.url}/api/resilience", headers=ADMIN).json()["profile"]["failure_threshold"] == 2,
        "the second instance did not adopt the profile",
    )
    for _ in range(2):
        fake_upstream.push(Reply(status=500, json_body=error_body("primary is down", type_="server_error")))
        answer = _chat(first)
        assert answer.status_code == 200
        assert answer.headers["x-polyroute-provider"] == "backup"
    assert len(fake_upstream.received) == 2

    def open_on_second() -> list[dict[str, Any]]:
        entries = httpx.get(f"{second.url}/api/models/availability", headers=ADMIN).json()["data"]
        return [e for e in entries if e["deployment"] == "primary/gpt-4o" and e["state"] == "open"]

    [entry] = _wait_for(open_on_second, "the second instance never learnt that primary/gpt-4o is open")
    assert entry["until"] > time.time() + 60
    assert "primary is down" in entry["last_error"]["message"]

    answer = _chat(second)
    assert answer.status_code == 200
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-attempts"]) == ("backup", "1")
    assert len(fake_upstream.received) == 2  # skipped without a network call

    health = httpx.get(f"{second.url}/api/monitoring/health", headers=ADMIN).json()
    assert {p["provider"]: p["status"] for p in health["providers"]}["primary"] in ("degraded", "down")

    assert httpx.post(f"{second.url}/api/resilience/reset", json={}, headers=ADMIN).json()["reset"] >= 1
    _wait_for(lambda: not open_on_second(), "the reset did not reach the second instance")
    answer = _chat(first)
    assert answer.headers["x-polyroute-provider"] == "primary"


def test_a_combo_made_on_one_instance_routes_on_the_other(
    pair: tuple[ServerProcess, ServerProcess], fake_upstream: FakeUpstream, backup_upstream: FakeUpstream
) -> None:
    first, second = pair
    combo = {"strategy": "priority", "models": ["backup/gpt-4o", "primary/gpt-4o"]}
    made = httpx.put(f"{first.url}/api/combos/team-default", json=combo, headers=ADMIN)
    assert made.status_code in (200, 201), made.text

    def routes() -> bool:
        return _chat(second, {**CHAT, "model": "team-default"}).status_code == 200

    _wait_for(routes, "the second instance does not know the combo")
    answer = _chat(second, {**CHAT, "model": "team-default"})
    assert answer.headers["x-polyroute-provider"] == "backup"
    listed = httpx.get(f"{second.url}/api/combos", headers=ADMIN).json()["data"]
    assert {"name": "team-default", "source": "api"}.items() <= next(
        c for c in listed if c["name"] == "team-default"
    ).items()
    assert httpx.delete(f"{first.url}/api/combos/team-default", headers=ADMIN).status_code == 200
    _wait_for(
        lambda: _chat(second, {**CHAT, "model": "team-default"}).status_code == 404,
        "the deletion did not reach the second instance",
    )
