"""OpenAI Responses requests: round trips, the rendered shape, validation errors, and the module surface.

Rendered bodies are checked against the official ``openai`` SDK's generated types as well as by round trip.
Responses and errors are in ``test_openai_responses_response.py``, streams in ``test_openai_responses_stream.py``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.responses.response_create_params import (
    ResponseCreateParamsNonStreaming,
    ResponseCreateParamsStreaming,
)
from pydantic import TypeAdapter

from polyroute.core.messages import (
    ChatRequest,
    ImagePart,
    Message,
    ReasoningPart,
    ResponseFormat,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
)
from polyroute.errors import (
    InvalidRequestError,
)
from polyroute.wire import WireFormat
from polyroute.wire import capabilities as cap
from polyroute.wire import openai_responses as orr

MODEL = "gpt-5"
ENCRYPTED = "gAAAAABoXyZ-encrypted"

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
                ReasoningPart(text="The user wants weather.", redacted=ENCRYPTED, source_format="responses"),
                TextPart(text="Checking."),
                TextPart(text="Both cities."),
                ToolCallPart(call_id="call_A", name="get_weather", arguments='{"city":"Paris"}'),
                ToolCallPart(call_id="call_B", name="get_weather", arguments='{"city": "Lyon"'),
            ),
        ),
        Message(
            role="user",
            parts=(
                ToolResultPart(call_id="call_A", content=(TextPart(text="15 degrees"),)),
                ToolResultPart(
                    call_id="call_B", content=(TextPart(text="see chart"), ImagePart(url="https://example.com/c.png"))
                ),
                ToolResultPart(call_id="call_C"),
                TextPart(text="Thanks. And tomorrow?"),
            ),
        ),
    ),
    tools=(
        ToolSpec(
            name="get_weather",
            description="Weather by city",
            parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        ),
        ToolSpec(name="noop"),
    ),
    tool_choice=ToolChoice(mode="tool", name="get_weather"),
    parallel_tool_calls=False,
    response_format=ResponseFormat(mode="json_schema", name="weather", schema={"type": "object"}, strict=True),
    max_output_tokens=2048,
    temperature=0.5,
    top_p=0.9,
    stream=True,
    reasoning_effort="high",
    user_id="user-123",
    extensions={
        "responses": {
            "store": False,
            "include": ["reasoning.encrypted_content"],
            "reasoning": {"summary": "auto"},
            "text": {"verbosity": "low"},
            "previous_response_id": None,
        }
    },
)
MINIMAL_REQUEST = ChatRequest(model=MODEL, messages=(Message(role="user", parts=(TextPart(text="Hi"),)),))


def _sdk_request(body: dict[str, Any]) -> None:
    """Validate a rendered body with the SDK's request types (reasoning items aside: see render_request)."""
    params = ResponseCreateParamsStreaming if body.get("stream") else ResponseCreateParamsNonStreaming
    items = body["input"]
    TypeAdapter(params).validate_python({**body, "input": [i for i in items if i.get("type") != "reasoning"]})


@pytest.mark.parametrize("request_", [FULL_REQUEST, MINIMAL_REQUEST], ids=["full", "minimal"])
def test_request_round_trip_canonical_first_is_lossless(request_: ChatRequest) -> None:
    body = orr.render_request(request_)
    _sdk_request(body)
    assert orr.parse_request(orjson.loads(orjson.dumps(body))) == request_


def test_render_request_writes_the_responses_shape() -> None:
    body: Any = orr.render_request(FULL_REQUEST)
    assert body["instructions"] == "You are terse."
    assert body["input"][:2] == [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Answer in French."}]},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is in these pictures, and what's the weather?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
                {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "auto"},
            ],
        },
    ]
    assert body["input"][2] == {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "The user wants weather."}],
        "encrypted_content": ENCRYPTED,
    }
    assert body["input"][3] == {"type": "message", "role": "assistant", "content": "Checking."}
    assert body["input"][5] == {
        "type": "function_call",
        "call_id": "call_A",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert body["input"][7:10] == [
        {"type": "function_call_output", "call_id": "call_A", "output": "15 degrees"},
        {
            "type": "function_call_output",
            "call_id": "call_B",
            "output": [
                {"type": "input_text", "text": "see chart"},
                {"type": "input_image", "image_url": "https://example.com/c.png", "detail": "auto"},
            ],
        },
        {"type": "function_call_output", "call_id": "call_C", "output": ""},
    ]
    assert body["tools"][1] == {"type": "function", "name": "noop", "parameters": {}, "strict": False}
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert body["text"] == {
        "verbosity": "low",
        "format": {"type": "json_schema", "name": "weather", "schema": {"type": "object"}, "strict": True},
    }
    assert body["reasoning"] == {"summary": "auto", "effort": "high"}
    assert body["user"] == "user-123"
    assert body["store"] is False


def test_render_minimal_request_writes_only_what_is_set() -> None:
    assert orr.render_request(MINIMAL_REQUEST) == {
        "model": MODEL,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
    }


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        (ResponseFormat(mode="text"), {"type": "text"}),
        (ResponseFormat(mode="json_object"), {"type": "json_object"}),
        (ResponseFormat(mode="json_schema"), {"type": "json_schema", "name": "response", "schema": {}}),
    ],
)
def test_render_text_format(response_format: ResponseFormat, expected: dict[str, Any]) -> None:
    body = orr.render_request(ChatRequest(model=MODEL, messages=(), response_format=response_format))
    assert body["text"] == {"format": expected}


