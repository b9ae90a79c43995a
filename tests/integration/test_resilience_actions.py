"""Every row of the status -> action table (``routing/fallback.py``), seen by the official SDKs.

Each row runs with and without streaming, with the OpenAI client on ``/v1/chat/completions`` (same-format
relay) and the Anthropic client on ``/v1/messages`` (translated to the OpenAI-format upstreams).
The gateway runs with a 0.5 s first-byte timeout so that an upstream stalling for 2 s times out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest

from polyroute.upstream.client import credential_id
from tests.fakes import FakeUpstream, Reply, completion, error_body, text_stream, wait_for_log_row
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY, RunningGateway, free_port, start_gateway

FORMATS = ["openai", "anthropic"]
STREAMING = [pytest.param(False, id="complete"), pytest.param(True, id="stream")]
CONTEXT_ERROR = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000"
        " tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


@dataclass
class Answer:
    """What a client got: the status, the headers, the answer's text, or the parsed error body."""

    status: int
    headers: Mapping[str, str]
    """Case-insensitive (the SDKs' own Headers)."""
    text: str = ""
    error: dict[str, Any] | None = None


@dataclass
class Clients:
    openai: openai.OpenAI
    anthropic: anthropic.Anthropic


@dataclass
class World:
    gateway: RunningGateway
    primary: FakeUpstream
    backup: FakeUpstream
    clients: Clients
    admin: httpx.Client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    primary, backup = FakeUpstream().start(), FakeUpstream().start()
    key = {"api_key": UPSTREAM_KEY, "format": "openai"}
    routing = {
        "providers": [
            {"name": "primary", "base_url": primary.base_url, "models": ["gpt-4o", "gpt-4o-mini", "solo"], **key},
            {"name": "backup", "base_url": backup.base_url, "models": ["gpt-4o", "gpt-4o-mini", "gpt-4o-long"], **key},
            # Last in config order, so it is nobody's same-model alternative before the two above.
            {"name": "dead", "base_url": f"http://127.0.0.1:{free_port()}/v1", "models": ["gpt-4o"], **key},
        ],
        "fallbacks": {"primary/gpt-4o-mini": ["backup/gpt-4o-long"]},
    }
    gateway = start_gateway(
        routing, tmp_path_factory.mktemp("resilience"), first_byte_timeout_s=0.5, stream_idle_timeout_s=0.5
    )
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15)
    # Many tests fail the same deployment within a minute: keep the failure-rate trip out of their way.
    admin.put("/api/resilience", json={"min_requests": 100_000}).raise_for_status()
    clients = Clients(
        openai=openai.OpenAI(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=15),
        anthropic=anthropic.Anthropic(base_url=gateway.url, api_key=ADMIN_KEY, max_retries=0, timeout=15),
    )
    yield World(gateway, primary, backup, clients, admin)
    clients.openai.close()
    clients.anthropic.close()
    admin.close()
    gateway.stop()
    primary.stop()
    backup.stop()


@pytest.fixture
def w(world: World) -> Iterator[World]:
    """The module's world with fresh fakes and no cooldowns, broken credentials or open breakers."""
    for fake in (world.primary, world.backup):
        fake.reset()
    world.admin.post("/api/resilience/reset").raise_for_status()
    yield world
    world.admin.post("/api/resilience/reset").raise_for_status()


def ask(clients: Clients, fmt: str, model: str, *, stream: bool) -> Answer:
    """One request through the SDK of ``fmt``; an error status comes back as an Answer too."""
    try:
        if fmt == "openai":
            return _ask_openai(clients.openai, model, stream=stream)
        return _ask_anthropic(clients.anthropic, model, stream=stream)
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        return Answer(exc.status_code, exc.response.headers, error=exc.response.json())


def _ask_openai(sdk: openai.OpenAI, model: str, *, stream: bool) -> Answer:
    messages: Any = [{"role": "user", "content": "hi"}]
    if not stream:
        raw = sdk.chat.completions.with_raw_response.create(model=model, messages=messages)
        return Answer(raw.status_code, raw.headers, raw.parse().choices[0].message.content or "")
    raw_stream = sdk.chat.completions.with_raw_response.create(model=model, messages=messages, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw_stream.parse() if chunk.choices)
    return Answer(raw_stream.status_code, raw_stream.headers, text)


