"""Image models through POST /v1/chat/completions: Markdown or an image content part, streamed and not."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import openai
import pytest

from tests.fakes import Reply, error_body
from tests.gateway_fixtures import ADMIN_KEY, RunningGateway
from tests.image_fakes import PNG_B64, POLLINATIONS_KEY, FakeImageApis, image_gateway, reset_for_test

FORMAT_HEADER = "X-Polyroute-Image-Format"
DATA_URL = f"data:image/png;base64,{PNG_B64}"


@pytest.fixture(scope="module")
def apis() -> Iterator[FakeImageApis]:
    fake = FakeImageApis().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(apis: FakeImageApis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = image_gateway(apis, tmp_path_factory.mktemp("chat-images"))
    yield running
    running.stop()


@pytest.fixture
def fake(apis: FakeImageApis, gateway: RunningGateway) -> FakeImageApis:
    return reset_for_test(apis, gateway)


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=15) as sdk:
        yield sdk


@pytest.fixture
def raw(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15) as http:
        yield http


def ask(prompt: str = "a red fox in the snow") -> list[Any]:
    return [{"role": "system", "content": "You draw."}, {"role": "user", "content": prompt}]


def pollinations_url(fake: FakeImageApis) -> str:
    """The URL of the image the Pollinations fake was last asked for, as the gateway hands it out."""
    call = fake.calls_to("polli")[-1]
    query = "&".join(f"{k}={v}" for k, v in call.query.items())
    return f"{fake.url('polli')}{call.path}?{query}"


def test_markdown_answer(client: openai.OpenAI, fake: FakeImageApis) -> None:
    answer = client.chat.completions.with_raw_response.create(model="painter", messages=ask())
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-model"]) == ("polli", "flux")
    assert answer.headers["content-type"] == "application/json"
    completion = answer.parse()
    url = pollinations_url(fake)
    assert POLLINATIONS_KEY not in url
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-") and len(completion.id) == len("chatcmpl-") + 24
    assert (completion.model, completion.usage) == ("flux", None)
    assert abs(completion.created - time.time()) < 60
    (choice,) = completion.choices
    assert (choice.index, choice.finish_reason, choice.message.role) == (0, "stop", "assistant")
    assert choice.message.content == f"[![a red fox in the snow]({url})]({url})"
    assert unquote(fake.calls_to("polli")[0].path) == "/image/a red fox in the snow"
    assert "width" not in fake.calls_to("polli")[0].query


def test_markdown_stream_is_one_content_chunk_then_finish(client: openai.OpenAI, fake: FakeImageApis) -> None:
    chunks = list(client.chat.completions.create(model="polli/flux", messages=ask(), stream=True))
    url = pollinations_url(fake)
    assert [chunk.object for chunk in chunks] == ["chat.completion.chunk"] * 2
    assert len({chunk.id for chunk in chunks}) == 1
    first, last = chunks
    assert (first.choices[0].delta.role, first.choices[0].delta.content) == (
        "assistant",
        f"[![a red fox in the snow]({url})]({url})",
    )
    assert first.choices[0].finish_reason is None
    assert (last.choices[0].delta.content, last.choices[0].finish_reason) == (None, "stop")
    assert all(chunk.model == "flux" and chunk.usage is None for chunk in chunks)


def test_stream_bytes_end_with_done(raw: httpx.Client, fake: FakeImageApis) -> None:
    body = {"model": "painter", "messages": ask(), "stream": True}
    with raw.stream("POST", "/v1/chat/completions", json=body) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert answer.headers["x-polyroute-provider"] == "polli"
        text = answer.read().decode()
    events = text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert [json.loads(e.removeprefix("data: "))["object"] for e in events[:-2]] == ["chat.completion.chunk"] * 2
    assert len(fake.calls_to("polli")) == 1


def test_prompt_is_the_last_user_text_escaped_for_markdown(client: openai.OpenAI, fake: FakeImageApis) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "an old request"},
        {"role": "assistant", "content": "[![an old request](https://x)](https://x)"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "a [red]\ncat"},
                {"type": "image_url", "image_url": {"url": "https://example.com/ref.png"}},
                {"type": "text", "text": "in a hat"},
            ],
        },
    ]
    completion = client.chat.completions.create(model="painter", messages=messages)
    url = pollinations_url(fake)
    assert unquote(fake.calls_to("polli")[0].path) == "/image/a [red]\ncat\nin a hat"
    assert completion.choices[0].message.content == rf"[![a \[red\] cat in a hat]({url})]({url})"


def test_structured_url_part(client: openai.OpenAI, fake: FakeImageApis) -> None:
    answer = client.chat.completions.with_raw_response.create(
        model="oai/dall-e-3", messages=ask(), user="u-42", extra_headers={FORMAT_HEADER: "url"}
    )
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-model"]) == ("oai", "dall-e-3")
    content = answer.parse().choices[0].message.content
    assert content == [{"type": "image_url", "image_url": {"url": f"{fake.root}/files/image-0.png"}}]
    (call,) = fake.calls_to("oai")
    assert call.json() == {"model": "dall-e-3", "prompt": "a red fox in the snow", "n": 1, "user": "u-42"}


def test_structured_url_part_streamed(client: openai.OpenAI, fake: FakeImageApis) -> None:
    fake.push("oai", Reply(json_body={"created": 1, "data": [{"b64_json": PNG_B64}]}))
    stream = client.chat.completions.create(
        model="oai/gpt-image-1", messages=ask(), stream=True, extra_headers={FORMAT_HEADER: "url"}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.content == [{"type": "image_url", "image_url": {"url": DATA_URL}}]
    assert chunks[1].choices[0].finish_reason == "stop"


def test_structured_b64_json_streamed_with_usage(client: openai.OpenAI, fake: FakeImageApis) -> None:
    answer = client.chat.completions.with_raw_response.create(
        model="gemini-2.5-flash-image",
        messages=ask(),
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={FORMAT_HEADER: "b64_json"},
    )
    assert answer.headers["x-polyroute-provider"] == "gem"
    chunks = list(answer.parse())
    assert len(chunks) == 3
    assert chunks[0].choices[0].delta.content == [{"type": "image_url", "image_url": {"url": DATA_URL}}]
    assert chunks[1].choices[0].finish_reason == "stop"
    usage = chunks[2].usage
    assert chunks[2].choices == []
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (7, 1290, 1297)


def test_structured_b64_json_fetches_an_image_given_by_url(client: openai.OpenAI, fake: FakeImageApis) -> None:
    completion = client.chat.completions.create(
        model="oai/dall-e-3", messages=ask(), extra_headers={FORMAT_HEADER: "b64_json"}
    )
    assert completion.choices[0].message.content == [{"type": "image_url", "image_url": {"url": DATA_URL}}]
    assert fake.files_served == 1


def test_gemini_markdown_is_a_data_url_with_usage(client: openai.OpenAI, fake: FakeImageApis) -> None:
    completion = client.chat.completions.create(model="gem/gemini-2.5-flash-image", messages=ask("a fox"))
    assert completion.choices[0].message.content == f"[![a fox]({DATA_URL})]({DATA_URL})"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 1290)
    assert fake.calls_to("gem")[0].json()["contents"] == [{"role": "user", "parts": [{"text": "a fox"}]}]


def test_failing_image_provider_falls_back_with_headers(client: openai.OpenAI, fake: FakeImageApis) -> None:
    fake.push("polli", Reply(status=500, raw_body=b"Internal Server Error", content_type="text/plain"))
    answer = client.chat.completions.with_raw_response.create(model="painter", messages=ask("a fox"))
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-model"]) == (
        "gem",
        "gemini-2.5-flash-image",
    )
    assert (answer.headers["x-polyroute-attempts"], answer.headers["x-polyroute-fallback"]) == ("2", "true")
    completion = answer.parse()
    assert completion.model == "gemini-2.5-flash-image"
    assert completion.choices[0].message.content == f"[![a fox]({DATA_URL})]({DATA_URL})"


def test_streamed_fallback_to_the_same_model_elsewhere(client: openai.OpenAI, fake: FakeImageApis) -> None:
    fake.push("oai", Reply(status=503, json_body=error_body("overloaded", type_="server_error")))
    answer = client.chat.completions.with_raw_response.create(model="dall-e-3", messages=ask(), stream=True)
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-fallback"]) == ("oai2", "true")
    url = f"{fake.root}/files/image-0.png"
    assert list(answer.parse())[0].choices[0].delta.content == f"[![a red fox in the snow]({url})]({url})"


def test_pinned_provider_route(raw: httpx.Client, fake: FakeImageApis) -> None:
    answer = raw.post("/v1/providers/polli/chat/completions", json={"model": "flux", "messages": ask()})
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"].startswith("[![a red fox in the snow](")
    wrong = raw.post("/v1/providers/gem/chat/completions", json={"model": "polli/flux", "messages": ask()})
    assert (wrong.status_code, wrong.json()["error"]["param"]) == (400, "model")


def test_all_failed_is_503(raw: httpx.Client, fake: FakeImageApis) -> None:
    fake.push("polli", Reply(status=500, raw_body=b"down", content_type="text/plain"))
    fake.push("gem", Reply(status=500, json_body={"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}))
    answer = raw.post("/v1/chat/completions", json={"model": "painter", "messages": ask()})
    assert answer.status_code == 503
    details = answer.json()["error"]["details"]
    assert details["tried_models"] == ["polli/flux", "gem/gemini-2.5-flash-image"]


@pytest.mark.parametrize(
    ("change", "headers", "param"),
    [
        ({}, {FORMAT_HEADER: "png"}, "X-Polyroute-Image-Format"),
        ({"n": 2}, {}, "n"),
        ({"response_format": {"type": "json_object"}}, {}, "response_format"),
        ({"messages": [{"role": "user", "content": "   "}]}, {}, "messages"),
        ({"messages": [{"role": "system", "content": "draw"}]}, {}, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            {},
            "messages",
        ),
    ],
)
def test_bad_requests_name_the_field(
    raw: httpx.Client, fake: FakeImageApis, change: dict[str, Any], headers: dict[str, str], param: str
) -> None:
    answer = raw.post("/v1/chat/completions", json={"model": "painter", "messages": ask(), **change}, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param
    assert fake.calls == []


def test_text_response_format_is_accepted(raw: httpx.Client, fake: FakeImageApis) -> None:
    body = {"model": "painter", "messages": ask(), "response_format": {"type": "text"}, "n": 1}
    answer = raw.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200
    assert len(fake.calls_to("polli")) == 1


def test_request_log_row(raw: httpx.Client, fake: FakeImageApis) -> None:
    body = {"model": "gem/gemini-2.5-flash-image", "messages": ask(), "stream": True}
    with raw.stream("POST", "/v1/chat/completions", json=body) as answer:
        answer.read()
        request_id = answer.headers["x-request-id"]
    deadline = time.monotonic() + 5
    rows: list[dict[str, Any]] = []
    while not rows and time.monotonic() < deadline:
        data = raw.get("/api/usage/logs", params={"model": "gem/gemini-2.5-flash-image"}).json()["data"]
        rows = [row for row in data if row["id"] == request_id]
        time.sleep(0.05)
    (row,) = rows
    assert (row["endpoint"], row["provider"], row["is_stream"], row["status"]) == (
        "/v1/chat/completions",
        "gem",
        True,
        200,
    )
    assert (row["prompt_tokens"], row["completion_tokens"]) == (7, 1290)
