"""Each FakeProvider speaks its provider's wire format: the official SDKs, used as clients, read it correctly.

The replies are the golden wire fixtures and the reply builders in ``tests/fake_providers.py``; the
builders' output is also checked against polyroute's own translators, through the ``base_url`` a provider
config would use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from polyroute.core.accumulate import accumulate
from polyroute.core.messages import ChatResponse, FinishReason, TextPart, ToolCallPart
from polyroute.routing.config import parse_routing_config
from polyroute.wire import anthropic_messages, gemini, openai_chat
from polyroute.wire import ollama as ollama_wire
from tests.fake_providers import (
    FORMATS,
    PROVIDER_KEY,
    STREAM_CONTENT_TYPES,
    FakeProvider,
    Format,
    base_url_for,
    golden_bytes,
    golden_reply,
    provider_config,
    split_events,
    text_reply,
    tool_call_reply,
)

TRANSLATORS = {"openai": openai_chat, "anthropic": anthropic_messages, "gemini": gemini, "ollama": ollama_wire}
MODELS: dict[Format, str] = {
    "openai": "gpt-4o",
    "anthropic": "claude-opus-4-6",
    "gemini": "gemini-2.5-flash",
    "ollama": "llama3.2",
}
HI: Any = [{"role": "user", "content": "Hi"}]
"""One user turn; typed loosely so every SDK accepts it."""


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[Format, FakeProvider]]:
    servers = {fmt: FakeProvider(fmt).start() for fmt in FORMATS}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def fake_openai(fakes: dict[Format, FakeProvider]) -> FakeProvider:
    fakes["openai"].reset()
    return fakes["openai"]


@pytest.fixture
def fake_anthropic(fakes: dict[Format, FakeProvider]) -> FakeProvider:
    fakes["anthropic"].reset()
    return fakes["anthropic"]


@pytest.fixture
def fake_gemini(fakes: dict[Format, FakeProvider]) -> FakeProvider:
    fakes["gemini"].reset()
    return fakes["gemini"]


@pytest.fixture
def fake_ollama(fakes: dict[Format, FakeProvider]) -> FakeProvider:
    fakes["ollama"].reset()
    return fakes["ollama"]


@pytest.fixture
def openai_sdk(fake_openai: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake_openai.base_url, api_key=PROVIDER_KEY, max_retries=0, timeout=10) as sdk:
        yield sdk


@pytest.fixture
def anthropic_sdk(fake_anthropic: FakeProvider) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake_anthropic.root, api_key=PROVIDER_KEY, max_retries=0, timeout=10) as sdk:
        yield sdk


def _genai(root: str, api_key: str = PROVIDER_KEY, api_version: str = "v1beta") -> genai.Client:
    options = genai_types.HttpOptions(base_url=root, api_version=api_version, timeout=10_000)
    return genai.Client(api_key=api_key, http_options=options)


@pytest.fixture
def gemini_sdk(fake_gemini: FakeProvider) -> genai.Client:
    return _genai(fake_gemini.root)


@pytest.fixture
def ollama_sdk(fake_ollama: FakeProvider) -> Iterator[ollama.Client]:
    with ollama.Client(host=fake_ollama.root, timeout=10) as sdk:
        yield sdk


# --- OpenAI --------------------------------------------------------------------------------------------


def test_openai_sdk_reads_the_golden_completion(fake_openai: FakeProvider, openai_sdk: openai.OpenAI) -> None:
    fake_openai.push(golden_reply("openai", "response_text.json"))
    completion = openai_sdk.chat.completions.create(model="gpt-4o", messages=HI)
    assert completion.id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert completion.choices[0].message.content == "Hello! How can I assist you today?"
    assert completion.usage is not None and (completion.usage.prompt_tokens, completion.usage.total_tokens) == (19, 29)
    (request,) = fake_openai.received
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["Authorization"] == f"Bearer {PROVIDER_KEY}"
    assert request.json()["messages"] == HI


def test_openai_sdk_streams_parallel_tool_calls(fake_openai: FakeProvider, openai_sdk: openai.OpenAI) -> None:
    fake_openai.push(golden_reply("openai", "stream_tool_calls.sse"))
    calls: dict[int, dict[str, str]] = {}
    usage = None
    stream = openai_sdk.chat.completions.create(
        model="gpt-4o",
        messages=HI,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                call["name"] += (delta.function and delta.function.name) or ""
                call["arguments"] += (delta.function and delta.function.arguments) or ""
    assert calls == {
        0: {"id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "name": "get_weather", "arguments": '{"location":"Paris, France"}'},
        1: {
            "id": "call_ZJ91NY5ZqWSmv8BbkjwxN9Rv",
            "name": "get_weather",
            "arguments": '{"location":"Bogotá, Colombia"}',
        },
    }
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens) == (2006, 1920)
    assert fake_openai.received[0].json()["stream"] is True


def test_openai_sdk_sees_deepseek_reasoning_content(fake_openai: FakeProvider, openai_sdk: openai.OpenAI) -> None:
    fake_openai.push(golden_reply("openai", "stream_reasoning.sse"))
    reasoning, content, finish = "", "", None
    for chunk in openai_sdk.chat.completions.create(model="deepseek-reasoner", messages=HI, stream=True):
        delta = chunk.choices[0].delta
        reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        content += delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    assert (reasoning, content, finish) == ("Compare 9.11 and 9.8: 0.11 < 0.80.", "9.8 is greater.", "stop")


def test_openai_sdk_lists_models_and_is_refused_a_wrong_key(fake_openai: FakeProvider) -> None:
    with openai.OpenAI(base_url=fake_openai.base_url, api_key=PROVIDER_KEY, max_retries=0) as good:
        assert [model.id for model in good.models.list()] == ["gpt-4o", "gpt-4o-mini"]
    bad = openai.OpenAI(base_url=fake_openai.base_url, api_key="sk-wrong-key-9999", max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model="gpt-4o", messages=HI)
    assert caught.value.code == "invalid_api_key" and "sk-***9999" in caught.value.message
    assert not fake_openai.script and len(fake_openai.received) == 2


def test_openai_sdk_raises_the_golden_rate_limit(fake_openai: FakeProvider, openai_sdk: openai.OpenAI) -> None:
    fake_openai.push(golden_reply("openai", "error_429.json", headers={"Retry-After": "2"}))
    with pytest.raises(openai.RateLimitError) as caught:
        openai_sdk.chat.completions.create(model="gpt-4o", messages=HI)
    assert caught.value.status_code == 429 and caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["retry-after"] == "2"


# --- Anthropic -----------------------------------------------------------------------------------------


def test_anthropic_sdk_reads_the_golden_tool_use(
    fake_anthropic: FakeProvider, anthropic_sdk: anthropic.Anthropic
) -> None:
    fake_anthropic.push(golden_reply("anthropic", "response_tool_use.json"))
    message = anthropic_sdk.messages.create(model="claude-opus-4-6", max_tokens=256, messages=HI)
    text, tool = message.content
    assert text.type == "text" and text.text == "I'll check the current weather in San Francisco for you."
    assert tool.type == "tool_use" and (tool.id, tool.name) == ("toolu_01A09q90qw90lq917835lq9", "get_weather")
    assert tool.input == {"location": "San Francisco, CA", "unit": "celsius"}
    assert message.stop_reason == "tool_use"
    (request,) = fake_anthropic.received
    sent_key = request.headers.get("x-api-key") or request.headers["Authorization"].removeprefix("Bearer ")
    assert request.path == "/v1/messages" and sent_key == PROVIDER_KEY
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", request.headers["anthropic-version"])


def test_anthropic_sdk_streams_the_golden_tool_use(
    fake_anthropic: FakeProvider, anthropic_sdk: anthropic.Anthropic
) -> None:
    fake_anthropic.push(golden_reply("anthropic", "stream_tool_use.sse"))
    with anthropic_sdk.messages.stream(model="claude-opus-4-6", max_tokens=256, messages=HI) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert text == "Okay, let's check the weather for San Francisco, CA:"
    tool = message.content[1]
    assert tool.type == "tool_use" and tool.input == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (472, 89)
    assert fake_anthropic.received[0].json()["stream"] is True


def test_anthropic_sdk_streams_parallel_calls_with_cache_usage(
    fake_anthropic: FakeProvider, anthropic_sdk: anthropic.Anthropic
) -> None:
    fake_anthropic.push(golden_reply("anthropic", "stream_parallel_tool_use.sse"))
    with anthropic_sdk.messages.stream(model="claude-opus-4-6", max_tokens=256, messages=HI) as stream:
        message = stream.get_final_message()
    inputs = [block.input for block in message.content if block.type == "tool_use"]
    assert inputs == [{"location": "Paris, France"}, {"location": "Bogotá, Colombia"}]
    usage = message.usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens, usage.output_tokens) == (1800, 248, 71)


def test_anthropic_sdk_streams_a_built_text_reply(
    fake_anthropic: FakeProvider, anthropic_sdk: anthropic.Anthropic
) -> None:
    fake_anthropic.push(text_reply("anthropic", "Bonjour à tous", stream=True, input_tokens=30, output_tokens=7))
    with anthropic_sdk.messages.stream(model="claude-opus-4-6", max_tokens=64, messages=HI) as stream:
        pieces = list(stream.text_stream)
        message = stream.get_final_message()
    assert "".join(pieces) == "Bonjour à tous" and len(pieces) == 3
    assert (message.usage.input_tokens, message.usage.output_tokens, message.stop_reason) == (30, 7, "end_turn")


def test_anthropic_count_tokens_and_models(fake_anthropic: FakeProvider, anthropic_sdk: anthropic.Anthropic) -> None:
    fake_anthropic.count_tokens_result = 27
    counted = anthropic_sdk.messages.count_tokens(model="claude-opus-4-6", messages=HI)
    assert counted.input_tokens == 27
    assert [model.id for model in anthropic_sdk.models.list()] == ["claude-opus-4-6", "claude-haiku-4-5"]
    assert [r.path for r in fake_anthropic.received] == ["/v1/messages/count_tokens", "/v1/models"]


def test_anthropic_refuses_a_wrong_key_and_a_missing_version(fake_anthropic: FakeProvider) -> None:
    bad = anthropic.Anthropic(base_url=fake_anthropic.root, api_key="sk-ant-wrong", max_retries=0)
    with bad, pytest.raises(anthropic.AuthenticationError) as caught:
        bad.messages.create(model="claude-opus-4-6", max_tokens=8, messages=HI)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }
    answer = httpx.post(
        f"{fake_anthropic.root}/v1/messages", headers={"x-api-key": PROVIDER_KEY}, json={"model": "m"}, timeout=10
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }


def test_anthropic_sdk_raises_the_golden_overload(
    fake_anthropic: FakeProvider, anthropic_sdk: anthropic.Anthropic
) -> None:
    fake_anthropic.push(golden_reply("anthropic", "error_529.json"))
    with pytest.raises(anthropic.APIStatusError) as caught:
        anthropic_sdk.messages.create(model="claude-opus-4-6", max_tokens=8, messages=HI)
    assert caught.value.status_code == 529
    assert caught.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}  # type: ignore[index]


# --- Gemini --------------------------------------------------------------------------------------------


def test_gemini_sdk_reads_the_golden_function_call(fake_gemini: FakeProvider, gemini_sdk: genai.Client) -> None:
    fake_gemini.push(golden_reply("gemini", "response_function_call.json"))
    response = gemini_sdk.models.generate_content(model="gemini-2.5-flash", contents="Check AA100")
    (call,) = response.function_calls or []
    assert (call.name, call.args) == ("check_flight", {"flight": "AA100"})
    part = response.candidates[0].content.parts[0]  # type: ignore[index, union-attr]
    assert part.thought_signature is not None and part.thought_signature.startswith(b"\n)\x01r")
    assert response.usage_metadata is not None and response.usage_metadata.thoughts_token_count == 104
    (request,) = fake_gemini.received
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == PROVIDER_KEY
    assert request.json()["contents"][0]["parts"] == [{"text": "Check AA100"}]


def test_gemini_sdk_streams_the_golden_thoughts(fake_gemini: FakeProvider, gemini_sdk: genai.Client) -> None:
    fake_gemini.push(golden_reply("gemini", "stream_thinking.sse"))
    thoughts, answer, signatures = "", "", []
    for chunk in gemini_sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="9.11 or 9.8?"):
        for part in chunk.candidates[0].content.parts or []:  # type: ignore[index, union-attr]
            if part.thought:
                thoughts += part.text or ""
            else:
                answer += part.text or ""
            if part.thought_signature:
                signatures.append(part.thought_signature)
    assert thoughts.startswith("**Comparing decimals**") and thoughts.endswith("beat 11 hundredths.")
    assert answer == "9.8 is larger than 9.11." and len(signatures) == 1
    (request,) = fake_gemini.received
    assert request.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert request.query == {"alt": "sse"}


def test_gemini_sdk_streams_parallel_function_calls(fake_gemini: FakeProvider, gemini_sdk: genai.Client) -> None:
    fake_gemini.push(golden_reply("gemini", "stream_function_calls.sse"))
    chunks = list(gemini_sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="Paris and London?"))
    calls = [(call.name, call.args) for chunk in chunks for call in chunk.function_calls or []]
    assert calls == [
        ("get_current_temperature", {"location": "Paris"}),
        ("get_current_temperature", {"location": "London"}),
    ]
    assert chunks[-1].candidates[0].finish_reason == genai_types.FinishReason.STOP  # type: ignore[index]


def test_gemini_answers_under_the_stable_v1_path_too(fake_gemini: FakeProvider) -> None:
    fake_gemini.push(golden_reply("gemini", "response_text.json"))
    stable = _genai(fake_gemini.root, api_version="v1")
    response = stable.models.generate_content(model="gemini-2.0-flash", contents="Hi")
    assert response.text == "Hello! How can I help you today?" and response.response_id == "aBcDeFgHiJkLmNoPqRsTuV"
    assert fake_gemini.received[0].path == "/v1/models/gemini-2.0-flash:generateContent"


def test_gemini_streams_a_json_array_without_alt_sse(fake_gemini: FakeProvider) -> None:
    fake_gemini.push(golden_reply("gemini", "stream_text.sse"))
    answer = httpx.post(
        f"{fake_gemini.root}/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        headers={"x-goog-api-key": PROVIDER_KEY},
        json={"contents": [{"parts": [{"text": "Hi"}]}]},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    assert answer.content.startswith(b'[{\n  "candidates"') and answer.content.endswith(b"}]")
    expected = [
        json.loads(event.strip()[6:]) for event in split_events("gemini", golden_bytes("gemini", "stream_text.sse"))
    ]
    assert answer.json() == expected


def test_gemini_refuses_keys_as_the_real_api_does(fake_gemini: FakeProvider) -> None:
    wrong = _genai(fake_gemini.root, "AIza-wrong")
    with pytest.raises(genai_errors.ClientError) as caught:
        wrong.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    answer = httpx.post(f"{fake_gemini.root}/v1beta/models/gemini-2.5-flash:generateContent", json={}, timeout=10)
    assert answer.status_code == 403 and answer.json()["error"]["status"] == "PERMISSION_DENIED"
    by_query = httpx.get(f"{fake_gemini.root}/v1beta/models", params={"key": PROVIDER_KEY}, timeout=10)
    assert by_query.status_code == 200


def test_gemini_sdk_lists_models_and_raises_the_golden_quota_error(
    fake_gemini: FakeProvider, gemini_sdk: genai.Client
) -> None:
    names = [model.name for model in gemini_sdk.models.list()]
    assert names == ["models/gemini-2.5-flash", "models/gemini-2.5-pro"]
    fake_gemini.push(golden_reply("gemini", "error_429.json"))
    with pytest.raises(genai_errors.ClientError) as caught:
        gemini_sdk.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"


# --- Ollama --------------------------------------------------------------------------------------------


def test_ollama_sdk_reads_the_golden_tool_calls(fake_ollama: FakeProvider, ollama_sdk: ollama.Client) -> None:
    fake_ollama.push(golden_reply("ollama", "response_tool_calls.json"))
    response = ollama_sdk.chat(model="llama3.2", messages=HI, stream=False)
    (call,) = response.message.tool_calls or []
    assert call.function.name == "get_current_weather"
    assert call.function.arguments == {"format": "celsius", "location": "Paris, FR"}
    assert (response.done, response.done_reason, response.prompt_eval_count, response.eval_count) == (
        True,
        "stop",
        122,
        33,
    )
    (request,) = fake_ollama.received
    assert request.path == "/api/chat" and request.json()["stream"] is False


def test_ollama_sdk_streams_the_golden_thinking(fake_ollama: FakeProvider, ollama_sdk: ollama.Client) -> None:
    fake_ollama.push(golden_reply("ollama", "stream_thinking.ndjson"))
    chunks = list(ollama_sdk.chat(model="qwen3", messages=HI, stream=True, think=True))
    assert (
        "".join(chunk.message.thinking or "" for chunk in chunks)
        == "Count the letters: s-t-r-a-w-b-e-r-r-y. Three r's."
    )
    assert "".join(chunk.message.content or "" for chunk in chunks) == "There are 3 r's."
    assert chunks[-1].done and chunks[-1].eval_count == 41
    assert fake_ollama.received[0].json()["think"] is True


def test_ollama_sdk_streams_tool_calls_and_a_mid_stream_error(
    fake_ollama: FakeProvider, ollama_sdk: ollama.Client
) -> None:
    fake_ollama.push(golden_reply("ollama", "stream_tool_calls.ndjson"), golden_reply("ollama", "stream_error.ndjson"))
    chunks = list(ollama_sdk.chat(model="qwen3", messages=HI, stream=True))
    locations = [call.function.arguments["location"] for chunk in chunks for call in chunk.message.tool_calls or []]
    assert locations == ["Toronto", "Montréal"]
    assert "".join(chunk.message.content or "" for chunk in chunks) == "celsius</think>"
    received: list[str] = []
    with pytest.raises(ollama.ResponseError) as caught:
        for chunk in ollama_sdk.chat(model="llama3.2", messages=HI, stream=True):
            received.append(chunk.message.content or "")
    assert received == ["Once", " upon"] and caught.value.error == "an error was encountered while running the model"


def test_ollama_sdk_lists_tags_and_raises_the_golden_404(fake_ollama: FakeProvider, ollama_sdk: ollama.Client) -> None:
    assert [model.model for model in ollama_sdk.list().models] == ["llama3.2:latest", "qwen3:latest"]
    fake_ollama.push(golden_reply("ollama", "error_404.json"))
    with pytest.raises(ollama.ResponseError) as caught:
        ollama_sdk.chat(model="llama3", messages=HI, stream=False)
    assert caught.value.status_code == 404 and caught.value.error == 'model "llama3" not found, try pulling it first'
    assert "Authorization" not in fake_ollama.received[-1].headers


# --- every format: content types, builders through the translators, cut streams -----------------------


def _post(fake: FakeProvider, *, stream: bool, body: dict[str, Any] | None = None) -> httpx.Response:
    """A request as polyroute sends it: ``base_url_for`` plus the translator's ``request_path``."""
    fmt = fake.format
    url = base_url_for(fmt, fake.root) + TRANSLATORS[fmt].request_path(MODELS[fmt], stream=stream)
    headers = {
        "openai": {"Authorization": f"Bearer {PROVIDER_KEY}"},
        "anthropic": {"x-api-key": PROVIDER_KEY, "anthropic-version": "2023-06-01"},
        "gemini": {"x-goog-api-key": PROVIDER_KEY},
        "ollama": {},
    }[fmt]
    payload = body if body is not None else {"model": MODELS[fmt], "stream": stream, "messages": HI}
    return httpx.post(url, headers=headers, json=payload, timeout=10)


