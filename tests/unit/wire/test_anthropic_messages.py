"""Anthropic Messages: request/response round trips, validation, streams, usage and errors."""

from __future__ import annotations

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
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    Usage,
)
from polyroute.errors import (
    GatewayError,
    InvalidRequestError,
    NoDeploymentAvailableError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamRateLimitError,
    UpstreamServerError,
)
from polyroute.wire import anthropic_messages as am
from polyroute.wire import upstream_errors
from polyroute.wire.anthropic_messages import errors as am_errors
from polyroute.wire.anthropic_messages import request as am_request
from polyroute.wire.anthropic_messages import response as am_response
from polyroute.wire.anthropic_messages import stream as am_stream
from polyroute.wire.sse import SSEDecoder, SSEEvent

MODEL = "claude-sonnet-4-5-20250929"
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"

# --- requests ------------------------------------------------------------------------------------------------------

FULL_REQUEST = ChatRequest(
    model=MODEL,
    system=(TextPart(text="You are terse."), TextPart(text="Answer in French.")),
    messages=(
        Message(
            role="user",
            parts=(
                TextPart(text="What is in these pictures, and what's the weather?"),
                ImagePart(data="iVBORw0KGgo=", media_type="image/png"),
                ImagePart(url="https://example.com/cat.jpg"),
            ),
        ),
        Message(
            role="assistant",
            parts=(
                ReasoningPart(text="The user wants weather.", signature=SIGNATURE, source_format="anthropic"),
                ReasoningPart(redacted="EmwKAhgBEgy3va3pzix/LafPsn4a", source_format="anthropic"),
                TextPart(text="Checking."),
                ToolCallPart(call_id="toolu_01A", name="get_weather", arguments='{"city":"Paris","days":[1,2]}'),
            ),
        ),
        Message(
            role="user",
            parts=(
                ToolResultPart(call_id="toolu_01A", content=(TextPart(text="15 degrees"),)),
                ToolResultPart(
                    call_id="toolu_01B",
                    content=(TextPart(text="see chart"), ImagePart(data="R0lGOD", media_type="image/gif")),
                    is_error=True,
                ),
                ToolResultPart(call_id="toolu_01C"),
            ),
        ),
    ),
    tools=(
        ToolSpec(
            name="get_weather",
            description="Weather by city",
            parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        ),
        ToolSpec(name="noop", parameters={"type": "object"}),
    ),
    tool_choice=ToolChoice(mode="tool", name="get_weather"),
    parallel_tool_calls=False,
    max_output_tokens=2048,
    temperature=0.5,
    top_p=0.9,
    top_k=40,
    stop=("###", "END"),
    stream=True,
    reasoning_budget_tokens=1024,
    user_id="user-123",
    extensions={"anthropic": {"service_tier": "auto", "container": None}},
)
MINIMAL_REQUEST = ChatRequest(
    model=MODEL, messages=(Message(role="user", parts=(TextPart(text="Hi"),)),), max_output_tokens=1
)


@pytest.mark.parametrize("request_", [FULL_REQUEST, MINIMAL_REQUEST], ids=["full", "minimal"])
def test_request_round_trip_canonical_first_is_lossless(request_: ChatRequest) -> None:
    assert am.parse_request(am.render_request(request_)) == request_


def test_render_request_full_gives_exact_wire_body() -> None:
    body = am.render_request(FULL_REQUEST)
    assert body["service_tier"] == "auto"
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    assert body["metadata"] == {"user_id": "user-123"}
    assert body["system"] == [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in French."}]
    assert body["messages"][1]["content"][3] == {  # type: ignore[index,call-overload]
        "type": "tool_use",
        "id": "toolu_01A",
        "name": "get_weather",
        "input": {"city": "Paris", "days": [1, 2]},
    }
    assert body["messages"][2]["content"][2] == {"type": "tool_result", "tool_use_id": "toolu_01C"}  # type: ignore[index,call-overload]
    assert body["messages"][0]["content"][1] == {  # type: ignore[index,call-overload]
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }


def test_parse_request_wire_first_maps_every_field() -> None:
    body: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Hello"},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok", "is_error": False}],
            },
        ],
        "temperature": 1,
        "stream": False,
        "tool_choice": {"type": "any", "disable_parallel_tool_use": False},
        "thinking": {"type": "disabled"},
        "metadata": {"user_id": None},
        "mcp_servers": [{"type": "url", "url": "https://mcp.example.com"}],
    }
    request = am.parse_request(body)
    assert request.system == (TextPart(text="Be brief."),)
    assert request.messages[0] == Message(role="user", parts=(TextPart(text="Hello"),))
    assert request.messages[1].parts == (ToolResultPart(call_id="t1", content=(TextPart(text="ok"),)),)
    assert request.temperature == 1.0
    assert request.tool_choice == ToolChoice(mode="required")
    assert request.parallel_tool_calls is True
    assert request.reasoning_budget_tokens is None
    assert request.user_id is None
    assert request.extensions == {
        "anthropic": {
            "thinking": {"type": "disabled"},
            "mcp_servers": [{"type": "url", "url": "https://mcp.example.com"}],
        }
    }
    assert am.render_request(request)["thinking"] == {"type": "disabled"}