@pytest.mark.parametrize("mode", ["auto", "none", "required"])
def test_tool_choice_modes_round_trip(mode: Any) -> None:
    request = ChatRequest(model=MODEL, messages=(), tool_choice=ToolChoice(mode=mode))
    body = orr.render_request(request)
    assert body["tool_choice"] == mode
    assert orr.parse_request(body) == request


@pytest.mark.parametrize(
    "part",
    [
        ReasoningPart(text="from Anthropic", signature="EqQBCgIY", source_format="anthropic"),
        ReasoningPart(text="no encrypted content", signature="rs_1", source_format="responses"),
    ],
    ids=["foreign", "id-only"],
)
def test_render_request_drops_reasoning_it_cannot_send(part: ReasoningPart) -> None:
    request = ChatRequest(model=MODEL, messages=(Message(role="assistant", parts=(part, TextPart(text="x"))),))
    assert orr.render_request(request)["input"] == [{"type": "message", "role": "assistant", "content": "x"}]


def test_render_request_reasoning_without_text_has_empty_summary() -> None:
    part = ReasoningPart(redacted=ENCRYPTED, source_format="responses")
    body = orr.render_request(ChatRequest(model=MODEL, messages=(Message(role="assistant", parts=(part,)),)))
    assert body["input"] == [{"type": "reasoning", "summary": [], "encrypted_content": ENCRYPTED}]


def test_render_request_keeps_extension_objects_when_canonical_fields_are_unset() -> None:
    request = ChatRequest(model=MODEL, messages=(), extensions={"responses": {"text": "odd", "reasoning": {"x": 1}}})
    body = orr.render_request(request)
    assert body["text"] == "odd"
    assert body["reasoning"] == {"x": 1}


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (Message(role="user", parts=(ToolCallPart(call_id="c", name="f", arguments="{}"),)), "messages[0].parts[0]"),
        (Message(role="assistant", parts=(TextPart(text="a"), ImagePart(url="u"))), "messages[0].parts[1]"),
        (Message(role="assistant", parts=(ToolResultPart(call_id="c"),)), "messages[0].parts[0]"),
        (Message(role="user", parts=(ReasoningPart(text="r"),)), "messages[0].parts[0]"),
    ],
)
def test_render_request_rejects_parts_the_role_cannot_carry(message: Message, param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        orr.render_request(ChatRequest(model=MODEL, messages=(message,)))
    assert info.value.param == param


CLIENT_BODY: dict[str, Any] = {
    "model": "gpt-5-codex",
    "instructions": "You are a coding agent.",
    "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Sandbox: read-only."}]},
        {"role": "system", "content": "Be brief."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Fix the bug"},
                {"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "high"},
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_68ab",
            "summary": [
                {"type": "summary_text", "text": "**Reading**"},
                {"type": "summary_text", "text": "Then fixing."},
            ],
            "encrypted_content": ENCRYPTED,
        },
        {
            "type": "message",
            "id": "msg_68ab",
            "role": "assistant",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": "Looking.", "annotations": []},
                {"type": "refusal", "refusal": "Not that file."},
            ],
        },
        {"type": "function_call", "id": "fc_68ab", "call_id": "call_1", "name": "shell", "arguments": '{"cmd":"ls"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "a.py"},
        {
            "type": "function_call_output",
            "call_id": "call_2",
            "output": [
                {"type": "input_text", "text": "shot"},
                {"type": "input_image", "image_url": "https://x/s.png", "detail": "low"},
            ],
        },
        {"type": "message", "role": "developer", "content": "Now in write mode."},
        {"role": "user", "content": "Go on"},
        {"type": "reasoning", "id": "rs_2", "summary": [], "content": [{"type": "reasoning_text", "text": "raw"}]},
        {"type": "reasoning", "id": "rs_3", "summary": []},
        {"role": "assistant", "content": "Done."},
    ],
    "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}, "strict": True}],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "text": {"format": {"type": "json_object"}, "verbosity": "medium"},
    "store": False,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "session-1",
    "stream": True,
    "safety_identifier": "hashed-user",
}


