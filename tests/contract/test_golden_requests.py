"""Request goldens: documented request bodies of every format, through the matching translator.

Every ``tests/fixtures/wire/<format>/request_*.json`` parses to the canonical request written out below, and
``render_request(parse_request(golden))`` gives the golden back: JSON-equal, except for the differences listed in
``NORMALISED``, each an exact (path, golden value, rendered value) with the reason it is not a loss. Rendering
and parsing again gives the same canonical request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from polyroute.core.messages import (
    ChatRequest,
    ImagePart,
    Message,
    Part,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
)
from polyroute.wire import WireFormat
from polyroute.wire.registry import TRANSLATORS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wire"
PREFIX = "request_"
KINDS = ("request_text.json", "request_tool_use.json", "request_image.json", "request_reasoning.json")
"""The request goldens every format has: a system prompt, tool use with history, images, reasoning."""
URL_MODEL = "gemini-2.5-flash"
"""Gemini names the model in the URL, not the body; the endpoint passes it to ``parse_request``."""


def discover() -> list[tuple[str, str]]:
    return sorted((path.parent.name, path.name) for path in FIXTURES.glob(f"*/{PREFIX}*.json"))


GOLDENS = discover()


def golden(fmt: str, name: str) -> Any:
    return json.loads((FIXTURES / fmt / name).read_bytes())


def parse(fmt: str, body: Any) -> ChatRequest:
    wire = WireFormat(fmt)
    return TRANSLATORS[wire].parse_request(body, model=URL_MODEL if wire is WireFormat.GEMINI else None)


def text(value: str) -> TextPart:
    return TextPart(text=value)


def user(*parts: Part) -> Message:
    return Message(role="user", parts=parts)


def assistant(*parts: Part) -> Message:
    return Message(role="assistant", parts=parts)


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
PNG_IMAGE = ImagePart(data=PNG, media_type="image/png")
BOARDWALK = (
    "https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-the-nature-boardwalk.jpg"
    "/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg"
)
ANT = "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"
GEMINI_FILE = "https://generativelanguage.googleapis.com/v1beta/files/8c6vl9vt2qnc"
LOCATION_SCHEMA = {
    "type": "object",
    "properties": {"location": {"type": "string", "description": "City and country e.g. Bogotá, Colombia"}},
    "required": ["location"],
    "additionalProperties": False,
}
ANTHROPIC_SCHEMA = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {
            "type": "string",
            "enum": ["celsius", "fahrenheit"],
            "description": 'The unit of temperature, either "celsius" or "fahrenheit"',
        },
    },
    "required": ["location"],
}
GEMINI_SCHEMA = {
    "type": "object",
    "properties": {"location": {"type": "string", "description": "The city name, e.g. San Francisco"}},
    "required": ["location"],
}
OLLAMA_SCHEMA = {
    "type": "object",
    "required": ["city"],
    "properties": {"city": {"type": "string", "description": "The name of the city"}},
}
LAT_LON_SCHEMA = {
    "type": "object",
    "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
    "required": ["latitude", "longitude"],
    "additionalProperties": False,
}
TRANSPOSE = (
    "Write a bash script that takes a matrix represented as a string with format '[1,2],[3,4],[5,6]' and prints"
    " the transpose in the same format."
)
STRAWBERRY = "How many letter r are in strawberry?"

EXPECTED: dict[tuple[str, str], ChatRequest] = {
    ("openai", "request_text.json"): ChatRequest(
        model="gpt-4.1", system=(text("You are a helpful assistant."),), messages=(user(text("Hello!")),)
    ),
    ("openai", "request_tool_use.json"): ChatRequest(
        model="gpt-4.1",
        system=(text("You are a weather assistant."),),
        messages=(
            user(text("What is the weather like in Paris today?")),
            assistant(
                ToolCallPart(call_id="call_12345xyz", name="get_weather", arguments='{"location":"Paris, France"}')
            ),
            user(ToolResultPart(call_id="call_12345xyz", content=(text("14°C and sunny"),))),
        ),
        tools=(
            ToolSpec(
                name="get_weather",
                description="Get current temperature for a given location.",
                parameters=LOCATION_SCHEMA,
            ),
        ),
        tool_choice=ToolChoice(mode="tool", name="get_weather"),
    ),
    ("openai", "request_image.json"): ChatRequest(
        model="gpt-4.1",
        messages=(user(text("What's in this image?"), ImagePart(url=BOARDWALK), PNG_IMAGE),),
        max_output_tokens=300,
    ),
    ("openai", "request_reasoning.json"): ChatRequest(
        model="o4-mini", messages=(user(text(TRANSPOSE)),), reasoning_effort="medium"
    ),
    ("anthropic", "request_text.json"): ChatRequest(
        model="claude-sonnet-4-5",
        system=(text("You are a seasoned data scientist at a Fortune 500 company."),),
        messages=(user(text("Analyze this dataset for anomalies: <dataset>{{DATASET}}</dataset>")),),
        max_output_tokens=2048,
    ),
    ("anthropic", "request_tool_use.json"): ChatRequest(
        model="claude-opus-4-6",
        messages=(
            user(text("What is the weather like in San Francisco?")),
            assistant(
                text("I'll check the current weather in San Francisco for you."),
                # The tool_use input object becomes compact JSON text.
                ToolCallPart(
                    call_id="toolu_01A09q90qw90lq917835lq9",
                    name="get_weather",
                    arguments='{"location":"San Francisco, CA","unit":"celsius"}',
                ),
            ),
            user(ToolResultPart(call_id="toolu_01A09q90qw90lq917835lq9", content=(text("15 degrees"),))),
        ),
        tools=(
            ToolSpec(
                name="get_weather",
                description="Get the current weather in a given location",
                parameters=ANTHROPIC_SCHEMA,
            ),
        ),
        tool_choice=ToolChoice(mode="tool", name="get_weather"),
        max_output_tokens=1024,
    ),
    ("anthropic", "request_image.json"): ChatRequest(
        model="claude-sonnet-4-5",
        messages=(user(PNG_IMAGE, ImagePart(url=ANT), text("Describe this image.")),),
        max_output_tokens=1024,
    ),
    ("anthropic", "request_reasoning.json"): ChatRequest(
        model="claude-sonnet-4-5",
        messages=(user(text("Are there an infinite number of prime numbers such that n mod 4 == 3?")),),
        max_output_tokens=16000,
        reasoning_budget_tokens=10000,
    ),
    ("gemini", "request_text.json"): ChatRequest(
        model=URL_MODEL, system=(text("You are a cat. Your name is Neko."),), messages=(user(text("Hello there")),)
    ),
    ("gemini", "request_tool_use.json"): ChatRequest(
        model=URL_MODEL,
        messages=(
            user(text("What's the temperature in London?")),
            # Gemini sends no call ids: the call and its response are paired by position and name.
            assistant(
                ToolCallPart(
                    call_id="gemini_call_1_0", name="get_current_temperature", arguments='{"location":"London"}'
                )
            ),
            user(ToolResultPart(call_id="gemini_call_1_0", content=(text('{"temperature":25,"unit":"Celsius"}'),))),
        ),
        tools=(
            ToolSpec(
                name="get_current_temperature",
                description="Gets the current temperature for a given location.",
                parameters=GEMINI_SCHEMA,
            ),
        ),
        # mode ANY restricted to one allowed function is "call this tool".
        tool_choice=ToolChoice(mode="tool", name="get_current_temperature"),
    ),
    ("gemini", "request_image.json"): ChatRequest(
        model=URL_MODEL,
        messages=(user(PNG_IMAGE, ImagePart(url=GEMINI_FILE, media_type="image/jpeg"), text("Caption this image.")),),
    ),
    ("gemini", "request_reasoning.json"): ChatRequest(
        model=URL_MODEL,
        messages=(user(text("Provide a list of 3 famous physicists and their key contributions")),),
        reasoning_budget_tokens=1024,
        # includeThoughts has no canonical field; it rides along for a Gemini upstream.
        extensions={"gemini": {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}}},
    ),
    ("ollama", "request_text.json"): ChatRequest(
        model="llama3.2",
        system=(text("You are a helpful assistant who answers in one sentence."),),
        messages=(user(text("why is the sky blue?")),),
    ),
    ("ollama", "request_tool_use.json"): ChatRequest(
        model="qwen3",
        messages=(
            user(text("What is the temperature in New York?")),
            # Ollama sends no call ids either; the tool message names the tool instead.
            assistant(ToolCallPart(call_id="call_1_0", name="get_temperature", arguments='{"city":"New York"}')),
            user(ToolResultPart(call_id="call_1_0", content=(text("22°C"),))),
        ),
        tools=(
            ToolSpec(
                name="get_temperature", description="Get the current temperature for a city", parameters=OLLAMA_SCHEMA
            ),
        ),
    ),
    ("ollama", "request_image.json"): ChatRequest(
        # Ollama's images carry no MIME type; the PNG signature in the data gives it.
        model="gemma3",
        messages=(user(text("What is in this image?"), PNG_IMAGE),),
    ),
    ("ollama", "request_reasoning.json"): ChatRequest(
        # think: true names no effort level; it rides in extensions, sent again only to an Ollama upstream.
        model="qwen3",
        messages=(user(text(STRAWBERRY)),),
        extensions={"ollama": {"think": True}},
    ),
    ("ollama", "request_reasoning_effort.json"): ChatRequest(
        model="gpt-oss", messages=(user(text(STRAWBERRY)),), reasoning_effort="high"
    ),
    ("responses", "request_text.json"): ChatRequest(
        model="gpt-4.1",
        system=(text("You are a helpful assistant."),),
        messages=(user(text("Hello!")),),
        stream=True,
    ),
    ("responses", "request_tool_use.json"): ChatRequest(
        model="gpt-4.1",
        messages=(
            user(text("What's the weather like in Paris today?")),
            assistant(
                ToolCallPart(
                    call_id="call_12345xyz", name="get_weather", arguments='{"latitude":48.8566,"longitude":2.3522}'
                )
            ),
            user(ToolResultPart(call_id="call_12345xyz", content=(text("14"),))),
        ),
        tools=(
            ToolSpec(
                name="get_weather",
                description="Get current temperature for provided coordinates in celsius.",
                parameters=LAT_LON_SCHEMA,
            ),
        ),
        tool_choice=ToolChoice(mode="required"),
    ),
    ("responses", "request_image.json"): ChatRequest(
        model="gpt-4.1", messages=(user(text("what is in this image?"), ImagePart(url=BOARDWALK), PNG_IMAGE),)
    ),
    ("responses", "request_reasoning.json"): ChatRequest(
        model="o3-mini", messages=(user(text("How much wood would a woodchuck chuck?")),), reasoning_effort="high"
    ),
}


# --- what rendering normalises ---------------------------------------------------------------------------------


class _Absent:
    """Marks a key one side of a comparison does not have."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()
JSONPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Change:
    """One difference between a golden and what rendering its parse gives: where, and both values."""

    path: JSONPath
    golden: Any
    rendered: Any


def json_diff(golden_value: Any, rendered: Any, path: JSONPath = ()) -> list[Change]:
    """The differences between two JSON values, at the deepest path where they part (key order ignored)."""
    if isinstance(golden_value, dict) and isinstance(rendered, dict):
        changes: list[Change] = []
        for key in sorted(golden_value.keys() | rendered.keys()):
            changes += json_diff(golden_value.get(key, ABSENT), rendered.get(key, ABSENT), (*path, key))
        return changes
    if isinstance(golden_value, list) and isinstance(rendered, list) and len(golden_value) == len(rendered):
        return [
            change
            for i, pair in enumerate(zip(golden_value, rendered, strict=True))
            for change in json_diff(*pair, (*path, i))
        ]
    if type(golden_value) is type(rendered) and golden_value == rendered:
        return []
    return [Change(path, golden_value, rendered)]


def blocks(value: str) -> list[dict[str, str]]:
    """Anthropic's block form of a string content."""
    return [{"type": "text", "text": value}]


def input_text(value: str) -> list[dict[str, Any]]:
    """A Responses input message in item form, as rendered for string content."""
    return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]


GEMINI_ROLE = Change(("contents", 0, "role"), ABSENT, "user")
"""Gemini's role defaults to user; rendering always names it."""
PNG_INLINE = Change(("contents", 0, "parts", 0, "inline_data"), {"mime_type": "image/png", "data": PNG}, ABSENT)
PNG_INLINE_CAMEL = Change(("contents", 0, "parts", 0, "inlineData"), ABSENT, {"mimeType": "image/png", "data": PNG})
RESPONSES_DETAIL = "auto"
"""Rendered input_image parts name ``detail``; ``auto`` is the API's default, so nothing changes."""