def test_tool_choice_table_every_key_round_trips() -> None:
    for wire_type, choice in am_request._TOOL_CHOICES.items():
        request = am.parse_request({**_minimal_body(), "tool_choice": {"type": wire_type}})
        assert request.tool_choice == choice
        assert am.render_request(request)["tool_choice"] == {"type": wire_type}
    assert set(am_request._TOOL_CHOICE_TYPES) == {"auto", "none", "required", "tool"}


def test_render_request_parallel_without_choice_uses_auto() -> None:
    request = ChatRequest(model=MODEL, messages=(), parallel_tool_calls=True)
    body = am.render_request(request)
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": False}
    assert body["max_tokens"] == am_request.DEFAULT_MAX_TOKENS


def test_render_request_foreign_reasoning_is_dropped_not_forged() -> None:
    parts = (
        ReasoningPart(text="openai thoughts", signature="sig", source_format="openai"),
        ReasoningPart(text="unsigned", source_format="anthropic"),
        ToolCallPart(call_id="c1", name="noop", arguments=""),
        TextPart(text="done"),
    )
    request = ChatRequest(model=MODEL, messages=(Message(role="assistant", parts=parts),))
    content = am.render_request(request)["messages"][0]["content"]  # type: ignore[index,call-overload]
    assert content == [
        {"type": "tool_use", "id": "c1", "name": "noop", "input": {}},
        {"type": "text", "text": "done"},
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_render_request_non_object_arguments_raises_invalid(arguments: str) -> None:
    part = ToolCallPart(call_id="c1", name="noop", arguments=arguments)
    request = ChatRequest(model=MODEL, messages=(Message(role="assistant", parts=(part,)),))
    with pytest.raises(InvalidRequestError) as info:
        am.render_request(request)
    assert info.value.param == "arguments"


def _minimal_body(**overrides: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}], **overrides}


