"""OpenAI Responses tools the canonical form lacks: namespaces, custom (free-form) tools and hosted tools.

Requests are read into function tools; answers (whole and streamed) are rendered back in the shapes the client
declared, and checked against the official ``openai`` SDK's types. Other request, response and stream behaviour
is in ``test_openai_responses.py``, ``test_openai_responses_response.py`` and ``test_openai_responses_stream.py``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from openai.types.responses.response_create_params import ResponseCreateParamsNonStreaming
from pydantic import TypeAdapter

from polyroute.core.accumulate import accumulate
from polyroute.core.events import MessageEnd, MessageStart, PartEnd, PartStart, StreamEvent, ToolArgumentsDelta
from polyroute.core.messages import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
)
from polyroute.errors import InvalidRequestError, UpstreamConnectionError
from polyroute.wire import WireFormat, openai_chat
from polyroute.wire import capabilities as cap
from polyroute.wire import openai_responses as orr
from polyroute.wire.openai_responses import tools as orr_tools
from polyroute.wire.openai_responses.tools import ToolShape
from polyroute.wire.sse import SSEDecoder

MODEL = "gpt-5-codex"
EVENTS = TypeAdapter(ResponseStreamEvent)
GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\n'
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+hello\n*** End Patch\n"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SPAWN_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string"}},
    "required": ["message"],
}
WEB_SEARCH: dict[str, Any] = {"type": "web_search", "external_web_access": True}
TOOL_SEARCH: dict[str, Any] = {"type": "tool_search", "execution": "client", "description": "Find deferred tools."}

AGENT_TOOLS: list[Any] = [
    {"type": "function", "name": "exec_command", "parameters": {"type": "object"}, "strict": False},
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Tools for spawning and managing sub-agents.",
        "tools": [
            {"type": "function", "name": "spawn_agent", "description": "Spawn one.", "parameters": SPAWN_PARAMETERS},
            {"type": "function", "name": "close_agent", "strict": False},
            {"type": "custom", "name": "note", "description": "Leave a note."},
        ],
    },
    {
        "type": "custom",
        "name": "apply_patch",
        "description": "Edit files.",
        "format": {"type": "grammar", "syntax": "lark", "definition": f"\n{GRAMMAR}\n"},
    },
    WEB_SEARCH,
    TOOL_SEARCH,
]
SHAPES = {
    "multi_agent_v1__spawn_agent": ToolShape("spawn_agent", "multi_agent_v1"),
    "multi_agent_v1__close_agent": ToolShape("close_agent", "multi_agent_v1"),
    "multi_agent_v1__note": ToolShape("note", "multi_agent_v1", custom=True),
    "apply_patch": ToolShape("apply_patch", custom=True),
}
NAMESPACE_NOTE = "Part of the multi_agent_v1 tools: Tools for spawning and managing sub-agents."
FREE_FORM_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "free-form text"}},
    "required": ["input"],
    "additionalProperties": False,
}


def _input_schema(description: str) -> dict[str, Any]:
    return {**FREE_FORM_INPUT, "properties": {"input": {"type": "string", "description": description}}}


# --- requests ------------------------------------------------------------------------------------------------------


def test_agent_tools_become_function_tools_and_hosted_tools_are_kept_aside() -> None:
    TypeAdapter(ResponseCreateParamsNonStreaming).validate_python({"model": MODEL, "input": [], "tools": AGENT_TOOLS})
    request = orr.parse_request({"model": MODEL, "input": "go", "tools": AGENT_TOOLS})
    assert request.tools == (
        ToolSpec(name="exec_command", parameters={"type": "object"}),
        ToolSpec(
            name="multi_agent_v1__spawn_agent",
            description=f"Spawn one.\n\n{NAMESPACE_NOTE}",
            parameters=SPAWN_PARAMETERS,
        ),
        ToolSpec(name="multi_agent_v1__close_agent", description=NAMESPACE_NOTE),
        ToolSpec(
            name="multi_agent_v1__note", description=f"Leave a note.\n\n{NAMESPACE_NOTE}", parameters=FREE_FORM_INPUT
        ),
        ToolSpec(
            name="apply_patch",
            description=(
                "Edit files.\n\nPass the tool's input as the raw text of the `input` argument; "
                "it must follow the lark grammar given in that argument's description."
            ),
            parameters=_input_schema(GRAMMAR.strip()),
        ),
    )
    assert request.extensions == {"responses": {"hosted_tools": [WEB_SEARCH, TOOL_SEARCH]}}
    assert orr.tool_shapes({"tools": AGENT_TOOLS}) == SHAPES


def test_hosted_tools_go_back_to_a_responses_upstream_and_are_dropped_for_others() -> None:
    request = orr.parse_request({"model": MODEL, "input": "go", "tools": [*AGENT_TOOLS[:1], WEB_SEARCH]})
    body: Any = orr.render_request(request)
    assert body["tools"] == [
        {"type": "function", "name": "exec_command", "parameters": {"type": "object"}, "strict": False},
        WEB_SEARCH,
    ]
    assert "hosted_tools" not in body
    assert orr.parse_request(body) == request
    assert "hosted_tools" not in str(openai_chat.render_request(request))
    dropped = cap.dropped_fields(
        request, source=WireFormat.RESPONSES, target=WireFormat.OPENAI, capabilities=openai_chat.CAPABILITIES
    )
    assert dropped == ["hosted_tools"]
    same = cap.dropped_fields(
        request, source=WireFormat.RESPONSES, target=WireFormat.RESPONSES, capabilities=orr.CAPABILITIES
    )
    assert same == []


def test_hosted_tools_alone_are_rendered() -> None:
    request = ChatRequest(model=MODEL, messages=(), extensions={"responses": {"hosted_tools": [WEB_SEARCH]}})
    assert orr.render_request(request) == {"model": MODEL, "input": [], "tools": [WEB_SEARCH]}


@pytest.mark.parametrize(
    ("tool", "description", "parameters"),
    [
        ({"type": "custom", "name": "t"}, None, FREE_FORM_INPUT),
        ({"type": "custom", "name": "t", "format": {"type": "text"}}, None, FREE_FORM_INPUT),
        (
            {"type": "custom", "name": "t", "format": {"type": "grammar", "syntax": "regex", "definition": "[a-z]+"}},
            "Pass the tool's input as the raw text of the `input` argument; "
            "it must follow the regex grammar given in that argument's description.",
            _input_schema("[a-z]+"),
        ),
        (
            {"type": "custom", "name": "t", "description": "D", "format": {"type": "grammar", "definition": "  "}},
            "D\n\nPass the tool's input as the raw text of the `input` argument; "
            "it must follow the grammar grammar given in that argument's description.",
            FREE_FORM_INPUT,
        ),
    ],
    ids=["no-format", "text", "regex", "empty-grammar"],
)
def test_custom_tool_formats(tool: dict[str, Any], description: str | None, parameters: dict[str, Any]) -> None:
    [spec] = orr.parse_request({"model": MODEL, "tools": [tool]}).tools
    assert spec == ToolSpec(name="t", description=description, parameters=parameters)


def test_namespace_without_a_description_adds_none() -> None:
    tools: list[Any] = [
        {"type": "namespace", "name": "ns", "description": "", "tools": [{"type": "function", "name": "f"}]}
    ]
    assert orr.parse_request({"model": MODEL, "tools": tools}).tools == (ToolSpec(name="ns__f"),)
    del tools[0]["description"]
    assert orr.parse_request({"model": MODEL, "tools": tools}).tools == (ToolSpec(name="ns__f"),)


def test_flat_names_stay_valid_and_distinct_when_shortened() -> None:
    assert orr_tools.flat_name(None, "f") == "f"
    assert orr_tools.flat_name("crm", "find") == f"crm{orr.NAMESPACE_SEPARATOR}find"
    assert orr_tools.flat_name("n" * 30, "m" * 32) == "n" * 30 + "__" + "m" * 32  # exactly 64
    long_a = orr_tools.flat_name("namespace_" * 5, "member_a_" * 4)
    long_b = orr_tools.flat_name("namespace_" * 5, "member_b_" * 4)
    assert len(long_a) == len(long_b) == 64
    assert NAME_PATTERN.match(long_a) and NAME_PATTERN.match(long_b)
    assert long_a != long_b
    assert long_a == orr_tools.flat_name("namespace_" * 5, "member_a_" * 4)
    assert long_a.startswith("namespace_namespace_")


def test_plain_function_names_may_repeat() -> None:
    tools: list[Any] = [{"type": "function", "name": "a", "parameters": {}}, {"type": "function", "name": "a"}]
    assert len(orr.parse_request({"model": MODEL, "tools": tools}).tools) == 2


def test_shapes_are_empty_for_function_tools_only() -> None:
    assert orr.tool_shapes({"tools": [AGENT_TOOLS[0], WEB_SEARCH]}) is orr.NO_SHAPES
    assert orr.tool_shapes({}) is orr.NO_SHAPES


def test_tool_items_of_an_agent_history() -> None:
    body: dict[str, Any] = {
        "model": MODEL,
        "input": [
            {"role": "user", "content": "Fix it"},
            {"type": "custom_tool_call", "id": "ctc_1", "call_id": "c1", "name": "apply_patch", "input": PATCH},
            {
                "type": "function_call",
                "id": "fc_2",
                "call_id": "c2",
                "namespace": "multi_agent_v1",
                "name": "spawn_agent",
                "arguments": '{"message":"hi"}',
            },
            {
                "type": "custom_tool_call",
                "call_id": "c3",
                "namespace": "multi_agent_v1",
                "name": "note",
                "input": "",
            },
            {"type": "custom_tool_call_output", "call_id": "c1", "output": "Success."},
            {"type": "function_call_output", "call_id": "c2", "output": "spawned"},
            {"type": "custom_tool_call_output", "call_id": "c3", "output": [{"type": "input_text", "text": "ok"}]},
        ],
        "tools": AGENT_TOOLS,
        "tool_choice": {"type": "custom", "name": "apply_patch"},
    }
    request = orr.parse_request(body)
    assert request.messages[1:] == (
        Message(
            role="assistant",
            parts=(
                ToolCallPart(call_id="c1", name="apply_patch", arguments=orjson.dumps({"input": PATCH}).decode()),
                ToolCallPart(call_id="c2", name="multi_agent_v1__spawn_agent", arguments='{"message":"hi"}'),
                ToolCallPart(call_id="c3", name="multi_agent_v1__note", arguments='{"input":""}'),
            ),
        ),
        Message(
            role="user",
            parts=(
                ToolResultPart(call_id="c1", content=(TextPart(text="Success."),)),
                ToolResultPart(call_id="c2", content=(TextPart(text="spawned"),)),
                ToolResultPart(call_id="c3", content=(TextPart(text="ok"),)),
            ),
        ),
    )
    assert request.tool_choice == ToolChoice(mode="tool", name="apply_patch")
    # Upstream, every call is a function call of the function tool the client's tool became.
    rendered: Any = orr.render_request(request)
    names = [(item["type"], item["name"]) for item in rendered["input"][1:4]]
    assert names == [
        ("function_call", "apply_patch"),
        ("function_call", "multi_agent_v1__spawn_agent"),
        ("function_call", "multi_agent_v1__note"),
    ]
    assert orjson.loads(rendered["input"][1]["arguments"]) == {"input": PATCH}
    assert rendered["tool_choice"] == {"type": "function", "name": "apply_patch"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "tools": [{"name": "x"}]}, "tools[0].type"),
        ({"model": "m", "tools": [3]}, "tools[0]"),
        ({"model": "m", "tools": [{"type": "custom"}]}, "tools[0].name"),
        ({"model": "m", "tools": [{"type": "custom", "name": "c", "format": "lark"}]}, "tools[0].format"),
        ({"model": "m", "tools": [{"type": "custom", "name": "c", "format": {}}]}, "tools[0].format.type"),
        (
            {"model": "m", "tools": [{"type": "custom", "name": "c", "format": {"type": "grammar"}}]},
            "tools[0].format.definition",
        ),
        (
            {
                "model": "m",
                "tools": [
                    {"type": "custom", "name": "c", "format": {"type": "grammar", "definition": "", "syntax": 1}}
                ],
            },
            "tools[0].format.syntax",
        ),
        ({"model": "m", "tools": [{"type": "namespace", "tools": []}]}, "tools[0].name"),
        ({"model": "m", "tools": [{"type": "namespace", "name": "n"}]}, "tools[0].tools"),
        (
            {"model": "m", "tools": [{"type": "namespace", "name": "n", "description": 1, "tools": []}]},
            "tools[0].description",
        ),
        ({"model": "m", "tools": [{"type": "namespace", "name": "n", "tools": [1]}]}, "tools[0].tools[0]"),
        ({"model": "m", "tools": [{"type": "namespace", "name": "n", "tools": [{}]}]}, "tools[0].tools[0].type"),
        (
            {"model": "m", "tools": [{"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]}]},
            "tools[0].tools[0].type",
        ),
        (
            {"model": "m", "tools": [{"type": "namespace", "name": "n", "tools": [{"type": "function", "name": 2}]}]},
            "tools[0].tools[0].name",
        ),
        (
            {
                "model": "m",
                "tools": [
                    {"type": "function", "name": "n__f"},
                    {"type": "namespace", "name": "n", "tools": [{"type": "function", "name": "f"}]},
                ],
            },
            "tools[1].tools[0].name",
        ),
        (
            {
                "model": "m",
                "tools": [
                    {"type": "namespace", "name": "n", "tools": [{"type": "function", "name": "f"}]},
                    {"type": "function", "name": "n__f"},
                ],
            },
            "tools[1].name",
        ),
        ({"model": "m", "tools": [{"type": "custom", "name": "c"}, {"type": "custom", "name": "c"}]}, "tools[1].name"),
        ({"model": "m", "tool_choice": {"type": "custom"}}, "tool_choice.name"),
        ({"model": "m", "input": [{"type": "custom_tool_call", "call_id": "c", "name": "f"}]}, "input[0].input"),
        (
            {"model": "m", "input": [{"type": "custom_tool_call", "call_id": "c", "name": "f", "input": 1}]},
            "input[0].input",
        ),
        (
            {
                "model": "m",
                "input": [{"type": "function_call", "call_id": "c", "name": "f", "namespace": 1, "arguments": ""}],
            },
            "input[0].namespace",
        ),
        ({"model": "m", "input": [{"type": "custom_tool_call_output", "call_id": "c"}]}, "input[0].output"),
    ],
)
def test_malformed_tools_and_tool_items_name_the_bad_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        orr.parse_request(body)
    assert info.value.param == param


# --- custom tool input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "text"),
    [
        ('{"input": "*** Begin Patch"}', "*** Begin Patch"),
        ('{"input": ""}', ""),
        ('{"input": "a", "extra": 1}', "a"),
        ('{"input": 5}', '{"input": 5}'),
        ('{"patch": "x"}', '{"patch": "x"}'),
        ('["x"]', '["x"]'),
        ('{"input": "trunc', '{"input": "trunc'),
        ("", ""),
    ],
)
def test_custom_input_is_read_from_the_arguments_or_passed_on(arguments: str, text: str) -> None:
    assert orr_tools.custom_input(arguments) == text


def test_custom_arguments_round_trip() -> None:
    for text in (PATCH, "", 'quotes " and \\ and ünïcode'):
        assert orr_tools.custom_input(orr_tools.custom_arguments(text)) == text


# --- responses -------------------------------------------------------------------------------------------------------

PATCH_ARGUMENTS = orjson.dumps({"input": PATCH}).decode()
CALLS = ChatResponse(
    id="resp_t",
    model=MODEL,
    created=9,
    parts=(
        TextPart(text="On it."),
        ToolCallPart(call_id="c1", name="apply_patch", arguments=PATCH_ARGUMENTS),
        ToolCallPart(call_id="c2", name="multi_agent_v1__spawn_agent", arguments='{"message":"hi"}'),
        ToolCallPart(call_id="c3", name="multi_agent_v1__note", arguments='{"input":"remember"}'),
        ToolCallPart(call_id="c4", name="exec_command", arguments='{"cmd":"ls"}'),
    ),
    finish_reason=FinishReason.TOOL_CALLS,
)
CALL_ITEMS: list[dict[str, Any]] = [
    {"id": "ctc_t_1", "type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": PATCH},
    {
        "id": "fc_t_2",
        "type": "function_call",
        "status": "completed",
        "call_id": "c2",
        "name": "spawn_agent",
        "namespace": "multi_agent_v1",
        "arguments": '{"message":"hi"}',
    },
    {
        "id": "ctc_t_3",
        "type": "custom_tool_call",
        "call_id": "c3",
        "name": "note",
        "namespace": "multi_agent_v1",
        "input": "remember",
    },
    {
        "id": "fc_t_4",
        "type": "function_call",
        "status": "completed",
        "call_id": "c4",
        "name": "exec_command",
        "arguments": '{"cmd":"ls"}',
    },
]


def test_render_response_answers_in_the_declared_shapes() -> None:
    body: Any = orr.render_response(CALLS, now_s=0, tool_shapes=orr.tool_shapes({"tools": AGENT_TOOLS}))
    Response.model_validate(body)
    assert body["output"][1:] == CALL_ITEMS
    # Without shapes every call is the function call the upstream made.
    plain: Any = orr.render_response(CALLS, now_s=0)
    assert [item["type"] for item in plain["output"][1:]] == ["function_call"] * 4
    assert plain["output"][1]["name"] == "apply_patch"


def test_answers_in_the_declared_shapes_read_back_as_the_same_calls() -> None:
    """A stored response's output is the next turn's input (``previous_response_id``)."""
    body: Any = orr.render_response(CALLS, now_s=0, tool_shapes=SHAPES)
    request = orr.parse_request({"model": MODEL, "input": body["output"], "tools": AGENT_TOOLS})
    assert request.messages == (Message(role="assistant", parts=CALLS.parts),)


def test_parse_response_skips_hosted_tool_items_and_flattens_namespaced_calls() -> None:
    body: dict[str, Any] = {
        "id": "resp_u",
        "model": MODEL,
        "output": [
            {"id": "ws_1", "type": "web_search_call", "status": "completed", "action": {"type": "search"}},
            {"type": "function_call", "call_id": "c", "namespace": "ns", "name": "f", "arguments": "{}"},
        ],
    }
    response = orr.parse_response(body)
    assert response.parts == (ToolCallPart(call_id="c", name="ns__f", arguments="{}"),)


# --- streams ---------------------------------------------------------------------------------------------------------


def _stream(response: ChatResponse) -> list[StreamEvent]:
    events: list[StreamEvent] = [MessageStart(id=response.id, model=response.model, created=response.created)]
    for index, part in enumerate(response.parts):
        assert isinstance(part, ToolCallPart)
        events.append(PartStart(index=index, part_kind="tool_call", call_id=part.call_id, name=part.name))
        events += [ToolArgumentsDelta(index=index, json_fragment=part.arguments[i : i + 7]) for i in range(0, 21, 7)]
        events += [ToolArgumentsDelta(index=index, json_fragment=part.arguments[21:]), PartEnd(index=index)]
    assert response.finish_reason is not None
    return [*events, MessageEnd(finish_reason=response.finish_reason)]


def _render(events: list[StreamEvent]) -> list[dict[str, Any]]:
    renderer = orr.stream_renderer(now_s=0, tool_shapes=SHAPES)
    data = b"".join(frame for event in events for frame in renderer.feed(event))
    payloads = []
    for event in SSEDecoder().feed(data):
        payload = orjson.loads(event.data)
        assert EVENTS.validate_python(payload).type == event.event == payload["type"]
        payloads.append(payload)
    return payloads


def test_stream_answers_in_the_declared_shapes() -> None:
    calls = ChatResponse(
        id="resp_t", model=MODEL, created=9, parts=CALLS.parts[1:3], finish_reason=FinishReason.TOOL_CALLS
    )
    payloads = _render(_stream(calls))
    assert [payload["type"] for payload in payloads] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    custom, function = CALL_ITEMS[0] | {"id": "ctc_t_0"}, CALL_ITEMS[1] | {"id": "fc_t_1"}
    assert payloads[2]["item"] == custom | {"input": ""}
    location = {"item_id": "ctc_t_0", "output_index": 0}
    assert payloads[3] == {"type": "response.custom_tool_call_input.delta", "sequence_number": 3, **location} | {
        "delta": PATCH
    }
    assert payloads[4] == {"type": "response.custom_tool_call_input.done", "sequence_number": 4, **location} | {
        "input": PATCH
    }
    assert payloads[5]["item"] == custom
    assert payloads[6]["item"] == function | {"status": "in_progress", "arguments": ""}
    assert payloads[10]["name"] == "spawn_agent"
    assert payloads[11]["item"] == function
    final = payloads[-1]["response"]
    Response.model_validate(final)
    assert final == orr.render_response(calls, now_s=0, tool_shapes=SHAPES)
    assert final["output"] == [custom, function]


def test_stream_of_a_custom_call_with_empty_input_sends_only_done() -> None:
    call = ToolCallPart(call_id="c", name="apply_patch", arguments="")
    payloads = _render(_stream(ChatResponse(id="resp_e", model=MODEL, parts=(call,), finish_reason=FinishReason.STOP)))
    assert [payload["type"] for payload in payloads][2:] == [
        "response.output_item.added",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert payloads[3]["input"] == payloads[4]["item"]["input"] == ""


def test_stream_failure_lists_finished_calls_in_their_shapes() -> None:
    renderer = orr.stream_renderer(now_s=0, tool_shapes=SHAPES)
    for event in (
        MessageStart(id="resp_t", model=MODEL),
        PartStart(index=0, part_kind="tool_call", call_id="c1", name="apply_patch"),
        ToolArgumentsDelta(index=0, json_fragment=PATCH_ARGUMENTS),
        PartEnd(index=0),
        PartStart(index=1, part_kind="tool_call", call_id="c2", name="multi_agent_v1__spawn_agent"),
    ):
        renderer.feed(event)
    [frame] = SSEDecoder().feed(renderer.error(UpstreamConnectionError("gone", provider="openai")))
    payload = orjson.loads(frame.data)
    EVENTS.validate_python(payload)
    assert payload["response"]["output"] == [CALL_ITEMS[0] | {"id": "ctc_t_0"}]


def test_upstream_stream_skips_hosted_tool_items() -> None:
    created = {"type": "response.created", "response": {"id": "resp_u", "model": MODEL}}
    search = {"id": "ws_1", "type": "web_search_call", "status": "completed"}
    call = {"id": "fc_1", "type": "function_call", "call_id": "c", "namespace": "ns", "name": "f", "arguments": "{}"}
    payloads = [
        created,
        {"type": "response.output_item.added", "output_index": 0, "item": search | {"status": "in_progress"}},
        {"type": "response.web_search_call.completed", "output_index": 0, "item_id": "ws_1"},
        {"type": "response.output_item.done", "output_index": 0, "item": search},
        {"type": "response.output_item.added", "output_index": 1, "item": call | {"arguments": ""}},
        {"type": "response.output_item.done", "output_index": 1, "item": call},
        {"type": "response.completed", "response": {"id": "resp_u", "model": MODEL, "status": "completed"}},
    ]
    parser = orr.stream_parser(provider="openai")
    data = b"".join(b"data: " + orjson.dumps(payload) + b"\n\n" for payload in payloads)
    response = accumulate([*parser.feed(data), *parser.finish()], source_format="responses")
    assert response.parts == (ToolCallPart(call_id="c", name="ns__f", arguments="{}"),)
    assert response.finish_reason is FinishReason.TOOL_CALLS
