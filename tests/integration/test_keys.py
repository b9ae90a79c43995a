"""API keys end to end: the three types, every refusal in every client format, management, audit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import FakeUpstream, Reply, completion, wait_for_log_row
from tests.gateway_fixtures import ADMIN_KEY, RunningGateway, mock_routing, start_gateway

CHAT = {"model": "mock/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "mock/gpt-4o", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def keyed(fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(mock_routing(fake_upstream_server), tmp_path_factory.mktemp("keys"))
    yield running
    running.stop()


@pytest.fixture
def admin(keyed: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=keyed.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15) as http:
        yield http


def create(admin: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = admin.post("/api/keys", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def chat(gateway: RunningGateway, secret: str, body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        return http.post(
            "/v1/chat/completions", json=body or CHAT, headers={"Authorization": f"Bearer {secret}", **headers}
        )


def test_created_key_shows_type_in_prefix_and_is_shown_once(admin: httpx.Client) -> None:
    created = create(admin, type="test", name="trial")
    secret = created["key"]
    assert secret.startswith("pr_test_")
    assert len(secret) >= len("pr_test_") + 43  # 256 bits in URL-safe base64
    assert created["display"] == secret[: len("pr_test_") + 4]
    assert created["limits"]["requests_per_hour"] == 30
    assert created["expires_at"] == pytest.approx(created["created_at"] + 3600)
    shown = admin.get(f"/api/keys/{created['id']}").json()
    assert "key" not in shown
    assert secret not in admin.get("/api/keys").text


def test_type_defaults(admin: httpx.Client) -> None:
    full = create(admin, type="full")
    assert full["key"].startswith("pr_full_")
    assert full["expires_at"] == pytest.approx(full["created_at"] + 30 * 86400)
    assert all(value is None for value in full["limits"].values())
    extra_admin = create(admin, type="admin")
    assert extra_admin["expires_at"] is None


def test_test_key_allows_30_requests_per_rolling_hour(
    keyed: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    secret = create(admin, type="test")["key"]
    for _ in range(30):
        fake_upstream.push(Reply(json_body=completion("ok")))
    answers = [chat(keyed, secret) for _ in range(30)]
    assert [a.status_code for a in answers] == [200] * 30
    assert answers[0].headers["x-ratelimit-limit"] == "30"
    assert answers[0].headers["x-ratelimit-remaining"] == "29"
    assert answers[-1].headers["x-ratelimit-remaining"] == "0"
    refused = chat(keyed, secret)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 3500 <= int(refused.headers["retry-after"]) <= 3600
    assert len(fake_upstream.received) == 30


def test_inference_keys_cannot_manage(keyed: RunningGateway, admin: httpx.Client) -> None:
    for kind in ("test", "full"):
        secret = create(admin, type=kind)["key"]
        with httpx.Client(base_url=keyed.url, timeout=15) as http:
            answer = http.get("/api/keys", headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "admin_key_required"


def test_unknown_revoked_and_expired_keys(
    keyed: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    unknown = chat(keyed, "pr_full_" + "A" * 43)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (401, "invalid_api_key")
    created = create(admin, type="full")
    assert chat(keyed, created["key"], {**CHAT, "model": "nope/none"}).status_code == 404  # cached as valid
    admin.delete(f"/api/keys/{created['id']}").raise_for_status()
    revoked = chat(keyed, created["key"])
    assert (revoked.status_code, revoked.json()["error"]["code"]) == (403, "key_revoked")
    expired = create(admin, type="full", expires_at=time.time() - 1)
    answer = chat(keyed, expired["key"])
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "key_expired")
    assert fake_upstream.received == []


def test_refusals_in_each_client_format(keyed: RunningGateway, admin: httpx.Client) -> None:
    created = create(admin, type="full", models=["mock/gpt-4o-mini"])
    headers = {"x-api-key": created["key"]}
    with httpx.Client(base_url=keyed.url, timeout=15) as http:
        anthropic = http.post("/v1/messages", json=MESSAGES, headers=headers)
        gemini = http.post(
            "/v1beta/models/mock/gpt-4o:generateContent",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
            headers={"x-goog-api-key": created["key"]},
        )
        ollama = http.post(
            "/api/chat",
            json={"model": "mock/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": False},
            headers={"Authorization": f"Bearer {created['key']}"},
        )
    assert anthropic.status_code == 403
    assert anthropic.json() == {
        "type": "error",
        "error": {"type": "permission_error", "message": "this key may not use the model 'mock/gpt-4o'"},
    }
    assert gemini.status_code == 403
    assert gemini.json()["error"]["status"] == "PERMISSION_DENIED"
    assert ollama.status_code == 403
    assert "may not use the model" in ollama.json()["error"]


def test_model_patterns_allow_globs(keyed: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream) -> None:
    secret = create(admin, type="full", models=["mock/*-mini", "fast"])["key"]
    fake_upstream.push(Reply(json_body=completion("ok")), Reply(json_body=completion("ok")))
    assert chat(keyed, secret, {**CHAT, "model": "mock/gpt-4o-mini"}).status_code == 200
    assert chat(keyed, secret, {**CHAT, "model": "fast"}).status_code == 200
    refused = chat(keyed, secret)
    assert refused.json()["error"]["code"] == "model_not_allowed"


def test_ip_allow_list(keyed: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream) -> None:
    outside = create(admin, type="full", ips=["10.0.0.0/8"])["key"]
    answer = chat(keyed, outside)
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "ip_not_allowed")
    inside = create(admin, type="full", ips=["127.0.0.0/8", "::1/128"])["key"]
    fake_upstream.push(Reply(json_body=completion("ok")))
    assert chat(keyed, inside).status_code == 200


def test_concurrency_limit(keyed: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream) -> None:
    import concurrent.futures

    secret = create(admin, type="full", limits={"max_concurrent": 1})["key"]
    fake_upstream.push(Reply(json_body=completion("slow"), delay_s=1.0), Reply(json_body=completion("ok")))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(chat, keyed, secret)
        time.sleep(0.3)
        second = chat(keyed, secret)
        assert slow.result().status_code == 200
    assert (second.status_code, second.json()["error"]["code"]) == (429, "rate_limit_exceeded")
    assert chat(keyed, secret).status_code == 200


def test_rotate_revokes_the_old_secret(keyed: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream) -> None:
    created = create(admin, type="full", name="to-rotate", models=["mock/*"])
    rotated = admin.post(f"/api/keys/{created['id']}/rotate")
    assert rotated.status_code == 201
    body = rotated.json()
    assert body["key"] != created["key"]
    assert (body["name"], body["models"], body["rotated_from"]) == ("to-rotate", ["mock/*"], created["id"])
    assert admin.get(f"/api/keys/{created['id']}").json()["status"] == "revoked"
    fake_upstream.push(Reply(json_body=completion("ok")))
    assert chat(keyed, body["key"]).status_code == 200
    assert chat(keyed, created["key"]).status_code == 403


def test_patch_validation_names_the_field_and_stores_nothing(admin: httpx.Client) -> None:
    created = create(admin, type="full", name="stable")
    for body, field in [
        ({"limits": {"requests_per_minute": -1}}, "limits.requests_per_minute"),
        ({"budget": {"daily_usd": "lots"}}, "budget.daily_usd"),
        ({"ips": ["not-a-network"]}, "ips"),
        ({"metadata": {"blob": "x" * 20_000}}, "metadata"),
        ({"surprise": 1}, "surprise"),
        ({"name": "changed", "limits": {"tokens_per_day": 10**12}}, "limits.tokens_per_day"),
    ]:
        answer = admin.patch(f"/api/keys/{created['id']}", json=body)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["param"] == field
    assert admin.get(f"/api/keys/{created['id']}").json()["name"] == "stable"


def test_sql_metacharacters_are_stored_verbatim(admin: httpx.Client) -> None:
    name = "'; DROP TABLE api_key; -- \" ` \\ % _ 名前"
    created = create(admin, type="full", name=name, owner="o'brien", metadata={"q": "1' OR '1'='1"})
    shown = admin.get(f"/api/keys/{created['id']}").json()
    assert (shown["name"], shown["owner"], shown["metadata"]) == (name, "o'brien", {"q": "1' OR '1'='1"})


def test_listing_filters_and_audit_log(admin: httpx.Client) -> None:
    created = create(admin, type="test", name="audited")
    admin.patch(f"/api/keys/{created['id']}", json={"name": "audited-2"}).raise_for_status()
    tests = admin.get("/api/keys", params={"type": "test", "limit": 500}).json()
    assert tests["data"] and {k["type"] for k in tests["data"]} == {"test"}
    assert admin.get("/api/keys", params={"type": "nope"}).status_code == 400
    log = admin.get("/api/compliance/audit-log", params={"limit": 5}).json()["data"]
    update = next(e for e in log if e["action"] == "key.update" and e["target"] == created["id"])
    assert update["before"]["name"] == "audited" and update["after"]["name"] == "audited-2"
    assert update["ip"] == "127.0.0.1"
    assert created["key"] not in str(log)


def test_request_log_row_names_the_key(keyed: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream) -> None:
    created = create(admin, type="full")
    fake_upstream.push(Reply(json_body=completion("ok")))
    answer = chat(keyed, created["key"])
    row = wait_for_log_row(keyed.database, answer.headers["x-request-id"])
    assert row["key_id"] == created["id"]