def _parse(fmt: Format, answer: httpx.Response, *, stream: bool) -> ChatResponse:
    translator = TRANSLATORS[fmt]
    if not stream:
        response: ChatResponse = translator.parse_response(answer.json())
        return response
    parser = translator.stream_parser(provider="fake")
    return accumulate([*parser.feed(answer.content), *parser.finish()], source_format=fmt)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_built_text_reply_reaches_the_translator(fakes: dict[Format, FakeProvider], fmt: Format, stream: bool) -> None:
    fake = fakes[fmt]
    fake.reset()
    fake.push(text_reply(fmt, "Grüße aus Köln!", stream=stream, input_tokens=31, output_tokens=5))
    answer = _post(fake, stream=stream)
    expected_type = STREAM_CONTENT_TYPES[fmt] if stream else "application/json"
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(expected_type)
    response = _parse(fmt, answer, stream=stream)
    assert response.parts == (TextPart(text="Grüße aus Köln!"),)
    assert (response.usage.input_tokens, response.usage.output_tokens) == (31, 5)
    assert response.finish_reason is FinishReason.STOP


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_built_tool_call_reaches_the_translator(fakes: dict[Format, FakeProvider], fmt: Format, stream: bool) -> None:
    fake = fakes[fmt]
    fake.reset()
    arguments = {"city": "Zürich", "days": 3}
    fake.push(tool_call_reply(fmt, "forecast", arguments, stream=stream, call_id="call_7", text="Checking."))
    response = _parse(fmt, _post(fake, stream=stream), stream=stream)
    texts = [part.text for part in response.parts if isinstance(part, TextPart)]
    (call,) = [part for part in response.parts if isinstance(part, ToolCallPart)]
    assert texts == ["Checking."] and call.name == "forecast" and json.loads(call.arguments) == arguments
    if fmt in ("openai", "anthropic"):
        assert call.call_id == "call_7"
    assert response.finish_reason is FinishReason.TOOL_CALLS


