"""Gemini generateContent / streamGenerateContent translator: requests, responses, streams, errors."""

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
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    Usage,
)
from polyroute.errors import InvalidRequestError
from polyroute.wire import gemini
from polyroute.wire.gemini import parts as gemini_parts
from polyroute.wire.gemini import request as gemini_request
from polyroute.wire.gemini.errors import _ERROR_STATUSES, _STATUS_NAMES
from polyroute.wire.gemini.parts import _FINISH_REASONS, _RENDERED_FINISH_REASONS
from polyroute.wire.sse import SSEDecoder, SSEEvent
from polyroute.wire.upstream_errors import MAX_ERROR_MESSAGE_CHARS

SIG = "CiQBVKhc7jSignature=="
USAGE = {
    "promptTokenCount": 20,
    "candidatesTokenCount": 7,
    "cachedContentTokenCount": 4,
    "thoughtsTokenCount": 5,
    "totalTokenCount": 32,
}


def _request_body() -> dict[str, Any]:
    return {
        "contents": [
            {
                "role": "user",
                "parts": [{"text": "Weather in Paris?"}, {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}],
            },
            {
                "role": "model",
                "parts": [
                    {"text": "Let me think.", "thought": True, "thoughtSignature": SIG},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG},
                    {"functionCall": {"name": "get_time", "args": {}, "id": "call-9"}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                    {"functionResponse": {"name": "get_time", "response": {"t": "noon"}, "id": "call-9"}},
                    {"fileData": {"mimeType": "application/pdf", "fileUri": "https://files/x"}},
                    {"fileData": {"fileUri": "gs://b/y"}},
                ],
            },
            {"role": "model", "parts": [{"text": "Sunny.", "thoughtSignature": SIG}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": [
            {
                "functionDeclarations": [
                    {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
                    {"name": "get_time"},
                ]
            },
            {"googleSearch": {}},
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {
            "temperature": 0.5,
            "topP": 0.9,
            "topK": 40,
            "maxOutputTokens": 256,
            "stopSequences": ["END"],
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object"},
            "candidateCount": 1,
            "thinkingConfig": {"thinkingBudget": 1024, "thinkingLevel": "high", "includeThoughts": True},
        },
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }


# --- requests -------------------------------------------------------------------------------------------


def test_parse_request_full_body_maps_every_field() -> None:
    request = gemini.parse_request(_request_body(), model="gemini-2.5-pro")
    assert request.model == "gemini-2.5-pro"
    assert request.system == (TextPart(text="Be brief."),)
    assert request.messages[0].parts[1] == ImagePart(data="iVBO", media_type="image/png")
    call, named_call = request.messages[1].parts[1], request.messages[1].parts[2]
    assert call == ToolCallPart(
        call_id="gemini_call_1_1", name="get_weather", arguments='{"city":"Paris"}', signature=SIG
    )
    assert named_call == ToolCallPart(call_id="call-9", name="get_time", arguments="{}")
    assert request.messages[1].parts[0] == ReasoningPart(text="Let me think.", signature=SIG, source_format="gemini")
    results = request.messages[2].parts
    assert results[0] == ToolResultPart(call_id="gemini_call_1_1", content=(TextPart(text='{"temp_c":21}'),))
    assert results[1] == ToolResultPart(call_id="call-9", content=(TextPart(text='{"t":"noon"}'),))
    assert results[2] == ImagePart(url="https://files/x", media_type="application/pdf")
    assert results[3] == ImagePart(url="gs://b/y")
    assert request.messages[3].parts == (TextPart(text="Sunny."), ReasoningPart(signature=SIG, source_format="gemini"))
    assert request.tools == (
        ToolSpec(name="get_weather", description="Weather", parameters={"type": "object"}),
        ToolSpec(name="get_time"),
    )
    assert request.tool_choice == ToolChoice(mode="auto")
    assert (request.temperature, request.top_p, request.top_k, request.max_output_tokens) == (0.5, 0.9, 40, 256)
    assert request.stop == ("END",)
    assert request.response_format == ResponseFormat(mode="json_schema", schema={"type": "object"})
    assert (request.reasoning_budget_tokens, request.reasoning_effort) == (1024, "high")
    assert request.stream is False
    assert request.extensions == {
        "gemini": {
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            "generationConfig": {"candidateCount": 1, "thinkingConfig": {"includeThoughts": True}},
            "tools": [{"googleSearch": {}}],
        }
    }


def test_render_request_after_parse_round_trips_body() -> None:
    body = _request_body()
    rendered = gemini.render_request(gemini.parse_request(copy.deepcopy(body), model="m"))
    assert rendered == body


def test_render_request_does_not_alias_extensions() -> None:
    request = gemini.parse_request(_request_body(), model="m")
    rendered = gemini.render_request(request)
    rendered["safetySettings"].append("mutated")  # type: ignore[union-attr]
    assert len(request.extensions["gemini"]["safetySettings"]) == 1  # type: ignore[arg-type]


def test_parse_request_minimal_body_has_defaults() -> None:
    request = gemini.parse_request({"contents": [{"parts": [{"text": "hi"}]}]}, model="m")
    assert request == ChatRequest(model="m", messages=(Message(role="user", parts=(TextPart(text="hi"),)),))
    assert gemini.render_request(request) == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"responseMimeType": "application/json"}, ResponseFormat(mode="json_object")),
        ({"responseMimeType": "text/plain"}, ResponseFormat(mode="text")),
        ({"responseMimeType": "text/x.enum"}, None),
    ],
    ids=["json_object", "text", "other_mime"],
)
def test_parse_request_response_mime_type_maps_or_rides_along(config: dict[str, Any], expected: Any) -> None:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "generationConfig": config}
    request = gemini.parse_request(copy.deepcopy(body), model="m")
    assert request.response_format == expected
    assert gemini.render_request(request) == body