def _ask_anthropic(sdk: anthropic.Anthropic, model: str, *, stream: bool) -> Answer:
    messages: Any = [{"role": "user", "content": "hi"}]
    if not stream:
        raw = sdk.messages.with_raw_response.create(model=model, max_tokens=64, messages=messages)
        message = raw.parse()
        text = "".join(block.text for block in message.content if block.type == "text")
        return Answer(raw.status_code, raw.headers, text)
    raw_stream = sdk.messages.with_raw_response.create(model=model, max_tokens=64, messages=messages, stream=True)
    text = "".join(
        event.delta.text
        for event in raw_stream.parse()
        if event.type == "content_block_delta" and event.delta.type == "text_delta"
    )
    return Answer(raw_stream.status_code, raw_stream.headers, text)


def answer_reply(text: str, *, stream: bool, model: str = "gpt-4o") -> Reply:
    """A successful upstream answer saying ``text``."""
    if stream:
        return Reply(events=text_stream([text[:5], text[5:]], model=model))
    return Reply(json_body=completion(text, model=model))


def error_reply(status: int, message: str, type_: str, **headers: str) -> Reply:
    return Reply(status=status, json_body=error_body(message, type_=type_), headers=dict(headers))


# --- failures that move on to the next deployment --------------------------------------------------

NEXT_DEPLOYMENT: dict[str, Callable[[bool], Reply]] = {
    "500": lambda stream: error_reply(500, "boom", "server_error"),
    "529": lambda stream: error_reply(529, "overloaded", "overloaded_error"),
    "timeout": lambda stream: Reply(delay_s=2.0, events=text_stream() if stream else None, json_body=completion()),
    "empty": lambda stream: Reply(events=text_stream(())) if stream else Reply(json_body=completion("")),
    "unreadable": lambda stream: (
        Reply(events=[b"data: {not json at all\n\n", b"data: [DONE]\n\n"])
        if stream
        else Reply(raw_body=b"not json at all")
    ),
}


@pytest.mark.parametrize("stream", STREAMING)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("failure", list(NEXT_DEPLOYMENT))
def test_failure_moves_on_to_the_next_deployment(w: World, failure: str, fmt: str, stream: bool) -> None:
    w.primary.push(NEXT_DEPLOYMENT[failure](stream))
    w.backup.push(answer_reply("from backup", stream=stream))

    answer = ask(w.clients, fmt, "primary/gpt-4o", stream=stream)

    assert answer.status == 200, answer.error
    assert answer.text == "from backup"
    assert answer.headers["x-polyroute-fallback"] == "true"
    assert answer.headers["x-polyroute-attempts"] == "2"
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-model"]) == ("backup", "gpt-4o")
    assert (len(w.primary.received), len(w.backup.received)) == (1, 1)


@pytest.mark.parametrize("stream", STREAMING)
@pytest.mark.parametrize("fmt", FORMATS)
def test_connection_refused_moves_on_to_the_next_deployment(w: World, fmt: str, stream: bool) -> None:
    w.primary.push(answer_reply("from primary", stream=stream))

    answer = ask(w.clients, fmt, "dead/gpt-4o", stream=stream)

    assert answer.status == 200, answer.error
    assert answer.text == "from primary"
    assert (answer.headers["x-polyroute-fallback"], answer.headers["x-polyroute-attempts"]) == ("true", "2")
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-model"]) == ("primary", "gpt-4o")
    assert w.backup.received == []


# --- 429: cooldown --------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", STREAMING)
@pytest.mark.parametrize("fmt", FORMATS)
def test_rate_limit_cools_the_deployment_down(w: World, fmt: str, stream: bool) -> None:
    w.primary.push(error_reply(429, "slow down", "rate_limit_error", **{"Retry-After": "30"}))
    w.backup.push(answer_reply("first", stream=stream), answer_reply("second", stream=stream))

    first = ask(w.clients, fmt, "primary/gpt-4o", stream=stream)
    second = ask(w.clients, fmt, "primary/gpt-4o", stream=stream)

    assert (first.status, first.text, first.headers["x-polyroute-attempts"]) == (200, "first", "2")
    assert first.headers["x-polyroute-provider"] == "backup"
    assert (second.status, second.text, second.headers["x-polyroute-provider"]) == (200, "second", "backup")
    assert second.headers["x-polyroute-attempts"] == "1"
    assert len(w.primary.received) == 1  # skipped while cooling down, without a network call
    cooling = [e for e in w.admin.get("/api/models/availability").json()["data"] if e["kind"] == "cooldown"]
    assert [(e["deployment"], e["state"]) for e in cooling] == [("primary/gpt-4o", "cooling")]


