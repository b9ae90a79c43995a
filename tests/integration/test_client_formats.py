"""Every client API through the gateway to an OpenAI-format upstream, with the official SDKs as clients.

The upstream is the OpenAI-speaking FakeUpstream; the gateway translates each client's format to it and
back. What each SDK parses must carry the upstream's text, tool calls and usage exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import pytest
from google import genai
from google.genai import types as genai_types

from tests.fakes import FakeUpstream, Reply, completion, error_body, text_stream, tool_call_stream
from tests.gateway_fixtures import ADMIN_KEY, RunningGateway

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["location"],
    },
}
CALL = {
    "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"location": "Paris, France"}'},
}


@pytest.fixture
def claude(gateway: RunningGateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key=ADMIN_KEY, max_retries=0, timeout=15) as sdk:
        yield sdk


@pytest.fixture(params=["v1beta", "v1"])
def gemini_client(gateway: RunningGateway, request: pytest.FixtureRequest) -> Iterator[genai.Client]:
    """The google-genai SDK on both of Gemini's API versions."""
    options = genai_types.HttpOptions(base_url=gateway.url, api_version=request.param, timeout=15_000)
    sdk = genai.Client(api_key=ADMIN_KEY, http_options=options)
    yield sdk
    sdk.close()


@pytest.fixture
def ollama_client(gateway: RunningGateway) -> Iterator[ollama.Client]:
    sdk = ollama.Client(host=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15)
    yield sdk
    sdk.close()


# --- Anthropic Messages ---------------------------------------------------------------------------------------------


def test_anthropic_sdk_message_from_openai_upstream(claude: anthropic.Anthropic, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(json_body=completion("Bonjour!", prompt_tokens=31, completion_tokens=4)))
    message = claude.messages.create(
        model="mock/gpt-4o",
        max_tokens=256,
        system="Answer in French.",
        messages=[{"role": "user", "content": "Say hello"}],
        stop_sequences=["###"],
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Bonjour!"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (31, 4)
    sent = fake_upstream.received[-1].json()
    assert sent["model"] == "gpt-4o"
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Say hello"},
    ]
    assert sent["max_completion_tokens"] == 256
    assert sent["stop"] == ["###"]


def test_anthropic_sdk_tool_use_loop(claude: anthropic.Anthropic, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(json_body=completion(tool_calls=[CALL])))
    first = claude.messages.create(
        model="mock/gpt-4o",
        max_tokens=256,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    assert first.stop_reason == "tool_use"
    call = first.content[0]
    assert call.type == "tool_use"
    assert (call.id, call.name, call.input) == (CALL["id"], "get_weather", {"location": "Paris, France"})
    sent = fake_upstream.received[-1].json()
    assert sent["tools"][0]["function"]["parameters"] == WEATHER_TOOL["input_schema"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}

    fake_upstream.push(Reply(json_body=completion("It is 18 C in Paris.")))
    second = claude.messages.create(
        model="mock/gpt-4o",
        max_tokens=256,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C"}]},
        ],
    )
    assert second.content[0].text == "It is 18 C in Paris."
    history = fake_upstream.received[-1].json()["messages"]
    assert history[1]["tool_calls"][0]["id"] == CALL["id"]
    assert json.loads(history[1]["tool_calls"][0]["function"]["arguments"]) == {"location": "Paris, France"}
    assert history[2] == {"role": "tool", "tool_call_id": CALL["id"], "content": "18 C"}