def test_parse_request_response_schema_stays_in_extensions() -> None:
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": {"type": "STRING"}},
    }
    request = gemini.parse_request(copy.deepcopy(body), model="m")
    assert request.response_format == ResponseFormat(mode="json_object")
    assert gemini.render_request(request) == body


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"mode": "ANY"}, ToolChoice(mode="required")),
        ({"mode": "NONE"}, ToolChoice(mode="none")),
        ({"mode": "ANY", "allowedFunctionNames": ["a"]}, ToolChoice(mode="tool", name="a")),
        ({"mode": "ANY", "allowedFunctionNames": ["a", "b"]}, ToolChoice(mode="required")),
        ({}, None),
    ],
    ids=["any", "none", "any_one_name", "any_two_names", "no_mode"],
)
def test_parse_request_function_calling_config_maps_mode(config: dict[str, Any], expected: Any) -> None:
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
        "toolConfig": {"functionCallingConfig": config},
    }
    request = gemini.parse_request(copy.deepcopy(body), model="m")
    assert request.tool_choice == expected
    if expected is not None:
        assert gemini.render_request(request) == body


def test_tool_mode_tables_cover_every_mode() -> None:
    assert set(gemini_request._TOOL_MODES) == {"AUTO", "ANY", "NONE"}
    assert set(gemini_request._RENDERED_TOOL_MODES) == {"auto", "required", "none", "tool"}
    assert set(gemini_request._ROLES) == {"user", "model"}
    assert set(gemini_request._RENDERED_ROLES) == {"user", "assistant"}


