"""Two gateway processes sharing PostgreSQL and Redis enforce one set of limits and see each other's revocations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.process import ServerProcess
from tests.fakes import FakeUpstream, Reply, completion
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY, mock_routing

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

LIMIT = 10


@pytest.fixture
def pair(
    tmp_path: Path, fake_upstream: FakeUpstream, postgres_url: str, redis_url: str
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    config = tmp_path / "polyroute.yaml"
    config.write_text(yaml.safe_dump(mock_routing(fake_upstream)))
    env = {
        "POLYROUTE_ADMIN_KEY": ADMIN_KEY,
        "MOCK_KEY": UPSTREAM_KEY,
        "POLYROUTE_DATABASE_URL": postgres_url,
        "POLYROUTE_REDIS_URL": redis_url,
    }
    first = ServerProcess(["--config", str(config)], env, tmp_path / "a")
    servers = [first]
    try:
        first.wait_ready(30)
        second = ServerProcess(["--config", str(config)], env, tmp_path / "b")
        servers.append(second)
        second.wait_ready(30)
        yield first, second
    finally:
        for server in servers:
            server.close()


def _chat(server: ServerProcess, secret: str) -> int:
    body = {"model": "mock/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx.post(
        f"{server.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=15
    )
    return answer.status_code


def test_two_instances_allow_exactly_the_limit_and_share_revocations(
    pair: tuple[ServerProcess, ServerProcess], fake_upstream: FakeUpstream
) -> None:
    first, second = pair
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    created = httpx.post(
        f"{first.url}/api/keys", json={"type": "full", "limits": {"requests_per_minute": LIMIT}}, headers=admin
    )
    assert created.status_code == 201, created.text
    secret, key_id = created.json()["key"], created.json()["id"]
    for _ in range(2 * LIMIT):
        fake_upstream.push(Reply(json_body=completion("ok")))
    statuses = [_chat(server, secret) for _ in range(LIMIT) for server in (first, second)]
    assert statuses.count(200) == LIMIT
    assert statuses.count(429) == LIMIT

    other = httpx.post(f"{second.url}/api/keys", json={"type": "full"}, headers=admin).json()
    fake_upstream.push(Reply(json_body=completion("ok")), Reply(json_body=completion("ok")))
    assert _chat(second, other["key"]) == 200  # the second instance has the key cached as valid
    assert httpx.delete(f"{first.url}/api/keys/{other['id']}", headers=admin).status_code == 200
    revoked_at = time.monotonic()
    while _chat(second, other["key"]) != 403:
        assert time.monotonic() - revoked_at < 1.5, "the other instance still accepts a revoked key"
        time.sleep(0.05)
    assert time.monotonic() - revoked_at <= 1.2
    assert key_id != other["id"]