def _user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"model": None}, "model"),
        ({"model": 3}, "model"),
        ({"messages": {}}, "messages"),
        ({"messages": ["x"]}, "messages[0]"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user"}, _user({"text": "x"})]}, "messages[0].content"),
        ({"messages": [_user({"type": "text", "text": "a"}, {"type": "video"})]}, "messages[0].content[1].type"),
        (
            {"messages": [_user({"type": "tool_use", "id": "a", "name": "b", "input": {}})]},
            "messages[0].content[0].type",
        ),
        ({"messages": [_user({"type": "text"})]}, "messages[0].content[0].text"),
        ({"messages": [_user({"type": "image"})]}, "messages[0].content[0].source"),
        ({"messages": [_user({"type": "image", "source": {"type": "file"}})]}, "messages[0].content[0].source.type"),
        ({"messages": [_user({"type": "image", "source": {"type": "url"}})]}, "messages[0].content[0].source.url"),
        (
            {"messages": [_user({"type": "image", "source": {"type": "base64", "data": "x"}})]},
            "messages[0].content[0].source.media_type",
        ),
        (
            {"messages": [_user({"type": "tool_result", "tool_use_id": "t", "content": 3})]},
            "messages[0].content[0].content",
        ),
        (
            {"messages": [_user({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "tool_result"}]})]},
            "messages[0].content[0].content[0].type",
        ),
        (
            {"messages": [_user({"type": "tool_result", "tool_use_id": "t", "is_error": "yes"})]},
            "messages[0].content[0].is_error",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": []}]}
                ]
            },
            "messages[0].content[0].input",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": "x"}]}]},
            "messages[0].content[0].signature",
        ),
        ({"system": [{"type": "image"}]}, "system[0].type"),
        ({"system": 4}, "system"),
        ({"tools": [{"name": "x"}]}, "tools[0].input_schema"),
        ({"tools": [{"name": "x", "description": 1, "input_schema": {}}]}, "tools[0].description"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"tool_choice": {"type": "some"}}, "tool_choice.type"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name"),
        ({"metadata": {"user_id": "u", "session": "s"}}, "metadata.session"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_k": 1.5}, "top_k"),
        ({"stop_sequences": [1]}, "stop_sequences[0]"),
        ({"stream": "yes"}, "stream"),
        ({"thinking": {"type": "enabled", "budget_tokens": "many"}}, "thinking.budget_tokens"),
    ],
)
def test_parse_request_invalid_field_names_param(overrides: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        am.parse_request(_minimal_body(**overrides))
    assert info.value.param == param
    assert info.value.message.startswith(param)


def test_parse_request_empty_system_list_is_empty() -> None:
    assert am.parse_request(_minimal_body(system=[])).system == ()


# --- responses -----------------------------------------------------------------------------------------------------

FULL_RESPONSE = ChatResponse(
    id="msg_01XFDUDYJgAACzvnptvVoYEL",
    model=MODEL,
    parts=(
        ReasoningPart(text="Let me check.", signature=SIGNATURE, source_format="anthropic"),
        ReasoningPart(redacted="EmwKAhgB", source_format="anthropic"),
        TextPart(text="I'll look that up."),
        ToolCallPart(call_id="toolu_01A", name="get_weather", arguments='{"city":"Paris"}'),
    ),
    finish_reason=FinishReason.TOOL_CALLS,
    usage=Usage(input_tokens=2095, output_tokens=503, cache_read_tokens=1800, cache_write_tokens=200),
)


@pytest.mark.parametrize(
    "response",
    [
        FULL_RESPONSE,
        ChatResponse(id="msg_1", model=MODEL, finish_reason=None),
        ChatResponse(
            id="msg_2",
            model=MODEL,
            parts=(TextPart(text="Hi ###"),),
            finish_reason=FinishReason.STOP,
            usage=Usage(input_tokens=5, output_tokens=1),
            extensions={"anthropic": {"stop_reason": "stop_sequence", "stop_sequence": "###", "container": None}},
        ),
    ],
    ids=["full", "empty", "stop-sequence"],
)
def test_response_round_trip_canonical_first_is_lossless(response: ChatResponse) -> None:
    assert am.parse_response(am.render_response(response)) == response


def test_render_response_usage_excludes_cache_from_input_tokens() -> None:
    body = am.render_response(FULL_RESPONSE)
    assert body["usage"] == {
        "input_tokens": 95,
        "output_tokens": 503,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 1800,
    }
    assert body["stop_reason"] == "tool_use"
    assert body["type"] == "message"


def test_parse_response_wire_first_round_trips_body() -> None:
    body: dict[str, Any] = {
        "id": "msg_3",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "Paused"}],
        "stop_reason": "pause_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 2, "service_tier": "standard"},
    }
    response = am.parse_response(body)
    assert response.finish_reason is FinishReason.STOP
    assert response.usage == Usage(input_tokens=10, output_tokens=2)
    assert response.extensions == {"anthropic": {"stop_reason": "pause_turn"}}
    del body["usage"]["service_tier"]
    assert am.render_response(response) == body


def test_parse_response_without_usage_gives_empty_usage() -> None:
    response = am.parse_response({"id": "m", "model": MODEL, "content": [], "stop_reason": "end_turn"})
    assert response.usage == Usage()
    assert response.extensions == {}