def test_parse_request_parameters_json_schema_becomes_parameters() -> None:
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
        "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}],
    }
    request = gemini.parse_request(body, model="m")
    assert request.tools == (ToolSpec(name="f", parameters={"type": "object"}),)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "contents"),
        ({"contents": [{"parts": [{"text": 5}]}]}, "contents[0].parts[0].text"),
        ({"contents": [{"role": "system", "parts": []}]}, "contents[0].role"),
        (
            {
                "contents": [
                    {"parts": [{"text": "a"}]},
                    {"parts": [{"text": "a", "inlineData": {"mimeType": "a", "data": ""}}]},
                ]
            },
            "contents[1].parts[0]",
        ),
        ({"contents": [{"parts": [{"executableCode": {"code": "1"}}]}]}, "contents[0].parts[0]"),
        (
            {"contents": [{"role": "model", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
            "contents[0].parts[0]",
        ),
        ({"contents": [{"parts": [{"functionCall": {"name": "f"}}]}]}, "contents[0].parts[0]"),
        ({"contents": [{"parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}, "contents[0].parts[0]"),
        (
            {"contents": [], "systemInstruction": {"parts": [{"inlineData": {"mimeType": "a", "data": ""}}]}},
            "systemInstruction.parts[0]",
        ),
        (
            {"contents": [], "tools": [{"functionDeclarations": [{"description": "no name"}]}]},
            "tools[0].functionDeclarations[0].name",
        ),
        ({"contents": [], "generationConfig": {"temperature": "hot"}}, "generationConfig.temperature"),
        (
            {"contents": [], "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}},
            "toolConfig.functionCallingConfig.mode",
        ),
    ],
    ids=[
        "missing_contents",
        "text_not_string",
        "bad_role",
        "two_data_fields",
        "unsupported_part",
        "function_response_in_model_turn",
        "function_call_in_user_turn",
        "function_response_without_call",
        "system_non_text",
        "declaration_without_name",
        "temperature_not_number",
        "unknown_mode",
    ],
)
def test_parse_request_invalid_body_names_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        gemini.parse_request(body, model="m")
    assert info.value.param == param
    assert param in info.value.message


def test_render_request_foreign_request_drops_reasoning_and_synthetic_ids() -> None:
    request = ChatRequest(
        model="m",
        messages=(
            Message(role="user", parts=(TextPart(text="q"), ImagePart(url="https://i/x.png"))),
            Message(
                role="assistant",
                parts=(ReasoningPart(text="hmm", signature="anthropic-sig", source_format="anthropic"),),
            ),
            Message(
                role="assistant",
                parts=(
                    ReasoningPart(text="", signature=SIG, source_format="gemini"),
                    ToolCallPart(call_id="toolu_1", name="f", arguments="not json"),
                    ToolCallPart(call_id="gemini_call_0", name="g", arguments="[1]"),
                ),
            ),
            Message(
                role="user",
                parts=(
                    ToolResultPart(call_id="toolu_1", content=(TextPart(text="boom"),), is_error=True),
                    ToolResultPart(call_id="gemini_call_0", content=(TextPart(text="fine"),)),
                    ImagePart(data="AAAA"),
                ),
            ),
        ),
        tool_choice=ToolChoice(mode="tool", name="f"),
        response_format=ResponseFormat(mode="text"),
        parallel_tool_calls=True,
        user_id="u",
    )
    assert gemini.render_request(request) == {
        "contents": [
            {"role": "user", "parts": [{"text": "q"}, {"fileData": {"fileUri": "https://i/x.png"}}]},
            {
                "role": "model",
                "parts": [
                    {"text": "", "thoughtSignature": SIG},
                    {"functionCall": {"name": "f", "args": {}, "id": "toolu_1"}},
                    {"functionCall": {"name": "g", "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "f", "response": {"error": "boom"}, "id": "toolu_1"}},
                    {"functionResponse": {"name": "g", "response": {"output": "fine"}}},
                    {"inlineData": {"mimeType": "application/octet-stream", "data": "AAAA"}},
                ],
            },
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        "generationConfig": {"responseMimeType": "text/plain"},
    }


@pytest.mark.parametrize(
    ("part", "message"),
    [
        (ToolResultPart(call_id="nope", content=(TextPart(text="x"),)), "no earlier tool call"),
        (ToolResultPart(call_id="c", content=(ImagePart(data="A", media_type="image/png"),)), "images"),
        (ToolCallPart(call_id="c", name="f", arguments="{}"), "tool_call part"),
    ],
    ids=["unknown_call", "image_result", "call_in_user_turn"],
)
def test_render_request_unrenderable_user_part_names_field(part: Any, message: str) -> None:
    request = ChatRequest(
        model="m",
        messages=(
            Message(role="assistant", parts=(ToolCallPart(call_id="c", name="f", arguments="{}"),)),
            Message(role="user", parts=(part,)),
        ),
    )
    with pytest.raises(InvalidRequestError, match=message) as info:
        gemini.render_request(request)
    assert info.value.param == "messages[1].parts[0]"


def test_render_request_tool_result_in_assistant_turn_names_field() -> None:
    part = ToolResultPart(call_id="c", content=(TextPart(text="x"),))
    request = ChatRequest(model="m", messages=(Message(role="assistant", parts=(TextPart(text="a"), part)),))
    with pytest.raises(InvalidRequestError) as info:
        gemini.render_request(request)
    assert info.value.param == "messages[0].parts[1]"
    with pytest.raises(ValueError):
        gemini.render_response(ChatResponse(id="r", model="m", parts=(part,)))


def test_parse_request_function_response_with_unknown_id_keeps_id() -> None:
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}, "id": "zz"}}]}]
    }
    request = gemini.parse_request(copy.deepcopy(body), model="m")
    assert request.messages[0].parts == (ToolResultPart(call_id="zz", content=(TextPart(text="{}"),)),)


def test_render_response_ignores_malformed_candidate_extension() -> None:
    response = ChatResponse(id="r", model="m", extensions={"gemini": {"_candidate": "junk"}})
    assert gemini.render_response(response)["candidates"] == [{"content": {"role": "model", "parts": []}}]


def test_render_request_reasoning_signature_without_text_attaches_to_text() -> None:
    parts = gemini_parts.render_model_parts(
        [
            TextPart(text="a"),
            ReasoningPart(signature="S", source_format="gemini"),
            ReasoningPart(signature="T", source_format="gemini"),
            ReasoningPart(text="unsigned", source_format="gemini"),
        ]
    )
    assert parts == [
        {"text": "a", "thoughtSignature": "S"},
        {"text": "", "thoughtSignature": "T"},
        {"text": "unsigned", "thought": True},
    ]


# --- responses ------------------------------------------------------------------------------------------


def _response_body() -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "Thinking about weather", "thought": True, "thoughtSignature": SIG},
                        {"text": "Checking."},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG},
                        {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
                "safetyRatings": [{"category": "X", "probability": "NEGLIGIBLE"}],
            }
        ],
        "usageMetadata": USAGE,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
        "createTime": "2026-01-01T00:00:00Z",
    }