def test_parse_request_of_an_agent_body() -> None:
    request = orr.parse_request(CLIENT_BODY)
    assert request.model == "gpt-5-codex"
    assert request.system == (
        TextPart(text="You are a coding agent."),
        TextPart(text="Sandbox: read-only."),
        TextPart(text="Be brief."),
    )
    assert request.messages == (
        Message(
            role="user",
            parts=(TextPart(text="Fix the bug"), ImagePart(data="/9j/4AAQ", media_type="image/jpeg")),
        ),
        Message(
            role="assistant",
            parts=(
                ReasoningPart(
                    text="**Reading**\n\nThen fixing.",
                    signature="rs_68ab",
                    redacted=ENCRYPTED,
                    source_format="responses",
                ),
                TextPart(text="Looking."),
                TextPart(text="Not that file."),
                ToolCallPart(call_id="call_1", name="shell", arguments='{"cmd":"ls"}'),
            ),
        ),
        Message(
            role="user",
            parts=(
                ToolResultPart(call_id="call_1", content=(TextPart(text="a.py"),)),
                ToolResultPart(call_id="call_2", content=(TextPart(text="shot"), ImagePart(url="https://x/s.png"))),
                TextPart(text="Now in write mode."),
                TextPart(text="Go on"),
            ),
        ),
        Message(
            role="assistant",
            parts=(
                ReasoningPart(text="raw", signature="rs_2", source_format="responses"),
                ReasoningPart(signature="rs_3", source_format="responses"),
                TextPart(text="Done."),
            ),
        ),
    )
    assert request.tools == (ToolSpec(name="shell", parameters={"type": "object"}),)
    assert request.tool_choice == ToolChoice(mode="auto")
    assert request.parallel_tool_calls is True
    assert request.reasoning_effort == "medium"
    assert request.response_format == ResponseFormat(mode="json_object")
    assert request.stream is True
    assert request.user_id == "hashed-user"
    assert request.extensions == {
        "responses": {
            "reasoning": {"summary": "auto"},
            "text": {"verbosity": "medium"},
            "store": False,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "session-1",
        }
    }


def test_parse_request_input_string_model_override_and_no_input() -> None:
    request = orr.parse_request({"model": "a", "input": "Hello"}, model="b")
    assert request == ChatRequest(model="b", messages=(Message(role="user", parts=(TextPart(text="Hello"),)),))
    assert orr.parse_request({"model": "a", "instructions": "S"}) == ChatRequest(
        model="a", messages=(), system=(TextPart(text="S"),)
    )


def test_user_wins_over_safety_identifier_which_then_stays_in_extensions() -> None:
    request = orr.parse_request({"model": "m", "input": [], "user": "u", "safety_identifier": "s"})
    assert request.user_id == "u"
    assert request.extensions == {"responses": {"safety_identifier": "s"}}


