"""OpenAI Chat Completions translation: request/response round trips, validation, tables and streams."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from polyroute.core.accumulate import accumulate
from polyroute.core.events import (
    MessageEnd,
    MessageStart,
    PartEnd,
    PartStart,
    ReasoningDelta,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ToolArgumentsDelta,
    UsageUpdate,
)
from polyroute.core.messages import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
    Message,
    ReasoningPart,
    ResponseFormat,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    Usage,
)
from polyroute.errors import InvalidRequestError, UpstreamServerError
from polyroute.types import JSONObject
from polyroute.wire.openai_chat import request as openai_chat_request
from polyroute.wire.openai_chat import response as openai_chat_response
from polyroute.wire.openai_chat.errors import render_stream_error
from polyroute.wire.openai_chat.request import parse_request, render_request
from polyroute.wire.openai_chat.response import parse_response, render_response
from polyroute.wire.openai_chat.stream import StreamParser, StreamRenderer
from polyroute.wire.sse import SSEDecoder, SSEEvent

# --- requests ------------------------------------------------------------------------------------------------------

FULL_REQUEST: JSONObject = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rainy"},
        {"role": "assistant", "content": "Paris is sunny, Rome is rainy."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And these?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "weather"}},
    "parallel_tool_calls": True,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    },
    "max_completion_tokens": 256,
    "temperature": 0.5,
    "top_p": 0.9,
    "stop": ["END", "STOP"],
    "stream": True,
    "stream_options": {"include_usage": True},
    "reasoning_effort": "low",
    "user": "user-42",
    "seed": 7,
}


def test_parse_request_full() -> None:
    request = parse_request(FULL_REQUEST)
    assert request.model == "gpt-4o"
    assert request.system == (TextPart(text="Be brief."),)
    assert request.messages == (
        Message(role="user", parts=(TextPart(text="What is the weather in Paris and Rome?"),)),
        Message(
            role="assistant",
            parts=(
                ToolCallPart(call_id="call_1", name="weather", arguments='{"city":"Paris"}'),
                ToolCallPart(call_id="call_2", name="weather", arguments='{"city": "Rome"}'),
            ),
        ),
        Message(
            role="user",
            parts=(
                ToolResultPart(call_id="call_1", content=(TextPart(text="sunny"),)),
                ToolResultPart(call_id="call_2", content=(TextPart(text="rainy"),)),
            ),
        ),
        Message(role="assistant", parts=(TextPart(text="Paris is sunny, Rome is rainy."),)),
        Message(
            role="user",
            parts=(
                TextPart(text="And these?"),
                ImagePart(url="https://example.com/a.png"),
                ImagePart(data="iVBORw0KGgo=", media_type="image/png"),
            ),
        ),
    )
    assert request.tools == (
        ToolSpec(
            name="weather",
            description="Current weather",
            parameters={"type": "object", "properties": {"city": {"type": "string"}}},
        ),
    )
    assert request.tool_choice == ToolChoice(mode="tool", name="weather")
    assert request.parallel_tool_calls is True
    assert request.response_format == ResponseFormat(
        mode="json_schema", name="answer", schema={"type": "object"}, strict=True
    )
    assert request.max_output_tokens == 256
    assert request.temperature == 0.5
    assert request.top_p == 0.9
    assert request.stop == ("END", "STOP")
    assert request.stream is True
    assert request.reasoning_effort == "low"
    assert request.user_id == "user-42"
    assert request.extensions == {"openai": {"stream_options": {"include_usage": True}, "seed": 7}}


def test_request_round_trip_is_exact() -> None:
    assert render_request(parse_request(FULL_REQUEST)) == FULL_REQUEST


def test_canonical_request_round_trip() -> None:
    request = parse_request(FULL_REQUEST)
    assert parse_request(render_request(request)) == request


def test_parse_request_minimal_and_defaults() -> None:
    request = parse_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert request == ChatRequest(model="m", messages=(Message(role="user", parts=(TextPart(text="hi"),)),))
    assert render_request(request) == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_developer_and_system_gathered_and_joined() -> None:
    request = parse_request(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "C"},
            ],
        }
    )
    assert request.system == (TextPart(text="A"), TextPart(text="B"), TextPart(text="C"))
    assert render_request(request)["messages"] == [
        {"role": "system", "content": "A\n\nB\n\nC"},
        {"role": "user", "content": "hi"},
    ]


def test_max_tokens_and_precedence() -> None:
    base: JSONObject = {"model": "m", "messages": []}
    assert parse_request({**base, "max_tokens": 10}).max_output_tokens == 10
    assert parse_request({**base, "max_tokens": 10, "max_completion_tokens": 20}).max_output_tokens == 20
    assert render_request(parse_request({**base, "max_tokens": 10}))["max_completion_tokens"] == 10


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("auto", ToolChoice(mode="auto")),
        ("none", ToolChoice(mode="none")),
        ("required", ToolChoice(mode="required")),
    ],
)
def test_tool_choice_table(value: str, expected: ToolChoice) -> None:
    assert openai_chat_request._TOOL_CHOICES[value] == expected
    request = parse_request({"model": "m", "messages": [], "tool_choice": value})
    assert request.tool_choice == expected
    assert render_request(request)["tool_choice"] == value


@pytest.mark.parametrize("mode", ["text", "json_object"])
def test_response_format_table(mode: str) -> None:
    assert openai_chat_request._RESPONSE_FORMATS[mode] == ResponseFormat(mode=mode)  # type: ignore[arg-type]
    request = parse_request({"model": "m", "messages": [], "response_format": {"type": mode}})
    assert request.response_format == ResponseFormat(mode=mode)  # type: ignore[arg-type]
    assert render_request(request)["response_format"] == {"type": mode}


def test_json_schema_without_schema_or_strict() -> None:
    body: JSONObject = {
        "model": "m",
        "messages": [],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
    }
    request = parse_request(body)
    assert request.response_format == ResponseFormat(mode="json_schema", name="x")
    assert render_request(request)["response_format"] == body["response_format"]


def test_render_json_schema_without_name_gets_default() -> None:
    request = ChatRequest(model="m", messages=(), response_format=ResponseFormat(mode="json_schema", schema={}))
    assert render_request(request)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": {}},
    }


def test_stop_string_and_tool_without_parameters() -> None:
    request = parse_request(
        {"model": "m", "messages": [], "stop": "END", "tools": [{"type": "function", "function": {"name": "t"}}]}
    )
    assert request.stop == ("END",)
    assert request.tools == (ToolSpec(name="t"),)
    assert render_request(request)["tools"] == [{"type": "function", "function": {"name": "t", "parameters": {}}}]


def test_null_content_and_null_tool_calls() -> None:
    request = parse_request(
        {
            "model": "m",
            "messages": [
                {"role": "assistant", "content": None, "tool_calls": None},
                {"role": "tool", "tool_call_id": "c"},
            ],
        }
    )
    assert request.messages == (
        Message(role="assistant", parts=()),
        Message(role="user", parts=(ToolResultPart(call_id="c"),)),
    )
    assert render_request(request)["messages"] == [
        {"role": "assistant", "content": None},
        {"role": "tool", "tool_call_id": "c", "content": ""},
    ]


def test_tool_message_after_user_text_starts_new_message() -> None:
    request = parse_request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "c", "content": "r"}],
        }
    )
    assert len(request.messages) == 2


def test_render_mixed_user_message_and_canonical_extras() -> None:
    request = ChatRequest(
        model="m",
        messages=(
            Message(
                role="user",
                parts=(
                    TextPart(text="see"),
                    ToolResultPart(call_id="c", content=(TextPart(text="a"), TextPart(text="b")), is_error=True),
                ),
            ),
            Message(
                role="assistant",
                parts=(
                    ReasoningPart(text="thinking", signature="sig", source_format="anthropic"),
                    TextPart(text="one"),
                    TextPart(text="two"),
                ),
            ),
        ),
        top_k=5,
        reasoning_budget_tokens=100,
        stream=True,
    )
    body = render_request(request)
    assert body == {
        "model": "m",
        "messages": [
            {
                "role": "tool",
                "tool_call_id": "c",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "user", "content": "see"},
            {"role": "assistant", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (
            Message(role="user", parts=(ToolResultPart(call_id="c", content=(ImagePart(url="u"),)),)),
            "messages[0].parts[0]",
        ),
        (Message(role="user", parts=(ToolCallPart(call_id="c", name="n", arguments=""),)), "messages[0].parts[0]"),
        (Message(role="assistant", parts=(TextPart(text="x"), ImagePart(url="u"))), "messages[0].parts[1]"),
    ],
)
def test_render_request_rejects_inexpressible_parts(message: Message, param: str) -> None:
    with pytest.raises(InvalidRequestError) as exc_info:
        render_request(ChatRequest(model="m", messages=(message,)))
    assert exc_info.value.param == param


def _request_error(body: JSONObject) -> str | None:
    with pytest.raises(InvalidRequestError) as exc_info:
        parse_request(body)
    return exc_info.value.param


def _with_message(message: Any) -> JSONObject:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "x"}, message]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "model"),
        ({"model": 1, "messages": []}, "model"),
        ({"model": "m"}, "messages"),
        (_with_message("hi"), "messages[2]"),
        (_with_message({"content": "x"}), "messages[2].role"),
        (_with_message({"role": "function", "content": "x"}), "messages[2].role"),
        (_with_message({"role": "user", "content": 5}), "messages[2].content"),
        (_with_message({"role": "user", "content": [{"type": "input_audio"}]}), "messages[2].content[0].type"),
        (_with_message({"role": "user", "content": ["x"]}), "messages[2].content[0]"),
        (_with_message({"role": "user", "content": [{"type": "text"}]}), "messages[2].content[0].text"),
        (_with_message({"role": "system", "content": [{"type": "image_url"}]}), "messages[2].content[0].type"),
        (_with_message({"role": "user", "content": [{"type": "image_url"}]}), "messages[2].content[0].image_url"),
        (
            _with_message({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}),
            "messages[2].content[0].image_url.url",
        ),
        (
            _with_message({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x,abc"}}]}),
            "messages[2].content[0].image_url.url",
        ),
        (
            _with_message({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:;base64,a"}}]}),
            "messages[2].content[0].image_url.url",
        ),
        (_with_message({"role": "assistant", "tool_calls": {"a": 1}}), "messages[2].tool_calls"),
        (_with_message({"role": "assistant", "tool_calls": [{"id": "c"}]}), "messages[2].tool_calls[0].type"),
        (
            _with_message({"role": "assistant", "tool_calls": [{"id": "c", "type": "custom"}]}),
            "messages[2].tool_calls[0].type",
        ),
        (
            _with_message({"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}),
            "messages[2].tool_calls[0].function",
        ),
        (
            _with_message(
                {
                    "role": "assistant",
                    "tool_calls": [{"type": "function", "function": {"name": "n", "arguments": "{}"}}],
                }
            ),
            "messages[2].tool_calls[0].id",
        ),
        (
            _with_message(
                {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "n"}}]}
            ),
            "messages[2].tool_calls[0].function.arguments",
        ),
        (_with_message({"role": "tool", "content": "x"}), "messages[2].tool_call_id"),
        ({"model": "m", "messages": [], "tools": {"a": 1}}, "tools"),
        ({"model": "m", "messages": [], "tools": [{"type": "custom"}]}, "tools[0].type"),
        ({"model": "m", "messages": [], "tools": [{"type": "function"}]}, "tools[0].function"),
        ({"model": "m", "messages": [], "tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        (
            {
                "model": "m",
                "messages": [],
                "tools": [{"type": "function", "function": {"name": "t", "description": 1}}],
            },
            "tools[0].function.description",
        ),
        (
            {
                "model": "m",
                "messages": [],
                "tools": [{"type": "function", "function": {"name": "t", "parameters": []}}],
            },
            "tools[0].function.parameters",
        ),
        ({"model": "m", "messages": [], "tool_choice": "any"}, "tool_choice"),
        ({"model": "m", "messages": [], "tool_choice": 3}, "tool_choice"),
        ({"model": "m", "messages": [], "tool_choice": {"type": "x"}}, "tool_choice.type"),
        ({"model": "m", "messages": [], "tool_choice": {"type": "function"}}, "tool_choice.function"),
        (
            {"model": "m", "messages": [], "tool_choice": {"type": "function", "function": {}}},
            "tool_choice.function.name",
        ),
        ({"model": "m", "messages": [], "response_format": "json"}, "response_format"),
        ({"model": "m", "messages": [], "response_format": {"type": "xml"}}, "response_format.type"),
        ({"model": "m", "messages": [], "response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {"model": "m", "messages": [], "response_format": {"type": "json_schema", "json_schema": {}}},
            "response_format.json_schema.name",
        ),
        (
            {
                "model": "m",
                "messages": [],
                "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": 1}},
            },
            "response_format.json_schema.schema",
        ),
        (
            {
                "model": "m",
                "messages": [],
                "response_format": {"type": "json_schema", "json_schema": {"name": "n", "strict": 1}},
            },
            "response_format.json_schema.strict",
        ),
        ({"model": "m", "messages": [], "stop": 1}, "stop"),
        ({"model": "m", "messages": [], "stop": ["a", 1]}, "stop[1]"),
        ({"model": "m", "messages": [], "max_completion_tokens": "1"}, "max_completion_tokens"),
        ({"model": "m", "messages": [], "max_tokens": True}, "max_tokens"),
        ({"model": "m", "messages": [], "temperature": "hot"}, "temperature"),
        ({"model": "m", "messages": [], "top_p": False}, "top_p"),
        ({"model": "m", "messages": [], "stream": "yes"}, "stream"),
        ({"model": "m", "messages": [], "parallel_tool_calls": 1}, "parallel_tool_calls"),
        ({"model": "m", "messages": [], "reasoning_effort": 1}, "reasoning_effort"),
        ({"model": "m", "messages": [], "user": 1}, "user"),
    ],
)
def test_parse_request_errors_name_the_field(body: JSONObject, param: str) -> None:
    assert _request_error(body) == param


def test_integer_temperature_becomes_float() -> None:
    assert parse_request({"model": "m", "messages": [], "temperature": 1}).temperature == 1.0


# --- responses -----------------------------------------------------------------------------------------------------

FULL_RESPONSE: JSONObject = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Checking.",
                "reasoning_content": "Need weather.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "total_tokens": 120,
        "prompt_tokens_details": {"cached_tokens": 64},
        "completion_tokens_details": {"reasoning_tokens": 8},
    },
    "system_fingerprint": "fp_1",
}


def test_parse_response_full() -> None:
    response = parse_response(FULL_RESPONSE)
    assert response == ChatResponse(
        id="chatcmpl-1",
        model="gpt-4o-2024-08-06",
        created=1700000000,
        parts=(
            ReasoningPart(text="Need weather.", source_format="openai"),
            TextPart(text="Checking."),
            ToolCallPart(call_id="call_1", name="weather", arguments='{"city":"Paris"}'),
        ),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=Usage(input_tokens=100, output_tokens=20, cache_read_tokens=64, reasoning_tokens=8),
        extensions={"openai": {"system_fingerprint": "fp_1"}},
    )


def test_response_round_trip_is_exact() -> None:
    assert render_response(parse_response(FULL_RESPONSE)) == FULL_RESPONSE


def test_response_minimal_without_usage_and_reasoning_field() -> None:
    body: JSONObject = {
        "id": "r",
        "model": "m",
        "choices": [{"message": {"role": "assistant", "content": None, "reasoning": "hm", "refusal": "No."}}],
    }
    response = parse_response(body)
    assert response.parts == (ReasoningPart(text="hm", source_format="openai"), TextPart(text="No."))
    assert response.finish_reason is None
    assert response.usage == Usage()
    assert response.created is None
    assert "usage" not in render_response(response)


def test_render_response_defaults() -> None:
    rendered = render_response(
        ChatResponse(
            id="r",
            model="m",
            parts=(ImagePart(url="u"), ReasoningPart(redacted="xx")),
            finish_reason=FinishReason.ERROR,
            usage=Usage(output_tokens=3),
        ),
        now_s=1234,
    )
    assert rendered == {
        "id": "r",
        "object": "chat.completion",
        "created": 1234,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": None}, "logprobs": None, "finish_reason": None}
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 3, "total_tokens": 3},
    }


@pytest.mark.parametrize(
    ("wire", "canonical"),
    [
        ("stop", FinishReason.STOP),
        ("length", FinishReason.LENGTH),
        ("tool_calls", FinishReason.TOOL_CALLS),
        ("content_filter", FinishReason.CONTENT_FILTER),
        ("function_call", FinishReason.TOOL_CALLS),
    ],
)
def test_finish_reasons_table(wire: str, canonical: FinishReason) -> None:
    assert openai_chat_response._FINISH_REASONS[wire] is canonical
    assert openai_chat_response.parse_finish_reason(wire) is canonical


def test_finish_reasons_table_has_exactly_the_documented_keys() -> None:
    assert set(openai_chat_response._FINISH_REASONS) == {
        "stop",
        "length",
        "tool_calls",
        "content_filter",
        "function_call",
    }
    assert openai_chat_response.parse_finish_reason("eos") is FinishReason.STOP
    assert openai_chat_response.parse_finish_reason(None) is None


@pytest.mark.parametrize(
    ("canonical", "wire"),
    [
        (FinishReason.STOP, "stop"),
        (FinishReason.LENGTH, "length"),
        (FinishReason.TOOL_CALLS, "tool_calls"),
        (FinishReason.CONTENT_FILTER, "content_filter"),
        (FinishReason.ERROR, None),
    ],
)
def test_rendered_finish_reasons_table(canonical: FinishReason, wire: str | None) -> None:
    assert openai_chat_response._RENDERED_FINISH_REASONS[canonical] == wire
    assert openai_chat_response.render_finish_reason(canonical) == wire
    assert set(openai_chat_response._RENDERED_FINISH_REASONS) == set(FinishReason)


def _choice(**fields: Any) -> JSONObject:
    return {"id": "r", "model": "m", "choices": [{"message": {"role": "assistant"}, **fields}]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"id": "r", "model": "m"}, "choices: must be an array"),
        ({"id": "r", "model": "m", "choices": []}, "choices: must not be empty"),
        ({"id": "r", "model": "m", "choices": [1]}, "choices[0]: must be an object"),
        (_choice(message=None), "choices[0].message: must be an object"),
        (_choice(finish_reason=1), "choices[0].finish_reason: must be a string"),
        ({**_choice(), "id": None}, "id: is required"),
        ({**_choice(), "created": "now"}, "created: must be an integer"),
        (_choice(message={"content": 1}), "choices[0].message.content: must be a string"),
        (_choice(message={"reasoning_content": 1}), "choices[0].message.reasoning_content: must be a string"),
        (_choice(message={"tool_calls": [1]}), "choices[0].message.tool_calls[0]: must be an object"),
        (
            _choice(message={"tool_calls": [{"id": "c"}]}),
            "choices[0].message.tool_calls[0].function: must be an object",
        ),
        (
            _choice(message={"tool_calls": [{"function": {"name": "n", "arguments": ""}}]}),
            "choices[0].message.tool_calls[0].id: is required",
        ),
    ],
)
def test_parse_response_errors(body: JSONObject, message: str) -> None:
    with pytest.raises(ValueError, match="malformed OpenAI chat completion") as exc_info:
        parse_response(body)
    assert message in str(exc_info.value)


# --- streams -------------------------------------------------------------------------------------------------------


def _chunk(delta: JSONObject | None = None, *, finish_reason: str | None = None, **extra: Any) -> str:
    body: JSONObject = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1700000001, "model": "gpt-4o"}
    if delta is not None:
        body["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    body.update(extra)
    return orjson.dumps(body).decode()


ARGS_A = ['{"ci', 'ty": "Pa', 'ris"}']
ARGS_B = ["", '{"city":', ' "Rome"', "}"]
TRANSCRIPT = [
    _chunk({"role": "assistant", "content": "", "refusal": None}),
    _chunk({"content": "Let me "}),
    _chunk({"content": "check."}),
    _chunk(
        {
            "tool_calls": [
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}}
            ]
        }
    ),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ARGS_A[0]}}]}),
    _chunk(
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "weather", "arguments": ARGS_B[0]},
                }
            ]
        }
    ),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ARGS_A[1]}}]}),
    _chunk({"tool_calls": [{"index": 1, "function": {"arguments": ARGS_B[1]}}]}),
    _chunk(
        {
            "tool_calls": [
                {"index": 1, "function": {"arguments": ARGS_B[2]}},
                {"index": 0, "function": {"arguments": ARGS_A[2]}},
            ]
        }
    ),
    _chunk({"tool_calls": [{"index": 1, "function": {"arguments": ARGS_B[3]}}]}),
    _chunk({}, finish_reason="tool_calls"),
    _chunk(
        choices=[],
        usage={
            "prompt_tokens": 50,
            "completion_tokens": 30,
            "total_tokens": 80,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    ),
    "[DONE]",
]
USAGE = Usage(input_tokens=50, output_tokens=30, cache_read_tokens=0, reasoning_tokens=0)


def _parse_all(datas: list[str]) -> list[StreamEvent]:
    parser = StreamParser()
    events: list[StreamEvent] = []
    for data in datas:
        events.extend(parser.feed(SSEEvent(data=data)))
    events.extend(parser.finish())
    return events


def test_stream_transcript_events() -> None:
    events = _parse_all(TRANSCRIPT)
    assert events == [
        MessageStart(id="chatcmpl-9", model="gpt-4o", created=1700000001),
        PartStart(index=0, part_kind="text"),
        TextDelta(index=0, text="Let me "),
        TextDelta(index=0, text="check."),
        PartStart(index=1, part_kind="tool_call", call_id="call_a", name="weather"),
        ToolArgumentsDelta(index=1, json_fragment=ARGS_A[0]),
        PartStart(index=2, part_kind="tool_call", call_id="call_b", name="weather"),
        ToolArgumentsDelta(index=1, json_fragment=ARGS_A[1]),
        ToolArgumentsDelta(index=2, json_fragment=ARGS_B[1]),
        ToolArgumentsDelta(index=2, json_fragment=ARGS_B[2]),
        ToolArgumentsDelta(index=1, json_fragment=ARGS_A[2]),
        ToolArgumentsDelta(index=2, json_fragment=ARGS_B[3]),
        PartEnd(index=0),
        PartEnd(index=1),
        PartEnd(index=2),
        UsageUpdate(usage=USAGE),
        MessageEnd(finish_reason=FinishReason.TOOL_CALLS, usage=USAGE),
    ]


def test_stream_transcript_accumulates() -> None:
    response = accumulate(_parse_all(TRANSCRIPT), source_format="openai")
    assert response == ChatResponse(
        id="chatcmpl-9",
        model="gpt-4o",
        created=1700000001,
        parts=(
            TextPart(text="Let me check."),
            ToolCallPart(call_id="call_a", name="weather", arguments="".join(ARGS_A)),
            ToolCallPart(call_id="call_b", name="weather", arguments="".join(ARGS_B)),
        ),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=USAGE,
    )
    assert response.parts[1].arguments.encode() == b'{"city": "Paris"}'  # type: ignore[union-attr]


def _render_all(events: list[StreamEvent]) -> bytes:
    renderer = StreamRenderer()
    frames = [frame for event in events for frame in renderer.feed(event)]
    frames.extend(renderer.finish())
    return b"".join(frames)


def _decode(data: bytes) -> list[str]:
    decoder = SSEDecoder()
    events = decoder.feed(data)
    assert decoder.finish() == []
    assert not decoder.is_truncated
    return [event.data for event in events]


def test_renderer_output_reparses_to_the_same_events() -> None:
    events = _parse_all(TRANSCRIPT)
    assert _parse_all(_decode(_render_all(events))) == events


def test_renderer_frames_are_openai_shaped() -> None:
    datas = _decode(_render_all(_parse_all(TRANSCRIPT)))
    chunks = [orjson.loads(data) for data in datas[:-1]]
    assert datas[-1] == "[DONE]"
    assert all(chunk["object"] == "chat.completion.chunk" and chunk["id"] == "chatcmpl-9" for chunk in chunks)
    assert all(chunk["created"] == 1700000001 and chunk["model"] == "gpt-4o" for chunk in chunks)
    assert chunks[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
    ]
    assert chunks[3]["choices"][0]["delta"] == {
        "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}}
        ]
    }
    assert chunks[4]["choices"][0]["delta"] == {"tool_calls": [{"index": 0, "function": {"arguments": ARGS_A[0]}}]}
    assert chunks[-2]["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 50,
        "completion_tokens": 30,
        "total_tokens": 80,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_reasoning_stream_round_trip_and_usage_on_finish_chunk() -> None:
    datas = [
        _chunk({"role": "assistant", "reasoning_content": "Hmm"}),
        _chunk({"reasoning": ", so"}),
        _chunk({"content": "Hi"}),
        _chunk({}, finish_reason="stop", usage={"prompt_tokens": 3, "completion_tokens": 2}),
        "[DONE]",
    ]
    events = _parse_all(datas)
    usage = Usage(input_tokens=3, output_tokens=2)
    assert events == [
        MessageStart(id="chatcmpl-9", model="gpt-4o", created=1700000001),
        PartStart(index=0, part_kind="reasoning"),
        ReasoningDelta(index=0, text="Hmm"),
        ReasoningDelta(index=0, text=", so"),
        PartStart(index=1, part_kind="text"),
        TextDelta(index=1, text="Hi"),
        PartEnd(index=0),
        PartEnd(index=1),
        UsageUpdate(usage=usage),
        MessageEnd(finish_reason=FinishReason.STOP, usage=usage),
    ]
    assert _parse_all(_decode(_render_all(events))) == events


def test_parser_finish_without_done_after_finish_reason() -> None:
    parser = StreamParser()
    parser.feed(SSEEvent(data=_chunk({"content": "x"})))
    assert parser.feed(SSEEvent(data=_chunk({}, finish_reason="length"))) == [PartEnd(index=0)]
    assert parser.finish() == [MessageEnd(finish_reason=FinishReason.LENGTH, usage=None)]
    assert parser.finish() == []


def test_parser_done_without_finish_reason_is_error_finish() -> None:
    events = _parse_all([_chunk({"content": "x"}, usage=None), " [DONE]\n"])
    assert events[-2:] == [PartEnd(index=0), MessageEnd(finish_reason=FinishReason.ERROR)]


def test_parser_ignores_other_choices_and_chunks_without_choices() -> None:
    parser = StreamParser()
    other: JSONObject = {"index": 1, "delta": {"content": "other"}, "finish_reason": None}
    first: JSONObject = {"delta": {"content": "mine"}, "finish_reason": None}
    events = parser.feed(SSEEvent(data=_chunk(choices=[other, first])))
    assert events[1:] == [PartStart(index=0, part_kind="text"), TextDelta(index=0, text="mine")]
    assert parser.feed(SSEEvent(data=_chunk(choices=None))) == []
    assert parser.feed(SSEEvent(data=_chunk(choices=[{"index": 0, "delta": None}]))) == []


def test_parser_refusal_delta_is_text() -> None:
    events = _parse_all([_chunk({"refusal": "No."}, finish_reason="content_filter"), "[DONE]"])
    assert events[1:3] == [PartStart(index=0, part_kind="text"), TextDelta(index=0, text="No.")]
    assert events[-1] == MessageEnd(finish_reason=FinishReason.CONTENT_FILTER)


def test_parser_in_band_error() -> None:
    parser = StreamParser(provider="acme")
    data = orjson.dumps({"error": {"message": "overloaded", "type": "server_error"}}).decode()
    with pytest.raises(UpstreamServerError) as exc_info:
        parser.feed(SSEEvent(data=data))
    assert exc_info.value.provider == "acme"
    assert "overloaded" in exc_info.value.message


@pytest.mark.parametrize(
    ("datas", "message"),
    [
        (["{not json"], "not JSON"),
        (["[1]"], "data: must be an object"),
        (['{"model": "m"}'], "id: is required"),
        (["[DONE]"], "before any chunk"),
        ([_chunk({"content": 1})], "choices[0].delta.content: must be a string"),
        ([_chunk(choices={"a": 1})], "choices: must be an array"),
        ([_chunk(choices=[{"index": "0"}])], "choices[0].index: must be an integer"),
        ([_chunk({"tool_calls": [{"id": "c"}]})], "tool_calls[0].index: is required"),
        ([_chunk({"tool_calls": [{"index": 0, "function": {"name": "n"}}]})], "tool_calls[0].id: is required"),
        ([_chunk({"tool_calls": [{"index": 0, "id": "c"}]})], "tool_calls[0].function.name: is required"),
        (
            [_chunk({"tool_calls": [{"index": 0, "id": "c", "function": [1]}]})],
            "tool_calls[0].function: must be an object",
        ),
        (
            [_chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "n", "arguments": 1}}]})],
            "function.arguments: must be a string",
        ),
        (
            [
                _chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "n"}}]}, finish_reason="stop"),
                _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
            ],
            "tool call 0 after its end",
        ),
        ([_chunk({}, finish_reason="stop"), "[DONE]", "[DONE]"], "after [DONE]"),
    ],
)
def test_parser_rejects_malformed_streams(datas: list[str], message: str) -> None:
    parser = StreamParser()
    with pytest.raises(ValueError, match="OpenAI stream") as exc_info:
        for data in datas:
            parser.feed(SSEEvent(data=data))
    assert message in str(exc_info.value)


def test_parser_finish_on_cut_off_stream_raises() -> None:
    parser = StreamParser()
    parser.feed(SSEEvent(data=_chunk({"content": "x"})))
    with pytest.raises(ValueError, match="before a finish_reason"):
        parser.finish()


def test_renderer_defaults_and_dropped_events() -> None:
    renderer = StreamRenderer(now_s=99)
    frames = [
        *renderer.feed(MessageStart(id="r", model="m")),
        *renderer.feed(PartStart(index=0, part_kind="reasoning", signature="s")),
        *renderer.feed(SignatureDelta(index=0, signature="more")),
        *renderer.feed(PartEnd(index=0)),
        *renderer.feed(MessageEnd(finish_reason=FinishReason.STOP)),
    ]
    assert renderer.finish() == []
    chunks = _decode(b"".join(frames))
    assert chunks[-1] == "[DONE]"
    assert len(chunks) == 3
    assert orjson.loads(chunks[1]) == {
        "id": "r",
        "object": "chat.completion.chunk",
        "created": 99,
        "model": "m",
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
    }


def test_renderer_usage_from_message_end() -> None:
    renderer = StreamRenderer()
    renderer.feed(MessageStart(id="r", model="m", created=1))
    frames = renderer.feed(MessageEnd(finish_reason=FinishReason.LENGTH, usage=Usage(input_tokens=1, output_tokens=2)))
    usage_chunk = orjson.loads(_decode(frames[1])[0])
    assert usage_chunk["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_renderer_error_reuses_relay_framing() -> None:
    error = UpstreamServerError("boom", provider="p", upstream_status=500)
    assert StreamRenderer().error(error) == render_stream_error(error)