def test_parse_response_maps_parts_usage_and_tool_finish() -> None:
    response = gemini.parse_response(_response_body())
    assert response.id == "resp-1"
    assert response.model == "gemini-2.5-flash"
    assert response.parts == (
        ReasoningPart(text="Thinking about weather", signature=SIG, source_format="gemini"),
        TextPart(text="Checking."),
        ToolCallPart(call_id="gemini_call_resp-1_2", name="get_weather", arguments='{"city":"Paris"}', signature=SIG),
        ImagePart(data="iVBO", media_type="image/png"),
    )
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert response.usage == Usage(input_tokens=20, output_tokens=12, cache_read_tokens=4, reasoning_tokens=5)
    assert response.extensions == {
        "gemini": {
            "createTime": "2026-01-01T00:00:00Z",
            "_candidate": {"index": 0, "safetyRatings": [{"category": "X", "probability": "NEGLIGIBLE"}]},
        }
    }


def test_render_response_after_parse_round_trips_body() -> None:
    body = _response_body()
    assert gemini.render_response(gemini.parse_response(copy.deepcopy(body))) == body


def test_parse_response_blocked_prompt_is_content_filter() -> None:
    body: dict[str, Any] = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}
    response = gemini.parse_response(body)
    assert response.parts == ()
    assert response.finish_reason is FinishReason.CONTENT_FILTER
    assert response.usage == Usage(input_tokens=3)
    assert response.extensions == {"gemini": {"promptFeedback": {"blockReason": "SAFETY"}}}