def test_anthropic_sdk_stream_text(claude: anthropic.Anthropic, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(events=text_stream(include_usage=True, prompt_tokens=12)))
    with claude.messages.stream(
        model="mock/gpt-4o", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello! How can I help?"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 7
    assert fake_upstream.received[-1].json()["stream_options"] == {"include_usage": True}


def test_anthropic_sdk_stream_tool_call_arguments_whole(
    claude: anthropic.Anthropic, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(Reply(events=tool_call_stream()))
    with claude.messages.stream(
        model="mock/gpt-4o", max_tokens=64, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "weather"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use"
    assert final.content[0].input == {"location": "Paris, France"}


def test_anthropic_error_shape_and_x_api_key(gateway: RunningGateway, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(status=400, json_body=error_body("context too long", code="context_length_exceeded")))
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        answer = http.post(
            "/v1/messages",
            headers={"x-api-key": ADMIN_KEY, "anthropic-version": "2023-06-01"},
            json={"model": "mock/gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        )
        unauthenticated = http.post("/v1/messages", json={})
    assert answer.status_code == 400
    body = answer.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "context too long" in body["error"]["message"]
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["type"] == "error"
    assert unauthenticated.json()["error"]["type"] == "authentication_error"


def test_anthropic_count_tokens_estimate(claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(model="mock/gpt-4o", messages=[{"role": "user", "content": "x" * 400}])
    # 400 bytes / 4 + 3 per message + 3 for the reply (core/estimate.py).
    assert counted.input_tokens == 106


def test_strict_mode_names_the_dropped_field(gateway: RunningGateway, fake_upstream: FakeUpstream) -> None:
    request = {"model": "mock/gpt-4o", "max_tokens": 5, "top_k": 3, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": ADMIN_KEY, "x-polyroute-strict": "true"}
    before = len(fake_upstream.received)
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        answer = http.post("/v1/messages", headers=headers, json=request)
    assert answer.status_code == 400
    assert "top_k" in answer.json()["error"]["message"]
    assert len(fake_upstream.received) == before


# --- Gemini ---------------------------------------------------------------------------------------------------------


def test_genai_sdk_generate_content(gemini_client: genai.Client, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(json_body=completion("Paris.", prompt_tokens=9, completion_tokens=2)))
    answer = gemini_client.models.generate_content(
        model="mock/gpt-4o",
        contents="Capital of France?",
        config=genai_types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=20, top_p=0.5),
    )
    assert answer.text == "Paris."
    assert answer.usage_metadata is not None
    assert (answer.usage_metadata.prompt_token_count, answer.usage_metadata.candidates_token_count) == (9, 2)
    sent = fake_upstream.received[-1].json()
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_completion_tokens"] == 20
    assert sent["top_p"] == 0.5


def test_genai_sdk_stream(gemini_client: genai.Client, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(events=text_stream(include_usage=True)))
    chunks = list(gemini_client.models.generate_content_stream(model="mock/gpt-4o", contents="hi"))
    assert "".join(chunk.text or "" for chunk in chunks) == "Hello! How can I help?"
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata.candidates_token_count == 7


def test_genai_sdk_function_calling(gemini_client: genai.Client, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(json_body=completion(tool_calls=[CALL])))
    tool = genai_types.Tool(
        function_declarations=[
            genai_types.FunctionDeclaration(
                name="get_weather",
                description="Current weather for a city",
                parameters_json_schema=WEATHER_TOOL["input_schema"],
            )
        ]
    )
    answer = gemini_client.models.generate_content(
        model="mock/gpt-4o",
        contents="Weather in Paris?",
        config=genai_types.GenerateContentConfig(
            tools=[tool], automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True)
        ),
    )
    assert answer.function_calls is not None
    assert answer.function_calls[0].name == "get_weather"
    assert answer.function_calls[0].args == {"location": "Paris, France"}
    sent = fake_upstream.received[-1].json()
    assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_gemini_key_in_query_and_error_shape(gateway: RunningGateway, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(status=429, json_body=error_body("slow down", type_="rate_limit_error")))
    with httpx.Client(base_url=gateway.url, timeout=15) as http:
        answer = http.post(
            f"/v1beta/models/mock/gpt-4o:generateContent?key={ADMIN_KEY}",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        )
        wrong = http.post("/v1beta/models/mock/gpt-4o:generateContent?key=nope", json={})
    assert answer.status_code == 429
    assert answer.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert wrong.status_code == 401
    assert wrong.json()["error"]["status"] == "UNAUTHENTICATED"


def test_gemini_model_listing(gemini_client: genai.Client) -> None:
    names = [model.name for model in gemini_client.models.list()]
    assert "models/mock/gpt-4o" in names


# --- Ollama ---------------------------------------------------------------------------------------------------------


def test_ollama_sdk_chat_and_stream(ollama_client: ollama.Client, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(json_body=completion("Hi there", prompt_tokens=5, completion_tokens=2)))
    answer = ollama_client.chat(model="mock/gpt-4o", messages=[{"role": "user", "content": "hello"}], stream=False)
    assert answer.message.content == "Hi there"
    assert (answer.prompt_eval_count, answer.eval_count) == (5, 2)
    fake_upstream.push(Reply(events=text_stream()))
    parts = list(ollama_client.chat(model="mock/gpt-4o", messages=[{"role": "user", "content": "hello"}], stream=True))
    assert "".join(part.message.content or "" for part in parts) == "Hello! How can I help?"
    assert parts[-1].done is True


def test_ollama_sdk_tool_call_and_generate(ollama_client: ollama.Client, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(json_body=completion(tool_calls=[CALL])))
    answer = ollama_client.chat(
        model="mock/gpt-4o",
        messages=[{"role": "user", "content": "weather"}],
        tools=[{"type": "function", "function": {**WEATHER_TOOL, "parameters": WEATHER_TOOL["input_schema"]}}],
        stream=False,
    )
    assert answer.message.tool_calls is not None
    assert answer.message.tool_calls[0].function.arguments == {"location": "Paris, France"}
    fake_upstream.push(Reply(json_body=completion("42")))
    generated = ollama_client.generate(model="mock/gpt-4o", prompt="6 x 7?", system="numbers only", stream=False)
    assert generated.response == "42"
    assert fake_upstream.received[-1].json()["messages"][0] == {"role": "system", "content": "numbers only"}


def test_ollama_tags_and_show(ollama_client: ollama.Client) -> None:
    names = [model.model for model in ollama_client.list().models]
    assert "mock/gpt-4o" in names
    shown = ollama_client.show("mock/gpt-4o")
    assert shown.capabilities is not None
    assert "completion" in shown.capabilities
    with pytest.raises(ollama.ResponseError) as missing:
        ollama_client.show("nope/none")
    assert missing.value.status_code == 404


# --- OpenAI Responses -----------------------------------------------------------------------------------------------


def test_openai_sdk_responses_with_previous_response(client: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(json_body=completion("Nice to meet you, Ada.", prompt_tokens=14, completion_tokens=6)))
    first = client.responses.create(model="mock/gpt-4o", instructions="Be warm.", input="I am Ada.")
    assert first.id.startswith("resp_")
    assert first.output_text == "Nice to meet you, Ada."
    assert (first.usage.input_tokens, first.usage.output_tokens) == (14, 6)
    fake_upstream.push(Reply(json_body=completion("Your name is Ada.")))
    second = client.responses.create(model="mock/gpt-4o", previous_response_id=first.id, input="Who am I?")
    assert second.output_text == "Your name is Ada."
    sent = fake_upstream.received[-1].json()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == "Nice to meet you, Ada."
    assert client.responses.retrieve(first.id).output_text == "Nice to meet you, Ada."
    client.responses.delete(first.id)
    with pytest.raises(Exception, match="not found"):
        client.responses.retrieve(first.id)


def test_openai_sdk_responses_stream_and_tools(client: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(events=tool_call_stream()))
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]}
    with client.responses.stream(model="mock/gpt-4o", input="weather?", tools=[tool], store=False) as stream:
        final = stream.get_final_response()
    call = final.output[0]
    assert call.type == "function_call"
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"location": "Paris, France"})
    fake_upstream.push(Reply(events=text_stream(include_usage=True)))
    deltas = [
        e.delta
        for e in client.responses.create(model="mock/gpt-4o", input="hi", stream=True)
        if e.type == "response.output_text.delta"
    ]
    assert "".join(deltas) == "Hello! How can I help?"


def test_gemini_stream_without_alt_sse_is_one_json_array(raw: httpx.Client, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(Reply(events=text_stream(include_usage=True)))
    answer = raw.post(
        "/v1beta/models/mock/gpt-4o:streamGenerateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    )
    assert answer.status_code == 200
    chunks = json.loads(answer.content)
    assert isinstance(chunks, list)
    text = "".join(
        part["text"] for c in chunks for part in c.get("candidates", [{}])[0].get("content", {}).get("parts", [])
    )
    assert text == "Hello! How can I help?"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 7


def test_gemini_unknown_method_is_404_in_gemini_shape(raw: httpx.Client) -> None:
    answer = raw.post("/v1beta/models/mock/gpt-4o:embedEverything", json={})
    assert answer.status_code == 404
    assert answer.json()["error"]["status"] == "NOT_FOUND"
