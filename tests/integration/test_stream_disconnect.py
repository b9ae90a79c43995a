"""Streams that end early: the client leaves, the upstream breaks off, or the upstream never streams.

Past the commit point (the 200 and its headers are sent) an error can only travel in-band, as a
``data: {"error": ...}`` event that the SDK raises on; before it, it is a normal HTTP error.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes import FakeUpstream, Reply, completion, error_body, text_stream, wait_for_log_row
from tests.gateway_fixtures import ADMIN_KEY, RunningGateway

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Count slowly"}]
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
STREAM_BODY = {"model": "mock/gpt-4o", "messages": HELLO, "stream": True}
DONE = b"data: [DONE]\n\n"


def slow_stream(n: int = 50) -> Reply:
    """A stream that would take ``n`` x 0.2 s to finish."""
    return Reply(events=text_stream([f" {i}" for i in range(n)]), event_delay_s=0.2)


def raw_stream(http: httpx.Client, body: dict[str, object] = STREAM_BODY) -> tuple[int, bytes]:
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        return response.status_code, b"".join(response.iter_raw())


def last_event(data: bytes) -> dict[str, object]:
    events = [e for e in data.split(b"\n\n") if e]
    assert events[-1].startswith(b"data: ")
    return json.loads(events[-1][len(b"data: ") :])  # type: ignore[no-any-return]


# --- the client goes away -------------------------------------------------------------------------


def test_sdk_closing_stream_early_aborts_upstream_and_logs_499(
    client: openai.OpenAI, gateway: RunningGateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(slow_stream())

    stream = client.chat.completions.create(
        model="mock/gpt-4o", messages=HELLO, stream=True, extra_headers={"x-request-id": "disconnect-sdk-1"}
    )
    chunks = iter(stream)
    first, second = next(chunks), next(chunks)
    stream.close()

    assert first.choices[0].delta.role == "assistant"
    assert second.choices[0].delta.content == " 0"
    assert fake_upstream.stream_aborted.wait(5)
    assert not fake_upstream.stream_completed.is_set()
    row = wait_for_log_row(gateway.database, "disconnect-sdk-1")
    assert (row["status"], row["error_code"], row["is_stream"]) == (499, "client_disconnected", 1)
    assert row["upstream_model"] == "gpt-4o-2024-08-06"

    answer = client.chat.completions.create(model="mock/gpt-4o", messages=HELLO)
    assert answer.choices[0].message.content


async def test_raw_client_disconnect_mid_stream_aborts_upstream_and_gateway_keeps_serving(
    gateway: RunningGateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(slow_stream())
    headers = {**AUTH, "x-request-id": "disconnect-raw-1"}

    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{gateway.base_url}/chat/completions", json=STREAM_BODY, headers=headers)
        assert response.status == 200
        received = [await response.content.readuntil(b"\n\n") for _ in range(2)]
        response.close()

        assert received[0].startswith(b"data: ")
        # Wait off the event loop: the socket is only closed once this loop runs again.
        assert await asyncio.to_thread(fake_upstream.stream_aborted.wait, 5)
        assert not fake_upstream.stream_completed.is_set()

        fake_upstream.push(Reply(events=text_stream(("still", " here"))))
        async with session.post(f"{gateway.base_url}/chat/completions", json=STREAM_BODY, headers=AUTH) as follow_up:
            body = await follow_up.read()

    assert follow_up.status == 200
    assert body.endswith(DONE)
    assert b"still" in body
    assert wait_for_log_row(gateway.database, "disconnect-raw-1")["status"] == 499


# --- the upstream goes away -----------------------------------------------------------------------


def test_upstream_cut_mid_stream_raises_in_sdk_after_first_chunks(
    client: openai.OpenAI, gateway: RunningGateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(Reply(events=text_stream(), cut_after=3))
    received = []

    with (
        pytest.raises(openai.APIError) as caught,
        client.chat.completions.create(
            model="mock/gpt-4o", messages=HELLO, stream=True, extra_headers={"x-request-id": "cut-sdk-1"}
        ) as stream,
    ):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)

    assert received == ["", "Hel", "lo"]
    assert caught.value.code == "upstream_unreachable"
    assert "mock" in caught.value.message
    row = wait_for_log_row(gateway.database, "cut-sdk-1")
    assert (row["status"], row["error_code"]) == (502, "upstream_unreachable")


def test_upstream_cut_mid_stream_ends_bytes_with_error_event(raw: httpx.Client, fake_upstream: FakeUpstream) -> None:
    events = text_stream()
    fake_upstream.push(Reply(events=events, cut_after=3))

    status, data = raw_stream(raw)

    assert status == 200
    assert data.startswith(b"".join(events[:3]))
    error = last_event(data)["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == "upstream_unreachable"
    assert DONE not in data


def test_upstream_stream_without_done_but_finished_gets_done_appended(
    client: openai.OpenAI, raw: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    events = text_stream(("fin", "ished"), done=False)
    fake_upstream.push(Reply(events=events), Reply(events=events))

    status, data = raw_stream(raw)
    with client.chat.completions.create(model="mock/gpt-4o", messages=HELLO, stream=True) as stream:
        chunks = list(stream)

    assert status == 200
    assert data == b"".join(events) + DONE
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "finished"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_upstream_stream_ending_unfinished_without_done_is_an_error(
    client: openai.OpenAI, raw: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    events = text_stream(("never", " finished"), done=False)[:-1]  # drop the finish_reason chunk
    fake_upstream.push(Reply(events=events), Reply(events=events))

    status, data = raw_stream(raw)
    with (
        pytest.raises(openai.APIError) as caught,
        client.chat.completions.create(model="mock/gpt-4o", messages=HELLO, stream=True) as stream,
    ):
        list(stream)

    assert status == 200
    assert data.startswith(b"".join(events))
    assert DONE not in data
    assert last_event(data)["error"]["code"] == "upstream_unreachable"  # type: ignore[index]
    assert "ended the stream before it finished" in caught.value.message


def test_upstream_stream_mentioning_done_in_content_still_needs_a_real_end(
    raw: httpx.Client, fake_upstream: FakeUpstream
) -> None:
    """The text ``data: [DONE]`` inside a content string is not the end-of-stream marker."""
    events = text_stream(("the marker is ", "data: [DONE]\n\n", " ok"), done=False)[:-1]
    fake_upstream.push(Reply(events=events))

    status, data = raw_stream(raw)

    assert status == 200
    assert last_event(data)["error"]["code"] == "upstream_unreachable"  # type: ignore[index]


# --- errors before the stream starts --------------------------------------------------------------


def test_upstream_rate_limit_on_stream_request_is_a_plain_http_error(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    body = error_body("Rate limit reached", type_="requests", code="rate_limit_exceeded")
    fake_upstream.push(Reply(status=429, json_body=body, headers={"Retry-After": "3"}))

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="mock/gpt-4o", messages=HELLO, stream=True)

    assert caught.value.response.headers["content-type"] == "application/json"
    assert caught.value.response.headers["retry-after"] == "3"
    assert "Rate limit reached" in caught.value.message


def test_upstream_server_error_on_stream_request_is_a_plain_http_error(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(Reply(status=500, json_body=error_body("boom", type_="server_error")))

    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="mock/gpt-4o", messages=HELLO, stream=True)

    assert caught.value.status_code == 502
    assert caught.value.response.headers["content-type"] == "application/json"
    assert "boom" in caught.value.message


def test_upstream_json_answer_to_stream_request_is_a_protocol_error(
    client: openai.OpenAI, gateway: RunningGateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(Reply(json_body=completion()))

    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="mock/gpt-4o", messages=HELLO, stream=True, extra_headers={"x-request-id": "json-to-stream-1"}
        )

    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_protocol_error"
    assert "application/json" in caught.value.message
    row = wait_for_log_row(gateway.database, "json-to-stream-1")
    assert (row["status"], row["error_code"], row["is_stream"]) == (502, "upstream_protocol_error", 1)