def test_parse_response_unfinished_candidate_has_no_finish_reason() -> None:
    response = gemini.parse_response({"candidates": [{"content": {"parts": [{"text": "a"}]}}]})
    assert response.finish_reason is None
    assert response.extensions == {}
    rendered = gemini.render_response(response)
    assert rendered == {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "a"}]}}],
        "modelVersion": "",
        "responseId": "",
    }


@pytest.mark.parametrize(
    "body",
    [{"candidates": "x"}, {"candidates": [{"content": {"parts": [{"thought": True}]}}]}],
    ids=["candidates_not_list", "part_without_data"],
)
def test_parse_response_malformed_body_raises_value_error(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        gemini.parse_response(body)


@pytest.mark.parametrize("reason", sorted(_FINISH_REASONS))
def test_finish_reasons_table_maps_every_gemini_reason(reason: str) -> None:
    body: dict[str, Any] = {"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": reason}]}
    assert gemini.parse_response(body).finish_reason is _FINISH_REASONS[reason]


def test_finish_reasons_unknown_value_is_error() -> None:
    body: dict[str, Any] = {"candidates": [{"finishReason": "SOMETHING_NEW"}]}
    assert gemini.parse_response(body).finish_reason is FinishReason.ERROR


@pytest.mark.parametrize("reason", list(FinishReason))
def test_rendered_finish_reasons_table_covers_every_canonical_reason(reason: FinishReason) -> None:
    rendered = gemini.render_response(ChatResponse(id="r", model="m", finish_reason=reason))
    assert rendered["candidates"][0]["finishReason"] == _RENDERED_FINISH_REASONS[reason]  # type: ignore[index,call-overload]


@pytest.mark.parametrize(
    ("metadata", "usage"),
    [
        ({"promptTokenCount": 9}, Usage(input_tokens=9)),
        ({"thoughtsTokenCount": 4}, Usage(output_tokens=4, reasoning_tokens=4)),
        ({"candidatesTokenCount": 6}, Usage(output_tokens=6)),
    ],
    ids=["prompt_only", "thoughts_only", "candidates_only"],
)
def test_parse_usage_partial_metadata_reports_only_what_was_sent(metadata: dict[str, int], usage: Usage) -> None:
    assert gemini_parts.parse_usage(metadata) == usage  # type: ignore[arg-type]


def test_render_usage_empty_usage_renders_nothing() -> None:
    assert gemini_parts.render_usage(Usage()) == {}
    assert "usageMetadata" not in gemini.render_response(ChatResponse(id="r", model="m"))


# --- streams --------------------------------------------------------------------------------------------

_TRANSCRIPT = b"".join(
    b"data: " + orjson.dumps(chunk) + b"\r\n\r\n"
    for chunk in [
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "Weighing ", "thought": True}]}, "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 20, "totalTokenCount": 20},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r1",
        },
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"text": "options.", "thought": True, "thoughtSignature": SIG}],
                    }
                }
            ],
            "usageMetadata": {"promptTokenCount": 20, "totalTokenCount": 20},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r1",
        },
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "I'll check "}, {"text": "the weather."}]}}
            ],
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r1",
        },
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {
                                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                "thoughtSignature": SIG,
                            }
                        ],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": USAGE,
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r1",
        },
        {"usageMetadata": {**USAGE, "candidatesTokenCount": 8}, "modelVersion": "gemini-2.5-flash", "responseId": "r1"},
    ]
)

_FINAL_USAGE = Usage(input_tokens=20, output_tokens=13, cache_read_tokens=4, reasoning_tokens=5)


def _parse_stream(data: bytes) -> list[StreamEvent]:
    decoder, parser = SSEDecoder(), gemini.StreamParser()
    events: list[StreamEvent] = []
    for sse in decoder.feed(data):
        events.extend(parser.feed(sse))
    return events + parser.finish()


