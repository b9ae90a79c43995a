"""``POST /v1/chat/completions`` and the provider-pinned route, driven by the official OpenAI SDK.

The gateway (uvicorn on loopback) talks to FakeUpstream (aiohttp on loopback): what the SDK sends
must reach the upstream untouched except for ``model``, and what the upstream answers must reach the
SDK untouched, streamed or not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from tests.fakes import (
    FakeUpstream,
    Reply,
    completion,
    text_stream,
    tool_call_stream,
    wait_for_log_row,
)
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY, RunningGateway, mock_routing, start_gateway

UPSTREAM_MODEL = "gpt-4o-2024-08-06"
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
PARIS_CALL: dict[str, Any] = {
    "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"location": "Paris, France"}'},
}
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def two_providers(fake_upstream: FakeUpstream, tmp_path: Path) -> Iterator[RunningGateway]:
    """``mock`` (gpt-4o, gpt-4o-mini) and ``other`` (o3-mini), both in front of the fake."""
    routing = mock_routing(fake_upstream)
    other = {**routing["providers"][0], "name": "other", "models": ["o3-mini"]}
    routing["providers"].append(other)
    running = start_gateway(routing, tmp_path)
    yield running
    running.stop()


def only_request(fake: FakeUpstream) -> dict[str, Any]:
    assert len(fake.received) == 1
    return fake.received[0].json()  # type: ignore[no-any-return]


# --- non-streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "upstream_model"),
    [("mock/gpt-4o", "gpt-4o"), ("fast", "gpt-4o-mini"), ("gpt-4o", "gpt-4o")],
    ids=["qualified", "alias", "bare"],
)
def test_chat_completion_by_any_model_name_returns_upstream_answer_unchanged(
    client: openai.OpenAI, fake_upstream: FakeUpstream, requested: str, upstream_model: str
) -> None:
    fake_upstream.push(Reply(json_body=completion("Hi there!", model=UPSTREAM_MODEL, prompt_tokens=11)))

    answer = client.chat.completions.create(model=requested, messages=HELLO)

    assert answer.model == UPSTREAM_MODEL
    assert answer.choices[0].message.content == "Hi there!"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (11, 9, 20)
    assert only_request(fake_upstream) == {"model": upstream_model, "messages": HELLO}
    assert fake_upstream.received[0].path == "/v1/chat/completions"


def test_chat_completion_with_many_parameters_forwards_body_unchanged_except_model(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    params: dict[str, Any] = {
        "model": "mock/gpt-4o",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image, and what is the weather there?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==", "detail": "low"},
                    },
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": [PARIS_CALL]},
            {"role": "tool", "tool_call_id": PARIS_CALL["id"], "content": '{"temp_c": 21}'},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                    "required": ["text"],
                    "additionalProperties": False,
                },
            },
        },
        "seed": 1234,
        "n": 2,
        "logprobs": True,
        "top_logprobs": 3,
        "stop": ["\n\n", "END"],
        "temperature": 0.25,
        "top_p": 0.9,
        "max_tokens": 77,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "logit_bias": {"50256": -100},
        "user": "user-1234 ünïcode ✓",
        "store": True,
        "metadata": {"team": "search", "trace": "abc-123"},
    }

    answer = client.chat.completions.create(**params)

    assert answer.choices[0].message.content == "Hello! How can I help you today?"
    assert only_request(fake_upstream) == {**params, "model": "gpt-4o"}


def test_chat_completion_sends_upstream_key_and_never_the_client_key(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    client.chat.completions.create(model="mock/gpt-4o", messages=HELLO, extra_headers={"x-api-key": ADMIN_KEY})

    headers = {k.lower(): v for k, v in fake_upstream.received[0].headers.items()}
    assert headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert ADMIN_KEY not in json.dumps(headers)
    assert ADMIN_KEY not in fake_upstream.received[0].body.decode()


def test_chat_completion_tool_call_is_returned_whole(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(json_body=completion(tool_calls=[PARIS_CALL])))

    answer = client.chat.completions.create(model="mock/gpt-4o", messages=HELLO, tools=[WEATHER_TOOL])

    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert (call.id, call.function.name) == (PARIS_CALL["id"], "get_weather")  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"location": "Paris, France"}  # type: ignore[union-attr]


# --- the seed's ``provider`` field and the pinned route -------------------------------------------


def test_chat_completion_provider_field_pins_provider_and_is_not_forwarded(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    answer = client.chat.completions.create(model="gpt-4o", messages=HELLO, extra_body={"provider": "mock"})

    assert answer.choices[0].message.content
    assert only_request(fake_upstream) == {"model": "gpt-4o", "messages": HELLO}


def test_chat_completion_provider_field_of_unknown_provider_is_rejected(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="mock/gpt-4o", messages=HELLO, extra_body={"provider": "nope"})

    assert caught.value.body["param"] == "provider"  # type: ignore[index]
    assert "nope" in caught.value.message
    assert fake_upstream.received == []


def test_chat_completion_provider_field_contradicting_model_prefix_is_rejected(
    two_providers: RunningGateway, fake_upstream: FakeUpstream
) -> None:
    with openai.OpenAI(base_url=two_providers.base_url, api_key=ADMIN_KEY, max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.chat.completions.create(model="mock/gpt-4o", messages=HELLO, extra_body={"provider": "other"})
        assert caught.value.body["param"] == "model"  # type: ignore[index]
        assert "'mock'" in caught.value.message and "'other'" in caught.value.message
        assert fake_upstream.received == []

        answer = sdk.chat.completions.create(model="o3-mini", messages=HELLO)
    assert answer.choices[0].message.content
    assert only_request(fake_upstream)["model"] == "o3-mini"


@pytest.mark.parametrize("model", ["gpt-4o", "mock/gpt-4o"], ids=["bare", "qualified"])
def test_pinned_route_accepts_bare_and_qualified_model(
    gateway: RunningGateway, fake_upstream: FakeUpstream, model: str
) -> None:
    with openai.OpenAI(base_url=f"{gateway.base_url}/providers/mock", api_key=ADMIN_KEY, max_retries=0) as sdk:
        raw_answer = sdk.chat.completions.with_raw_response.create(model=model, messages=HELLO)

    assert raw_answer.parse().choices[0].message.content
    assert raw_answer.headers["x-polyroute-provider"] == "mock"
    assert only_request(fake_upstream) == {"model": "gpt-4o", "messages": HELLO}


def test_pinned_route_model_of_another_provider_is_rejected(
    two_providers: RunningGateway, fake_upstream: FakeUpstream
) -> None:
    url = f"{two_providers.base_url}/providers/other"
    with openai.OpenAI(base_url=url, api_key=ADMIN_KEY, max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.chat.completions.create(model="mock/gpt-4o", messages=HELLO)
        with pytest.raises(openai.BadRequestError) as contradicted:
            sdk.chat.completions.create(model="o3-mini", messages=HELLO, extra_body={"provider": "mock"})
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.create(model="gpt-4o", messages=HELLO)

    assert caught.value.body["param"] == "model"  # type: ignore[index]
    assert contradicted.value.body["param"] == "provider"  # type: ignore[index]
    assert fake_upstream.received == []


def test_pinned_route_unknown_provider_is_rejected(gateway: RunningGateway, fake_upstream: FakeUpstream) -> None:
    with (
        openai.OpenAI(base_url=f"{gateway.base_url}/providers/nope", api_key=ADMIN_KEY, max_retries=0) as sdk,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        sdk.chat.completions.create(model="gpt-4o", messages=HELLO)

    assert caught.value.body["param"] == "provider"  # type: ignore[index]
    assert "mock" in caught.value.message
    assert fake_upstream.received == []


# --- streaming -----------------------------------------------------------------------------------


def test_stream_with_usage_delivers_every_chunk_and_usage(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    pieces = ("Hel", "lo", "!", " How", " can", " I", " help?")
    fake_upstream.push(Reply(events=text_stream(pieces, include_usage=True, prompt_tokens=13)))

    with client.chat.completions.create(
        model="mock/gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)

    assert len(chunks) == len(pieces) + 3  # role, pieces, finish, usage
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(pieces)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (13, len(pieces))
    assert {c.model for c in chunks} == {UPSTREAM_MODEL}
    assert only_request(fake_upstream) == {
        "model": "gpt-4o",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_stream_bytes_are_relayed_unchanged(raw: httpx.Client, fake_upstream: FakeUpstream) -> None:
    events = text_stream(("a", "é", "漢字", " 🙂", "\n\n", "data: x"), include_usage=True)
    fake_upstream.push(Reply(events=events))
    body = {"model": "fast", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}

    with raw.stream("POST", "/v1/chat/completions", json=body) as response:
        received = b"".join(response.iter_raw())

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-polyroute-provider"] == "mock"
    assert response.headers["x-polyroute-model"] == "gpt-4o-mini"
    assert received == b"".join(events)


def test_stream_tool_call_arguments_arrive_whole_and_in_order(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(Reply(events=tool_call_stream()))

    with client.chat.completions.stream(model="mock/gpt-4o", messages=HELLO, tools=[WEATHER_TOOL]) as stream:
        final = stream.get_final_completion()

    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id == PARIS_CALL["id"]
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"location": "Paris, France"}'
    assert json.loads(call.function.arguments) == {"location": "Paris, France"}


def test_stream_tool_call_deltas_concatenate_in_order(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(events=tool_call_stream(argument_pieces=('{"lo', 'cation": "Par', 'is, France"', "}"))))

    with client.chat.completions.create(
        model="mock/gpt-4o", messages=HELLO, tools=[WEATHER_TOOL], stream=True
    ) as stream:
        arguments = "".join(
            call.function.arguments or ""
            for chunk in stream
            for call in (chunk.choices[0].delta.tool_calls or [])
            if call.function is not None
        )

    assert json.loads(arguments) == {"location": "Paris, France"}


# --- async client ---------------------------------------------------------------------------------


async def test_async_client_plain_completion(gateway: RunningGateway, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(json_body=completion("async hi", model=UPSTREAM_MODEL)))

    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0) as sdk:
        answer = await sdk.chat.completions.create(model="fast", messages=HELLO)

    assert answer.choices[0].message.content == "async hi"
    assert answer.model == UPSTREAM_MODEL
    assert only_request(fake_upstream)["model"] == "gpt-4o-mini"


async def test_async_client_streamed_completion(gateway: RunningGateway, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(events=text_stream(("one", " two", " three"), include_usage=True)))

    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(
            model="mock/gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        async with stream:
            chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


# --- response headers -----------------------------------------------------------------------------


def test_chat_completion_echoes_sane_request_id_and_names_deployment(client: openai.OpenAI) -> None:
    raw_answer = client.chat.completions.with_raw_response.create(
        model="fast", messages=HELLO, extra_headers={"x-request-id": "trace-42.a:b_c"}
    )

    assert raw_answer.headers["x-request-id"] == "trace-42.a:b_c"
    assert raw_answer.headers["x-polyroute-provider"] == "mock"
    assert raw_answer.headers["x-polyroute-model"] == "gpt-4o-mini"
    assert raw_answer.parse().choices[0].message.content


@pytest.mark.parametrize(
    "sent", [None, "has spaces in it", "x" * 200, "semi;colon"], ids=["none", "spaces", "long", "semi"]
)
def test_chat_completion_without_sane_request_id_generates_one(client: openai.OpenAI, sent: str | None) -> None:
    headers = {"x-request-id": sent} if sent is not None else {}

    raw_answer = client.chat.completions.with_raw_response.create(
        model="mock/gpt-4o", messages=HELLO, extra_headers=headers
    )

    assert re.fullmatch(r"[0-9a-f]{24}", raw_answer.headers["x-request-id"])


def test_stream_response_carries_request_id_and_deployment_headers(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(Reply(events=text_stream()))

    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=HELLO, stream=True, extra_headers={"x-request-id": "stream-req-1"}
    ) as response:
        assert response.headers["x-request-id"] == "stream-req-1"
        assert response.headers["x-polyroute-provider"] == "mock"
        assert response.headers["x-polyroute-model"] == "gpt-4o"
        assert "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)


# --- the request log ------------------------------------------------------------------------------


def test_request_log_records_completion_with_reported_usage(
    client: openai.OpenAI, gateway: RunningGateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(Reply(json_body=completion(model=UPSTREAM_MODEL, prompt_tokens=21, completion_tokens=5)))

    client.chat.completions.create(model="fast", messages=HELLO, extra_headers={"x-request-id": "log-plain-1"})

    row = wait_for_log_row(gateway.database, "log-plain-1")
    assert row["endpoint"] == "/v1/chat/completions"
    assert (row["requested_model"], row["provider"], row["upstream_model"]) == ("fast", "mock", UPSTREAM_MODEL)
    assert (row["status"], row["is_stream"], row["error_code"]) == (200, 0, None)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (21, 5)
    assert row["latency_ms"] > 0
    assert row["ttft_ms"] is None


def test_request_log_records_stream_usage_and_time_to_first_token(
    client: openai.OpenAI, gateway: RunningGateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(Reply(events=text_stream(("a", "b", "c", "d"), include_usage=True, prompt_tokens=17)))

    with client.chat.completions.create(
        model="mock/gpt-4o",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": "log-stream-1"},
    ) as stream:
        list(stream)

    row = wait_for_log_row(gateway.database, "log-stream-1")
    assert (row["requested_model"], row["provider"], row["upstream_model"]) == ("mock/gpt-4o", "mock", UPSTREAM_MODEL)
    assert (row["status"], row["is_stream"], row["error_code"]) == (200, 1, None)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (17, 4)
    assert row["ttft_ms"] is not None and 0 < row["ttft_ms"] <= row["latency_ms"]


def test_request_log_leaves_tokens_null_when_upstream_reports_no_usage(
    client: openai.OpenAI, gateway: RunningGateway, fake_upstream: FakeUpstream
) -> None:
    answer = completion(model=UPSTREAM_MODEL)
    del answer["usage"]
    fake_upstream.push(Reply(json_body=answer), Reply(events=text_stream(include_usage=False)))

    client.chat.completions.create(model="gpt-4o", messages=HELLO, extra_headers={"x-request-id": "log-nousage-1"})
    with client.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, extra_headers={"x-request-id": "log-nousage-2"}
    ) as stream:
        list(stream)

    for request_id in ("log-nousage-1", "log-nousage-2"):
        row = wait_for_log_row(gateway.database, request_id)
        assert row["status"] == 200
        assert row["upstream_model"] == UPSTREAM_MODEL
        assert (row["prompt_tokens"], row["completion_tokens"]) == (None, None)


def test_request_log_records_rejected_request_with_its_status(client: openai.OpenAI, gateway: RunningGateway) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="mock/gpt-9", messages=HELLO, extra_headers={"x-request-id": "log-notfound-1"}
        )

    row = wait_for_log_row(gateway.database, "log-notfound-1")
    assert (row["requested_model"], row["status"], row["error_code"]) == ("mock/gpt-9", 404, "model_not_found")
    assert row["provider"] is None
