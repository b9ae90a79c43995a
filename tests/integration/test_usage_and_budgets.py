"""Usage accounting end to end: exact costs, budgets, token limits, usage reports, price overrides, estimates.

Every expected cost is worked out here by hand from ``prices.yaml`` in ``Decimal``, never by the
gateway's own pricing code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from importlib import resources
from typing import Any

import httpx
import pytest
import yaml

from polyroute.core.estimate import default_counter
from tests.fakes import FakeUpstream, Reply, completion, error_body, text_stream, wait_for_log_row
from tests.gateway_fixtures import ADMIN_KEY, RunningGateway, mock_routing, start_gateway
from tests.server_errors import server_errors_unlogged

UNPRICED = "house-llm"
"""A model the gateway serves but no price layer knows."""
PER_MILLION = Decimal(1_000_000)
HELLO = "Hello! How can I help?"
"""What ``text_stream()`` says, pieces joined."""


def price_doc() -> dict[str, Any]:
    text = resources.files("polyroute.routing").joinpath("prices.yaml").read_text(encoding="utf-8")
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def builtin_price(model: str) -> dict[str, Decimal]:
    """The YAML entry of ``model`` as exact decimals (input, output and cache_read only)."""
    for vendor in price_doc()["vendors"]:
        if model in vendor["models"]:
            entry = vendor["models"][model]
            return {name: Decimal(str(entry[name])) for name in ("input", "output", "cache_read") if name in entry}
    raise KeyError(model)


def expected_cost(model: str, prompt: int, completion_tokens: int, cached: int = 0) -> Decimal:
    """Uncached input, cache reads and output, each at its own rate, per million tokens."""
    price = builtin_price(model)
    total = (prompt - cached) * price["input"] + completion_tokens * price["output"]
    if cached:
        total += cached * price["cache_read"]
    return total / PER_MILLION


def one_request() -> float:
    """What a default ``completion()`` answer (19 tokens in, 9 out) costs on gpt-4o."""
    return float(expected_cost("gpt-4o", 19, 9))


def usage_reply(prompt: int, completion_tokens: int, *, cached: int = 0, model: str = "gpt-4o-2024-08-06") -> Reply:
    body = completion("ok", model=model, prompt_tokens=prompt, completion_tokens=completion_tokens)
    body["usage"]["prompt_tokens_details"]["cached_tokens"] = cached
    return Reply(json_body=body)


@pytest.fixture(scope="module")
def usage_gateway(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    routing = mock_routing(fake_upstream_server)
    routing["providers"][0]["models"].append(UNPRICED)
    running = start_gateway(routing, tmp_path_factory.mktemp("usage"))
    yield running
    running.stop()


@pytest.fixture
def admin(usage_gateway: RunningGateway) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=usage_gateway.url, headers=headers, timeout=15) as http:
        yield http


def create_key(admin: httpx.Client, **body: Any) -> tuple[str, str]:
    """A new key's secret and id."""
    answer = admin.post("/api/keys", json={"type": "full", **body})
    assert answer.status_code == 201, answer.text
    return answer.json()["key"], answer.json()["id"]


def chat(gateway: RunningGateway, secret: str, model: str = "mock/gpt-4o") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        return http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"})