NORMALISED: dict[tuple[str, str], tuple[Change, ...]] = {
    # OpenAI: the canonical system prompt does not keep which role carried it; rendering writes `system`, which
    # the API accepts for every model (for o1 and newer models it stands for `developer`).
    ("openai", "request_text.json"): (Change(("messages", 0, "role"), "developer", "system"),),
    # `strict` has no canonical field and is not sent (same-format requests are relayed with it untouched).
    ("openai", "request_tool_use.json"): (Change(("tools", 0, "function", "strict"), True, ABSENT),),
    # `max_tokens` is deprecated in favour of `max_completion_tokens`, which is what rendering writes.
    ("openai", "request_image.json"): (
        Change(("max_completion_tokens",), ABSENT, 300),
        Change(("max_tokens",), 300, ABSENT),
    ),
    # Anthropic: string content is shorthand for one text block; rendering always writes blocks.
    ("anthropic", "request_text.json"): (
        Change(
            ("messages", 0, "content"),
            "Analyze this dataset for anomalies: <dataset>{{DATASET}}</dataset>",
            blocks("Analyze this dataset for anomalies: <dataset>{{DATASET}}</dataset>"),
        ),
        Change(
            ("system",),
            "You are a seasoned data scientist at a Fortune 500 company.",
            blocks("You are a seasoned data scientist at a Fortune 500 company."),
        ),
    ),
    ("anthropic", "request_tool_use.json"): (
        Change(
            ("messages", 0, "content"),
            "What is the weather like in San Francisco?",
            blocks("What is the weather like in San Francisco?"),
        ),
        Change(("messages", 2, "content", 0, "content"), "15 degrees", blocks("15 degrees")),
    ),
    ("anthropic", "request_reasoning.json"): (
        Change(
            ("messages", 0, "content"),
            "Are there an infinite number of prime numbers such that n mod 4 == 3?",
            blocks("Are there an infinite number of prime numbers such that n mod 4 == 3?"),
        ),
    ),
    # Gemini: the API reads snake_case and camelCase field names alike; rendering writes the camelCase JSON names.
    ("gemini", "request_text.json"): (
        GEMINI_ROLE,
        Change(("systemInstruction",), ABSENT, {"parts": [{"text": "You are a cat. Your name is Neko."}]}),
        Change(("system_instruction",), {"parts": [{"text": "You are a cat. Your name is Neko."}]}, ABSENT),
    ),
    ("gemini", "request_image.json"): (
        PNG_INLINE_CAMEL,
        PNG_INLINE,
        Change(("contents", 0, "parts", 1, "fileData"), ABSENT, {"fileUri": GEMINI_FILE, "mimeType": "image/jpeg"}),
        Change(("contents", 0, "parts", 1, "file_data"), {"mime_type": "image/jpeg", "file_uri": GEMINI_FILE}, ABSENT),
        GEMINI_ROLE,
    ),
    ("gemini", "request_reasoning.json"): (GEMINI_ROLE,),
    # Ollama: a tool call is rendered in the shape the server itself answers with (no `type`, no `index`),
    # and an assistant message always has its `content`, empty when it only calls tools.
    ("ollama", "request_tool_use.json"): (
        Change(("messages", 1, "content"), ABSENT, ""),
        Change(("messages", 1, "tool_calls", 0, "function", "index"), 0, ABSENT),
        Change(("messages", 1, "tool_calls", 0, "type"), "function", ABSENT),
    ),
    # Responses: string input is shorthand for one user message; rendering writes the item form.
    ("responses", "request_text.json"): (Change(("input",), "Hello!", input_text("Hello!")),),
    ("responses", "request_reasoning.json"): (
        Change(
            ("input",), "How much wood would a woodchuck chuck?", input_text("How much wood would a woodchuck chuck?")
        ),
    ),
    ("responses", "request_image.json"): (
        Change(("input", 0, "content", 1, "detail"), ABSENT, RESPONSES_DETAIL),
        Change(("input", 0, "content", 2, "detail"), ABSENT, RESPONSES_DETAIL),
        Change(("input", 0, "type"), ABSENT, "message"),
    ),
    ("responses", "request_tool_use.json"): (
        Change(
            ("input", 0, "content"),
            "What's the weather like in Paris today?",
            [{"type": "input_text", "text": "What's the weather like in Paris today?"}],
        ),
        Change(("input", 0, "type"), ABSENT, "message"),
        # A function_call item's own id is not kept: the call is identified by call_id (docs/formats/responses.md).
        Change(("input", 1, "id"), "fc_12345xyz", ABSENT),
        # Function tools are always sent non-strict: strict mode refuses most schemas written for other APIs
        # (docs/formats/responses.md); a Responses client's own body is relayed with its `strict` untouched.
        Change(("tools", 0, "strict"), True, False),
    ),
}


