"""Contract tests over every registered translator: the surface, the capability table, and the full
client-format x upstream-format matrix (requests, responses and streams) through the canonical form.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import replace
from typing import Any

import pytest

from polyroute.core.accumulate import Accumulator
from polyroute.core.events import (
    MessageEnd,
    MessageStart,
    PartEnd,
    PartStart,
    StreamEvent,
    TextDelta,
    ToolArgumentsDelta,
    UsageUpdate,
)
from polyroute.core.messages import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    ResponseFormat,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    Usage,
)
from polyroute.wire import WireFormat
from polyroute.wire import capabilities as cap
from polyroute.wire.registry import TRANSLATORS, Translator

FORMATS = list(TRANSLATORS)
PAIRS = [(client, upstream) for client in FORMATS for upstream in FORMATS]
SURFACE = (
    "parse_request",
    "render_request",
    "request_path",
    "parse_response",
    "render_response",
    "parse_error",
    "render_error",
    "stream_parser",
    "stream_renderer",
)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

REQUEST = ChatRequest(
    model="some-model",
    system=(TextPart(text="You are terse."),),
    messages=(
        Message(role="user", parts=(TextPart(text="Weather in Oslo?"),)),
        Message(
            role="assistant",
            parts=(
                TextPart(text="Checking."),
                ToolCallPart(call_id="call_1", name="get_weather", arguments='{"city": "Oslo"}'),
            ),
        ),
        Message(role="user", parts=(ToolResultPart(call_id="call_1", content=(TextPart(text="-3 C, snow"),)),)),
    ),
    tools=(ToolSpec(name="get_weather", description="Weather now", parameters=SCHEMA),),
    max_output_tokens=300,
    temperature=0.5,
    stop=("END",),
)

RESPONSE = ChatResponse(
    id="r-1",
    model="some-model",
    created=1_700_000_000,
    parts=(
        TextPart(text="Let me look."),
        ToolCallPart(call_id="call_9", name="get_weather", arguments='{"city": "Bergen"}'),
    ),
    finish_reason=FinishReason.TOOL_CALLS,
    usage=Usage(input_tokens=120, output_tokens=30),
)


def _essence_of_request(request: ChatRequest, capabilities: frozenset[str]) -> dict[str, Any]:
    """What every format must carry, with ids (which some formats synthesise) left out.

    Sampling fields count only where both formats of the pair have them (``capabilities``).
    """
    turns = []
    for message in request.messages:
        for part in message.parts:
            if isinstance(part, TextPart):
                turns.append((message.role, "text", part.text))
            elif isinstance(part, ToolCallPart):
                turns.append((message.role, "call", part.name, json.loads(part.arguments)))
            elif isinstance(part, ToolResultPart):
                turns.append((message.role, "result", tuple(p.text for p in part.content if isinstance(p, TextPart))))
    return {
        "system": "".join(p.text for p in request.system),
        "turns": turns,
        "tools": [(t.name, t.description, t.parameters) for t in request.tools],
        "max": request.max_output_tokens,
        "temperature": request.temperature if cap.TEMPERATURE in capabilities else None,
        "stop": request.stop if cap.STOP in capabilities else (),
    }


def _essence_of_response(response: ChatResponse) -> dict[str, Any]:
    parts = []
    for part in response.parts:
        if isinstance(part, TextPart) and part.text:
            parts.append(("text", part.text))
        elif isinstance(part, ToolCallPart):
            parts.append(("call", part.name, json.loads(part.arguments)))
    return {
        "parts": parts,
        "finish": response.finish_reason,
        "usage": (response.usage.input_tokens, response.usage.output_tokens),
    }


def _parse(translator: Translator, body: dict[str, Any], model: str) -> ChatRequest:
    return translator.parse_request(body, model=model)


@pytest.mark.parametrize("fmt", FORMATS)
def test_translator_surface(fmt: WireFormat) -> None:
    translator = TRANSLATORS[fmt]
    assert translator.FORMAT is fmt
    for name in SURFACE:
        assert callable(getattr(translator, name)), name
    assert "model" in inspect.signature(translator.parse_request).parameters
    assert "now_s" in inspect.signature(translator.render_response).parameters
    assert translator.CAPABILITIES <= cap.ALL
    assert translator.request_path("m", stream=False).startswith("/")


# Each capability, and a request that uses it (added to a minimal request).
_USES: dict[str, dict[str, Any]] = {
    cap.TEMPERATURE: {"temperature": 0.3},
    cap.TOP_P: {"top_p": 0.7},
    cap.TOP_K: {"top_k": 5},
    cap.STOP: {"stop": ("STOP",)},
    cap.JSON_OBJECT: {"response_format": ResponseFormat(mode="json_object")},
    cap.JSON_SCHEMA: {"response_format": ResponseFormat(mode="json_schema", name="out", schema=SCHEMA)},
    cap.TOOL_CHOICE_NONE: {"tool_choice": ToolChoice(mode="none")},
    cap.TOOL_CHOICE_REQUIRED: {"tool_choice": ToolChoice(mode="required")},
    cap.TOOL_CHOICE_TOOL: {"tool_choice": ToolChoice(mode="tool", name="get_weather")},
    cap.PARALLEL_TOOL_CALLS: {"parallel_tool_calls": False},
    cap.REASONING_EFFORT: {"reasoning_effort": "high"},
    cap.REASONING_BUDGET: {"reasoning_budget_tokens": 2048},
    cap.USER_ID: {"user_id": "user-7"},
}
_BASE = ChatRequest(
    model="m",
    messages=(Message(role="user", parts=(TextPart(text="hi"),)),),
    tools=(ToolSpec(name="get_weather", parameters=SCHEMA),),
    max_output_tokens=100,
)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("feature", sorted(_USES))
def test_capability_table_matches_render_request(fmt: WireFormat, feature: str) -> None:
    """A format claims a feature exactly when setting it changes what its render_request sends.

    The one partial mapping: Ollama turns thinking on for a reasoning budget but cannot send the
    number, so the budget is not claimed (and is reported as dropped).
    """
    translator = TRANSLATORS[fmt]
    with_feature = translator.render_request(replace(_BASE, **_USES[feature]))
    without = translator.render_request(_BASE)
    partial = (fmt, feature) == (WireFormat.OLLAMA, cap.REASONING_BUDGET)
    assert (with_feature != without) == (feature in translator.CAPABILITIES or partial)


@pytest.mark.parametrize(("client", "upstream"), PAIRS)
def test_request_crosses_every_pair(client: WireFormat, upstream: WireFormat) -> None:
    """client body -> canonical -> upstream body -> canonical keeps what every format carries."""
    client_tr, upstream_tr = TRANSLATORS[client], TRANSLATORS[upstream]
    from_client = _parse(client_tr, client_tr.render_request(REQUEST), REQUEST.model)
    at_upstream = _parse(upstream_tr, upstream_tr.render_request(from_client), REQUEST.model)
    common = client_tr.CAPABILITIES & upstream_tr.CAPABILITIES
    assert _essence_of_request(at_upstream, common) == _essence_of_request(REQUEST, common)
    dropped = cap.dropped_fields(from_client, source=client, target=upstream, capabilities=upstream_tr.CAPABILITIES)
    assert dropped == ([] if cap.STOP in common or cap.STOP not in client_tr.CAPABILITIES else [cap.STOP])


@pytest.mark.parametrize(("client", "upstream"), PAIRS)
def test_response_crosses_every_pair(client: WireFormat, upstream: WireFormat) -> None:
    """upstream answer -> canonical -> client answer -> canonical keeps text, calls, finish and usage."""
    client_tr, upstream_tr = TRANSLATORS[client], TRANSLATORS[upstream]
    from_upstream = upstream_tr.parse_response(upstream_tr.render_response(RESPONSE, now_s=0))
    at_client = client_tr.parse_response(client_tr.render_response(from_upstream, now_s=0))
    assert _essence_of_response(at_client) == _essence_of_response(RESPONSE)


def _events() -> list[StreamEvent]:
    return [
        MessageStart(id="r-1", model="some-model", created=1_700_000_000),
        PartStart(index=0, part_kind="text"),
        TextDelta(index=0, text="Let me "),
        TextDelta(index=0, text="look."),
        PartEnd(index=0),
        PartStart(index=1, part_kind="tool_call", call_id="call_9", name="get_weather"),
        ToolArgumentsDelta(index=1, json_fragment='{"city": '),
        ToolArgumentsDelta(index=1, json_fragment='"Bergen"}'),
        PartEnd(index=1),
        UsageUpdate(usage=Usage(input_tokens=120, output_tokens=30)),
        MessageEnd(finish_reason=FinishReason.TOOL_CALLS, usage=Usage(input_tokens=120, output_tokens=30)),
    ]


def _through(translator: Translator, events: list[StreamEvent], *, chunk: int) -> list[StreamEvent]:
    """Render events in a format, cut the bytes into ``chunk``-sized pieces, and parse them back."""
    renderer = translator.stream_renderer(now_s=0)
    data = b"".join([frame for event in events for frame in renderer.feed(event)] + renderer.finish())
    parser = translator.stream_parser(provider="p")
    out: list[StreamEvent] = []
    for start in range(0, len(data), chunk):
        out.extend(parser.feed(data[start : start + chunk]))
    out.extend(parser.finish())
    return out


@pytest.mark.parametrize(("client", "upstream"), PAIRS)
def test_stream_crosses_every_pair(client: WireFormat, upstream: WireFormat) -> None:
    """upstream stream -> events -> client stream -> events folds to the same answer, split anywhere."""
    from_upstream = _through(TRANSLATORS[upstream], _events(), chunk=7)
    at_client = _through(TRANSLATORS[client], from_upstream, chunk=5)
    accumulator = Accumulator()
    for event in at_client:
        accumulator.feed(event)
    assert _essence_of_response(accumulator.result()) == _essence_of_response(RESPONSE)