@pytest.mark.parametrize(
    "body",
    [
        {"id": "m", "model": MODEL, "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]},
        {"id": "m", "model": MODEL, "content": "text"},
        {"id": "m", "model": MODEL, "content": [], "usage": {"input_tokens": "1"}},
    ],
)
def test_parse_response_malformed_raises_value_error(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="malformed Anthropic response"):
        am.parse_response(body)


def test_stop_reasons_table_every_key_maps() -> None:
    expected = {
        "end_turn": FinishReason.STOP,
        "stop_sequence": FinishReason.STOP,
        "pause_turn": FinishReason.STOP,
        "max_tokens": FinishReason.LENGTH,
        "model_context_window_exceeded": FinishReason.LENGTH,
        "tool_use": FinishReason.TOOL_CALLS,
        "refusal": FinishReason.CONTENT_FILTER,
    }
    assert expected == am_response._STOP_REASONS
    for wire, finish in expected.items():
        assert am_response.parse_stop_reason(wire) is finish
    assert am_response.parse_stop_reason("some_future_reason") is FinishReason.STOP
    assert am_response.parse_stop_reason(None) is None


def test_finish_reasons_table_covers_every_finish_reason() -> None:
    assert set(am_response._FINISH_REASONS) == set(FinishReason)
    for finish, wire in am_response._FINISH_REASONS.items():
        assert am_response.render_stop_reason(finish) == wire
        if wire is not None:
            assert am_response.parse_stop_reason(wire) is finish
    assert am_response.render_stop_reason(None) is None


@pytest.mark.parametrize(
    ("wire", "canonical"),
    [
        ({"input_tokens": 10, "output_tokens": 3}, Usage(input_tokens=10, output_tokens=3)),
        (
            {"input_tokens": 10, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 0},
            Usage(input_tokens=100, cache_read_tokens=90, cache_write_tokens=0),
        ),
        ({"output_tokens": 7, "cache_read_input_tokens": 4}, Usage(output_tokens=7, cache_read_tokens=4)),
    ],
)
def test_parse_usage_cache_counts_summed_into_input(wire: dict[str, int], canonical: Usage) -> None:
    assert am_response.parse_usage(wire) == canonical
    assert am_response.render_usage(canonical) == wire


def test_render_usage_inconsistent_foreign_counts_floor_at_zero() -> None:
    assert am_response.render_usage(Usage(input_tokens=5, cache_read_tokens=9)) == {
        "input_tokens": 0,
        "cache_read_input_tokens": 9,
    }


# --- streams -------------------------------------------------------------------------------------------------------

ARGUMENT_FRAGMENTS = ['{"ci', 'ty": "Par', 'is", "unit": "c', '\\u00e9lsius"', "}"]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


TRANSCRIPT = b"".join(
    [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_01Stream",
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 472,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 1000,
                        "output_tokens": 2,
                    },
                },
            },
        ),
        b'event: ping\ndata: {"type": "ping"}\n\n',
        _sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        ),
        _delta(0, {"type": "thinking_delta", "thinking": "The user wants "}),
        _delta(0, {"type": "thinking_delta", "thinking": "Paris weather."}),
        _delta(0, {"type": "signature_delta", "signature": SIGNATURE}),
        _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse(
            "content_block_start",
            {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        ),
        _delta(1, {"type": "text_delta", "text": "Let me "}),
        _delta(1, {"type": "text_delta", "text": "check — ✓."}),
        _sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
        _sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "tool_use", "id": "toolu_01T", "name": "get_weather", "input": {}},
            },
        ),
        _delta(2, {"type": "input_json_delta", "partial_json": ""}),
        *[_delta(2, {"type": "input_json_delta", "partial_json": fragment}) for fragment in ARGUMENT_FRAGMENTS],
        _sse("content_block_stop", {"type": "content_block_stop", "index": 2}),
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 89},
            },
        ),
        _sse("message_stop", {"type": "message_stop"}),
    ]
)
START_USAGE = Usage(input_tokens=1472, output_tokens=2, cache_read_tokens=1000, cache_write_tokens=0)
FINAL_USAGE = Usage(input_tokens=1472, output_tokens=89, cache_read_tokens=1000, cache_write_tokens=0)


def _parse_stream(data: bytes, parser: am.StreamParser | None = None) -> list[StreamEvent]:
    parser = parser or am.StreamParser()
    decoder = SSEDecoder()
    events = [out for sse in decoder.feed(data) for out in parser.feed(sse)]
    return events + parser.finish()