def test_stream_parser_transcript_emits_part_boundaries() -> None:
    assert _parse_stream(_TRANSCRIPT) == [
        MessageStart(id="r1", model="gemini-2.5-flash"),
        PartStart(index=0, part_kind="reasoning"),
        ReasoningDelta(index=0, text="Weighing "),
        UsageUpdate(usage=Usage(input_tokens=20)),
        ReasoningDelta(index=0, text="options."),
        SignatureDelta(index=0, signature=SIG),
        PartEnd(index=0),
        PartStart(index=1, part_kind="text"),
        TextDelta(index=1, text="I'll check "),
        TextDelta(index=1, text="the weather."),
        PartEnd(index=1),
        PartStart(index=2, part_kind="tool_call", call_id="gemini_call_r1_2", name="get_weather", signature=SIG),
        ToolArgumentsDelta(index=2, json_fragment='{"city":"Paris"}'),
        PartEnd(index=2),
        UsageUpdate(usage=Usage(input_tokens=20, output_tokens=12, cache_read_tokens=4, reasoning_tokens=5)),
        UsageUpdate(usage=_FINAL_USAGE),
        MessageEnd(finish_reason=FinishReason.TOOL_CALLS, usage=_FINAL_USAGE),
    ]


def test_stream_parser_transcript_accumulates_to_response() -> None:
    response = accumulate(_parse_stream(_TRANSCRIPT), source_format="gemini")
    assert response == ChatResponse(
        id="r1",
        model="gemini-2.5-flash",
        parts=(
            ReasoningPart(text="Weighing options.", signature=SIG, source_format="gemini"),
            TextPart(text="I'll check the weather."),
            ToolCallPart(call_id="gemini_call_r1_2", name="get_weather", arguments='{"city":"Paris"}', signature=SIG),
        ),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=_FINAL_USAGE,
    )


def _chunk(*parts: dict[str, Any], **candidate: Any) -> SSEEvent:
    body = {"candidates": [{"content": {"role": "model", "parts": list(parts)}, **candidate}]}
    return SSEEvent(data=orjson.dumps(body).decode())


def test_stream_parser_signed_text_and_signed_thoughts_open_new_parts() -> None:
    parser = gemini.StreamParser()
    events = parser.feed(
        _chunk({"text": "a", "thoughtSignature": "S1"}, {"text": "b", "thought": True, "thoughtSignature": "S2"})
    )
    events += parser.feed(_chunk({"text": "c", "thought": True}, {"text": ""}, finishReason="MAX_TOKENS"))
    events += parser.finish()
    assert events == [
        MessageStart(id="", model=""),
        PartStart(index=0, part_kind="text"),
        TextDelta(index=0, text="a"),
        PartEnd(index=0),
        PartStart(index=1, part_kind="reasoning", signature="S1"),
        PartEnd(index=1),
        PartStart(index=2, part_kind="reasoning", signature="S2"),
        ReasoningDelta(index=2, text="b"),
        PartEnd(index=2),
        PartStart(index=3, part_kind="reasoning"),
        ReasoningDelta(index=3, text="c"),
        PartEnd(index=3),
        MessageEnd(finish_reason=FinishReason.LENGTH),
    ]


def test_stream_parser_blocked_prompt_ends_with_content_filter() -> None:
    parser = gemini.StreamParser()
    events = parser.feed(SSEEvent(data='{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}'))
    assert events + parser.finish() == [
        MessageStart(id="", model=""),
        MessageEnd(finish_reason=FinishReason.CONTENT_FILTER),
    ]


def test_stream_parser_cut_off_stream_has_no_message_end() -> None:
    parser = gemini.StreamParser()
    parser.feed(_chunk({"text": "partial"}))
    assert parser.finish() == [PartEnd(index=0)]
    assert gemini.StreamParser().finish() == []


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "[1]",
        '{"candidates": 3}',
        orjson.dumps(
            {"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "A"}}]}}]}
        ).decode(),
    ],
    ids=["not_json", "not_object", "bad_shape", "image_part"],
)
def test_stream_parser_malformed_event_raises_value_error(data: str) -> None:
    with pytest.raises(ValueError):
        gemini.StreamParser().feed(SSEEvent(data=data))


