"""OpenAI Responses streams: the renderer's exact event sequence, the parser, and render → parse → accumulate.

Every rendered event is validated with the official ``openai`` SDK's ``ResponseStreamEvent`` union.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

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
from polyroute.core.messages import ChatResponse, FinishReason, ReasoningPart, TextPart, ToolCallPart, Usage
from polyroute.errors import UpstreamConnectionError, UpstreamRateLimitError, UpstreamServerError
from polyroute.wire import openai_responses as orr
from polyroute.wire.openai_responses.stream import StreamParser, StreamRenderer
from polyroute.wire.sse import SSEDecoder, SSEEvent

MODEL = "gpt-5"
ENCRYPTED = "gAAAAABoXyZ-encrypted"
EVENTS = TypeAdapter(ResponseStreamEvent)


def _decode(data: bytes, *, partial_usage: bool = False) -> list[dict[str, Any]]:
    """Frames → payloads, checking each against the SDK and its ``event:`` line against its ``type``.

    ``partial_usage``: the SDK types every usage count as required, while the renderer leaves out counts the
    upstream did not report (never inventing them), so such a ``usage`` is checked apart from the SDK.
    """
    payloads = []
    for event in SSEDecoder().feed(data):
        payload = orjson.loads(event.data)
        checked = payload
        if partial_usage and "response" in payload:
            checked = {**payload, "response": {**payload["response"], "usage": None}}
        assert EVENTS.validate_python(checked).type == event.event == payload["type"]
        payloads.append(payload)
    return payloads


def _render(events: list[StreamEvent], *, now_s: int = 0) -> bytes:
    renderer = orr.stream_renderer(now_s=now_s)
    frames = [frame for event in events for frame in renderer.feed(event)]
    return b"".join([*frames, *renderer.finish()])


def _parse(data: bytes, *, chunk: int = 0) -> list[StreamEvent]:
    parser = orr.stream_parser(provider="openai")
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
    return [event for piece in pieces for event in parser.feed(piece)] + parser.finish()


def _events(response: ChatResponse) -> list[StreamEvent]:
    """A canonical stream for ``response``: two deltas per part, usage as an update."""
    events: list[StreamEvent] = [MessageStart(id=response.id, model=response.model, created=response.created)]
    for index, part in enumerate(response.parts):
        if isinstance(part, TextPart):
            events += [PartStart(index=index, part_kind="text"), TextDelta(index=index, text=part.text[:3])]
            events.append(TextDelta(index=index, text=part.text[3:]))
        elif isinstance(part, ToolCallPart):
            events.append(PartStart(index=index, part_kind="tool_call", call_id=part.call_id, name=part.name))
            events += [ToolArgumentsDelta(index=index, json_fragment=part.arguments[:4])]
            events.append(ToolArgumentsDelta(index=index, json_fragment=part.arguments[4:]))
        else:
            assert isinstance(part, ReasoningPart)
            events.append(
                PartStart(index=index, part_kind="reasoning", signature=part.signature, redacted=part.redacted)
            )
            events += [ReasoningDelta(index=index, text=part.text[:5]), ReasoningDelta(index=index, text=part.text[5:])]
        events.append(PartEnd(index=index))
    events.append(UsageUpdate(usage=response.usage))
    assert response.finish_reason is not None
    events.append(MessageEnd(finish_reason=response.finish_reason))
    return events


REASONING = ReasoningPart(text="Weighing it up.", signature="rs_0a1", redacted=ENCRYPTED, source_format="responses")
CALL = ToolCallPart(call_id="call_9", name="get_weather", arguments='{"city":"Paris"}')
USAGE = Usage(input_tokens=120, output_tokens=40, cache_read_tokens=100, cache_write_tokens=0, reasoning_tokens=16)
STREAMED = {
    "text": ChatResponse(
        id="resp_1", model=MODEL, created=7, parts=(TextPart(text="Hello there"),), finish_reason=FinishReason.STOP
    ),
    "tools": ChatResponse(
        id="resp_2",
        model=MODEL,
        created=7,
        parts=(REASONING, TextPart(text="Let me check."), CALL, ToolCallPart(call_id="c2", name="noop", arguments="")),
        finish_reason=FinishReason.TOOL_CALLS,
        usage=USAGE,
    ),
    "length": ChatResponse(
        id="resp_3",
        model=MODEL,
        created=7,
        parts=(TextPart(text="Once upon a"), TextPart(text="time")),
        finish_reason=FinishReason.LENGTH,
        usage=Usage(input_tokens=5, output_tokens=9, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0),
    ),
    "filtered": ChatResponse(id="resp_4", model=MODEL, created=7, finish_reason=FinishReason.CONTENT_FILTER),
}


@pytest.mark.parametrize("response", STREAMED.values(), ids=STREAMED.keys())
def test_render_parse_accumulate_round_trip(response: ChatResponse) -> None:
    data = _render(_events(response))
    payloads = _decode(data)
    assert [payload["sequence_number"] for payload in payloads] == list(range(len(payloads)))
    final = payloads[-1]["response"]
    Response.model_validate(final)
    assert final == orr.render_response(response, now_s=0)
    for chunk in (0, 1, 17):
        assert accumulate(_parse(data, chunk=chunk), source_format="responses") == response


def test_renderer_emits_the_api_event_sequence() -> None:
    response = STREAMED["tools"]
    payloads = _decode(_render(_events(response)))
    assert [payload["type"] for payload in payloads] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    created = payloads[0]["response"]
    assert (created["status"], created["output"], created["usage"]) == ("in_progress", [], None)
    assert payloads[2]["item"] == {"id": "rs_0a1", "type": "reasoning", "summary": []}
    assert payloads[8]["item"]["encrypted_content"] == ENCRYPTED
    assert payloads[9]["item"] == {
        "id": "msg_2_1",
        "type": "message",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    assert payloads[10]["part"] == {"type": "output_text", "text": "", "annotations": []}
    assert payloads[11] == {
        "type": "response.output_text.delta",
        "sequence_number": 11,
        "item_id": "msg_2_1",
        "output_index": 1,
        "content_index": 0,
        "delta": "Let",
        "logprobs": [],
    }
    assert payloads[13]["text"] == "Let me check."
    assert payloads[16]["item"] == {
        "id": "fc_2_2",
        "type": "function_call",
        "status": "in_progress",
        "call_id": "call_9",
        "name": "get_weather",
        "arguments": "",
    }
    assert payloads[19] == {
        "type": "response.function_call_arguments.done",
        "sequence_number": 19,
        "item_id": "fc_2_2",
        "output_index": 2,
        "arguments": '{"city":"Paris"}',
        "name": "get_weather",
    }
    completed = payloads[-1]["response"]
    assert completed["status"] == "completed"
    assert completed["usage"]["total_tokens"] == 160


def test_renderer_ends_open_parts_and_uses_the_last_usage_update() -> None:
    events: list[StreamEvent] = [
        MessageStart(id="resp_o", model=MODEL),
        PartStart(index=0, part_kind="reasoning", redacted="anthropic-data"),
        SignatureDelta(index=0, signature="sig"),
        PartStart(index=1, part_kind="text"),
        TextDelta(index=1, text=""),
        TextDelta(index=1, text="partial"),
        ReasoningDelta(index=0, text=""),
        UsageUpdate(usage=Usage(output_tokens=3)),
        MessageEnd(finish_reason=FinishReason.LENGTH),
    ]
    payloads = _decode(_render(events, now_s=99), partial_usage=True)
    assert [payload["type"] for payload in payloads][2:] == [
        "response.output_item.added",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_item.done",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert payloads[6]["item"] == {"id": "rs_o_0", "type": "reasoning", "summary": []}  # no foreign data
    final = payloads[-1]["response"]
    assert (final["created_at"], final["incomplete_details"]) == (99, {"reason": "max_output_tokens"})
    assert final["usage"] == {"output_tokens": 3}


def test_renderer_error_finish_reason_gives_response_failed() -> None:
    payloads = _decode(_render([MessageStart(id="resp_e", model=MODEL), MessageEnd(finish_reason=FinishReason.ERROR)]))
    assert payloads[-1]["type"] == "response.failed"
    assert payloads[-1]["response"]["error"]["code"] == "server_error"


def test_renderer_error_reports_the_failure_with_finished_items() -> None:
    renderer = StreamRenderer(now_s=5)
    for event in (
        MessageStart(id="resp_f", model=MODEL, created=3),
        PartStart(index=0, part_kind="text"),
        TextDelta(index=0, text="done"),
        PartEnd(index=0),
        PartStart(index=1, part_kind="text"),
        UsageUpdate(usage=Usage(input_tokens=2)),
    ):
        renderer.feed(event)
    error = UpstreamRateLimitError("openai returned 429: slow down", provider="openai")
    [payload] = _decode(renderer.error(error), partial_usage=True)
    assert payload["type"] == "response.failed"
    assert payload["sequence_number"] == 10
    response = payload["response"]
    assert response["status"] == "failed"
    assert response["error"] == {"code": "rate_limit_exceeded", "message": "openai returned 429: slow down"}
    assert [item["id"] for item in response["output"]] == ["msg_f_0"]
    assert response["usage"] == {"input_tokens": 2}


def test_renderer_error_before_anything_else() -> None:
    renderer = StreamRenderer()
    [payload] = _decode(renderer.error(UpstreamConnectionError("gone", provider="openai")))
    assert payload["response"]["error"] == {"code": "server_error", "message": "gone"}
    assert payload["response"]["usage"] is None
    assert payload["sequence_number"] == 0


# --- parsing an upstream stream ------------------------------------------------------------------------------------


def _sse(*payloads: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n" for payload in payloads
    )


CREATED = {
    "type": "response.created",
    "sequence_number": 0,
    "response": {"id": "resp_up", "object": "response", "created_at": 1741290958, "model": "o4-mini", "output": []},
}


def _end(status: str = "completed", **extra: Any) -> dict[str, Any]:
    event_type = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
        status, "response.completed"
    )
    return {"type": event_type, "response": {"id": "resp_up", "model": "o4-mini", "status": status, **extra}}


def test_parse_an_upstream_stream_with_reasoning_text_and_a_call() -> None:
    reasoning_done = {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "**Plan**"}, {"type": "summary_text", "text": "Call it."}],
        "encrypted_content": ENCRYPTED,
    }
    data = _sse(
        CREATED,
        {"type": "response.in_progress", "response": CREATED["response"]},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "rs_1", "type": "reasoning", "summary": []},
        },
        {"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "output_index": 0, "summary_index": 0},
        {"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "delta": "**Plan**"},
        {"type": "response.output_item.done", "output_index": 0, "item": reasoning_done},
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {"id": "m", "type": "message", "content": []},
        },
        {"type": "response.content_part.added", "output_index": 1, "content_index": 0, "part": _text("")},
        {"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "delta": "Hi"},
        {"type": "response.output_text.annotation.added", "output_index": 1, "content_index": 0},
        {"type": "response.output_text.done", "output_index": 1, "content_index": 0, "text": "Hi!"},
        {"type": "response.content_part.done", "output_index": 1, "content_index": 0, "part": _text("Hi!")},
        {
            "type": "response.output_item.done",
            "output_index": 1,
            "item": {"type": "message", "content": [_text("Hi!")]},
        },
        {"type": "response.output_item.added", "output_index": 2, "item": {"type": "function_call", **_CALL}},
        {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": '{"a":'},
        {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": ""},
        {"type": "response.function_call_arguments.done", "output_index": 2, "arguments": '{"a":1}'},
        {
            "type": "response.output_item.done",
            "output_index": 2,
            "item": {"type": "function_call", **_CALL, "arguments": '{"a":1}'},
        },
        _end(usage={"input_tokens": 9, "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 2}}),
    )
    assert _parse(data) == [
        MessageStart(id="resp_up", model="o4-mini", created=1741290958),
        PartStart(index=0, part_kind="reasoning", signature="rs_1", redacted=ENCRYPTED),
        ReasoningDelta(index=0, text="**Plan**\n\nCall it."),
        PartEnd(index=0),
        PartStart(index=1, part_kind="text"),
        TextDelta(index=1, text="Hi"),
        TextDelta(index=1, text="!"),
        PartEnd(index=1),
        PartStart(index=2, part_kind="tool_call", call_id="call_1", name="f"),
        ToolArgumentsDelta(index=2, json_fragment='{"a":'),
        ToolArgumentsDelta(index=2, json_fragment="1}"),
        PartEnd(index=2),
        UsageUpdate(usage=Usage(input_tokens=9, output_tokens=4, reasoning_tokens=2)),
        MessageEnd(
            finish_reason=FinishReason.TOOL_CALLS, usage=Usage(input_tokens=9, output_tokens=4, reasoning_tokens=2)
        ),
    ]


_CALL = {"id": "fc_1", "call_id": "call_1", "name": "f", "arguments": ""}


def _text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def test_parse_parts_seen_only_in_done_events_and_refusals() -> None:
    refusal = {"type": "refusal", "refusal": "No."}
    data = _sse(
        CREATED,
        # A message whose parts arrive only with the finished item.
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {"type": "message", "content": [_text("A"), _text("")]},
        },
        # A refusal streamed without content_part.added.
        {"type": "response.refusal.delta", "output_index": 1, "content_index": 0, "delta": "N"},
        {"type": "response.refusal.done", "output_index": 1, "content_index": 0, "refusal": "No."},
        {"type": "response.content_part.done", "output_index": 1, "content_index": 0, "part": refusal},
        {"type": "response.output_item.done", "output_index": 1, "item": {"type": "message", "content": [refusal]}},
        # A content part that opens with text, and ends with its item.
        {"type": "response.content_part.added", "output_index": 2, "content_index": 0, "part": _text("pre")},
        {
            "type": "response.output_item.done",
            "output_index": 2,
            "item": {"type": "message", "content": [_text("prefix")]},
        },
        # A call that opens with its arguments; one seen only when done; reasoning without text.
        {
            "type": "response.output_item.added",
            "output_index": 3,
            "item": {"type": "function_call", **_CALL, "arguments": "{}"},
        },
        {
            "type": "response.output_item.done",
            "output_index": 4,
            "item": {"type": "function_call", **_CALL, "arguments": "[]"},
        },
        {
            "type": "response.output_item.done",
            "output_index": 5,
            "item": {"type": "reasoning", "id": "rs_5", "summary": []},
        },
        _end(),
    )
    assert _parse(data) == [
        MessageStart(id="resp_up", model="o4-mini", created=1741290958),
        PartStart(index=0, part_kind="text"),
        TextDelta(index=0, text="A"),
        PartEnd(index=0),
        PartStart(index=1, part_kind="text"),
        PartEnd(index=1),
        PartStart(index=2, part_kind="text"),
        TextDelta(index=2, text="N"),
        TextDelta(index=2, text="o."),
        PartEnd(index=2),
        PartStart(index=3, part_kind="text"),
        TextDelta(index=3, text="pre"),
        TextDelta(index=3, text="fix"),
        PartEnd(index=3),
        PartStart(index=4, part_kind="tool_call", call_id="call_1", name="f"),
        ToolArgumentsDelta(index=4, json_fragment="{}"),
        PartStart(index=5, part_kind="tool_call", call_id="call_1", name="f"),
        ToolArgumentsDelta(index=5, json_fragment="[]"),
        PartEnd(index=5),
        PartStart(index=6, part_kind="reasoning", signature="rs_5"),
        PartEnd(index=6),
        PartEnd(index=4),
        MessageEnd(finish_reason=FinishReason.TOOL_CALLS),
    ]


def test_parse_tolerates_duplicates_mismatches_and_events_it_does_not_use() -> None:
    data = _sse(
        CREATED,
        CREATED,
        {"type": "response.content_part.added", "output_index": 0, "content_index": 0, "part": _text("")},
        {
            "type": "response.content_part.added",
            "output_index": 0,
            "content_index": 1,
            "part": {"type": "reasoning_text"},
        },
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": ""},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "abc"},
        {"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": "xyz"},
        {"type": "response.output_text.done", "output_index": 9, "content_index": 0, "text": "unknown part"},
        {
            "type": "response.content_part.done",
            "output_index": 0,
            "content_index": 1,
            "part": {"type": "reasoning_text"},
        },
        {"type": "response.content_part.done", "output_index": 0, "content_index": 0, "part": _text("ab")},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {"type": "message", "content": [_text("abc")]},
        },
        {
            "type": "response.output_item.done",
            "output_index": 1,
            "item": {"type": "function_call", **_CALL, "arguments": "{}"},
        },
        {
            "type": "response.output_item.done",
            "output_index": 1,
            "item": {"type": "function_call", **_CALL, "arguments": "{}"},
        },
        {"type": "response.web_search_call.searching", "output_index": 2},
        {"type": "keepalive"},
        _end("incomplete", incomplete_details={"reason": "content_filter"}),
    )
    assert _parse_all(data) == [
        MessageStart(id="resp_up", model="o4-mini", created=1741290958),
        PartStart(index=0, part_kind="text"),
        TextDelta(index=0, text="abc"),
        PartEnd(index=0),
        PartStart(index=1, part_kind="tool_call", call_id="call_1", name="f"),
        ToolArgumentsDelta(index=1, json_fragment="{}"),
        PartEnd(index=1),
        MessageEnd(finish_reason=FinishReason.CONTENT_FILTER),
    ]


def _parse_all(data: bytes) -> list[StreamEvent]:
    parser = StreamParser(provider="openai")
    events = [event for sse in SSEDecoder().feed(data) for event in parser.feed(sse)]
    return events + parser.finish()


@pytest.mark.parametrize(
    ("end", "finish_reason"),
    [
        ({"type": "response.incomplete", "response": {"status": "incomplete"}}, FinishReason.LENGTH),
        (
            {"type": "response.incomplete", "response": {"status": "incomplete", "incomplete_details": None}},
            FinishReason.LENGTH,
        ),
        ({"type": "response.completed", "response": {"status": "in_progress"}}, FinishReason.STOP),
        ({"type": "response.completed", "response": {}}, FinishReason.STOP),
    ],
)
def test_parse_end_without_a_stated_reason(end: dict[str, Any], finish_reason: FinishReason) -> None:
    data = _sse(
        CREATED,
        {"type": "response.content_part.added", "output_index": 0, "content_index": 0, "part": _text("x")},
        end,
    )
    events = _parse(data)
    assert events[-2:] == [PartEnd(index=0), MessageEnd(finish_reason=finish_reason)]


def test_done_sentinel_is_skipped_anywhere() -> None:
    data = _sse(CREATED, _end()) + b"data: [DONE]\n\n"
    assert _parse(b"data: [DONE]\n\n" + data)[-1] == MessageEnd(finish_reason=FinishReason.STOP)


@pytest.mark.parametrize(
    ("payload", "error_type", "status"),
    [
        (
            {"type": "error", "code": "rate_limit_exceeded", "message": "slow", "param": None},
            UpstreamRateLimitError,
            429,
        ),
        ({"type": "error", "code": "ERR_X", "message": "odd"}, UpstreamServerError, 500),
        (
            {
                "type": "response.failed",
                "response": {"status": "failed", "error": {"code": "server_error", "message": "boom"}},
            },
            UpstreamServerError,
            500,
        ),
        ({"type": "response.failed", "response": {"status": "failed", "error": None}}, UpstreamServerError, 500),
    ],
)
def test_in_band_failures_raise_the_mapped_error(
    payload: dict[str, Any], error_type: type[Exception], status: int
) -> None:
    parser = orr.stream_parser(provider="openai")
    parser.feed(_sse(CREATED))
    with pytest.raises(error_type) as info:
        parser.feed(_sse(payload))
    error: Any = info.value
    assert (error.upstream_status, error.provider) == (status, "openai")


@pytest.mark.parametrize(
    ("payloads", "match"),
    [
        (
            [{"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "x"}],
            "before response.created",
        ),
        (
            [CREATED, {"type": "response.output_item.added", "output_index": 0, "item": {"type": "local_shell_call"}}],
            "unsupported output item",
        ),
        (
            [CREATED, {"type": "response.output_item.done", "output_index": 0, "item": {"type": "computer_call"}}],
            "unsupported output item",
        ),
        (
            [
                CREATED,
                {
                    "type": "response.content_part.added",
                    "output_index": 0,
                    "content_index": 0,
                    "part": {"type": "audio"},
                },
            ],
            "unsupported content part",
        ),
        (
            [
                CREATED,
                {
                    "type": "response.output_item.done",
                    "output_index": 0,
                    "item": {"type": "message", "content": [{"type": "audio"}]},
                },
            ],
            "unsupported content part",
        ),
        ([CREATED, {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": "{"}], "not open"),
        (
            [CREATED, {"type": "response.output_text.delta", "content_index": 0, "delta": "x"}],
            "output_index: is required",
        ),
        ([CREATED, {"type": "response.output_text.delta", "output_index": 0, "content_index": 0}], "delta"),
        (
            [
                CREATED,
                {"type": "response.content_part.done", "output_index": 0, "content_index": 0, "part": _text("")},
                {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "x"},
            ],
            "opened twice",
        ),
        (
            [
                CREATED,
                {"type": "response.output_item.added", "output_index": 0, "item": {"type": "function_call", **_CALL}},
                {"type": "response.output_item.added", "output_index": 0, "item": {"type": "function_call", **_CALL}},
            ],
            "opened twice",
        ),
        ([{"response": {}}], "type"),
        ([{"type": "response.created", "response": {"id": "r"}}], "model"),
    ],
)
def test_malformed_streams_raise_value_error(payloads: list[dict[str, Any]], match: str) -> None:
    parser = StreamParser()
    with pytest.raises(ValueError, match=match):
        for payload in payloads:
            parser.feed(SSEEvent(data=orjson.dumps(payload).decode()))


def test_parser_framing_errors() -> None:
    parser = StreamParser()
    with pytest.raises(ValueError, match="not JSON"):
        parser.feed(SSEEvent(data="{nope"))
    with pytest.raises(ValueError, match="malformed"):
        parser.feed(SSEEvent(data="[1]"))
    with pytest.raises(ValueError, match="ended before response.completed"):
        parser.finish()
    parser.feed(SSEEvent(data=orjson.dumps(CREATED).decode()))
    parser.feed(SSEEvent(data=orjson.dumps(_end()).decode()))
    with pytest.raises(ValueError, match="after the response ended"):
        parser.feed(SSEEvent(data=orjson.dumps(CREATED).decode()))