def test_stream_parser_transcript_gives_expected_events() -> None:
    events = _parse_stream(TRANSCRIPT)
    assert events[:3] == [
        MessageStart(id="msg_01Stream", model=MODEL),
        UsageUpdate(usage=START_USAGE),
        PartStart(index=0, part_kind="reasoning"),
    ]
    assert SignatureDelta(index=0, signature=SIGNATURE) in events
    assert PartStart(index=2, part_kind="tool_call", call_id="toolu_01T", name="get_weather") in events
    assert events[-2:] == [
        UsageUpdate(usage=FINAL_USAGE),
        MessageEnd(finish_reason=FinishReason.TOOL_CALLS, usage=FINAL_USAGE),
    ]
    assert sum(isinstance(event, UsageUpdate) for event in events) == 2


def test_stream_parser_transcript_accumulates_to_response() -> None:
    response = accumulate(_parse_stream(TRANSCRIPT), source_format="anthropic")
    assert response == ChatResponse(
        id="msg_01Stream",
        model=MODEL,
        parts=(
            ReasoningPart(text="The user wants Paris weather.", signature=SIGNATURE, source_format="anthropic"),
            TextPart(text="Let me check — ✓."),
            ToolCallPart(call_id="toolu_01T", name="get_weather", arguments="".join(ARGUMENT_FRAGMENTS)),
        ),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=FINAL_USAGE,
    )
    tool_call = response.parts[2]
    assert isinstance(tool_call, ToolCallPart)
    assert tool_call.arguments.encode() == b"".join(fragment.encode() for fragment in ARGUMENT_FRAGMENTS)


def test_stream_renderer_output_reparses_to_same_events() -> None:
    events = _parse_stream(TRANSCRIPT)
    renderer = am.StreamRenderer()
    rendered = b"".join(frame for event in events for frame in renderer.feed(event)) + b"".join(renderer.finish())
    assert _parse_stream(rendered) == events


def test_stream_renderer_frames_are_exact_anthropic_sse() -> None:
    renderer = am.StreamRenderer()
    assert renderer.feed(MessageStart(id="msg_1", model=MODEL)) == []
    frames = renderer.feed(UsageUpdate(usage=Usage(input_tokens=12, output_tokens=1)))
    assert frames == [
        b"event: message_start\n"
        b'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
        b'"model":"' + MODEL.encode() + b'","content":[],"stop_reason":null,"stop_sequence":null,'
        b'"usage":{"input_tokens":12,"output_tokens":1}}}\n\n'
    ]
    assert renderer.feed(PartStart(index=0, part_kind="text")) == [
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
    ]
    assert renderer.feed(TextDelta(index=0, text="Hi\n")) == [
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi\\n"}}\n\n'
    ]
    assert renderer.feed(PartEnd(index=0)) == [
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    ]
    assert renderer.feed(MessageEnd(finish_reason=FinishReason.LENGTH)) == [
        b'event: message_delta\ndata: {"type":"message_delta",'
        b'"delta":{"stop_reason":"max_tokens","stop_sequence":null},'
        b'"usage":{"input_tokens":12,"output_tokens":1}}\n\n',
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ]
    assert renderer.finish() == []


def test_stream_renderer_foreign_stream_uses_placeholders_and_drops_tool_signature() -> None:
    renderer = am.StreamRenderer()
    events: list[StreamEvent] = [
        MessageStart(id="gen-1", model="gemini-2.5-pro"),
        PartStart(index=0, part_kind="reasoning", signature="sig-start"),
        ReasoningDelta(index=0, text="hmm"),
        PartEnd(index=0),
        PartStart(index=1, part_kind="reasoning", redacted="opaque"),
        PartEnd(index=1),
        PartStart(index=2, part_kind="tool_call", call_id="c1", name="f"),
        SignatureDelta(index=2, signature="gemini-sig"),
        ToolArgumentsDelta(index=2, json_fragment="{}"),
        PartEnd(index=2),
        MessageEnd(finish_reason=FinishReason.ERROR),
    ]
    rendered = b"".join(frame for event in events for frame in renderer.feed(event))
    assert b'"usage":{"input_tokens":0,"output_tokens":0}' in rendered
    assert b'"usage":{"output_tokens":0}' in rendered
    assert b"gemini-sig" not in rendered
    reparsed = _parse_stream(rendered)
    assert reparsed[1:] == [
        UsageUpdate(usage=Usage(input_tokens=0, output_tokens=0)),
        *events[1:7],
        *events[8:10],
        UsageUpdate(usage=Usage(input_tokens=0, output_tokens=0)),
        MessageEnd(finish_reason=FinishReason.ERROR, usage=Usage(input_tokens=0, output_tokens=0)),
    ]


