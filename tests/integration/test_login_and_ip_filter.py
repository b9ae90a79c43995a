"""Login sessions and the gateway-wide IP filter, end to end on loopback.

The test server's uvicorn trusts ``X-Forwarded-For`` from 127.0.0.1 (its default), so a test can speak
from any address; the production command line turns proxy headers off.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from polyroute.api.sessions import COOKIE
from polyroute.core.keys import digest
from tests.fakes import FakeUpstream
from tests.gateway_fixtures import ADMIN_KEY, RunningGateway, mock_routing, start_gateway

PASSWORD = "an initial password"
NEW_PASSWORD = "a brand new password"
CHAT = {"model": "mock/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def sent_from(address: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, **headers}


def with_session(token: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={token}", **headers}


def http(gateway: RunningGateway) -> httpx.Client:
    """A client without a cookie jar: every cookie a test sends is explicit."""
    return httpx.Client(base_url=gateway.url, timeout=15, cookies=None)


def login(gateway: RunningGateway, password: str = PASSWORD, **headers: str) -> httpx.Response:
    with http(gateway) as client:
        return client.post("/api/auth/login", json={"password": password}, headers=headers)


def token_of(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    token = answer.cookies.get(COOKIE)
    assert token
    return token


def cookie_attributes(answer: httpx.Response) -> dict[str, str]:
    (header,) = [h for h in answer.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")]
    attributes = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value
    return attributes


def error_of(answer: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = answer.json()["error"]
    return error


def audit_actions(gateway: RunningGateway) -> list[tuple[str, str | None, str | None]]:
    with http(gateway) as client:
        entries = client.get("/api/compliance/audit-log?limit=200", headers=ADMIN).json()["data"]
    return [(e["action"], e["actor"], e["ip"]) for e in entries]


@pytest.fixture(scope="module")
def gateway(fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(
        mock_routing(fake_upstream_server), tmp_path_factory.mktemp("login"), initial_password=PASSWORD
    )
    yield running
    running.stop()


@pytest.fixture
def fresh(fake_upstream_server: FakeUpstream, tmp_path: Any) -> Iterator[RunningGateway]:
    """A gateway of its own, for tests that change the password."""
    running = start_gateway(mock_routing(fake_upstream_server), tmp_path, initial_password=PASSWORD)
    yield running
    running.stop()


# Login and sessions


def test_login_sets_an_httponly_samesite_strict_session_cookie(gateway: RunningGateway) -> None:
    before = time.time()
    answer = login(gateway)
    token = token_of(answer)
    assert len(token) == 43  # 256 random bits, URL-safe base64
    attributes = cookie_attributes(answer)
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "strict"
    assert attributes["path"] == "/"
    assert attributes["max-age"] == str(12 * 3600)
    assert "secure" not in attributes  # plain http
    body = answer.json()
    assert body["object"] == "session"
    assert before + 12 * 3600 - 1 <= body["expires_at"] <= time.time() + 12 * 3600
    assert token not in answer.text


def test_login_over_https_sets_a_secure_cookie(gateway: RunningGateway) -> None:
    answer = login(gateway, **{"X-Forwarded-Proto": "https"})
    assert "secure" in cookie_attributes(answer)


def test_session_is_accepted_on_management_routes_and_audited(gateway: RunningGateway) -> None:
    token = token_of(login(gateway))
    with http(gateway) as client:
        keys = client.get("/api/keys", headers=with_session(token))
        created = client.post("/api/keys", json={"type": "test"}, headers=with_session(token))
    assert keys.status_code == 200, keys.text
    assert created.status_code == 201, created.text
    actor = f"session:{digest(token)[:8]}"
    actions = audit_actions(gateway)
    assert ("auth.login", actor, "127.0.0.1") in actions
    assert ("key.create", actor, "127.0.0.1") in actions


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat", "/v1/models"])
def test_session_is_refused_on_inference_routes(gateway: RunningGateway, path: str) -> None:
    token = token_of(login(gateway))
    with http(gateway) as client:
        if path == "/v1/models":
            answer = client.get(path, headers=with_session(token))
        else:
            answer = client.post(path, json=CHAT, headers=with_session(token))
    assert answer.status_code == 401
    assert "missing API key" in answer.text


def test_a_key_header_wins_over_the_session(gateway: RunningGateway) -> None:
    token = token_of(login(gateway))
    with http(gateway) as client:
        inference_key = client.post("/api/keys", json={"type": "full"}, headers=ADMIN).json()["key"]
        answer = client.get("/api/keys", headers=with_session(token, Authorization=f"Bearer {inference_key}"))
    assert answer.status_code == 403
    assert error_of(answer)["code"] == "admin_key_required"


def test_logout_ends_the_session(gateway: RunningGateway) -> None:
    token = token_of(login(gateway))
    with http(gateway) as client:
        answer = client.post("/api/auth/logout", headers=with_session(token))
        assert answer.status_code == 204
        assert cookie_attributes(answer)["max-age"] == "0"
        after = client.get("/api/keys", headers=with_session(token))
        again = client.post("/api/auth/logout", headers=with_session(token))
        without = client.get("/api/keys")
    assert after.status_code == 401
    assert error_of(after)["code"] == "invalid_session"
    assert again.status_code == 204
    assert without.status_code == 401
    assert error_of(without)["code"] == "missing_api_key"
    assert ("auth.logout", f"session:{digest(token)[:8]}", "127.0.0.1") in audit_actions(gateway)


def test_wrong_password_is_401_in_openai_shape_and_audited(gateway: RunningGateway) -> None:
    answer = login(gateway, "not the password at all", **sent_from("198.51.100.1"))
    assert answer.status_code == 401
    assert error_of(answer) == {
        "message": "wrong password",
        "type": "authentication_error",
        "code": "invalid_password",
        "param": None,
    }
    assert COOKIE not in answer.headers.get("set-cookie", "")
    assert ("auth.login_failed", None, "198.51.100.1") in audit_actions(gateway)


@pytest.mark.parametrize("body", [{}, {"password": 12345678901234}, {"password": PASSWORD, "user": "x"}])
def test_login_malformed_body_is_400(gateway: RunningGateway, body: dict[str, Any]) -> None:
    with http(gateway) as client:
        answer = client.post("/api/auth/login", json=body)
    assert answer.status_code == 400
    assert error_of(answer)["type"] == "invalid_request_error"


def test_repeated_failures_from_one_address_are_throttled(gateway: RunningGateway) -> None:
    attacker = sent_from("198.51.100.66")
    failures = [login(gateway, f"guess number {n:04d}", **attacker).status_code for n in range(10)]
    assert failures == [401] * 10
    refused = login(gateway, PASSWORD, **attacker)
    assert refused.status_code == 429
    assert error_of(refused)["code"] == "too_many_login_attempts"
    assert 800 <= int(refused.headers["retry-after"]) <= 900
    assert login(gateway, PASSWORD, **sent_from("198.51.100.67")).status_code == 200


def test_login_without_a_configured_password_explains_itself(fresh_without_password: RunningGateway) -> None:
    answer = login(fresh_without_password)
    assert answer.status_code == 403
    error = error_of(answer)
    assert error["code"] == "login_not_configured"
    assert "POLYROUTE_INITIAL_PASSWORD" in error["message"]
    with http(fresh_without_password) as client:
        set_first = client.put("/api/auth/password", json={"new": NEW_PASSWORD}, headers=ADMIN)
    assert set_first.status_code == 200, set_first.text
    assert login(fresh_without_password, NEW_PASSWORD).status_code == 200


@pytest.fixture
def fresh_without_password(fake_upstream_server: FakeUpstream, tmp_path: Any) -> Iterator[RunningGateway]:
    running = start_gateway(mock_routing(fake_upstream_server), tmp_path)
    yield running
    running.stop()


# Password changes


def test_password_change_by_session_ends_other_sessions_and_renews_its_own(fresh: RunningGateway) -> None:
    token = token_of(login(fresh))
    other = token_of(login(fresh))
    with http(fresh) as client:
        answer = client.put(
            "/api/auth/password", json={"current": PASSWORD, "new": NEW_PASSWORD}, headers=with_session(token)
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["sessions_ended"] == 2
        renewed = token_of(answer)
        assert renewed not in (token, other)
        assert client.get("/api/keys", headers=with_session(token)).status_code == 401
        assert client.get("/api/keys", headers=with_session(other)).status_code == 401
        assert client.get("/api/keys", headers=with_session(renewed)).status_code == 200
    assert login(fresh, PASSWORD).status_code == 401
    assert login(fresh, NEW_PASSWORD).status_code == 200
    assert ("auth.password_change", f"session:{digest(token)[:8]}", "127.0.0.1") in audit_actions(fresh)


def test_password_change_rules(fresh: RunningGateway) -> None:
    token = token_of(login(fresh))
    put = "/api/auth/password"
    with http(fresh) as client:
        short = client.put(put, json={"current": PASSWORD, "new": "elevenchars"}, headers=with_session(token))
        no_current = client.put(put, json={"new": NEW_PASSWORD}, headers=with_session(token))
        wrong = client.put(put, json={"current": "wrong password!", "new": NEW_PASSWORD}, headers=with_session(token))
        anonymous = client.put(put, json={"current": PASSWORD, "new": NEW_PASSWORD})
        by_admin_key = client.put(put, json={"new": NEW_PASSWORD}, headers=ADMIN)
    assert short.status_code == 400
    assert error_of(short)["param"] == "new"
    assert "at least 12 characters" in error_of(short)["message"]
    assert no_current.status_code == 400
    assert error_of(no_current)["param"] == "current"
    assert wrong.status_code == 403
    assert error_of(wrong)["code"] == "invalid_password"
    assert anonymous.status_code == 401
    assert by_admin_key.status_code == 200, by_admin_key.text  # an admin key may reset without the current one
    assert login(fresh, NEW_PASSWORD).status_code == 200
    actions = audit_actions(fresh)
    assert ("auth.password_change_failed", f"session:{digest(token)[:8]}", "127.0.0.1") in actions
    changes = [actor for action, actor, _ in actions if action == "auth.password_change"]
    assert len(changes) == 1 and (changes[0] or "").startswith("key_")


# The require_login setting


def test_require_login_round_trip(gateway: RunningGateway) -> None:
    route = "/api/settings/require-login"
    token = token_of(login(gateway))
    with http(gateway) as client:
        assert client.get(route, headers=ADMIN).json() == {"require_login": True}
        changed = client.put(route, json={"require_login": False}, headers=with_session(token))
        assert changed.status_code == 200
        assert changed.json() == {"require_login": False}
        assert client.get(route, headers=with_session(token)).json() == {"require_login": False}
        bad = client.put(route, json={"require_login": "yes"}, headers=ADMIN)
        assert bad.status_code == 400
        assert error_of(bad)["param"] == "require_login"
        assert client.put(route, json={"require_login": True}, headers=ADMIN).json() == {"require_login": True}
        assert client.get(route).status_code == 401
    assert ("settings.require_login", f"session:{digest(token)[:8]}", "127.0.0.1") in audit_actions(gateway)


# The IP filter

FILTER = "/api/settings/ip-filter"


@pytest.fixture(scope="module")
def pair(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningGateway, RunningGateway]]:
    """Two instances on one database, as two replicas behind a load balancer would be."""
    data_dir = tmp_path_factory.mktemp("ip-filter")
    first = start_gateway(mock_routing(fake_upstream_server), data_dir)
    second = start_gateway(mock_routing(fake_upstream_server), data_dir)
    yield first, second
    second.stop()
    first.stop()


@pytest.fixture
def admin(pair: tuple[RunningGateway, RunningGateway]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pair[0].url, headers=ADMIN, timeout=15) as client:
        yield client
        assert client.put(FILTER, json={"allow": [], "block": []}).status_code == 200


def set_rules(admin: httpx.Client, **rules: list[str]) -> dict[str, Any]:
    answer = admin.put(FILTER, json=rules)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_ip_filter_is_empty_by_default(admin: httpx.Client) -> None:
    assert admin.get(FILTER).json() == {"allow": [], "block": []}


def test_blocked_address_is_refused_everywhere_before_the_key_check(admin: httpx.Client) -> None:
    set_rules(admin, block=["203.0.113.0/24"])
    blocked = sent_from("203.0.113.7")
    no_key = admin.post("/v1/chat/completions", json=CHAT, headers={**blocked, "Authorization": ""})
    assert no_key.status_code == 403  # not 401: the filter comes first
    assert error_of(no_key)["code"] == "ip_blocked"
    with_key = admin.post("/v1/chat/completions", json=CHAT, headers=blocked)
    assert with_key.status_code == 403
    management = admin.get("/api/keys", headers=blocked)
    assert management.status_code == 403
    assert error_of(management)["code"] == "ip_blocked"
    login_attempt = admin.post("/api/auth/login", json={"password": PASSWORD}, headers=blocked)
    assert login_attempt.status_code == 403
    anthropic = admin.post("/v1/messages", json={**CHAT, "max_tokens": 5}, headers=blocked)
    assert anthropic.status_code == 403
    assert anthropic.json()["type"] == "error"  # the caller's own format
    assert anthropic.json()["error"]["type"] == "permission_error"
    assert admin.get("/health", headers=blocked).status_code == 200
    assert admin.get("/ready", headers=blocked).status_code == 200
    assert admin.get("/api/keys", headers=sent_from("203.0.114.7")).status_code == 200


def test_allow_list_refuses_every_other_address(admin: httpx.Client) -> None:
    set_rules(admin, allow=["127.0.0.0/8", "10.0.0.0/8"])
    outsider = admin.get("/v1/models", headers=sent_from("192.0.2.1"))
    assert outsider.status_code == 403
    assert error_of(outsider)["code"] == "ip_not_allowed"
    assert admin.get("/v1/models", headers=sent_from("10.9.8.7")).status_code == 200
    assert admin.get("/v1/models").status_code == 200
    assert admin.get("/health", headers=sent_from("192.0.2.1")).status_code == 200


def test_rules_are_normalised_and_audited(admin: httpx.Client) -> None:
    shown = set_rules(admin, allow=["127.0.0.1", "10.1.2.3/8", "10.0.0.0/8"], block=["2001:DB8::/32"])
    assert shown == {"allow": ["127.0.0.1/32", "10.0.0.0/8"], "block": ["2001:db8::/32"]}
    assert admin.get(FILTER).json() == shown
    entries = admin.get("/api/compliance/audit-log?limit=5").json()["data"]
    latest = next(e for e in entries if e["action"] == "settings.ip_filter")
    assert latest["after"] == shown
    assert latest["ip"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("rules", "param", "code"),
    [
        ({"block": ["127.0.0.1"]}, "block[0]", "ip_filter_locks_out_caller"),
        ({"block": ["192.0.2.0/24", "127.0.0.0/8"]}, "block[1]", "ip_filter_locks_out_caller"),
        ({"allow": ["10.0.0.0/8"]}, "allow", "ip_filter_locks_out_caller"),
        ({"allow": ["127.0.0.0/8"], "block": ["127.0.0.1/32"]}, "block[0]", "ip_filter_locks_out_caller"),
    ],
    ids=["block-self", "block-self-second-entry", "allow-without-self", "block-beats-allow"],
)
def test_rules_that_would_lock_out_the_caller_are_refused(
    admin: httpx.Client, rules: dict[str, list[str]], param: str, code: str
) -> None:
    answer = admin.put(FILTER, json=rules)
    assert answer.status_code == 400
    error = error_of(answer)
    assert error["param"] == param
    assert error["code"] == code
    assert "127.0.0.1" in error["message"] and "lock you out" in error["message"]
    assert admin.get(FILTER).json() == {"allow": [], "block": []}


@pytest.mark.parametrize(
    ("rules", "param"),
    [
        ({"block": ["192.0.2.0/24", "192.0.2.999/24"]}, "block[1]"),
        ({"allow": ["127.0.0.1", "localhost"]}, "allow[1]"),
        ({"allow": "127.0.0.1"}, "allow"),
        ({"allow": [f"10.{i // 256}.{i % 256}.1" for i in range(1025)]}, "allow"),
        ({"deny": ["192.0.2.0/24"]}, "deny"),
    ],
    ids=["bad-address", "hostname", "not-a-list", "too-many", "unknown-field"],
)
def test_invalid_rules_are_refused_naming_the_bad_entry(admin: httpx.Client, rules: dict[str, Any], param: str) -> None:
    answer = admin.put(FILTER, json=rules)
    assert answer.status_code == 400
    assert error_of(answer)["param"] == param
    assert error_of(answer)["type"] == "invalid_request_error"


def test_a_change_reaches_the_other_instance_within_about_a_second(
    pair: tuple[RunningGateway, RunningGateway], admin: httpx.Client
) -> None:
    _, second = pair
    blocked = sent_from("198.51.100.23", **ADMIN)

    def seconds_until(status: int) -> float:
        started = time.monotonic()
        with http(second) as client:
            while client.get("/v1/models", headers=blocked).status_code != status:
                assert time.monotonic() - started < 5, f"still not {status} after 5 s"
                time.sleep(0.05)
        return time.monotonic() - started

    assert seconds_until(200) < 0.5
    set_rules(admin, block=["198.51.100.0/24"])
    assert seconds_until(403) < 1.6
    set_rules(admin, block=[])
    assert seconds_until(200) < 1.6


def test_ip_filter_needs_an_admin_key(pair: tuple[RunningGateway, RunningGateway]) -> None:
    with http(pair[0]) as client:
        assert client.get(FILTER).status_code == 401
        assert client.put(FILTER, json={"block": ["192.0.2.0/24"]}).status_code == 401