def test_reasoning_and_text_without_canonical_members() -> None:
    body: dict[str, Any] = {"model": "m", "input": [], "reasoning": {"effort": None}, "text": {}, "tool_choice": None}
    request = orr.parse_request(body)
    assert (request.reasoning_effort, request.response_format, request.extensions) == (None, None, {})


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": []}, "model"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": [1]}, "input[0]"),
        ({"model": "m", "input": [{"content": "x"}]}, "input[0].type"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"model": "m", "input": [{"type": "message", "role": "tool", "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"role": "user", "content": 5}]}, "input[0].content"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file"}]}]}, "input[0].content[0].type"),
        ({"model": "m", "input": [{"role": "user", "content": [{"text": "x"}]}]}, "input[0].content[0].type"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input[0].content[0].text"),
        (
            {"model": "m", "input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "u"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
            "input[0].content[0].file_id",
        ),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": 7}]}]},
            "input[0].content[0].image_url",
        ),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "detail": "auto"}]}]},
            "input[0].content[0].image_url",
        ),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:x"}]}]},
            "input[0].content[0].image_url",
        ),
        ({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
        ({"model": "m", "input": [{"type": "function_call_output", "call_id": "c"}]}, "input[0].output"),
        (
            {
                "model": "m",
                "input": [{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_file"}]}],
            },
            "input[0].output[0].type",
        ),
        (
            {"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": [3]}]},
            "input[0].output[0]",
        ),
        (
            {"model": "m", "input": [{"type": "reasoning", "summary": [{"type": "summary_text"}]}]},
            "input[0].summary[0].text",
        ),
        ({"model": "m", "input": [{"type": "reasoning", "summary": "x"}]}, "input[0].summary"),
        ({"model": "m", "input": [{"type": "reasoning", "id": 1, "summary": []}]}, "input[0].id"),
        ({"model": "m", "tools": [{"name": "web_search"}]}, "tools[0].type"),
        ({"model": "m", "tools": [{"type": "function", "name": "f", "strict": "yes"}]}, "tools[0].strict"),
        ({"model": "m", "tools": [{"type": "function", "name": "f", "parameters": []}]}, "tools[0].parameters"),
        ({"model": "m", "tools": {}}, "tools"),
        ({"model": "m", "tool_choice": "any"}, "tool_choice"),
        ({"model": "m", "tool_choice": {"type": "allowed_tools", "tools": []}}, "tool_choice.type"),
        ({"model": "m", "tool_choice": {"type": "function"}}, "tool_choice.name"),
        ({"model": "m", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"model": "m", "text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema"),
        ({"model": "m", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        ({"model": "m", "text": {"format": "json"}}, "text.format"),
        ({"model": "m", "text": []}, "text"),
        ({"model": "m", "reasoning": {"effort": 3}}, "reasoning.effort"),
        ({"model": "m", "reasoning": "high"}, "reasoning"),
        ({"model": "m", "instructions": ["x"]}, "instructions"),
        ({"model": "m", "max_output_tokens": 1.5}, "max_output_tokens"),
        ({"model": "m", "temperature": "hot"}, "temperature"),
        ({"model": "m", "stream": "yes"}, "stream"),
        ({"model": "m", "user": 1}, "user"),
        ({"model": "m", "safety_identifier": 1}, "safety_identifier"),
        ({"model": "m", "parallel_tool_calls": 1}, "parallel_tool_calls"),
    ],
)
def test_parse_request_names_the_bad_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        orr.parse_request(body)
    assert info.value.param == param


# --- surface -------------------------------------------------------------------------------------------------------


def test_module_surface() -> None:
    assert orr.FORMAT is WireFormat.RESPONSES
    assert orr.CAPABILITIES <= cap.ALL
    assert {cap.STOP, cap.TOP_K, cap.REASONING_BUDGET}.isdisjoint(orr.CAPABILITIES)
    assert orr.request_path("gpt-5", stream=True) == orr.request_path("gpt-5", stream=False) == "/responses"
    assert isinstance(orr.stream_renderer(now_s=1), orr.StreamRenderer)
    assert orr.stream_parser(provider="openai").finish is not None


@pytest.mark.parametrize("name", sorted(orr.CAPABILITIES))
def test_each_claimed_capability_changes_the_rendered_body(name: str) -> None:
    base = ChatRequest(model=MODEL, messages=(Message(role="user", parts=(TextPart(text="x"),)),))
    variants: dict[str, ChatRequest] = {
        cap.TEMPERATURE: ChatRequest(model=MODEL, messages=base.messages, temperature=0.1),
        cap.TOP_P: ChatRequest(model=MODEL, messages=base.messages, top_p=0.1),
        cap.JSON_OBJECT: ChatRequest(
            model=MODEL, messages=base.messages, response_format=ResponseFormat(mode="json_object")
        ),
        cap.JSON_SCHEMA: ChatRequest(
            model=MODEL, messages=base.messages, response_format=ResponseFormat(mode="json_schema", name="s", schema={})
        ),
        cap.TOOL_CHOICE_NONE: ChatRequest(model=MODEL, messages=base.messages, tool_choice=ToolChoice(mode="none")),
        cap.TOOL_CHOICE_REQUIRED: ChatRequest(
            model=MODEL, messages=base.messages, tool_choice=ToolChoice(mode="required")
        ),
        cap.TOOL_CHOICE_TOOL: ChatRequest(
            model=MODEL, messages=base.messages, tool_choice=ToolChoice(mode="tool", name="f")
        ),
        cap.PARALLEL_TOOL_CALLS: ChatRequest(model=MODEL, messages=base.messages, parallel_tool_calls=False),
        cap.REASONING_EFFORT: ChatRequest(model=MODEL, messages=base.messages, reasoning_effort="low"),
        cap.USER_ID: ChatRequest(model=MODEL, messages=base.messages, user_id="u"),
        cap.IMAGE_URL: ChatRequest(model=MODEL, messages=(Message(role="user", parts=(ImagePart(url="https://i"),)),)),
        cap.TOOL_RESULT_IMAGES: ChatRequest(
            model=MODEL,
            messages=(
                Message(role="user", parts=(ToolResultPart(call_id="c", content=(ImagePart(url="https://i"),)),)),
            ),
        ),
    }
    rendered = orr.render_request(variants[name])
    assert rendered != orr.render_request(base)
    assert orr.parse_request(rendered) == variants[name]
