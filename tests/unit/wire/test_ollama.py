"""Ollama native chat (/api/chat): requests, responses, NDJSON streams and errors."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from polyroute import errors
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
    ToolResultPart,
    ToolSpec,
    Usage,
)
from polyroute.errors import (
    InvalidRequestError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamProtocolError,
    UpstreamRateLimitError,
    UpstreamServerError,
)
from polyroute.wire import ollama, upstream_errors
from polyroute.wire.ndjson import NDJSONDecoder
from polyroute.wire.ollama import (
    StreamParser,
    StreamRenderer,
    parse_error,
    parse_request,
    parse_response,
    render_error,
    render_request,
    render_response,
)
from polyroute.wire.ollama import errors as ollama_errors
from polyroute.wire.ollama import request as ollama_request
from polyroute.wire.ollama import response as ollama_response

MODEL = "qwen3:8b"
CREATED_AT = "2025-06-01T12:00:00.123456789Z"
CREATED = 1748779200
PREFIX = "ollama-20250601120000123456789"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
REQUEST: dict[str, Any] = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris and Rome? Also this:", "images": [PNG]},
        {
            "role": "assistant",
            "content": "",
            "thinking": "Two cities, two calls.",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}},
            ],
        },
        {"role": "tool", "content": "18C", "tool_name": "get_weather"},
        {"role": "tool", "content": "24C", "tool_name": "get_weather"},
        {"role": "assistant", "content": "Paris 18C, Rome 24C."},
        {"role": "user", "content": "Thanks"},
    ],
    "tools": [WEATHER_TOOL],
    "format": "json",
    "options": {"temperature": 0.2, "top_p": 0.9, "top_k": 40, "num_predict": 256, "stop": ["###"], "seed": 7},
    "stream": False,
    "think": "high",
    "keep_alive": "5m",
}
EXPECTED_REQUEST = ChatRequest(
    model=MODEL,
    system=(TextPart(text="You are terse."),),
    messages=(
        Message(
            role="user",
            parts=(
                TextPart(text="Weather in Paris and Rome? Also this:"),
                ImagePart(data=PNG, media_type="image/png"),
            ),
        ),
        Message(
            role="assistant",
            parts=(
                ReasoningPart(text="Two cities, two calls.", source_format="ollama"),
                ToolCallPart(call_id="call_2_0", name="get_weather", arguments='{"city":"Paris"}'),
                ToolCallPart(call_id="call_2_1", name="get_weather", arguments='{"city":"Rome"}'),
            ),
        ),
        Message(
            role="user",
            parts=(
                ToolResultPart(call_id="call_2_0", content=(TextPart(text="18C"),)),
                ToolResultPart(call_id="call_2_1", content=(TextPart(text="24C"),)),
            ),
        ),
        Message(role="assistant", parts=(TextPart(text="Paris 18C, Rome 24C."),)),
        Message(role="user", parts=(TextPart(text="Thanks"),)),
    ),
    tools=(
        ToolSpec(
            name="get_weather",
            description="Current weather for a city",
            parameters=WEATHER_TOOL["function"]["parameters"],
        ),
    ),
    max_output_tokens=256,
    temperature=0.2,
    top_p=0.9,
    top_k=40,
    stop=("###",),
    stream=False,
    response_format=ResponseFormat(mode="json_object"),
    reasoning_effort="high",
    extensions={"ollama": {"keep_alive": "5m", "options": {"seed": 7}}},
)
RESPONSE: dict[str, Any] = {
    "model": MODEL,
    "created_at": CREATED_AT,
    "message": {
        "role": "assistant",
        "content": "Checking.",
        "thinking": "Need the weather tool.",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    },
    "done_reason": "stop",
    "done": True,
    "total_duration": 4883583458,
    "load_duration": 1334875,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 342546000,
    "eval_count": 282,
    "eval_duration": 4535599000,
}
DURATIONS: dict[str, Any] = {
    "total_duration": 4883583458,
    "load_duration": 1334875,
    "prompt_eval_duration": 342546000,
    "eval_duration": 4535599000,
}
EXPECTED_RESPONSE = ChatResponse(
    id=PREFIX,
    model=MODEL,
    created=CREATED,
    parts=(
        ReasoningPart(text="Need the weather tool.", source_format="ollama"),
        TextPart(text="Checking."),
        ToolCallPart(call_id=f"{PREFIX}-call-0", name="get_weather", arguments='{"city":"Paris"}'),
    ),
    finish_reason=FinishReason.TOOL_CALLS,
    usage=Usage(input_tokens=26, output_tokens=282),
    extensions={"ollama": {"created_at": CREATED_AT, **DURATIONS}},
)


def line(message: dict[str, Any], *, created_at: str = CREATED_AT, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "created_at": created_at, "message": {"role": "assistant", **message}, **extra}


TRANSCRIPT: list[dict[str, Any]] = [
    line({"content": "", "thinking": "The user"}, done=False),
    line({"content": "", "thinking": " wants weather."}, done=False),
    line({"content": "Let me"}, done=False),
    line({"content": " check."}, done=False),
    line(
        {"content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        done=False,
    ),
    line({"content": ""}, done=True, done_reason="stop", prompt_eval_count=26, eval_count=13, **DURATIONS),
]
EXPECTED_EVENTS: list[StreamEvent] = [
    MessageStart(id=PREFIX, model=MODEL, created=CREATED),
    PartStart(index=0, part_kind="reasoning"),
    ReasoningDelta(index=0, text="The user"),
    ReasoningDelta(index=0, text=" wants weather."),
    PartEnd(index=0),
    PartStart(index=1, part_kind="text"),
    TextDelta(index=1, text="Let me"),
    TextDelta(index=1, text=" check."),
    PartEnd(index=1),
    PartStart(index=2, part_kind="tool_call", call_id=f"{PREFIX}-call-0", name="get_weather"),
    ToolArgumentsDelta(index=2, json_fragment='{"city":"Paris"}'),
    PartEnd(index=2),
    MessageEnd(finish_reason=FinishReason.TOOL_CALLS, usage=Usage(input_tokens=26, output_tokens=13)),
]


def parse_stream(values: list[Any]) -> list[StreamEvent]:
    parser = StreamParser()
    events = [event for value in values for event in parser.feed(value)]
    return events + parser.finish()


def render_stream(events: list[StreamEvent]) -> bytes:
    renderer = StreamRenderer()
    return b"".join(b"".join(renderer.feed(event)) for event in events) + b"".join(renderer.finish())


def decode(data: bytes) -> list[Any]:
    decoder = NDJSONDecoder()
    return decoder.feed(data) + decoder.finish()


def with_body(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(REQUEST)
    body.update(changes)
    return body


# -------------------------------------------------------------------------------------------- surface


def test_package_exposes_exactly_the_translator_surface() -> None:
    assert sorted(ollama.__all__) == sorted(
        [
            "StreamParser",
            "StreamRenderer",
            "parse_error",
            "parse_request",
            "parse_response",
            "render_error",
            "render_request",
            "render_response",
            "FORMAT",
            "CAPABILITIES",
            "request_path",
            "stream_parser",
            "stream_renderer",
        ]
    )


# ------------------------------------------------------------------------------------------- requests


def test_parse_request_full_conversation_maps_every_field() -> None:
    assert parse_request(copy.deepcopy(REQUEST)) == EXPECTED_REQUEST


def test_render_request_parsed_body_round_trips() -> None:
    assert render_request(parse_request(copy.deepcopy(REQUEST))) == REQUEST


def test_parse_request_rendered_request_round_trips() -> None:
    assert parse_request(render_request(EXPECTED_REQUEST)) == EXPECTED_REQUEST


def test_parse_request_without_stream_defaults_to_streaming() -> None:
    body = with_body()
    del body["stream"]
    assert parse_request(body).stream is True


def test_parse_request_minimal_body_has_no_extensions() -> None:
    request = parse_request({"model": MODEL, "messages": [{"role": "user"}]})
    assert request == ChatRequest(model=MODEL, messages=(Message(role="user", parts=()),), stream=True)
    assert render_request(request) == {
        "model": MODEL,
        "messages": [{"role": "user", "content": ""}],
        "stream": True,
    }


@pytest.mark.parametrize("key", sorted(ollama_request._OPTIONS))
def test_parse_request_options_table_maps_each_key(key: str) -> None:
    value = 3 if key in ("top_k", "num_predict") else 0.5
    request = parse_request(with_body(options={key: value}))
    assert getattr(request, ollama_request._OPTIONS[key]) == value
    assert render_request(request)["options"] == {key: value}


def test_parse_request_integer_temperature_is_accepted() -> None:
    assert parse_request(with_body(options={"temperature": 1})).temperature == 1


def test_parse_request_think_boolean_goes_to_extensions_and_back() -> None:
    request = parse_request(with_body(think=False))
    assert request.reasoning_effort is None
    assert request.extensions["ollama"]["think"] is False
    assert render_request(request)["think"] is False


@pytest.mark.parametrize("level", sorted(ollama_request._THINK_LEVELS))
def test_parse_request_think_levels_table_maps_each_level(level: str) -> None:
    request = parse_request(with_body(think=level))
    assert request.reasoning_effort == level
    assert render_request(request)["think"] == level


def test_parse_request_json_schema_format_maps_to_json_schema() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request = parse_request(with_body(format=schema))
    assert request.response_format == ResponseFormat(mode="json_schema", schema=schema)
    assert render_request(request)["format"] == schema


def test_parse_request_empty_format_means_no_format() -> None:
    assert parse_request(with_body(format="")).response_format is None


@pytest.mark.parametrize(("prefix", "media_type"), sorted(ollama_request._IMAGE_MAGIC.items()))
def test_parse_request_image_magic_table_sniffs_each_type(prefix: str, media_type: str) -> None:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "images": [prefix + "AAAA"]}]}
    assert parse_request(body).messages[0].parts == (ImagePart(data=prefix + "AAAA", media_type=media_type),)


def test_parse_request_unknown_image_bytes_leave_media_type_unset() -> None:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "images": ["AAAA"]}]}
    assert parse_request(body).messages[0].parts == (ImagePart(data="AAAA"),)


def test_parse_request_data_url_image_is_split_into_type_and_data() -> None:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "images": ["data:image/webp;base64,UklGRxx"]}],
    }
    assert parse_request(body).messages[0].parts == (ImagePart(data="UklGRxx", media_type="image/webp"),)


def test_parse_request_tool_results_match_by_name_then_order() -> None:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [
                    {"function": {"name": "a"}},
                    {"function": {"name": "b", "arguments": {}}},
                ],
            },
            {"role": "tool", "content": "from b", "tool_name": "b"},
            {"role": "tool", "content": "unnamed"},
            {"role": "tool", "content": "orphan"},
        ],
    }
    [assistant, results] = parse_request(body).messages
    assert assistant.parts == (
        ToolCallPart(call_id="call_0_0", name="a", arguments="{}"),
        ToolCallPart(call_id="call_0_1", name="b", arguments="{}"),
    )
    assert [part.call_id for part in results.parts if isinstance(part, ToolResultPart)] == [
        "call_0_1",
        "call_0_0",
        "result_3",
    ]


def test_parse_request_tool_message_after_user_text_starts_new_message() -> None:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}],
    }
    messages = parse_request(body).messages
    assert len(messages) == 2
    assert messages[1].parts == (ToolResultPart(call_id="result_1", content=(TextPart(text="x"),)),)


def test_parse_request_tool_message_after_empty_user_message_starts_new_message() -> None:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user"}, {"role": "tool", "content": "x"}]}
    assert len(parse_request(body).messages) == 2


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"model": 3}, "model"),
        ({"messages": {}}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "user"}, {"role": "developer"}]}, "messages[1].role"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "images": "x"}]}, "messages[0].images"),
        ({"messages": [{"role": "user", "images": [1]}]}, "messages[0].images[0]"),
        ({"messages": [{"role": "assistant", "thinking": 1}]}, "messages[0].thinking"),
        ({"messages": [{"role": "assistant", "tool_calls": ["x"]}]}, "messages[0].tool_calls[0]"),
        ({"messages": [{"role": "assistant", "tool_calls": [{}]}]}, "messages[0].tool_calls[0].function"),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "a", "arguments": "{}"}}]}]},
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"function": {}}]}]},
            "messages[0].tool_calls[0].function.name",
        ),
        ({"messages": [{"role": "tool", "tool_name": 1}]}, "messages[0].tool_name"),
        ({"tools": {}}, "tools"),
        ({"tools": ["x"]}, "tools[0]"),
        ({"tools": [{"function": {"name": 1}}]}, "tools[0].function.name"),
        ({"tools": [{"function": {"name": "a", "description": 1}}]}, "tools[0].function.description"),
        ({"tools": [{"function": {"name": "a", "parameters": []}}]}, "tools[0].function.parameters"),
        ({"format": "yaml"}, "format"),
        ({"options": []}, "options"),
        ({"options": {"temperature": "hot"}}, "options.temperature"),
        ({"options": {"temperature": True}}, "options.temperature"),
        ({"options": {"top_k": 1.5}}, "options.top_k"),
        ({"options": {"num_predict": "9"}}, "options.num_predict"),
        ({"options": {"stop": "###"}}, "options.stop"),
        ({"options": {"stop": [1]}}, "options.stop"),
        ({"stream": "yes"}, "stream"),
        ({"think": "max"}, "think"),
        ({"think": 1}, "think"),
    ],
)
def test_parse_request_invalid_field_names_the_field(changes: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_request(with_body(**changes))
    assert info.value.param == param


def test_parse_request_missing_messages_names_the_field() -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_request({"model": MODEL})
    assert info.value.param == "messages"


@pytest.mark.parametrize("kind", list(ollama_request._JSON_TYPES))
def test_require_json_types_table_names_each_type(kind: type[Any]) -> None:
    with pytest.raises(InvalidRequestError, match=ollama_request._JSON_TYPES[kind]):
        ollama_request._require({}, "x", kind, "x")


def test_render_request_foreign_reasoning_is_dropped_and_text_joined() -> None:
    request = ChatRequest(
        model=MODEL,
        messages=(
            Message(
                role="assistant",
                parts=(
                    ReasoningPart(text="secret", signature="sig", source_format="anthropic"),
                    TextPart(text="one"),
                    TextPart(text="two"),
                ),
            ),
        ),
    )
    assert render_request(request)["messages"] == [{"role": "assistant", "content": "one\ntwo"}]


def test_render_request_tool_results_become_tool_messages_before_user_text() -> None:
    request = ChatRequest(
        model=MODEL,
        messages=(
            Message(role="assistant", parts=(ToolCallPart(call_id="toolu_1", name="lookup", arguments=""),)),
            Message(
                role="user",
                parts=(
                    ToolResultPart(
                        call_id="toolu_1",
                        content=(TextPart(text="ok"), ImagePart(data=PNG, media_type="image/png")),
                        is_error=True,
                    ),
                    ToolResultPart(call_id="unknown", content=()),
                    TextPart(text="and now?"),
                ),
            ),
        ),
    )
    assert render_request(request)["messages"] == [
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "lookup", "arguments": {}}}]},
        {"role": "tool", "content": "ok", "images": [PNG], "tool_name": "lookup"},
        {"role": "tool", "content": ""},
        {"role": "user", "content": "and now?"},
    ]


def test_render_request_url_image_raises_unsupported() -> None:
    request = ChatRequest(
        model=MODEL,
        messages=(
            Message(
                role="user",
                parts=(
                    ToolResultPart(call_id="c", content=()),
                    TextPart(text="see"),
                    ImagePart(url="https://example.com/a.png"),
                ),
            ),
        ),
    )
    with pytest.raises(InvalidRequestError) as info:
        render_request(request)
    assert (info.value.code, info.value.param) == ("unsupported_feature", "messages[0].parts[2]")


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_render_request_non_object_arguments_raise(arguments: str) -> None:
    part = ToolCallPart(call_id="c", name="f", arguments=arguments)
    request = ChatRequest(model=MODEL, messages=(Message(role="assistant", parts=(part,)),))
    with pytest.raises(InvalidRequestError) as info:
        render_request(request)
    assert info.value.param == "messages[0].parts[0]"


@pytest.mark.parametrize(
    ("effort", "budget", "think"),
    [("none", None, False), ("minimal", None, True), (None, 2048, True), (None, None, None)],
)
def test_render_request_reasoning_settings_map_to_think(effort: str | None, budget: int | None, think: Any) -> None:
    request = ChatRequest(
        model=MODEL, messages=(), reasoning_effort=effort, reasoning_budget_tokens=budget, max_output_tokens=10
    )
    body = render_request(request)
    assert body.get("think") == think
    assert body["options"] == {"num_predict": 10}


def test_render_request_schema_format_and_tool_without_description() -> None:
    schema: dict[str, Any] = {"type": "object"}
    request = ChatRequest(
        model=MODEL,
        messages=(),
        tools=(ToolSpec(name="f"),),
        response_format=ResponseFormat(mode="json_schema", name="x", schema=schema),
    )
    body = render_request(request)
    assert body["format"] == schema
    assert body["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    assert "options" not in body


def test_render_request_text_format_emits_no_format() -> None:
    request = ChatRequest(model=MODEL, messages=(), response_format=ResponseFormat(mode="text"))
    assert "format" not in render_request(request)


# ------------------------------------------------------------------------------------------ responses


def test_parse_response_full_body_maps_every_field() -> None:
    assert parse_response(copy.deepcopy(RESPONSE)) == EXPECTED_RESPONSE


def test_render_response_parsed_body_round_trips() -> None:
    assert render_response(parse_response(copy.deepcopy(RESPONSE))) == RESPONSE


def test_parse_response_rendered_response_round_trips() -> None:
    assert parse_response(render_response(EXPECTED_RESPONSE)) == EXPECTED_RESPONSE


@pytest.mark.parametrize(("reason", "finish"), sorted(ollama_response._DONE_REASONS.items()))
def test_parse_response_done_reasons_table_maps_each_reason(reason: str, finish: FinishReason) -> None:
    body: dict[str, Any] = {
        "model": MODEL,
        "message": {"role": "assistant", "content": "x"},
        "done": True,
        "done_reason": reason,
    }
    assert parse_response(body).finish_reason == finish


@pytest.mark.parametrize("reason", ["something_new", None])
def test_parse_response_unknown_done_reason_reads_as_stop(reason: str | None) -> None:
    body: dict[str, Any] = {"model": MODEL, "message": {"role": "assistant"}, "done": True, "done_reason": reason}
    response = parse_response(body)
    assert (response.finish_reason, response.id, response.created, response.usage) == (
        FinishReason.STOP,
        "ollama-0",
        None,
        Usage(),
    )


@pytest.mark.parametrize(("finish", "reason"), sorted(ollama_response._FINISH_REASONS.items()))
def test_render_response_finish_reasons_table_maps_each_reason(finish: FinishReason, reason: str) -> None:
    response = ChatResponse(id="x", model=MODEL, finish_reason=finish)
    assert render_response(response)["done_reason"] == reason


def test_render_response_without_created_or_finish_reason_omits_created_at() -> None:
    response = ChatResponse(
        id="x",
        model=MODEL,
        parts=(ReasoningPart(text="hmm", source_format="anthropic"), TextPart(text="hi")),
        usage=Usage(output_tokens=2),
    )
    assert render_response(response) == {
        "model": MODEL,
        "message": {"role": "assistant", "content": "hi", "thinking": "hmm"},
        "done": True,
        "done_reason": "stop",
        "eval_count": 2,
    }


def test_render_response_created_is_rendered_as_rfc3339() -> None:
    body = render_response(ChatResponse(id="x", model=MODEL, created=CREATED, usage=Usage(input_tokens=1)))
    assert (body["created_at"], body["prompt_eval_count"]) == ("2025-06-01T12:00:00Z", 1)


def test_render_response_non_object_arguments_raise_protocol_error() -> None:
    response = ChatResponse(id="x", model=MODEL, parts=(ToolCallPart(call_id="c", name="f", arguments="[]"),))
    with pytest.raises(UpstreamProtocolError):
        render_response(response)


@pytest.mark.parametrize(
    "body",
    [
        {"message": {}},
        {"model": MODEL, "message": "hi"},
        {"model": MODEL, "message": {"tool_calls": ["x"]}},
        {"model": MODEL, "message": {"tool_calls": [{"function": {"name": 1}}]}},
    ],
)
def test_parse_response_malformed_body_raises_protocol_error(body: dict[str, Any]) -> None:
    with pytest.raises(UpstreamProtocolError):
        parse_response(body)


@pytest.mark.parametrize(
    ("created_at", "created"),
    [("2025-06-01T12:00:00", CREATED), ("2025-06-01T14:00:00+02:00", CREATED), ("yesterday", None)],
)
def test_parse_response_created_at_variants_give_utc_seconds(created_at: str, created: int | None) -> None:
    body: dict[str, Any] = {"model": MODEL, "created_at": created_at, "message": {"content": "x"}}
    assert parse_response(body).created == created


def test_parse_response_tool_call_without_arguments_has_empty_object() -> None:
    body: dict[str, Any] = {"model": MODEL, "message": {"tool_calls": [{"function": {"name": "f"}}]}}
    assert parse_response(body).parts == (ToolCallPart(call_id="ollama-0-call-0", name="f", arguments="{}"),)


# -------------------------------------------------------------------------------------------- streams


def test_stream_parser_realistic_transcript_yields_expected_events() -> None:
    assert parse_stream(copy.deepcopy(TRANSCRIPT)) == EXPECTED_EVENTS


def test_stream_parser_transcript_accumulates_to_expected_response() -> None:
    response = accumulate(parse_stream(copy.deepcopy(TRANSCRIPT)), source_format="ollama")
    assert response == ChatResponse(
        id=PREFIX,
        model=MODEL,
        created=CREATED,
        parts=(
            ReasoningPart(text="The user wants weather.", source_format="ollama"),
            TextPart(text="Let me check."),
            ToolCallPart(call_id=f"{PREFIX}-call-0", name="get_weather", arguments='{"city":"Paris"}'),
        ),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=Usage(input_tokens=26, output_tokens=13),
    )


def test_stream_parser_bytes_from_ndjson_decoder_give_same_events() -> None:
    data = b"".join(orjson.dumps(value) + b"\n" for value in TRANSCRIPT)
    decoder = NDJSONDecoder()
    parser = StreamParser()
    events = [
        event for i in range(0, len(data), 7) for value in decoder.feed(data[i : i + 7]) for event in parser.feed(value)
    ]
    assert events + parser.finish() == EXPECTED_EVENTS


def test_stream_renderer_output_reparses_to_same_events() -> None:
    # Rendered created_at has whole seconds, and the generated ids derive from it.
    expected = parse_stream([{**value, "created_at": "2025-06-01T12:00:00Z"} for value in TRANSCRIPT])
    assert [type(event) for event in expected] == [type(event) for event in EXPECTED_EVENTS]
    assert parse_stream(decode(render_stream(EXPECTED_EVENTS))) == expected
    assert parse_stream(decode(render_stream(expected))) == expected


def test_stream_renderer_lines_match_ollama_shape() -> None:
    values = decode(render_stream(EXPECTED_EVENTS))
    assert values[0] == {
        "model": MODEL,
        "created_at": "2025-06-01T12:00:00Z",
        "message": {"role": "assistant", "content": "", "thinking": "The user"},
        "done": False,
    }
    assert values[4]["message"]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert values[-1] == {
        "model": MODEL,
        "created_at": "2025-06-01T12:00:00Z",
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 26,
        "eval_count": 13,
    }


def test_stream_renderer_buffers_argument_fragments_until_part_end() -> None:
    renderer = StreamRenderer()
    assert renderer.feed(MessageStart(id="m", model=MODEL)) == []
    assert renderer.feed(PartStart(index=0, part_kind="tool_call", call_id="c", name="f")) == []
    assert renderer.feed(ToolArgumentsDelta(index=0, json_fragment='{"a":')) == []
    assert renderer.feed(ToolArgumentsDelta(index=0, json_fragment="1}")) == []
    [out] = renderer.feed(PartEnd(index=0))
    assert orjson.loads(out) == {
        "model": MODEL,
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}],
        },
        "done": False,
    }


def test_stream_renderer_ignores_events_ollama_cannot_carry() -> None:
    renderer = StreamRenderer()
    ignored: list[StreamEvent] = [
        MessageStart(id="m", model=MODEL, created=CREATED),
        PartStart(index=0, part_kind="text"),
        TextDelta(index=0, text=""),
        PartEnd(index=0),
        PartStart(index=1, part_kind="reasoning", signature="s"),
        ReasoningDelta(index=1, text=""),
        SignatureDelta(index=1, signature="t"),
        ToolArgumentsDelta(index=9, json_fragment="{}"),
        PartEnd(index=1),
        UsageUpdate(usage=Usage(input_tokens=5, output_tokens=1)),
    ]
    assert [out for event in ignored for out in renderer.feed(event)] == []
    [end] = renderer.feed(MessageEnd(finish_reason=FinishReason.LENGTH))
    assert orjson.loads(end)["done_reason"] == "length"
    assert (orjson.loads(end)["prompt_eval_count"], orjson.loads(end)["eval_count"]) == (5, 1)
    assert renderer.finish() == []


def test_stream_renderer_error_is_an_error_line() -> None:
    err = UpstreamServerError("boom", provider="ollama", upstream_status=500)
    assert StreamRenderer().error(err) == b'{"error":"boom"}\n'


def test_stream_parser_error_line_raises_server_error() -> None:
    parser = StreamParser(provider="local")
    with pytest.raises(UpstreamServerError, match="local stream error: model crashed"):
        parser.feed({"error": "model crashed"})


@pytest.mark.parametrize("value", [["x"], {"model": MODEL, "message": "x"}])
def test_stream_parser_malformed_line_raises_protocol_error(value: Any) -> None:
    with pytest.raises(UpstreamProtocolError):
        StreamParser().feed(value)


def test_stream_parser_line_after_done_raises_protocol_error() -> None:
    parser = StreamParser()
    parser.feed(line({"content": ""}, done=True))
    with pytest.raises(UpstreamProtocolError):
        parser.feed(line({"content": "more"}, done=False))


def test_stream_parser_cut_off_stream_closes_open_part_without_message_end() -> None:
    parser = StreamParser()
    events = parser.feed({"message": {"content": "partial"}})
    assert events[0] == MessageStart(id="ollama-0", model="", created=None)
    assert parser.finish() == [PartEnd(index=0)]
    assert accumulate(events + [PartEnd(index=0)]).finish_reason is None


def test_stream_parser_done_line_without_message_or_tool_calls_reports_stop() -> None:
    parser = StreamParser()
    events = parser.feed({"model": MODEL, "done": True, "done_reason": "length", "eval_count": 3})
    assert events[-1] == MessageEnd(finish_reason=FinishReason.LENGTH, usage=Usage(output_tokens=3))
    assert parser.finish() == []


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "cls", "client_status"),
    [
        (400, UpstreamBadRequestError, 400),
        (401, UpstreamAuthError, 502),
        (403, UpstreamAuthError, 502),
        (404, UpstreamBadRequestError, 404),
        (429, UpstreamRateLimitError, 429),
        (500, UpstreamServerError, 502),
        (503, UpstreamServerError, 502),
    ],
)
def test_parse_error_status_maps_to_error_class(status: int, cls: type[Exception], client_status: int) -> None:
    error = parse_error(status, b'{"error":"something failed"}', {}, provider="local-ollama")
    assert type(error) is cls
    assert error.status_code == client_status
    assert error.upstream_status == status
    assert error.message == f"local-ollama returned {status}: something failed"


@pytest.mark.parametrize("status", sorted(ollama_errors._STATUS_ERRORS))
def test_parse_error_status_table_covers_each_status(status: int) -> None:
    assert type(parse_error(status, b"{}", {}, provider="p")) is ollama_errors._STATUS_ERRORS[status]


def test_parse_error_model_not_found_is_a_404_bad_request() -> None:
    body = b'{"error":"model \\"llama9\\" not found, try pulling it first"}'
    error = parse_error(404, body, {}, provider="ollama")
    assert isinstance(error, UpstreamBadRequestError)
    assert (error.status_code, error.retryable) == (404, False)
    assert "not found" in error.message


@pytest.mark.parametrize(
    ("headers", "retry_after_s"),
    [({"retry-after": "7"}, 7.0), ({"Retry-After": "3"}, 3.0), ({"retry-after": "soon"}, None), ({}, None)],
)
def test_parse_error_rate_limit_reads_retry_after(headers: dict[str, str], retry_after_s: float | None) -> None:
    error = parse_error(429, b'{"error":"busy"}', headers, provider="p")
    assert isinstance(error, UpstreamRateLimitError)
    assert error.retry_after_s == retry_after_s


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"", "(empty body)"),
        (b"upstream exploded", "upstream exploded"),
        (b'{"detail":"x"}', '{"detail":"x"}'),
        (b"[1]", "[1]"),
    ],
)
def test_parse_error_loose_bodies_keep_their_text(body: bytes, text: str) -> None:
    assert parse_error(500, body, {}, provider="p").message == f"p returned 500: {text}"


def test_parse_error_long_message_is_truncated() -> None:
    error = parse_error(500, orjson.dumps({"error": "x" * 5000}), {}, provider="p")
    assert len(error.message) == upstream_errors.MAX_ERROR_MESSAGE_CHARS


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidRequestError("bad field", param="messages"),
        errors.ModelNotFoundError("no such model"),
        errors.RateLimitedError("slow down", retry_after_s=2),
        errors.UpstreamBadRequestError("refused", provider="p", upstream_status=422),
        errors.NoDeploymentAvailableError("all failed"),
    ],
)
def test_render_error_renders_status_and_message(error: errors.GatewayError) -> None:
    assert render_error(error) == (error.status_code, {"error": error.message})