@pytest.mark.parametrize("stream", STREAMING)
@pytest.mark.parametrize("fmt", FORMATS)
def test_everything_cooling_down_is_503_with_retry_after(w: World, fmt: str, stream: bool) -> None:
    w.backup.push(error_reply(429, "backup busy", "rate_limit_error", **{"Retry-After": "20"}))
    w.primary.push(error_reply(429, "primary busy", "rate_limit_error", **{"Retry-After": "30"}))

    both_limited = ask(w.clients, fmt, "backup/gpt-4o-mini", stream=stream)
    nothing_to_try = ask(w.clients, fmt, "backup/gpt-4o-mini", stream=stream)

    assert both_limited.status == 503
    assert nothing_to_try.status == 503
    assert 15 <= int(nothing_to_try.headers["retry-after"]) <= 20  # the shortest wait
    assert (len(w.backup.received), len(w.primary.received)) == (1, 1)  # no network call the second time
    assert nothing_to_try.error is not None
    if fmt == "openai":
        details = nothing_to_try.error["error"]["details"]
        assert details["total_attempts"] == 0
        waits = {entry["model"]: entry["retry_after_s"] for entry in details["unavailable"]}
        assert set(waits) == {"backup/gpt-4o-mini", "primary/gpt-4o-mini"}
        assert 15 <= waits["backup/gpt-4o-mini"] <= 20 and 25 <= waits["primary/gpt-4o-mini"] <= 30
    assert "no candidate" in str(nothing_to_try.error).lower()


@pytest.mark.parametrize("stream", STREAMING)
@pytest.mark.parametrize("fmt", FORMATS)
def test_single_candidate_passes_on_the_upstream_rate_limit(w: World, fmt: str, stream: bool) -> None:
    w.primary.push(
        error_reply(429, "slow down", "rate_limit_error", **{"Retry-After": "30"}),
        answer_reply("served", stream=stream, model="solo"),
    )

    limited = ask(w.clients, fmt, "primary/solo", stream=stream)
    again = ask(w.clients, fmt, "primary/solo", stream=stream)

    assert limited.status == 429
    assert limited.headers["retry-after"] == "30"
    assert (again.status, again.text) == (200, "served")  # no cooldown kept it from the only candidate
    assert len(w.primary.received) == 2


# --- 401/403: broken credential -------------------------------------------------------------------


@pytest.mark.parametrize("stream", STREAMING)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("status", [401, 403])
def test_refused_credential_is_marked_broken(w: World, status: int, fmt: str, stream: bool) -> None:
    w.primary.push(error_reply(status, "bad upstream key", "authentication_error"))
    w.backup.push(answer_reply("first", stream=stream), answer_reply("second", stream=stream))

    first = ask(w.clients, fmt, "primary/gpt-4o", stream=stream)
    second = ask(w.clients, fmt, "primary/gpt-4o", stream=stream)

    assert (first.status, first.text, first.headers["x-polyroute-provider"]) == (200, "first", "backup")
    assert (first.headers["x-polyroute-fallback"], first.headers["x-polyroute-attempts"]) == ("true", "2")
    assert (second.text, second.headers["x-polyroute-attempts"]) == ("second", "1")
    assert len(w.primary.received) == 1
    listing = w.admin.get("/api/models/availability")
    broken = [e for e in listing.json()["data"] if e["kind"] == "broken"]
    assert [(e["provider"], e["credential"], e["state"]) for e in broken] == [
        ("primary", credential_id(UPSTREAM_KEY), "broken")
    ]
    assert broken[0]["last_error"]["status"] == status
    assert UPSTREAM_KEY not in listing.text


