"""Fallback across providers serving the same model: every row of the status -> action table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import FakeUpstream, Reply, completion, error_body, text_stream
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY, RunningGateway, start_gateway

CHAT = {"model": "primary/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "primary/gpt-4o", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    first, second = FakeUpstream().start(), FakeUpstream().start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture
def pair(
    fakes: tuple[FakeUpstream, FakeUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    providers = [
        {"name": name, "format": "openai", "base_url": fake.base_url, "api_key": UPSTREAM_KEY, "models": ["gpt-4o"]}
        for name, fake in zip(("primary", "backup"), fakes, strict=True)
    ]
    running = start_gateway({"providers": providers}, tmp_path_factory.mktemp("fallback"))
    yield running
    running.stop()


@pytest.fixture
def upstreams(fakes: tuple[FakeUpstream, FakeUpstream]) -> tuple[FakeUpstream, FakeUpstream]:
    for fake in fakes:
        fake.reset()
    return fakes


def post(
    gateway: RunningGateway, path: str = "/v1/chat/completions", body: dict[str, Any] | None = None
) -> httpx.Response:
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        return http.post(path, json=body or CHAT, headers={"Authorization": f"Bearer {ADMIN_KEY}"})


@pytest.mark.parametrize(
    "failure",
    [
        Reply(status=500, json_body=error_body("boom", type_="server_error")),
        Reply(status=529, json_body=error_body("overloaded", type_="overloaded_error")),
        Reply(status=401, json_body=error_body("bad upstream key", type_="authentication_error")),
        Reply(status=200, raw_body=b"not json at all"),
    ],
    ids=["500", "529", "401", "garbage"],
)
def test_failures_move_to_the_next_provider(
    pair: RunningGateway, upstreams: tuple[FakeUpstream, FakeUpstream], failure: Reply
) -> None:
    first, second = upstreams
    first.push(failure)
    second.push(Reply(json_body=completion("from backup")))
    answer = post(pair)
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "from backup"
    assert answer.headers["x-polyroute-provider"] == "backup"
    assert answer.headers["x-polyroute-attempts"] == "2"
    assert answer.headers["x-polyroute-fallback"] == "true"
    assert (len(first.received), len(second.received)) == (1, 1)


def test_client_errors_are_returned_at_once(pair: RunningGateway, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    first, second = upstreams
    first.push(Reply(status=400, json_body=error_body("bad temperature", code="invalid_value")))
    answer = post(pair)
    assert answer.status_code == 400
    assert "bad temperature" in answer.json()["error"]["message"]
    assert second.received == []


def test_rate_limited_provider_cools_down(pair: RunningGateway, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    first, second = upstreams
    first.push(
        Reply(status=429, json_body=error_body("slow down", type_="rate_limit_error"), headers={"Retry-After": "30"})
    )
    second.push(Reply(json_body=completion("a")), Reply(json_body=completion("b")))
    assert post(pair).headers["x-polyroute-provider"] == "backup"
    again = post(pair)
    assert again.headers["x-polyroute-provider"] == "backup"
    assert again.headers["x-polyroute-attempts"] == "1"
    assert len(first.received) == 1  # skipped while cooling down, without a network call


def test_all_failed_is_503_with_the_history(pair: RunningGateway, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    first, second = upstreams
    first.push(Reply(status=500, json_body=error_body("primary down", type_="server_error")))
    second.push(Reply(status=502, json_body=error_body("backup down", type_="server_error")))
    answer = post(pair, body={**CHAT, "model": "backup/gpt-4o"})
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["message"] == "Service temporarily unavailable. All 2 models failed to respond."
    assert (error["type"], error["code"], error["param"]) == ("service_unavailable_error", "all_models_failed", None)
    details = error["details"]
    assert details["total_attempts"] == 2
    assert details["tried_models"] == ["backup/gpt-4o", "primary/gpt-4o"]
    assert [(h["model"], h["status"]) for h in details["error_history"]] == [
        ("backup/gpt-4o", 502),
        ("primary/gpt-4o", 500),
    ]


def test_pinned_provider_never_falls_back(pair: RunningGateway, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    first, second = upstreams
    first.push(Reply(status=500, json_body=error_body("down", type_="server_error")))
    answer = post(pair, "/v1/providers/primary/chat/completions", {**CHAT, "model": "gpt-4o"})
    assert answer.status_code == 502
    assert second.received == []


def test_stream_falls_back_before_its_first_byte(
    pair: RunningGateway, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    first, second = upstreams
    first.push(Reply(status=503, json_body=error_body("warming up", type_="server_error")))
    second.push(Reply(events=text_stream()))
    with (
        httpx.Client(base_url=pair.url, timeout=15) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as answer,
    ):
        body = b"".join(answer.iter_bytes())
        headers = answer.headers
    assert headers["x-polyroute-provider"] == "backup"
    assert b"data: [DONE]" in body
    assert b"Hel" in body


def test_anthropic_client_falls_back_too(pair: RunningGateway, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    first, second = upstreams
    first.push(Reply(status=500, json_body=error_body("down", type_="server_error")))
    second.push(Reply(json_body=completion("via backup")))
    answer = post(pair, "/v1/messages", MESSAGES)
    assert answer.status_code == 200
    assert answer.json()["content"][0]["text"] == "via backup"
    assert answer.headers["x-polyroute-fallback"] == "true"


@pytest.fixture
def configured(
    fakes: tuple[FakeUpstream, FakeUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """Two providers with different models, joined by a configured fallback and an alias."""
    first, second = fakes
    routing = {
        "providers": [
            {
                "name": "main",
                "format": "openai",
                "base_url": first.base_url,
                "api_key": UPSTREAM_KEY,
                "models": ["big"],
            },
            {
                "name": "spare",
                "format": "openai",
                "base_url": second.base_url,
                "api_key": UPSTREAM_KEY,
                "models": ["small"],
            },
        ],
        "aliases": {"smart": "main/big"},
        "fallbacks": {"smart": ["spare/small"]},
    }
    running = start_gateway(routing, tmp_path_factory.mktemp("configured"))
    yield running
    running.stop()


def test_configured_fallback_of_an_alias(
    configured: RunningGateway, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    first, second = upstreams
    first.push(Reply(status=503, json_body=error_body("down", type_="server_error")))
    second.push(Reply(json_body=completion("small answer")))
    answer = post(configured, body={**CHAT, "model": "smart"})
    assert answer.status_code == 200
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-model"]) == ("spare", "small")
    assert second.received[-1].json()["model"] == "small"
    first.push(Reply(status=503, json_body=error_body("down", type_="server_error")))
    plain = post(configured, body={**CHAT, "model": "main/big"})  # the fallback belongs to the alias only
    assert plain.status_code == 502
    assert len(second.received) == 1