def test_stream_renderer_finish_flushes_held_message_start() -> None:
    renderer = am.StreamRenderer()
    renderer.feed(MessageStart(id="msg_1", model=MODEL))
    frames = renderer.finish()
    assert len(frames) == 1
    assert frames[0].startswith(b"event: message_start\n")


def test_stream_renderer_error_is_event_error() -> None:
    frame = am.StreamRenderer().error(UpstreamServerError("boom", provider="anthropic", upstream_status=529))
    assert frame == b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"boom"}}\n\n'


def test_stream_parser_usage_never_added_twice() -> None:
    parser = am.StreamParser()
    parser.feed(
        SSEEvent(
            event="message_start",
            data=orjson.dumps(
                {
                    "type": "message_start",
                    "message": {"id": "m", "model": MODEL, "usage": {"input_tokens": 10, "output_tokens": 1}},
                }
            ).decode(),
        )
    )
    for output_tokens in (5, 9):
        data = {"type": "message_delta", "delta": {}, "usage": {"output_tokens": output_tokens}}
        events = parser.feed(SSEEvent(data=orjson.dumps(data).decode()))
        assert events == [UsageUpdate(usage=Usage(input_tokens=10, output_tokens=output_tokens))]
    data = {"type": "message_delta", "delta": {}, "usage": {"input_tokens": 12, "output_tokens": 11}}
    assert parser.feed(SSEEvent(data=orjson.dumps(data).decode())) == [
        UsageUpdate(usage=Usage(input_tokens=12, output_tokens=11))
    ]
    end = parser.feed(SSEEvent(data='{"type":"message_stop"}'))
    assert end == [MessageEnd(finish_reason=FinishReason.ERROR, usage=Usage(input_tokens=12, output_tokens=11))]


def _feed(parser: am.StreamParser, data: dict[str, Any]) -> list[StreamEvent]:
    return parser.feed(SSEEvent(data=orjson.dumps(data).decode()))


def test_stream_parser_minimal_events_without_usage() -> None:
    parser = am.StreamParser()
    assert _feed(parser, {"type": "message_start", "message": {"id": "m", "model": MODEL}}) == [
        MessageStart(id="m", model=MODEL)
    ]
    assert _feed(parser, {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}) == []
    assert _feed(parser, {"type": "message_delta"}) == []
    assert _feed(parser, {"type": "message_stop"}) == [MessageEnd(finish_reason=FinishReason.STOP)]
    assert parser.finish() == []


def test_stream_parser_block_start_with_text_and_unknown_delta() -> None:
    parser = am.StreamParser()
    text_start = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "Hi"}}
    assert _feed(parser, text_start) == [PartStart(index=0, part_kind="text"), TextDelta(index=0, text="Hi")]
    thinking_start = {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "thinking", "thinking": "so", "signature": "s0"},
    }
    assert _feed(parser, thinking_start) == [
        PartStart(index=1, part_kind="reasoning", signature="s0"),
        ReasoningDelta(index=1, text="so"),
    ]
    citation = {"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": {}}}
    assert _feed(parser, citation) == []
    assert _feed(parser, {"type": "some_future_event"}) == []


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "[1]",
        '{"type": "content_block_stop"}',
        '{"type": "content_block_stop", "index": true}',
        '{"type": "content_block_start", "index": 0, "content_block": {"type": "server_tool_use"}}',
        '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}}',
        '{"type": "message_start", "message": {"id": "m"}}',
    ],
)
def test_stream_parser_malformed_event_raises_value_error(data: str) -> None:
    with pytest.raises(ValueError, match="Anthropic stream event"):
        am.StreamParser().feed(SSEEvent(data=data))


def test_stream_parser_finish_before_message_stop_raises() -> None:
    parser = am.StreamParser()
    _feed(parser, {"type": "message_start", "message": {"id": "m", "model": MODEL}})
    with pytest.raises(ValueError, match="before message_stop"):
        parser.finish()