# --- the tests -------------------------------------------------------------------------------------------------


def _ids(keys: list[tuple[str, str]]) -> list[str]:
    return [f"{fmt}/{name}" for fmt, name in keys]


def test_every_format_has_every_kind_of_request_golden() -> None:
    assert sorted({fmt for fmt, _ in GOLDENS}) == sorted(TRANSLATORS)
    for fmt in TRANSLATORS:
        assert {name for golden_fmt, name in GOLDENS if golden_fmt == fmt} >= set(KINDS), fmt


def test_every_request_golden_is_expected_and_sourced() -> None:
    assert set(GOLDENS) == set(EXPECTED)
    assert set(NORMALISED) <= set(GOLDENS)
    for fmt, name in GOLDENS:
        assert f"`{name}`" in (FIXTURES / fmt / "SOURCES.md").read_text(encoding="utf-8"), f"{fmt}/{name} unsourced"


@pytest.mark.parametrize(("fmt", "name"), GOLDENS, ids=_ids(GOLDENS))
def test_request_golden_parses_to_the_documented_request(fmt: str, name: str) -> None:
    assert parse(fmt, golden(fmt, name)) == EXPECTED[fmt, name]


@pytest.mark.parametrize(("fmt", "name"), GOLDENS, ids=_ids(GOLDENS))
def test_rendering_the_parse_keeps_every_field_of_the_golden(fmt: str, name: str) -> None:
    body = golden(fmt, name)
    rendered = TRANSLATORS[WireFormat(fmt)].render_request(parse(fmt, body))
    assert json_diff(body, rendered) == list(NORMALISED.get((fmt, name), ()))


@pytest.mark.parametrize(("fmt", "name"), GOLDENS, ids=_ids(GOLDENS))
def test_the_rendered_request_parses_to_the_same_request(fmt: str, name: str) -> None:
    request = parse(fmt, golden(fmt, name))
    assert parse(fmt, TRANSLATORS[WireFormat(fmt)].render_request(request)) == request


def test_json_diff_names_the_deepest_difference() -> None:
    assert json_diff({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}], "c": 4}) == [
        Change(("a", 1, "b"), 2, 3),
        Change(("c",), ABSENT, 4),
    ]
    # 1 and True, 1 and 1.0 are different JSON.
    assert json_diff([1, 1], [True, 1.0]) == [Change((0,), 1, True), Change((1,), 1, 1.0)]
    assert json_diff({"a": [1]}, {"a": [1, 2]}) == [Change(("a",), [1], [1, 2])]