def messages(gateway: RunningGateway, secret: str, *, stream: bool = False) -> httpx.Response:
    body = {"model": "mock/gpt-4o", "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        return http.post("/v1/messages", json=body, headers={"x-api-key": secret})


def log_row(gateway: RunningGateway, answer: httpx.Response) -> dict[str, Any]:
    return wait_for_log_row(gateway.database, answer.headers["x-request-id"])


def error_of(answer: httpx.Response) -> tuple[int, str | None, str | None]:
    error = answer.json()["error"]
    return answer.status_code, error.get("code"), error.get("param")


# Costs


def test_cost_header_and_log_row_match_the_price_table_exactly(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    secret, key_id = create_key(admin, name="cost")
    fake_upstream.push(usage_reply(1000, 500, cached=200))
    answer = chat(usage_gateway, secret)
    cost = expected_cost("gpt-4o", 1000, 500, cached=200)  # 800 uncached and 200 cache reads in, 500 out
    assert answer.status_code == 200
    assert Decimal(answer.headers["x-polyroute-cost-usd"]) == cost
    assert answer.headers["x-polyroute-tokens-in"] == "1000"
    assert answer.headers["x-polyroute-tokens-out"] == "500"
    row = log_row(usage_gateway, answer)
    assert row["cost_usd"] == float(cost)
    assert (row["prompt_tokens"], row["completion_tokens"], row["cache_read_tokens"]) == (1000, 500, 200)
    assert row["key_id"] == key_id
    assert row["estimated"] == 0


def test_unpriced_model_has_no_cost_header_and_a_null_cost(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    secret, _ = create_key(admin)
    fake_upstream.push(usage_reply(40, 10, model=UNPRICED))
    answer = chat(usage_gateway, secret, f"mock/{UNPRICED}")
    assert answer.status_code == 200
    assert "x-polyroute-cost-usd" not in answer.headers
    assert (answer.headers["x-polyroute-tokens-in"], answer.headers["x-polyroute-tokens-out"]) == ("40", "10")
    row = log_row(usage_gateway, answer)
    assert row["cost_usd"] is None
    assert (row["prompt_tokens"], row["completion_tokens"], row["upstream_model"]) == (40, 10, UNPRICED)


# Budgets


def test_total_budget_refuses_after_the_crossing_request_in_both_shapes(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    cost = expected_cost("gpt-4o", 19, 9)
    limit = one_request() / 2  # less than one request costs
    secret, key_id = create_key(admin, budget={"total_usd": limit})
    fake_upstream.push(Reply(json_body=completion("ok")))
    first = chat(usage_gateway, secret)
    assert first.status_code == 200  # admitted with nothing spent, charged afterwards
    assert Decimal(first.headers["x-polyroute-cost-usd"]) == cost
    refused = chat(usage_gateway, secret)
    assert error_of(refused) == (429, "budget_exceeded", None)
    assert refused.json()["error"]["message"] == "budget exhausted for this key"
    assert "retry-after" not in refused.headers  # a total budget never resets: waiting will not help
    anthropic = messages(usage_gateway, secret)
    assert anthropic.status_code == 429
    assert anthropic.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "budget exhausted for this key"},
    }
    assert "retry-after" not in anthropic.headers
    assert len(fake_upstream.received) == 1
    shown = admin.get("/api/usage/budget", params={"key_id": key_id})
    assert shown.status_code == 200
    spent = float(cost)
    assert shown.json() == {
        "key_id": key_id,
        "budget": {
            "daily_usd": None,
            "weekly_usd": None,
            "monthly_usd": None,
            "total_usd": limit,
            "warn_fraction": 0.8,
        },
        "spend_usd": {"day": spent, "week": spent, "month": spent, "total": spent},
    }


def test_raising_the_budget_lets_requests_through_again(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    limit = one_request() / 2
    secret, key_id = create_key(admin, budget={"total_usd": limit, "daily_usd": 5.0})
    fake_upstream.push(Reply(json_body=completion("ok")), Reply(json_body=completion("ok")))
    assert chat(usage_gateway, secret).status_code == 200
    assert chat(usage_gateway, secret).status_code == 429
    raised = admin.post("/api/usage/budget", json={"key_id": key_id, "total_usd": 1.0})
    assert raised.status_code == 200
    assert raised.json()["budget"]["total_usd"] == 1.0
    assert raised.json()["budget"]["daily_usd"] == 5.0  # fields not given keep their values
    again = chat(usage_gateway, secret)
    assert again.status_code == 200
    spend = admin.get("/api/usage/budget", params={"key_id": key_id}).json()["spend_usd"]["total"]
    assert spend == pytest.approx(2 * one_request(), rel=1e-12)
    audit = admin.get("/api/compliance/audit-log", params={"limit": 20}).json()["data"]
    change = next(e for e in audit if e["action"] == "key.update" and e["target"] == key_id)
    assert (change["before"]["budget"]["total_usd"], change["after"]["budget"]["total_usd"]) == (limit, 1.0)


def test_budget_routes_refuse_bad_bodies_and_unknown_keys(admin: httpx.Client) -> None:
    _, key_id = create_key(admin, budget={"total_usd": 2.0})
    for body, param in [
        ({"total_usd": 1.0}, "key_id"),
        ({"key_id": key_id, "total_usd": -1}, "total_usd"),
        ({"key_id": key_id, "daily_usd": "lots"}, "daily_usd"),
        ({"key_id": key_id, "monthly_usd": 10.0**12}, "monthly_usd"),
        ({"key_id": key_id, "warn_fraction": 0}, "warn_fraction"),
        ({"key_id": key_id, "hourly_usd": 1.0}, "hourly_usd"),
    ]:
        answer = admin.post("/api/usage/budget", json=body)
        assert error_of(answer)[::2] == (400, param), body
    assert admin.get("/api/usage/budget", params={"key_id": key_id}).json()["budget"]["total_usd"] == 2.0
    assert error_of(admin.get("/api/usage/budget")) == (400, "invalid_request", "key_id")
    missing = admin.post("/api/usage/budget", json={"key_id": "key_0000000000000000", "total_usd": 1.0})
    assert missing.status_code == 404
    assert admin.get("/api/usage/budget", params={"key_id": "' OR '1'='1"}).status_code == 404


def _next_period_start(period: str, now: datetime) -> datetime:
    today = now.date()
    if period == "daily_usd":
        start = today + timedelta(days=1)
    elif period == "weekly_usd":
        start = today + timedelta(days=7 - today.weekday())  # the next Monday
    else:
        start = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return datetime.combine(start, clock(), tzinfo=UTC)


@pytest.mark.parametrize("period", ["daily_usd", "weekly_usd", "monthly_usd"])
def test_calendar_budget_retry_after_points_at_the_next_period(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream, period: str
) -> None:
    secret, _ = create_key(admin, budget={period: one_request() / 2})
    fake_upstream.push(Reply(json_body=completion("ok")))
    assert chat(usage_gateway, secret).status_code == 200
    refused = chat(usage_gateway, secret)
    now = datetime.now(UTC)
    assert error_of(refused)[:2] == (429, "budget_exceeded")
    expected = (_next_period_start(period, now) - now).total_seconds()
    assert abs(int(refused.headers["retry-after"]) - expected) <= 3


def test_budget_warning_header_once_spend_passes_the_warning_fraction_with_a_request_limit(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    budget = {"total_usd": 1.5 * one_request(), "warn_fraction": 0.5}
    secret, _ = create_key(admin, budget=budget, limits={"requests_per_minute": 50})
    fake_upstream.push(Reply(json_body=completion("ok")), Reply(json_body=completion("ok")))
    first, second = chat(usage_gateway, secret), chat(usage_gateway, secret)
    assert (first.status_code, second.status_code) == (200, 200)
    assert "x-polyroute-budget-warning" not in first.headers
    assert second.headers["x-polyroute-budget-warning"] == "true"  # one request's cost is over half the budget


def test_budget_warning_header_for_a_key_with_only_a_budget(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    secret, _ = create_key(admin, budget={"total_usd": 1.5 * one_request(), "warn_fraction": 0.5})
    fake_upstream.push(Reply(json_body=completion("ok")), Reply(json_body=completion("ok")))
    first, second = chat(usage_gateway, secret), chat(usage_gateway, secret)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.headers.get("x-polyroute-budget-warning") == "true"


# Token limits and the rate-limit monitor


def test_token_limit_refuses_once_charged_tokens_reach_it(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    secret, key_id = create_key(admin, limits={"tokens_per_minute": 20})
    fake_upstream.push(Reply(json_body=completion("ok")), Reply(json_body=completion("ok")))
    first = chat(usage_gateway, secret)
    assert first.status_code == 200  # nothing charged yet; 19 + 9 tokens charged after it
    refused = chat(usage_gateway, secret)
    assert error_of(refused) == (429, "rate_limit_exceeded", None)
    assert refused.json()["error"]["message"] == "token rate limit reached for this key"
    assert 58 <= int(refused.headers["retry-after"]) <= 61
    state = admin.get("/api/rate-limits", params={"key_id": key_id}).json()["data"][0]
    assert state["tokens"] == {"minute": 28, "day": 0}
    assert len(fake_upstream.received) == 1


def test_rate_limit_monitor_reflects_requests_tokens_and_spend(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    limits = {"requests_per_minute": 5, "tokens_per_minute": 1000}
    secret, key_id = create_key(admin, limits=limits, budget={"total_usd": 1.0})
    fake_upstream.push(usage_reply(100, 50), usage_reply(100, 50))
    answers = [chat(usage_gateway, secret), chat(usage_gateway, secret)]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["4", "3"]
    assert answers[0].headers["x-ratelimit-limit"] == "5"
    listing = admin.get("/api/rate-limits", params={"key_id": key_id})
    assert listing.status_code == 200
    (state,) = listing.json()["data"]
    spent = float(2 * expected_cost("gpt-4o", 100, 50))
    assert state["key_id"] == key_id
    assert state["limits"] == {
        "requests_per_minute": 5,
        "requests_per_hour": None,
        "requests_per_day": None,
        "tokens_per_minute": 1000,
        "tokens_per_day": None,
        "max_concurrent": None,
    }
    assert state["requests"] == {"minute": 2, "hour": 2, "day": 2}
    assert state["tokens"] == {"minute": 300, "day": 0}
    assert state["concurrent"] == 0
    assert state["spend_usd"] == {name: pytest.approx(spent, rel=1e-12) for name in ("day", "week", "month", "total")}
    everyone = admin.get("/api/rate-limits").json()["data"]
    assert key_id in {entry["key_id"] for entry in everyone}
    unknown = admin.get("/api/rate-limits", params={"key_id": "key_ffffffffffffffff"})
    assert unknown.status_code == 404


# Usage reports


def _make_history(gateway: RunningGateway, admin: httpx.Client, fake: FakeUpstream) -> tuple[str, list[str]]:
    """Four requests of one key: two priced gpt-4o answers, one gpt-4o-mini answer, one upstream 400."""
    secret, key_id = create_key(admin, name="history")
    fake.push(
        usage_reply(100, 50),
        usage_reply(200, 25, cached=40),
        usage_reply(10, 5, model="gpt-4o-mini"),
        Reply(status=400, json_body=error_body("bad request upstream")),
    )
    answers = [chat(gateway, secret), chat(gateway, secret), chat(gateway, secret, "mock/gpt-4o-mini")]
    answers.append(chat(gateway, secret))
    assert [a.status_code for a in answers] == [200, 200, 200, 400]
    ids = [a.headers["x-request-id"] for a in answers]
    for request_id in ids:
        wait_for_log_row(gateway.database, request_id)
    return key_id, ids


def _summed(rows: list[dict[str, Any]], group: str) -> dict[str, Any]:
    mine = [row for row in rows if row["group"] == group]
    assert mine and all(row["bucket"] % 3600 == 0 for row in mine)
    names = ("requests", "errors", "prompt_tokens", "completion_tokens", "cache_read_tokens")
    summed: dict[str, Any] = {name: sum(row[name] for row in mine) for name in names}
    summed["cost_usd"] = sum(row["cost_usd"] or 0.0 for row in mine)
    return summed


def test_usage_history_groups_by_key_and_model_with_concrete_totals(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    key_id, _ = _make_history(usage_gateway, admin, fake_upstream)
    cost = expected_cost("gpt-4o", 100, 50) + expected_cost("gpt-4o", 200, 25, cached=40)
    mini = expected_cost("gpt-4o-mini", 10, 5)
    answer = admin.get("/api/usage/history", params={"bucket": "hour", "group_by": "key"})
    assert answer.status_code == 200
    totals = _summed(answer.json()["data"], key_id)
    assert {k: v for k, v in totals.items() if k != "cost_usd"} == {
        "requests": 4,
        "errors": 1,
        "prompt_tokens": 310,
        "completion_tokens": 80,
        "cache_read_tokens": 40,
    }
    assert totals["cost_usd"] == pytest.approx(float(cost + mini), rel=1e-9)
    by_model = admin.get("/api/usage/history", params={"bucket": "hour", "group_by": "model", "key_id": key_id})
    rows = by_model.json()["data"]
    assert {row["group"] for row in rows} == {"mock/gpt-4o", "mock/gpt-4o-mini"}
    assert _summed(rows, "mock/gpt-4o")["requests"] == 3
    assert _summed(rows, "mock/gpt-4o-mini")["cost_usd"] == pytest.approx(float(mini), rel=1e-9)
    daily = admin.get("/api/usage/history", params={"bucket": "day", "key_id": key_id}).json()["data"]
    assert sum(row["requests"] for row in daily) == 4
    assert all(row["group"] is None and row["bucket"] % 86400 == 0 for row in daily)
    future = admin.get("/api/usage/history", params={"key_id": key_id, "since": time.time() + 3600}).json()
    assert future["data"] == []


@pytest.mark.parametrize("route", ["/api/usage/logs", "/api/usage/request-logs"])
def test_usage_logs_page_newest_first_with_concrete_rows(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream, route: str
) -> None:
    with server_errors_unlogged():
        key_id, ids = _make_history(usage_gateway, admin, fake_upstream)
        first = admin.get(route, params={"key_id": key_id, "limit": 2})
        assert first.status_code == 200, first.text
        assert first.json()["total"] == 4
        assert [row["id"] for row in first.json()["data"]] == [ids[3], ids[2]]
        second = admin.get(route, params={"key_id": key_id, "limit": 2, "offset": 2}).json()
        assert [row["id"] for row in second["data"]] == [ids[1], ids[0]]
        oldest = second["data"][1]
        assert (oldest["prompt_tokens"], oldest["completion_tokens"], oldest["key_id"]) == (100, 50, key_id)
        assert oldest["cost_usd"] == float(expected_cost("gpt-4o", 100, 50))


def test_usage_logs_filters(usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream) -> None:
    with server_errors_unlogged():
        key_id, ids = _make_history(usage_gateway, admin, fake_upstream)
        mini = admin.get("/api/usage/logs", params={"key_id": key_id, "model": "mock/gpt-4o-mini"})
        assert mini.status_code == 200, mini.text
        assert [row["id"] for row in mini.json()["data"]] == [ids[2]]
        failed = admin.get("/api/usage/logs", params={"key_id": key_id, "status": 400}).json()
        assert (failed["total"], failed["data"][0]["id"], failed["data"][0]["status"]) == (1, ids[3], 400)
        provider = admin.get("/api/usage/logs", params={"key_id": key_id, "provider": "mock"}).json()
        assert provider["total"] == 4


def test_usage_logs_filter_matching_nothing_is_an_empty_page(admin: httpx.Client) -> None:
    for params in ({"key_id": "' OR '1'='1"}, {"model": "mock/none; DROP TABLE request_log"}, {"status": 599}):
        answer = admin.get("/api/usage/logs", params=params)
        assert answer.status_code == 200
        assert answer.json() == {"object": "list", "data": [], "total": 0}


@pytest.mark.parametrize(
    ("route", "params", "param"),
    [
        ("/api/usage/history", {"bucket": "week"}, "bucket"),
        ("/api/usage/history", {"group_by": "user"}, "group_by"),
        ("/api/usage/history", {"since": "yesterday"}, "since"),
        ("/api/usage/history", {"until": "-5"}, "until"),
        ("/api/usage/history", {"since": "nan"}, "since"),
        ("/api/usage/logs", {"limit": "0"}, "limit"),
        ("/api/usage/logs", {"limit": "501"}, "limit"),
        ("/api/usage/logs", {"limit": "ten"}, "limit"),
        ("/api/usage/logs", {"offset": "-1"}, "offset"),
        ("/api/usage/logs", {"status": "99"}, "status"),
        ("/api/usage/logs", {"status": "ok"}, "status"),
        ("/api/usage/request-logs", {"since": "1e12"}, "since"),
    ],
)
def test_bad_report_parameters_are_400_naming_the_parameter(
    admin: httpx.Client, route: str, params: dict[str, str], param: str
) -> None:
    answer = admin.get(route, params=params)
    assert error_of(answer) == (400, "invalid_request", param)
    assert param in answer.json()["error"]["message"]


def test_history_until_zero_means_the_epoch(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    secret, key_id = create_key(admin)
    fake_upstream.push(Reply(json_body=completion("ok")))
    wait_for_log_row(usage_gateway.database, chat(usage_gateway, secret).headers["x-request-id"])
    answer = admin.get("/api/usage/history", params={"key_id": key_id, "since": 0, "until": 0})
    assert answer.json()["until"] == 0
    assert answer.json()["data"] == []


# Prices


def test_pricing_lists_the_builtin_table(admin: httpx.Client) -> None:
    answer = admin.get("/api/pricing")
    assert answer.status_code == 200
    doc = price_doc()
    assert answer.json()["checked_on"] == doc["checked_on"]
    builtin = [e for e in answer.json()["data"] if e["layer"] == "builtin"]
    assert len(builtin) == sum(len(vendor["models"]) for vendor in doc["vendors"])
    gpt4o = next(e for e in builtin if e["model"] == "gpt-4o")
    price = builtin_price("gpt-4o")
    assert (gpt4o["provider"], gpt4o["input"], gpt4o["output"]) == (None, float(price["input"]), float(price["output"]))
    assert gpt4o["cache_read"] == float(price["cache_read"])
    assert gpt4o["source"] == doc["vendors"][0]["models"]["gpt-4o"]["source"]


def _mini_cost(gateway: RunningGateway, secret: str, fake: FakeUpstream) -> Decimal:
    fake.push(usage_reply(1000, 500, model="gpt-4o-mini"))
    answer = chat(gateway, secret, "mock/gpt-4o-mini")
    assert answer.status_code == 200
    return Decimal(answer.headers["x-polyroute-cost-usd"])


def test_price_override_changes_the_next_cost_and_is_audited(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    secret, _ = create_key(admin)
    assert _mini_cost(usage_gateway, secret, fake_upstream) == expected_cost("gpt-4o-mini", 1000, 500)
    override = {"mock/gpt-4o-mini": {"input": 1, "output": 2}}
    try:
        answer = admin.put("/api/pricing", json=override)
        assert answer.status_code == 200
        assert answer.json()["data"] == [
            {
                "layer": "runtime",
                "provider": "mock",
                "model": "gpt-4o-mini",
                "aliases": [],
                "source": None,
                "input": 1.0,
                "output": 2.0,
                "cache_read": None,
                "cache_write": None,
            }
        ]
        assert _mini_cost(usage_gateway, secret, fake_upstream) == Decimal("0.002")  # 1000 x 1 + 500 x 2, per 1e6
        assert admin.get("/api/pricing").json()["data"][0]["layer"] == "runtime"
        audit = admin.get("/api/compliance/audit-log", params={"limit": 10}).json()["data"]
        entry = next(e for e in audit if e["action"] == "pricing.replace")
        assert (entry["after"], entry["ip"], entry["target"]) == (override, "127.0.0.1", None)
        assert entry["actor"].startswith("key_")
    finally:
        admin.put("/api/pricing", json={}).raise_for_status()
    assert _mini_cost(usage_gateway, secret, fake_upstream) == expected_cost("gpt-4o-mini", 1000, 500)


def test_invalid_price_overrides_are_400_and_change_nothing(admin: httpx.Client) -> None:
    before = admin.get("/api/pricing").json()
    audited = len(
        [e for e in admin.get("/api/compliance/audit-log").json()["data"] if e["action"] == "pricing.replace"]
    )
    for body, param in [
        ({"gpt-4o": {"input": -1}}, "prices.gpt-4o.input"),
        ({"gpt-4o": {}}, "prices.gpt-4o"),
        ({"gpt-4o": "cheap"}, "prices.gpt-4o"),
        ({"gpt-4o": {"input": 1, "surcharge": 2}}, "prices.gpt-4o.surcharge"),
    ]:
        answer = admin.put("/api/pricing", json=body)
        assert error_of(answer) == (400, "invalid_request", param), body
    assert admin.put("/api/pricing", content=b"[1, 2]").status_code == 400
    assert admin.get("/api/pricing").json() == before
    log = admin.get("/api/compliance/audit-log").json()["data"]
    assert len([e for e in log if e["action"] == "pricing.replace"]) == audited


# Streams without usage


def test_translated_stream_without_usage_is_logged_as_estimated(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    secret, key_id = create_key(admin)
    fake_upstream.push(Reply(events=text_stream()))
    answer = messages(usage_gateway, secret, stream=True)
    assert answer.status_code == 200
    assert "event: message_stop" in answer.text
    row = log_row(usage_gateway, answer)
    count = default_counter()
    prompt = count("hi") + 3 + 3  # the message's text, its overhead and the reply's priming
    output = count(HELLO)
    assert (row["estimated"], row["is_stream"], row["key_id"]) == (1, 1, key_id)
    assert (row["client_format"], row["upstream_format"]) == ("anthropic", "openai")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, output)
    assert row["cost_usd"] == float(expected_cost("gpt-4o", prompt, output))


def test_translated_stream_with_usage_is_not_estimated(
    usage_gateway: RunningGateway, admin: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    secret, _ = create_key(admin)
    fake_upstream.push(Reply(events=text_stream(include_usage=True, prompt_tokens=31)))
    answer = messages(usage_gateway, secret, stream=True)
    assert answer.status_code == 200
    row = log_row(usage_gateway, answer)
    assert (row["estimated"], row["prompt_tokens"], row["completion_tokens"]) == (0, 31, 7)
    assert row["cost_usd"] == float(expected_cost("gpt-4o", 31, 7))