def _render(events: list[StreamEvent]) -> bytes:
    renderer = gemini.StreamRenderer()
    frames = [frame for event in events for frame in renderer.feed(event)]
    return b"".join(frames + renderer.finish())


def test_stream_renderer_output_reparses_to_same_events() -> None:
    events = _parse_stream(_TRANSCRIPT)
    rendered = _render(events)
    assert rendered.startswith(b"data: {") and rendered.endswith(b"}\r\n\r\n")
    assert _parse_stream(rendered) == events


def test_stream_renderer_signed_text_reparses_to_same_events() -> None:
    parser = gemini.StreamParser()
    events = parser.feed(
        _chunk({"text": "a", "thoughtSignature": "S1"}, {"text": "b", "thought": True}, finishReason="STOP")
    )
    events += parser.finish()
    assert _parse_stream(_render(events)) == events


def test_stream_renderer_foreign_signature_delta_follows_reasoning_text() -> None:
    events: list[StreamEvent] = [
        MessageStart(id="m1", model="claude"),
        PartStart(index=0, part_kind="reasoning"),
        ReasoningDelta(index=0, text="hm"),
        SignatureDelta(index=0, signature="X"),
        PartEnd(index=0),
        PartStart(index=1, part_kind="reasoning"),
        SignatureDelta(index=1, signature="Y"),
        PartEnd(index=1),
        PartStart(index=2, part_kind="text"),
        PartEnd(index=2),
        PartStart(index=3, part_kind="tool_call", call_id="toolu_1", name="f"),
        ToolArgumentsDelta(index=3, json_fragment='{"a":'),
        ToolArgumentsDelta(index=3, json_fragment="1}"),
        SignatureDelta(index=3, signature="Z"),
        PartEnd(index=3),
        MessageEnd(finish_reason=FinishReason.TOOL_CALLS),
    ]
    chunks = [orjson.loads(sse.data) for sse in SSEDecoder().feed(_render(events))]
    assert [chunk["candidates"][0].get("content", {}).get("parts") for chunk in chunks] == [
        [{"text": "hm", "thought": True}],
        [{"text": "", "thought": True, "thoughtSignature": "X"}],
        [{"text": "", "thoughtSignature": "Y"}],
        [{"functionCall": {"name": "f", "args": {"a": 1}, "id": "toolu_1"}, "thoughtSignature": "Z"}],
        None,
    ]
    assert chunks[-1] == {
        "candidates": [{"finishReason": "STOP", "index": 0}],
        "modelVersion": "claude",
        "responseId": "m1",
    }


def test_stream_renderer_error_is_gemini_error_frame() -> None:
    frame = gemini.StreamRenderer().error(errors.UpstreamServerError("down", provider="p", upstream_status=503))
    assert frame == b'data: {"error":{"code":502,"message":"down","status":"UNAVAILABLE"}}\r\n\r\n'


# --- errors ---------------------------------------------------------------------------------------------


def _error_body(status: str, code: int, **extra: Any) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": f"{status} happened", "status": status, **extra}})


@pytest.mark.parametrize("status", sorted(_ERROR_STATUSES))
def test_parse_error_status_table_picks_class(status: str) -> None:
    code = 429 if status == "RESOURCE_EXHAUSTED" else 400
    error = gemini.parse_error(code, _error_body(status, code), {}, provider="google")
    assert type(error) is _ERROR_STATUSES[status]
    assert error.upstream_type == status
    assert error.message == f"google returned {code}: {status} happened"


def test_parse_error_resource_exhausted_without_retry_info_reads_header() -> None:
    body = _error_body("RESOURCE_EXHAUSTED", 429, details=[{"@type": "type.googleapis.com/google.rpc.QuotaFailure"}])
    error = gemini.parse_error(429, body, {"retry-after": "5"}, provider="g")
    assert isinstance(error, errors.UpstreamRateLimitError)
    assert error.retry_after_s == 5.0


