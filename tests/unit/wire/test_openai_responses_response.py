"""OpenAI Responses response objects: round trips, item ids, finish reasons, usage and errors.

Rendered bodies are validated with the official ``openai`` SDK's ``Response`` model as well as by round trip.
"""

from __future__ import annotations

import typing
from typing import Any

import orjson
import pytest
from openai.types.responses import Response, ResponseStatus
from openai.types.responses.response import IncompleteDetails
from openai.types.responses.response_error import ResponseError

from polyroute.core.messages import (
    ChatResponse,
    FinishReason,
    ImagePart,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from polyroute.errors import (
    InvalidRequestError,
    RateLimitedError,
    UpstreamBadRequestError,
    UpstreamRateLimitError,
    UpstreamServerError,
)
from polyroute.wire import openai_responses as orr
from polyroute.wire.openai_responses import errors as orr_errors
from polyroute.wire.openai_responses import response as orr_response

MODEL = "gpt-5"
ENCRYPTED = "gAAAAABoXyZ-encrypted"

# --- responses -----------------------------------------------------------------------------------------------------

USAGE = Usage(input_tokens=120, output_tokens=40, cache_read_tokens=100, cache_write_tokens=0, reasoning_tokens=16)
REASONING = ReasoningPart(text="Thinking it over.", signature="rs_0a1", redacted=ENCRYPTED, source_format="responses")
CALL = ToolCallPart(call_id="call_9", name="get_weather", arguments='{"city":"Paris"}')

RESPONSES = {
    "text": ChatResponse(
        id="resp_1", model=MODEL, created=1_700_000_000, parts=(TextPart(text="Hi"),), finish_reason=FinishReason.STOP
    ),
    "tools": ChatResponse(
        id="resp_2",
        model=MODEL,
        created=1_700_000_001,
        parts=(REASONING, TextPart(text="Checking."), CALL, TextPart(text="")),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=USAGE,
    ),
    "length": ChatResponse(
        id="resp_3", model=MODEL, created=5, parts=(TextPart(text="Once upon"),), finish_reason=FinishReason.LENGTH
    ),
    "filtered": ChatResponse(id="resp_4", model=MODEL, created=5, finish_reason=FinishReason.CONTENT_FILTER),
    "error": ChatResponse(id="resp_5", model=MODEL, created=5, finish_reason=FinishReason.ERROR),
    "unstated": ChatResponse(id="resp_6", model=MODEL, created=5, parts=(TextPart(text="cut"),)),
    "extensions": ChatResponse(
        id="resp_7",
        model=MODEL,
        created=5,
        parts=(TextPart(text="ok"),),
        finish_reason=FinishReason.STOP,
        extensions={"responses": {"store": True, "temperature": 1.0, "text": {"format": {"type": "text"}}}},
    ),
}


@pytest.mark.parametrize("response", RESPONSES.values(), ids=RESPONSES.keys())
def test_response_round_trip_canonical_first_is_lossless(response: ChatResponse) -> None:
    body = orr.render_response(response, now_s=0)
    Response.model_validate(body)
    assert orr.parse_response(orjson.loads(orjson.dumps(body))) == response


def test_render_response_writes_items_with_derived_ids() -> None:
    body: Any = orr.render_response(RESPONSES["tools"], now_s=0)
    assert [item["id"] for item in body["output"]] == ["rs_0a1", "msg_2_1", "fc_2_2", "msg_2_3"]
    assert body["output"][0] == {
        "id": "rs_0a1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Thinking it over."}],
        "encrypted_content": ENCRYPTED,
    }
    assert body["output"][1] == {
        "id": "msg_2_1",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
    }
    assert body["output"][2] == {
        "id": "fc_2_2",
        "type": "function_call",
        "status": "completed",
        "call_id": "call_9",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert body["usage"] == {
        "input_tokens": 120,
        "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 16},
        "total_tokens": 160,
    }
    assert "output_text" not in body
    assert orr.render_response(RESPONSES["tools"], now_s=0) == body  # deterministic


def test_render_response_fills_created_at_and_skips_parts_an_answer_cannot_hold() -> None:
    response = ChatResponse(
        id="resp_x",
        model=MODEL,
        parts=(ImagePart(url="u"), ToolResultPart(call_id="c"), TextPart(text="t")),
        finish_reason=FinishReason.STOP,
    )
    body: Any = orr.render_response(response, now_s=1234)
    assert body["created_at"] == 1234
    assert [item["id"] for item in body["output"]] == ["msg_x_0"]
    assert body["usage"] is None


def test_foreign_reasoning_renders_without_its_opaque_data() -> None:
    part = ReasoningPart(text="", signature="EqQB", redacted="anthropic-data", source_format="anthropic")
    body = orr.render_response(ChatResponse(id="resp_f", model=MODEL, parts=(part,)), now_s=0)
    assert body["output"] == [{"id": "rs_f_0", "type": "reasoning", "summary": []}]


def test_failed_and_incomplete_responses() -> None:
    failed = orr.render_response(RESPONSES["error"], now_s=0)
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": "The model failed to complete the response."}
    incomplete = orr.render_response(RESPONSES["length"], now_s=0)
    assert (incomplete["status"], incomplete["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})


UPSTREAM_BODY: dict[str, Any] = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "completed_at": 1741476543,
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {
            "id": "rs_67ccd2bf",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "A"}, {"type": "summary_text", "text": "B"}],
        },
        {
            "type": "message",
            "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "In a peaceful grove...", "annotations": []},
                {"type": "refusal", "refusal": "No more."},
            ],
        },
    ],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
    "usage": {
        "input_tokens": 36,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 87,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 123,
    },
    "user": None,
    "metadata": {},
}


