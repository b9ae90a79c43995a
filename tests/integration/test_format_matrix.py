"""The client × upstream format matrix: every client SDK against every upstream wire format.

One gateway routes to four fake providers, one per upstream format (``openai``, ``anthropic``,
``gemini``, ``ollama``), so ``<format>-fake/<model>`` reaches each. Every test asserts both ends: what
the official client SDK parsed (text, tool call, finish reason in the client's own vocabulary, usage
exactly as the upstream counted it) and what the upstream received (its path, the model id it knows,
the system prompt where its format puts it, the tool with its whole JSON Schema, its own credential).

The fixtures here are shared with ``test_format_matrix_edges.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import anthropic
import ollama
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from tests.fake_providers import (
    FORMATS,
    PROVIDER_KEY,
    FakeProvider,
    Format,
    ProviderRequest,
    provider_config,
    text_reply,
    tool_call_reply,
)
from tests.fakes import Reply
from tests.gateway_fixtures import ADMIN_KEY, RunningGateway, start_gateway

OLLAMA_KEY: Final = "ollama-hosted-key-5555"
"""Ollama itself takes no key; the Ollama provider is given one to see the bearer header it sends."""
UPSTREAM_MODELS: Final[dict[Format, str]] = {
    "openai": "gpt-4o",
    "anthropic": "claude-opus-4-6",
    "gemini": "gemini-2.5-flash",
    "ollama": "llama3.2:latest",
}
CLIENTS: Final = ("openai", "anthropic", "responses", "gemini", "ollama")

SYSTEM: Final = "You are a terse weather assistant."
PROMPT: Final = "What is the weather in Paris?"
ANSWER: Final = "Sunny and 18 degrees in Paris."
MAX_TOKENS: Final = 300
USAGE: Final = (25, 7)
TOOL_NAME: Final = "get_weather"
TOOL_DESCRIPTION: Final = "Current weather for a city"
SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "City and country, e.g. Paris, France"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
        "hours": {
            "type": "array",
            "description": "Hour ranges of the forecast",
            "items": {
                "type": "object",
                "properties": {"from": {"type": "integer"}, "to": {"type": "integer"}},
                "required": ["from"],
            },
        },
    },
    "required": ["location"],
}
ARGUMENTS: Final = {"location": "Paris, France", "unit": "celsius", "hours": [{"from": 9, "to": 12}]}
CALL_IDS: Final[dict[Format, str]] = {"openai": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "anthropic": "toolu_01A09q90qw90lq9"}
RESULT: Final = {"temperature_c": 18, "sky": "clear"}
FINAL_ANSWER: Final = "It is 18 C and clear in Paris."

OPENAI_TOOL: Final[Any] = {
    "type": "function",
    "function": {"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "parameters": SCHEMA},
}
ANTHROPIC_TOOL: Final[Any] = {"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "input_schema": SCHEMA}
RESPONSES_TOOL: Final[Any] = {
    "type": "function",
    "name": TOOL_NAME,
    "description": TOOL_DESCRIPTION,
    "parameters": SCHEMA,
}
GEMINI_TOOL: Final = genai_types.Tool(
    function_declarations=[
        genai_types.FunctionDeclaration(name=TOOL_NAME, description=TOOL_DESCRIPTION, parameters_json_schema=SCHEMA)
    ]
)
GEMINI_NO_AFC: Final = genai_types.AutomaticFunctionCallingConfig(disable=True)

FINISH: Final[dict[str, dict[str, str]]] = {
    "openai": {"text": "stop", "tool": "tool_calls"},
    "anthropic": {"text": "end_turn", "tool": "tool_use"},
    "responses": {"text": "completed", "tool": "completed"},
    "gemini": {"text": "STOP", "tool": "STOP"},
    "ollama": {"text": "stop", "tool": "stop"},
}
"""The finish of a text answer and of a tool call, in each client's vocabulary (Responses: ``status``)."""