@pytest.mark.parametrize("fmt", FORMATS)
def test_unscripted_requests_get_a_text_answer_and_are_recorded(fakes: dict[Format, FakeProvider], fmt: Format) -> None:
    fake = fakes[fmt]
    fake.reset()
    body = {"contents": [{"parts": [{"text": "Hi"}]}]} if fmt == "gemini" else None
    response = _parse(fmt, _post(fake, stream=True, body=body), stream=True)
    assert response.parts == (TextPart(text="Hello! How can I help?"),)
    (request,) = fake.received
    assert request.method == "POST" and request.body and fake.stream_completed.wait(5)
    if fmt != "gemini":
        assert response.model == MODELS[fmt] and request.json()["model"] == MODELS[fmt]


@pytest.mark.parametrize("fmt", FORMATS)
def test_provider_config_is_a_valid_routing_entry(fakes: dict[Format, FakeProvider], fmt: Format) -> None:
    routing = parse_routing_config({"providers": [provider_config(fakes[fmt])]}, {})
    (provider,) = routing.providers
    assert (provider.name, provider.format, provider.base_url) == (f"fake-{fmt}", fmt, fakes[fmt].base_url)
    assert provider.credentials == (() if fmt == "ollama" else (PROVIDER_KEY,))
    assert [model.id for model in provider.models or []] == fakes[fmt].models


def test_a_cut_stream_leaves_the_translator_without_an_end(fake_anthropic: FakeProvider) -> None:
    fake_anthropic.push(golden_reply("anthropic", "stream_text.sse", cut_after=4))
    with httpx.stream(
        "POST",
        f"{fake_anthropic.root}/v1/messages",
        headers={"x-api-key": PROVIDER_KEY, "anthropic-version": "2023-06-01"},
        json={"model": "m", "stream": True},
        timeout=10,
    ) as answer:
        received = b""
        with pytest.raises(httpx.HTTPError):
            for chunk in answer.iter_raw():
                received += chunk
    parser = anthropic_messages.stream_parser(provider="fake")
    events = parser.feed(received)
    assert [event.kind for event in events] == ["message_start", "usage_update", "part_start", "text_delta"]
    with pytest.raises(ValueError, match="before message_stop"):
        parser.finish()