def test_parse_response_of_an_upstream_body() -> None:
    response = orr.parse_response(UPSTREAM_BODY)
    assert response.parts == (
        ReasoningPart(text="A\n\nB", signature="rs_67ccd2bf", source_format="responses"),
        TextPart(text="In a peaceful grove..."),
        TextPart(text="No more."),
    )
    assert response.finish_reason is FinishReason.STOP
    assert response.created == 1741476542
    assert response.usage == Usage(input_tokens=36, output_tokens=87, cache_read_tokens=0, reasoning_tokens=0)
    assert set(response.extensions["responses"]) == {
        "completed_at",
        "max_output_tokens",
        "previous_response_id",
        "reasoning",
        "store",
        "temperature",
        "text",
        "top_p",
        "truncation",
        "user",
    }


def test_parse_response_accepts_float_created_at_and_missing_status() -> None:
    body: dict[str, Any] = {
        "id": "r",
        "model": "m",
        "created_at": 12.7,
        "output": [{"type": "function_call", **_CALL_FIELDS}],
    }
    response = orr.parse_response(body)
    assert (response.created, response.finish_reason, response.usage) == (12, FinishReason.TOOL_CALLS, Usage())


_CALL_FIELDS = {"call_id": "c", "name": "f", "arguments": "{}"}


@pytest.mark.parametrize(
    "body",
    [
        {"id": "r", "model": "m"},
        {"id": "r", "model": "m", "output": [{"type": "local_shell_call", "id": "lsh_1"}]},
        {"id": "r", "model": "m", "output": [{"type": "message", "content": [{"type": "output_audio"}]}]},
        {"id": "r", "model": "m", "output": [{"type": "message"}]},
        {"id": "r", "model": "m", "output": [], "created_at": "now"},
        {"id": "r", "model": "m", "output": [], "created_at": True},
        {"id": "r", "model": "m", "output": [], "incomplete_details": "max_output_tokens"},
        {"id": "r", "model": "m", "output": [], "usage": {"input_tokens": "1"}},
        {"id": "r", "model": "m", "output": [], "usage": {"input_tokens_details": 3}},
        {"id": "r", "model": "m", "output": [], "usage": []},
        {"model": "m", "output": []},
    ],
)
def test_parse_response_rejects_malformed_bodies(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="malformed Responses response"):
        orr.parse_response(body)


# --- finish reasons and usage --------------------------------------------------------------------------------------

INCOMPLETE_REASONS = {
    value
    for arg in typing.get_args(IncompleteDetails.model_fields["reason"].annotation)
    for value in typing.get_args(arg)
}
"""The SDK's ``incomplete_details.reason`` values (``Optional[Literal[...]]`` flattened)."""


@pytest.mark.parametrize("finish_reason", [*FinishReason, None])
def test_every_finish_reason_renders_to_a_status_that_reads_back(finish_reason: FinishReason | None) -> None:
    status, details = orr_response.render_status(finish_reason)
    assert status in typing.get_args(ResponseStatus)
    reason: Any = None if details is None else details["reason"]
    assert reason is None or reason in INCOMPLETE_REASONS
    has_tool_calls = finish_reason is FinishReason.TOOL_CALLS
    assert orr_response.parse_finish_reason(status, reason, has_tool_calls=has_tool_calls) == finish_reason