def routed(fmt: Format) -> str:
    """The model name that routes to the fake speaking ``fmt``."""
    return f"{fmt}-fake/{UPSTREAM_MODELS[fmt]}"


# --- the gateway and the clients -------------------------------------------------------------------------------------


@dataclass
class Matrix:
    """The gateway in front of one fake provider per upstream format."""

    gateway: RunningGateway
    fakes: dict[Format, FakeProvider]

    def stop(self) -> None:
        self.gateway.stop()
        for fake in self.fakes.values():
            fake.stop()


_MATRIX_KEY = pytest.StashKey[Matrix]()


def matrix_routing(fakes: dict[Format, FakeProvider]) -> dict[str, Any]:
    providers = [provider_config(fake, f"{fmt}-fake") for fmt, fake in fakes.items()]
    for entry in providers:
        if entry["format"] == "ollama":
            entry["api_key"] = OLLAMA_KEY
    return {"providers": providers}


@pytest.fixture(scope="session")
def matrix(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    """One gateway for the whole session (shared by both matrix modules), loopback image fetches allowed."""
    found = request.config.stash.get(_MATRIX_KEY, None)
    if found is not None:
        return found
    fakes: dict[Format, FakeProvider] = {fmt: FakeProvider(fmt).start() for fmt in FORMATS}
    data_dir: Path = tmp_path_factory.mktemp("matrix-gateway")
    running = Matrix(start_gateway(matrix_routing(fakes), data_dir, image_fetch_private=True), fakes)
    request.config.stash[_MATRIX_KEY] = running
    request.config.add_cleanup(running.stop)
    return running


@pytest.fixture(autouse=True)
def fresh_fakes(matrix: Matrix) -> Matrix:
    for fake in matrix.fakes.values():
        fake.reset()
    return matrix


@dataclass
class Clients:
    """The official SDK of every client API, pointed at the gateway."""

    openai: openai.OpenAI
    anthropic: anthropic.Anthropic
    gemini: genai.Client
    ollama: ollama.Client


@pytest.fixture(scope="session")
def sdks(matrix: Matrix) -> Iterator[Clients]:
    url = matrix.gateway.url
    options = genai_types.HttpOptions(base_url=url, api_version="v1beta", timeout=15_000)
    clients = Clients(
        openai=openai.OpenAI(base_url=f"{url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=15),
        anthropic=anthropic.Anthropic(base_url=url, api_key=ADMIN_KEY, max_retries=0, timeout=15),
        gemini=genai.Client(api_key=ADMIN_KEY, http_options=options),
        ollama=ollama.Client(host=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15),
    )
    yield clients
    clients.openai.close()
    clients.anthropic.close()
    clients.gemini.close()
    clients.ollama.close()  # type: ignore[no-untyped-call]


# --- what the clients parsed -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Got:
    """One answer as a client SDK parsed it."""

    text: str
    tool: tuple[str, dict[str, Any]] | None
    finish: str | None
    usage: tuple[int | None, int | None]


def ask_openai(sdks: Clients, model: str, *, stream: bool) -> Got:
    messages: Any = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    kwargs: Any = {"model": model, "messages": messages, "tools": [OPENAI_TOOL], "max_completion_tokens": MAX_TOKENS}
    if not stream:
        completion = sdks.openai.chat.completions.create(**kwargs)
        message = completion.choices[0].message
        calls = message.tool_calls or []
        tool = (calls[0].function.name, json.loads(calls[0].function.arguments)) if calls else None
        usage = completion.usage
        assert usage is not None
        return Got(
            message.content or "",
            tool,
            completion.choices[0].finish_reason,
            (usage.prompt_tokens, usage.completion_tokens),
        )
    text, name, arguments, finish, counts = "", None, "", None, (None, None)
    for chunk in sdks.openai.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None:
            counts = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                name = name or (call.function.name if call.function else None)
                arguments += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    return Got(text, (name, json.loads(arguments)) if name else None, finish, counts)


def ask_anthropic(sdks: Clients, model: str, *, stream: bool) -> Got:
    kwargs: Any = {
        "model": model,
        "max_tokens": MAX_TOKENS,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": PROMPT}],
        "tools": [ANTHROPIC_TOOL],
    }
    if stream:
        with sdks.anthropic.messages.stream(**kwargs) as events:
            streamed = "".join(events.text_stream)
            message = events.get_final_message()
    else:
        message = sdks.anthropic.messages.create(**kwargs)
    text = "".join(block.text for block in message.content if block.type == "text")
    if stream:
        assert streamed == text
    tool = next(((b.name, b.input) for b in message.content if b.type == "tool_use"), None)
    return Got(text, tool, message.stop_reason, (message.usage.input_tokens, message.usage.output_tokens))


def ask_responses(sdks: Clients, model: str, *, stream: bool) -> Got:
    kwargs: Any = {
        "model": model,
        "instructions": SYSTEM,
        "input": PROMPT,
        "tools": [RESPONSES_TOOL],
        "max_output_tokens": MAX_TOKENS,
    }
    if stream:
        with sdks.openai.responses.stream(**kwargs) as events:
            response = events.get_final_response()
    else:
        response = sdks.openai.responses.create(**kwargs)
    calls = [item for item in response.output if item.type == "function_call"]
    tool = (calls[0].name, json.loads(calls[0].arguments)) if calls else None
    usage = response.usage
    assert usage is not None
    return Got(response.output_text, tool, response.status, (usage.input_tokens, usage.output_tokens))


def ask_gemini(sdks: Clients, model: str, *, stream: bool) -> Got:
    config = genai_types.GenerateContentConfig(
        system_instruction=SYSTEM,
        max_output_tokens=MAX_TOKENS,
        tools=[GEMINI_TOOL],
        automatic_function_calling=GEMINI_NO_AFC,
    )
    if stream:
        chunks = list(sdks.gemini.models.generate_content_stream(model=model, contents=PROMPT, config=config))
    else:
        chunks = [sdks.gemini.models.generate_content(model=model, contents=PROMPT, config=config)]
    text, tool = "", None
    for chunk in chunks:
        content = chunk.candidates[0].content if chunk.candidates else None
        for part in (content.parts if content else None) or []:
            text += part.text or ""
            if part.function_call is not None:
                tool = (part.function_call.name or "", dict(part.function_call.args or {}))
    last = chunks[-1]
    reason = last.candidates[0].finish_reason if last.candidates else None
    meta = last.usage_metadata
    assert meta is not None
    return Got(text, tool, reason.value if reason else None, (meta.prompt_token_count, meta.candidates_token_count))


def ask_ollama(sdks: Clients, model: str, *, stream: bool) -> Got:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    kwargs: Any = {"model": model, "messages": messages, "tools": [OPENAI_TOOL], "options": {"num_predict": MAX_TOKENS}}
    parts = list(sdks.ollama.chat(**kwargs, stream=True)) if stream else [sdks.ollama.chat(**kwargs, stream=False)]
    text = "".join(part.message.content or "" for part in parts)
    calls = [call for part in parts for call in part.message.tool_calls or []]
    tool = (calls[0].function.name, dict(calls[0].function.arguments)) if calls else None
    last = parts[-1]
    assert last.done is True
    return Got(text, tool, last.done_reason, (last.prompt_eval_count, last.eval_count))


ASK: Final[dict[str, Callable[..., Got]]] = {
    "openai": ask_openai,
    "anthropic": ask_anthropic,
    "responses": ask_responses,
    "gemini": ask_gemini,
    "ollama": ask_ollama,
}


# --- what the upstream received --------------------------------------------------------------------------------------


def text_of(content: Any) -> str:
    """The text of a content value in any format: a string, or a list of text blocks or parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return text_of(content.get("parts", content.get("text")))
    return "".join(text_of(item) if not isinstance(item, dict) else str(item.get("text", "")) for item in content)


def assert_credentials(fmt: Format, received: ProviderRequest) -> None:
    """The provider's own credential, in its format's header; the client's gateway key never leaves."""
    headers = {name.lower(): value for name, value in received.headers.items()}
    assert ADMIN_KEY not in json.dumps(headers)
    if fmt == "anthropic":
        assert headers["x-api-key"] == PROVIDER_KEY
        assert headers["anthropic-version"] == "2023-06-01"
        assert "authorization" not in headers
    elif fmt == "gemini":
        assert headers["x-goog-api-key"] == PROVIDER_KEY
        assert "authorization" not in headers
        assert "key" not in received.query
    else:
        assert headers["authorization"] == f"Bearer {OLLAMA_KEY if fmt == 'ollama' else PROVIDER_KEY}"


def assert_openai_request(body: dict[str, Any], *, stream: bool) -> None:
    assert body["model"] == "gpt-4o"
    assert [(m["role"], text_of(m["content"])) for m in body["messages"]] == [("system", SYSTEM), ("user", PROMPT)]
    assert (body["max_completion_tokens"], "max_tokens" in body) == (MAX_TOKENS, False)
    assert body.get("stream", False) is stream


def assert_anthropic_request(body: dict[str, Any], *, stream: bool) -> None:
    assert body["model"] == "claude-opus-4-6"
    assert text_of(body["system"]) == SYSTEM
    assert [(m["role"], text_of(m["content"])) for m in body["messages"]] == [("user", PROMPT)]
    assert body["max_tokens"] == MAX_TOKENS
    assert body.get("stream", False) is stream


def assert_gemini_request(received: ProviderRequest, body: dict[str, Any], *, stream: bool) -> None:
    method = "streamGenerateContent" if stream else "generateContent"
    assert received.path == f"/v1beta/models/gemini-2.5-flash:{method}"
    assert received.query == ({"alt": "sse"} if stream else {})
    assert "model" not in body
    assert text_of(body["systemInstruction"]) == SYSTEM
    assert [(c["role"], text_of(c)) for c in body["contents"]] == [("user", PROMPT)]
    assert body["generationConfig"]["maxOutputTokens"] == MAX_TOKENS


def assert_ollama_request(body: dict[str, Any], *, stream: bool) -> None:
    assert body["model"] == "llama3.2:latest"
    assert [(m["role"], m["content"]) for m in body["messages"]] == [("system", SYSTEM), ("user", PROMPT)]
    assert body["options"]["num_predict"] == MAX_TOKENS
    assert body["stream"] is stream


PATHS: Final[dict[Format, str]] = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages", "ollama": "/api/chat"}


_SCHEMA_KEYS: Final = ("parameters", "parametersJsonSchema", "parameters_json_schema")
"""Gemini's two schema fields; proto JSON also takes the snake_case name, which google-genai sends as is."""


def sent_tools(fmt: Format, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tools of a ``fmt`` request body, each as ``{name, description, parameters}`` (nothing else allowed)."""
    if fmt == "anthropic":
        return [
            {**{k: v for k, v in t.items() if k != "input_schema"}, "parameters": t["input_schema"]}
            for t in body["tools"]
        ]
    if fmt == "gemini":
        assert len(body["tools"]) == 1 and body["tools"][0].keys() == {"functionDeclarations"}
        found = []
        for declaration in body["tools"][0]["functionDeclarations"]:
            schemas = [key for key in _SCHEMA_KEYS if key in declaration]
            assert len(schemas) == 1, declaration
            found.append(
                {**{k: v for k, v in declaration.items() if k != schemas[0]}, "parameters": declaration[schemas[0]]}
            )
        return found
    assert all(tool["type"] == "function" and tool.keys() == {"type", "function"} for tool in body["tools"])
    return [tool["function"] for tool in body["tools"]]


WEATHER_SPEC: Final = {"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "parameters": SCHEMA}


def assert_upstream_request(fmt: Format, fake: FakeProvider, *, stream: bool) -> dict[str, Any]:
    """The one request ``fake`` received was a well-formed ``fmt`` request for the matrix question; its body."""
    assert len(fake.received) == 1
    received = fake.received[-1]
    assert received.method == "POST"
    assert_credentials(fmt, received)
    body: dict[str, Any] = received.json()
    if fmt == "gemini":
        assert_gemini_request(received, body, stream=stream)
        return body
    assert received.path == PATHS[fmt]
    {"openai": assert_openai_request, "anthropic": assert_anthropic_request, "ollama": assert_ollama_request}[fmt](
        body, stream=stream
    )
    return body


def upstream_answer(fmt: Format, kind: str, *, stream: bool) -> Reply:
    """The fake's answer for the matrix question: text, or one call of the tool, with usage 25 in / 7 out."""
    counts: dict[str, Any] = {"input_tokens": USAGE[0], "output_tokens": USAGE[1], "model": UPSTREAM_MODELS[fmt]}
    if kind == "text":
        return text_reply(fmt, ANSWER, stream=stream, **counts)
    extra = {"call_id": CALL_IDS[fmt]} if fmt in CALL_IDS else {}
    return tool_call_reply(fmt, TOOL_NAME, ARGUMENTS, stream=stream, **counts, **extra)


# --- the matrix ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["text", "tool"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("upstream", FORMATS)
@pytest.mark.parametrize("client", CLIENTS)
def test_matrix(client: str, upstream: Format, stream: bool, kind: str, matrix: Matrix, sdks: Clients) -> None:
    fake = matrix.fakes[upstream]
    fake.push(upstream_answer(upstream, kind, stream=stream))
    got = ASK[client](sdks, routed(upstream), stream=stream)
    expected_tool = (TOOL_NAME, ARGUMENTS) if kind == "tool" else None
    assert got == Got(ANSWER if kind == "text" else "", expected_tool, FINISH[client][kind], USAGE)
    body = assert_upstream_request(upstream, fake, stream=stream)
    assert sent_tools(upstream, body) == [WEATHER_SPEC]


@pytest.mark.parametrize("upstream", ["openai", "anthropic", "ollama"])
def test_gemini_sdk_tool_schema_reaches_other_formats(upstream: Format, matrix: Matrix, sdks: Clients) -> None:
    matrix.fakes[upstream].push(upstream_answer(upstream, "tool", stream=False))
    assert ask_gemini(sdks, routed(upstream), stream=False).tool == (TOOL_NAME, ARGUMENTS)
    assert sent_tools(upstream, matrix.fakes[upstream].received[-1].json()) == [WEATHER_SPEC]


def ask_generate(sdks: Clients, model: str, *, stream: bool) -> Got:
    """Ollama's ``/api/generate``: a prompt and a system prompt instead of a conversation."""
    kwargs: Any = {"model": model, "prompt": PROMPT, "system": SYSTEM, "options": {"num_predict": MAX_TOKENS}}
    parts = list(sdks.ollama.generate(**kwargs, stream=True)) if stream else [sdks.ollama.generate(**kwargs)]
    last = parts[-1]
    assert last.done is True and all(part.done is False for part in parts[:-1])
    text = "".join(part.response or "" for part in parts)
    return Got(text, None, last.done_reason, (last.prompt_eval_count, last.eval_count))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("upstream", FORMATS)
def test_ollama_generate(upstream: Format, stream: bool, matrix: Matrix, sdks: Clients) -> None:
    fake = matrix.fakes[upstream]
    fake.push(upstream_answer(upstream, "text", stream=stream))
    assert ask_generate(sdks, routed(upstream), stream=stream) == Got(ANSWER, None, "stop", USAGE)
    assert "tools" not in assert_upstream_request(upstream, fake, stream=stream)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("upstream", FORMATS)
def test_gemini_sdk_on_stable_v1_paths(upstream: Format, stream: bool, matrix: Matrix, sdks: Clients) -> None:
    options = genai_types.HttpOptions(base_url=matrix.gateway.url, api_version="v1", timeout=15_000)
    v1 = genai.Client(api_key=ADMIN_KEY, http_options=options)
    fake = matrix.fakes[upstream]
    fake.push(upstream_answer(upstream, "tool", stream=stream))
    try:
        got = ask_gemini(replace(sdks, gemini=v1), routed(upstream), stream=stream)
    finally:
        v1.close()
    assert got == Got("", (TOOL_NAME, ARGUMENTS), "STOP", USAGE)
    body = assert_upstream_request(upstream, fake, stream=stream)
    assert [tool["name"] for tool in sent_tools(upstream, body)] == [TOOL_NAME]


# --- tool round trips ------------------------------------------------------------------------------------------------

RESULT_TEXT: Final = json.dumps(RESULT)


def round_trip_openai(sdks: Clients, model: str) -> tuple[str, str | None]:
    messages: Any = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    first = sdks.openai.chat.completions.create(model=model, messages=messages, tools=[OPENAI_TOOL])
    assert first.choices[0].message.tool_calls is not None
    call = first.choices[0].message.tool_calls[0]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": RESULT_TEXT})
    second = sdks.openai.chat.completions.create(model=model, messages=messages, tools=[OPENAI_TOOL])
    return second.choices[0].message.content or "", call.id


def round_trip_anthropic(sdks: Clients, model: str) -> tuple[str, str | None]:
    messages: Any = [{"role": "user", "content": PROMPT}]
    kwargs: Any = {"model": model, "max_tokens": MAX_TOKENS, "system": SYSTEM, "tools": [ANTHROPIC_TOOL]}
    first = sdks.anthropic.messages.create(messages=messages, **kwargs)
    (call,) = [block for block in first.content if block.type == "tool_use"]
    messages.append({"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]})
    result = {"type": "tool_result", "tool_use_id": call.id, "content": RESULT_TEXT}
    messages.append({"role": "user", "content": [result]})
    second = sdks.anthropic.messages.create(messages=messages, **kwargs)
    return "".join(block.text for block in second.content if block.type == "text"), call.id


def round_trip_responses(sdks: Clients, model: str) -> tuple[str, str | None]:
    kwargs: Any = {"model": model, "instructions": SYSTEM, "tools": [RESPONSES_TOOL], "store": False}
    first = sdks.openai.responses.create(input=PROMPT, **kwargs)
    (call,) = [item for item in first.output if item.type == "function_call"]
    history: Any = [
        {"role": "user", "content": PROMPT},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": RESULT_TEXT},
    ]
    second = sdks.openai.responses.create(input=history, **kwargs)
    return second.output_text, call.call_id


def round_trip_gemini(sdks: Clients, model: str) -> tuple[str, str | None]:
    config = genai_types.GenerateContentConfig(
        system_instruction=SYSTEM, tools=[GEMINI_TOOL], automatic_function_calling=GEMINI_NO_AFC
    )
    question = genai_types.Content(role="user", parts=[genai_types.Part(text=PROMPT)])
    first = sdks.gemini.models.generate_content(model=model, contents=[question], config=config)
    assert first.function_calls is not None and first.candidates and first.candidates[0].content
    call = first.function_calls[0]
    response = genai_types.FunctionResponse(id=call.id, name=call.name, response=RESULT)
    answer = genai_types.Content(role="user", parts=[genai_types.Part(function_response=response)])
    contents = [question, first.candidates[0].content, answer]
    second = sdks.gemini.models.generate_content(model=model, contents=contents, config=config)
    return second.text or "", call.id


def round_trip_ollama(sdks: Clients, model: str) -> tuple[str, str | None]:
    messages: Any = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    first = sdks.ollama.chat(model=model, messages=messages, tools=[OPENAI_TOOL], stream=False)
    messages.append(first.message)
    messages.append({"role": "tool", "content": RESULT_TEXT, "tool_name": TOOL_NAME})
    second = sdks.ollama.chat(model=model, messages=messages, tools=[OPENAI_TOOL], stream=False)
    return second.message.content or "", None


ROUND_TRIP: Final[dict[str, Callable[[Clients, str], tuple[str, str | None]]]] = {
    "openai": round_trip_openai,
    "anthropic": round_trip_anthropic,
    "responses": round_trip_responses,
    "gemini": round_trip_gemini,
    "ollama": round_trip_ollama,
}


def tool_result_attached(fmt: Format, body: dict[str, Any]) -> str | None:
    """Assert the history carries the call and its result, tied together as ``fmt`` ties them; the call id."""
    if fmt == "openai":
        messages = body["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
        (call,) = messages[2]["tool_calls"]
        assert (call["type"], call["function"]["name"]) == ("function", TOOL_NAME)
        assert json.loads(call["function"]["arguments"]) == ARGUMENTS
        assert messages[3]["tool_call_id"] == call["id"]
        assert json.loads(text_of(messages[3]["content"])) == RESULT
        return str(call["id"])
    if fmt == "anthropic":
        messages = body["messages"]
        assert text_of(body["system"]) == SYSTEM
        assert [m["role"] for m in messages] == ["user", "assistant", "user"]
        (call,) = [block for block in messages[1]["content"] if block["type"] == "tool_use"]
        assert (call["name"], call["input"]) == (TOOL_NAME, ARGUMENTS)
        (result,) = messages[2]["content"]
        assert (result["type"], result["tool_use_id"]) == ("tool_result", call["id"])
        assert json.loads(text_of(result["content"])) == RESULT
        return str(call["id"])
    if fmt == "gemini":
        contents = body["contents"]
        assert text_of(body["systemInstruction"]) == SYSTEM
        assert [c["role"] for c in contents] == ["user", "model", "user"]
        (call,) = [part["functionCall"] for part in contents[1]["parts"] if "functionCall" in part]
        (result,) = [part["functionResponse"] for part in contents[2]["parts"]]
        assert (call["name"], call["args"]) == (TOOL_NAME, ARGUMENTS)
        assert (result["name"], result["response"]) == (TOOL_NAME, RESULT)
        assert result.get("id") == call.get("id")
        return str(call["id"]) if "id" in call else None
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    (call,) = messages[2]["tool_calls"]
    assert call["function"] == {"name": TOOL_NAME, "arguments": ARGUMENTS}
    assert (messages[3]["tool_name"], json.loads(messages[3]["content"])) == (TOOL_NAME, RESULT)
    return None


@pytest.mark.parametrize("upstream", FORMATS)
@pytest.mark.parametrize("client", CLIENTS)
def test_tool_round_trip(client: str, upstream: Format, matrix: Matrix, sdks: Clients) -> None:
    fake = matrix.fakes[upstream]
    counts: dict[str, Any] = {"input_tokens": USAGE[0], "output_tokens": USAGE[1]}
    fake.push(upstream_answer(upstream, "tool", stream=False), text_reply(upstream, FINAL_ANSWER, **counts))
    final, client_call_id = ROUND_TRIP[client](sdks, routed(upstream))
    assert final == FINAL_ANSWER
    assert len(fake.received) == 2
    sent_call_id = tool_result_attached(upstream, fake.received[-1].json())
    if upstream in CALL_IDS and client in ("openai", "anthropic", "responses"):
        # Clients that keep call ids get the upstream's own, and it comes back unchanged.
        assert client_call_id == sent_call_id == CALL_IDS[upstream]