def test_lone_candidate_is_tried_despite_its_broken_credential(w: World) -> None:
    """A mark set by another request does not turn a lone candidate's answer into a 503."""
    w.primary.push(error_reply(401, "bad upstream key", "authentication_error"))
    assert ask(w.clients, "openai", "primary/gpt-4o", stream=False).headers["x-polyroute-provider"] == "backup"
    assert [e["provider"] for e in w.admin.get("/api/models/availability").json()["data"]] == ["primary"]

    lone = ask(w.clients, "openai", "primary/solo", stream=False)

    assert (lone.status, lone.headers["x-polyroute-provider"]) == (200, "primary")
    assert [r.json()["model"] for r in w.primary.received] == ["gpt-4o", "solo"]


# --- 400/404/422: returned at once ----------------------------------------------------------------


@pytest.mark.parametrize("stream", STREAMING)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("status", [400, 404, 422])
def test_request_errors_are_returned_at_once(w: World, status: int, fmt: str, stream: bool) -> None:
    w.primary.push(error_reply(status, "bad temperature", "invalid_request_error"))

    answer = ask(w.clients, fmt, "primary/gpt-4o", stream=stream)

    assert answer.status == status
    assert answer.error is not None and "bad temperature" in answer.error["error"]["message"]
    assert len(w.primary.received) == 1
    assert w.backup.received == []


# --- an empty answer from the last candidate ------------------------------------------------------


@pytest.mark.parametrize("stream", STREAMING)
@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_answer_of_the_last_candidate_is_passed_on(w: World, fmt: str, stream: bool) -> None:
    w.backup.push(error_reply(500, "boom", "server_error"))
    w.primary.push(Reply(events=text_stream((), model="gpt-4o-mini")) if stream else Reply(json_body=completion("")))

    answer = ask(w.clients, fmt, "backup/gpt-4o-mini", stream=stream)

    assert (answer.status, answer.text) == (200, "")
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-attempts"]) == ("primary", "2")


# --- context window too small: configured fallbacks only ------------------------------------------


@pytest.mark.parametrize("stream", STREAMING)
@pytest.mark.parametrize("fmt", FORMATS)
def test_context_length_goes_to_the_configured_fallback(w: World, fmt: str, stream: bool) -> None:
    w.primary.push(Reply(status=400, json_body=CONTEXT_ERROR))
    w.backup.push(answer_reply("long answer", stream=stream, model="gpt-4o-long"))

    answer = ask(w.clients, fmt, "primary/gpt-4o-mini", stream=stream)

    assert (answer.status, answer.text) == (200, "long answer")
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-model"]) == ("backup", "gpt-4o-long")
    assert (answer.headers["x-polyroute-fallback"], answer.headers["x-polyroute-attempts"]) == ("true", "2")
    assert [r.json()["model"] for r in w.backup.received] == ["gpt-4o-long"]


@pytest.mark.parametrize("stream", STREAMING)
@pytest.mark.parametrize("fmt", FORMATS)
def test_context_length_never_tries_the_same_model_elsewhere(w: World, fmt: str, stream: bool) -> None:
    w.primary.push(Reply(status=400, json_body=CONTEXT_ERROR), Reply(status=400, json_body=CONTEXT_ERROR))
    w.backup.push(Reply(status=400, json_body=CONTEXT_ERROR))

    unconfigured = ask(w.clients, fmt, "primary/gpt-4o", stream=stream)
    configured = ask(w.clients, fmt, "primary/gpt-4o-mini", stream=stream)

    # backup serves gpt-4o and gpt-4o-mini too, but a model with the same window cannot help.
    assert unconfigured.status == 400
    assert unconfigured.error is not None and "maximum context length" in unconfigured.error["error"]["message"]
    assert configured.status == 400
    assert [r.json()["model"] for r in w.backup.received] == ["gpt-4o-long"]
    assert len(w.primary.received) == 2