def test_every_status_and_incomplete_reason_of_the_sdk_is_mapped() -> None:
    statuses = set(typing.get_args(ResponseStatus))
    assert statuses == {*orr_response._STATUSES, "incomplete"}
    assert set(orr_response._INCOMPLETE_REASONS) == INCOMPLETE_REASONS


@pytest.mark.parametrize(
    ("status", "reason", "has_tool_calls", "expected"),
    [
        ("completed", None, False, FinishReason.STOP),
        (None, None, True, FinishReason.TOOL_CALLS),
        ("incomplete", "max_output_tokens", False, FinishReason.LENGTH),
        ("incomplete", "max_messages", False, FinishReason.LENGTH),
        ("incomplete", "content_filter", True, FinishReason.CONTENT_FILTER),
        ("incomplete", "steered", False, FinishReason.STOP),
        ("incomplete", "something_new", False, FinishReason.LENGTH),
        ("incomplete", None, False, None),
        ("failed", None, False, FinishReason.ERROR),
        ("cancelled", None, True, FinishReason.ERROR),
        ("in_progress", None, False, None),
        ("queued", None, False, None),
        ("paused", None, False, None),
    ],
)
def test_parse_finish_reason_table(
    status: str | None, reason: str | None, has_tool_calls: bool, expected: FinishReason | None
) -> None:
    assert orr_response.parse_finish_reason(status, reason, has_tool_calls=has_tool_calls) == expected


@pytest.mark.parametrize(
    ("usage", "rendered"),
    [
        (Usage(), None),
        (Usage(input_tokens=3), {"input_tokens": 3}),
        (
            Usage(output_tokens=4, reasoning_tokens=1),
            {"output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 1}},
        ),
        (Usage(cache_write_tokens=2), {"input_tokens_details": {"cache_write_tokens": 2}}),
        (Usage(input_tokens=3, output_tokens=4), {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}),
    ],
)
def test_usage_is_never_invented(usage: Usage, rendered: dict[str, Any] | None) -> None:
    assert orr_response.render_usage(usage) == rendered
    assert orr_response.parse_usage(rendered) == usage


# --- errors --------------------------------------------------------------------------------------------------------


def test_parse_error_reads_openai_shaped_errors() -> None:
    body = orjson.dumps({"error": {"message": "Slow down", "type": "requests", "code": "rate_limit_exceeded"}})
    error = orr.parse_error(429, body, {"retry-after": "3"}, provider="openai")
    assert isinstance(error, UpstreamRateLimitError)
    assert (error.retry_after_s, error.code) == (3.0, "rate_limit_exceeded")
    body = orjson.dumps({"error": {"message": "bad input", "type": "invalid_request_error", "param": "input"}})
    bad = orr.parse_error(400, body, {}, provider="openai")
    assert isinstance(bad, UpstreamBadRequestError)
    assert bad.param == "input"


def test_render_error_is_openai_shaped() -> None:
    status, body = orr.render_error(InvalidRequestError("input: must be an array", param="input"))
    assert status == 400
    assert body == {
        "error": {
            "message": "input: must be an array",
            "type": "invalid_request_error",
            "code": "invalid_request",
            "param": "input",
        }
    }


def test_every_sdk_error_code_has_a_status() -> None:
    codes = set(typing.get_args(ResponseError.model_fields["code"].annotation))
    assert codes == set(orr_errors._ERROR_STATUSES)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": "rate_limit_exceeded", "message": "slow"}, UpstreamRateLimitError),
        ({"code": "server_error", "message": "boom"}, UpstreamServerError),
        ({"code": "invalid_prompt", "message": "no"}, UpstreamBadRequestError),
        ({"code": "brand_new_code", "message": "?"}, UpstreamServerError),
        ({"code": 42, "message": "?"}, UpstreamServerError),
        ({"message": "no code"}, UpstreamServerError),
    ],
)
def test_in_band_errors_map_by_code(error: dict[str, Any], expected: type[Exception]) -> None:
    mapped = orr_errors.in_band_error(error, provider="openai")
    assert type(mapped) is expected
    assert error["message"] in mapped.message


def test_failure_error_codes() -> None:
    assert orr_errors.failure_error(RateLimitedError("busy", retry_after_s=1)) == {
        "code": "rate_limit_exceeded",
        "message": "busy",
    }
    assert orr_errors.failure_error(InvalidRequestError("x"))["code"] == "server_error"