def test_parse_error_resource_exhausted_reads_retry_info() -> None:
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
        "junk",
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "soon"},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37.5s"},
    ]
    error = gemini.parse_error(429, _error_body("RESOURCE_EXHAUSTED", 429, details=details), {}, provider="g")
    assert isinstance(error, errors.UpstreamRateLimitError)
    assert error.retry_after_s == 37.5


@pytest.mark.parametrize(
    ("headers", "retry_after_s"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "-2"}, 0.0),
        ({"retry-after": "Wed, 21 Oct"}, None),
        ({}, None),
        ({"retry-after": "inf"}, None),
    ],
    ids=["seconds", "negative", "http_date", "absent", "infinite"],
)
def test_parse_error_429_without_retry_info_reads_header(headers: dict[str, str], retry_after_s: float | None) -> None:
    error = gemini.parse_error(429, b"", headers, provider="g")
    assert isinstance(error, errors.UpstreamRateLimitError)
    assert error.retry_after_s == retry_after_s
    assert error.message == "g returned 429: (empty body)"


@pytest.mark.parametrize(
    ("status_code", "body", "error_class"),
    [
        (401, b"nope", errors.UpstreamAuthError),
        (404, b'[{"error": {"code": 404, "message": "gone"}}]', errors.UpstreamBadRequestError),
        (500, b'{"error": "flat"}', errors.UpstreamServerError),
        (503, b'{"error": {"message": 3, "status": "MADE_UP"}}', errors.UpstreamServerError),
        (400, b'"text"', errors.UpstreamBadRequestError),
    ],
    ids=["text_401", "list_wrapped_404", "flat_500", "unknown_status_503", "json_string_400"],
)
def test_parse_error_without_known_status_uses_http_status(status_code: int, body: bytes, error_class: type) -> None:
    error = gemini.parse_error(status_code, body, {}, provider="g")
    assert type(error) is error_class
    assert error.upstream_status == status_code


def test_parse_error_long_message_is_truncated() -> None:
    error = gemini.parse_error(400, _error_body("INVALID_ARGUMENT", 400, message="x" * 5000), {}, provider="g")
    assert len(error.message) == MAX_ERROR_MESSAGE_CHARS


@pytest.mark.parametrize("status_code", sorted(_STATUS_NAMES))
def test_render_error_status_names_table_covers_every_status(status_code: int) -> None:
    error = errors.GatewayError("boom")
    error.status_code = status_code
    assert gemini.render_error(error) == (
        status_code,
        {"error": {"code": status_code, "message": "boom", "status": _STATUS_NAMES[status_code]}},
    )


def test_render_error_passes_through_upstream_status_name() -> None:
    error = gemini.parse_error(400, _error_body("FAILED_PRECONDITION", 400), {}, provider="g")
    assert gemini.render_error(error)[1]["error"]["status"] == "FAILED_PRECONDITION"  # type: ignore[index,call-overload]


def test_render_error_unmapped_status_is_unknown() -> None:
    error = errors.UpstreamBadRequestError("teapot", provider="g", upstream_status=418, upstream_type="teapot")
    assert gemini.render_error(error) == (418, {"error": {"code": 418, "message": "teapot", "status": "UNKNOWN"}})


def test_render_error_invalid_request_is_invalid_argument() -> None:
    status, body = gemini.render_error(InvalidRequestError("bad", param="contents"))
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")  # type: ignore[index,call-overload]


def test_snake_case_fields_are_read_and_schemas_left_alone() -> None:
    schema = {"type": "object", "properties": {"city_name": {"type": "string"}}, "required": ["city_name"]}
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "generation_config": {"max_output_tokens": 12, "top_k": 3},
        "tools": [{"function_declarations": [{"name": "lookup", "parameters_json_schema": schema}]}],
    }
    request = gemini.parse_request(body, model="m")
    assert request.system[0].text == "Be brief."
    assert (request.max_output_tokens, request.top_k) == (12, 3)
    assert request.tools[0].parameters == schema