@pytest.mark.parametrize(
    ("error_type", "cls", "status"),
    [
        ("overloaded_error", UpstreamServerError, 529),
        ("rate_limit_error", UpstreamRateLimitError, 429),
        ("invalid_request_error", UpstreamBadRequestError, 400),
        (None, UpstreamServerError, 500),
    ],
)
def test_stream_parser_error_event_raises_mapped_error(
    error_type: str | None, cls: type[GatewayError], status: int
) -> None:
    parser = am.StreamParser(provider="claude-direct")
    error: dict[str, Any] = {"message": "Overloaded"}
    if error_type is not None:
        error["type"] = error_type
    with pytest.raises(cls) as info:
        parser.feed(SSEEvent(event="error", data=orjson.dumps({"type": "error", "error": error}).decode()))
    assert info.value.upstream_status == status  # type: ignore[attr-defined]
    assert "claude-direct returned" in info.value.message


# --- errors --------------------------------------------------------------------------------------------------------


def _error_body(error_type: str, message: str = "boom") -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_1"})


def test_error_types_table_every_key_maps_to_its_class() -> None:
    expected: dict[str, type[GatewayError]] = {
        "invalid_request_error": UpstreamBadRequestError,
        "not_found_error": UpstreamBadRequestError,
        "request_too_large": UpstreamBadRequestError,
        "authentication_error": UpstreamAuthError,
        "permission_error": UpstreamAuthError,
        "billing_error": UpstreamAuthError,
        "rate_limit_error": UpstreamRateLimitError,
        "api_error": UpstreamServerError,
        "timeout_error": UpstreamServerError,
        "overloaded_error": UpstreamServerError,
    }
    assert expected == am_errors._ERROR_TYPES
    assert set(am_errors._ERROR_STATUSES) == set(expected)
    for error_type, status in am_errors._ERROR_STATUSES.items():
        error = am.parse_error(status, _error_body(error_type), {}, provider="anthropic")
        assert type(error) is expected[error_type]
        assert error.upstream_type == error_type
        assert error.message == f"anthropic returned {status}: boom"
        assert am_errors.error_status(error_type) == status


def test_parse_error_529_overloaded_is_retryable_server_error() -> None:
    error = am.parse_error(529, _error_body("overloaded_error", "Overloaded"), {}, provider="anthropic")
    assert isinstance(error, UpstreamServerError)
    assert error.retryable
    assert error.upstream_status == 529


@pytest.mark.parametrize(
    ("headers", "retry_after_s"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "-3"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": "inf"}, None),
    ],
)
def test_parse_error_429_carries_retry_after(headers: dict[str, str], retry_after_s: float | None) -> None:
    error = am.parse_error(429, _error_body("rate_limit_error"), headers, provider="anthropic")
    assert isinstance(error, UpstreamRateLimitError)
    assert error.retry_after_s == retry_after_s


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        (429, b"", UpstreamRateLimitError, "(empty body)"),
        (401, b"nope", UpstreamAuthError, "nope"),
        (403, b'{"error": "denied"}', UpstreamAuthError, '{"error":"denied"}'),
        (422, b'{"type": "error", "error": {"type": "new_kind_error", "message": "x"}}', UpstreamBadRequestError, "x"),
        (502, b'{"type": "error", "error": {"type": 5}}', UpstreamServerError, '{"type":5}'),
        (503, b"[1]", UpstreamServerError, "[1]"),
    ],
)
def test_parse_error_unknown_type_falls_back_to_status(
    status: int, body: bytes, cls: type[GatewayError], message: str
) -> None:
    error = am.parse_error(status, body, {}, provider="p")
    assert type(error) is cls
    assert error.message == f"p returned {status}: {message}"


def test_parse_error_long_message_is_truncated() -> None:
    error = am.parse_error(400, _error_body("invalid_request_error", "x" * 5000), {}, provider="p")
    assert len(error.message) == upstream_errors.MAX_ERROR_MESSAGE_CHARS