# --- a stream failing after its first content byte --------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_failing_after_content_reports_in_band(w: World, fmt: str) -> None:
    w.primary.push(Reply(events=text_stream(["Hel", "lo", " there", "!"]), cut_after=3))
    received: list[str] = []
    messages: Any = [{"role": "user", "content": "hi"}]
    if fmt == "openai":
        with pytest.raises(openai.APIError) as caught:
            raw = w.clients.openai.chat.completions.with_raw_response.create(
                model="primary/gpt-4o", messages=messages, stream=True
            )
            assert raw.status_code == 200
            for chunk in raw.parse():  # an in-band ``data: {"error": ...}`` event makes the SDK raise
                received.extend(choice.delta.content or "" for choice in chunk.choices)
        error_body_ = caught.value.body
    else:
        with pytest.raises(anthropic.APIStatusError) as caught_anthropic:
            stream = w.clients.anthropic.messages.with_raw_response.create(
                model="primary/gpt-4o", max_tokens=64, messages=messages, stream=True
            )
            assert stream.status_code == 200
            for event in stream.parse():  # an in-band ``event: error`` makes the SDK raise
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    received.append(event.delta.text)
        error_body_ = caught_anthropic.value.body
    assert "".join(received) == "Hello"
    assert isinstance(error_body_, dict) and error_body_
    assert (len(w.primary.received), len(w.backup.received)) == (1, 0)


def test_stream_failing_after_content_error_frames_on_the_wire(w: World) -> None:
    """The in-band error as bytes: OpenAI's ``data: {"error": ...}``, Anthropic's ``event: error``."""
    w.primary.push(
        Reply(events=text_stream(["Hel", "lo", "!"]), cut_after=3),
        Reply(events=text_stream(["Hel", "lo", "!"]), cut_after=3),
    )
    chat = {"model": "primary/gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with w.admin.stream("POST", "/v1/chat/completions", json=chat) as response:
        openai_bytes = response.read()
    with w.admin.stream("POST", "/v1/messages", json={**chat, "max_tokens": 64}) as response:
        anthropic_bytes = response.read()
    assert b'data: {"error":' in openai_bytes
    assert b"Hel" in openai_bytes and b"[DONE]" not in openai_bytes
    assert b"event: error\n" in anthropic_bytes
    assert b"message_stop" not in anthropic_bytes
    assert w.backup.received == []


# --- every candidate failed -----------------------------------------------------------------------


@pytest.mark.parametrize("stream", STREAMING)
@pytest.mark.parametrize("fmt", FORMATS)
def test_all_failed_is_503(w: World, fmt: str, stream: bool) -> None:
    w.backup.push(error_reply(500, "backup down", "server_error"))
    w.primary.push(error_reply(502, "primary down", "server_error"))

    answer = ask(w.clients, fmt, "backup/gpt-4o-mini", stream=stream)

    assert answer.status == 503
    message = "Service temporarily unavailable. All 2 models failed to respond."
    if fmt == "anthropic":
        assert answer.error == {"type": "error", "error": {"type": "overloaded_error", "message": message}}
        return
    assert answer.error is not None
    error = answer.error["error"]
    assert (error["message"], error["type"], error["code"], error["param"]) == (
        message,
        "service_unavailable_error",
        "all_models_failed",
        None,
    )
    details = error["details"]
    assert details["total_attempts"] == 2
    assert details["tried_models"] == ["backup/gpt-4o-mini", "primary/gpt-4o-mini"]
    history = details["error_history"]
    assert [(h["model"], h["status"], h["type"]) for h in history] == [
        ("backup/gpt-4o-mini", 500, "upstream_error"),
        ("primary/gpt-4o-mini", 502, "upstream_error"),
    ]
    assert "backup down" in history[0]["message"] and "primary down" in history[1]["message"]
    assert all(len(h["message"]) <= 300 for h in history)


# --- the request log ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_request_log_records_attempts_and_fallback(w: World, fmt: str) -> None:
    w.primary.push(error_reply(500, "boom", "server_error"), answer_reply("direct", stream=False))
    w.backup.push(answer_reply("from backup", stream=False))

    fell_back = ask(w.clients, fmt, "primary/gpt-4o", stream=False)
    direct = ask(w.clients, fmt, "primary/gpt-4o", stream=False)

    row = wait_for_log_row(w.gateway.database, fell_back.headers["x-request-id"])
    assert (row["attempts"], row["fallback"], row["provider"], row["status"]) == (2, 1, "backup", 200)
    row = wait_for_log_row(w.gateway.database, direct.headers["x-request-id"])
    assert (row["attempts"], row["fallback"], row["provider"], row["status"]) == (1, 0, "primary", 200)