def _all_subclasses(cls: type[GatewayError]) -> set[type[GatewayError]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _all_subclasses(sub)
    return found


def test_rendered_types_table_covers_every_gateway_error() -> None:
    gateway_errors = {cls for cls in _all_subclasses(GatewayError) if cls.__module__ == errors.__name__}
    assert gateway_errors <= set(am_errors._RENDERED_TYPES)
    allowed = set(am_errors._ERROR_STATUSES)
    assert set(am_errors._RENDERED_TYPES.values()) <= allowed


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (InvalidRequestError("bad", param="x"), 400, "invalid_request_error"),
        (errors.AuthenticationError("who"), 401, "authentication_error"),
        (errors.PermissionDeniedError("no"), 403, "permission_error"),
        (errors.NotFoundError("gone"), 404, "not_found_error"),
        (errors.ModelNotFoundError("model"), 404, "not_found_error"),
        (errors.MethodNotAllowedError("get"), 405, "invalid_request_error"),
        (errors.PayloadTooLargeError("big"), 413, "request_too_large"),
        (errors.RateLimitedError("slow", retry_after_s=2), 429, "rate_limit_error"),
        (
            UpstreamBadRequestError("bad", provider="p", upstream_status=404, upstream_type="not_found_error"),
            404,
            "not_found_error",
        ),
        (
            UpstreamBadRequestError("bad", provider="p", upstream_status=400, upstream_type="weird"),
            400,
            "invalid_request_error",
        ),
        (UpstreamAuthError("key", provider="p", upstream_status=401), 502, "api_error"),
        (UpstreamRateLimitError("slow", provider="p"), 429, "rate_limit_error"),
        (UpstreamServerError("down", provider="p", upstream_status=529), 502, "api_error"),
        (errors.UpstreamTimeoutError("slow", provider="p"), 504, "timeout_error"),
        (errors.UpstreamConnectionError("gone", provider="p"), 502, "api_error"),
        (errors.UpstreamProtocolError("junk", provider="p"), 502, "api_error"),
        (NoDeploymentAvailableError("all failed"), 503, "overloaded_error"),
        (GatewayError("oops"), 500, "api_error"),
    ],
)
def test_render_error_per_class_gives_anthropic_shape(error: GatewayError, status: int, error_type: str) -> None:
    assert am.render_error(error) == (
        status,
        {"type": "error", "error": {"type": error_type, "message": error.message}},
    )


def test_module_exposes_translator_surface() -> None:
    assert set(am.__all__) == {
        "parse_request",
        "render_request",
        "parse_response",
        "render_response",
        "parse_error",
        "render_error",
        "StreamParser",
        "StreamRenderer",
        "FORMAT",
        "CAPABILITIES",
        "request_path",
        "stream_parser",
        "stream_renderer",
    }
    assert am_stream._PART_KINDS.keys() == {"text", "tool_use", "thinking", "redacted_thinking"}
    for delta_type, field in am_stream._DELTA_FIELDS.items():
        events = am.StreamParser().feed(
            SSEEvent(
                data=orjson.dumps(
                    {"type": "content_block_delta", "index": 3, "delta": {"type": delta_type, field: "v"}}
                ).decode()
            )
        )
        assert len(events) == 1
        assert events[0].index == 3  # type: ignore[union-attr]


_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
_MINIMAL = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("output_config", "schema", "effort", "left_over"),
    [
        ({"format": {"type": "json_schema", "schema": _SCHEMA}, "effort": "high"}, _SCHEMA, "high", None),
        ({"effort": "turbo", "task_budget": 5}, None, None, {"effort": "turbo", "task_budget": 5}),
        ({"format": {"type": "text"}}, None, None, {"format": {"type": "text"}}),
        ({}, None, None, None),
    ],
)
def test_output_config_maps_format_and_effort(
    output_config: dict[str, Any], schema: Any, effort: str | None, left_over: Any
) -> None:
    request = am.parse_request({**_MINIMAL, "output_config": output_config})
    assert (request.response_format.schema if request.response_format else None) == schema
    assert request.reasoning_effort == effort
    assert request.extensions.get("anthropic", {}).get("output_config") == left_over
    rendered = am.render_request(request)
    assert rendered.get("output_config", {}) == output_config


def test_output_config_absent_is_not_rendered() -> None:
    assert "output_config" not in am.render_request(am.parse_request(_MINIMAL))


def test_system_turns_join_the_system_prompt_or_stay_in_place() -> None:
    request = am.parse_request(
        {
            "model": "claude",
            "max_tokens": 10,
            "system": "Base.",
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "Lead."}]},
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "Reminder."},
                {"role": "system"},
            ],
        }
    )
    assert [part.text for part in request.system] == ["Base.", "Lead."]
    assert [message.role for message in request.messages] == ["user", "user", "user"]
    assert request.messages[1].parts == (TextPart(text="Reminder."),)
    assert request.messages[2].parts == ()
