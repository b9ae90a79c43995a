"""Golden wire fixtures: what each provider really sends parses through the matching translator.

Every file under ``tests/fixtures/wire/<format>/`` is covered here: response bodies through
``parse_response``, stream transcripts through the format's byte-level ``stream_parser`` folded with the
``Accumulator``, error bodies through ``parse_error``. Stream transcripts must also parse to the same events
however the bytes are chunked (every two-piece split, and random splits with hypothesis).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyroute.core.accumulate import Accumulator
from polyroute.core.events import StreamEvent
from polyroute.core.messages import ChatResponse, FinishReason, Part, ReasoningPart, TextPart, ToolCallPart, Usage
from polyroute.errors import (
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamRateLimitError,
    UpstreamServerError,
    UpstreamStatusError,
)
from polyroute.wire import anthropic_messages, gemini, ollama, openai_chat

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wire"
TRANSLATORS: dict[str, ModuleType] = {
    "anthropic": anthropic_messages,
    "gemini": gemini,
    "ollama": ollama,
    "openai": openai_chat,
}
PROVIDER = "golden"


def golden(fmt: str, name: str) -> bytes:
    return (FIXTURES / fmt / name).read_bytes()


def parse_stream(fmt: str, chunks: Iterable[bytes]) -> list[StreamEvent]:
    """Feed ``chunks`` to the format's byte-level stream parser; every event it produced, ``finish()`` included."""
    parser = TRANSLATORS[fmt].stream_parser(provider=PROVIDER)
    events: list[StreamEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.finish())
    return events


def fold(fmt: str, events: Iterable[StreamEvent]) -> ChatResponse:
    accumulator = Accumulator(source_format=fmt)
    for event in events:
        accumulator.feed(event)
    return accumulator.result()


def describe(part: Part) -> tuple[Any, ...]:
    """A part as a comparable tuple; tool arguments as parsed JSON (raw text is checked separately)."""
    if isinstance(part, TextPart):
        return ("text", part.text)
    if isinstance(part, ToolCallPart):
        return ("tool_call", part.call_id, part.name, json.loads(part.arguments), part.signature)
    assert isinstance(part, ReasoningPart), part
    return ("reasoning", part.text, part.signature, part.source_format)


@dataclass(frozen=True)
class Expected:
    """The canonical content a golden must parse to."""

    id: str
    model: str
    parts: Sequence[tuple[Any, ...]]
    finish: FinishReason
    usage: Usage


def check(response: ChatResponse, expected: Expected) -> None:
    assert (response.id, response.model) == (expected.id, expected.model)
    assert [describe(part) for part in response.parts] == list(expected.parts)
    assert response.finish_reason is expected.finish
    assert response.usage == expected.usage


ANTHROPIC_SIG = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."
GCD_THINKING = (
    "I need to find the GCD of 1071 and 462 using the Euclidean algorithm.\n\n1071 = 2 × 462 + 147"
    "\n462 = 3 × 147 + 21\n147 = 7 × 21 + 0\nThe remainder is 0, so GCD(1071, 462) = 21."
)
SF_CELSIUS = {"location": "San Francisco, CA", "unit": "celsius"}
GEMINI_SIG_FLIGHT = (
    "CikBcsjafFK168IbtVtoxVV0Tsn8O+eU45rzJahzwuKGmMbdMdfpmNpgBwplAXLI2nyA/pIFcnZwFm+7WFmLyMd8R4DXwsjqaeAAfCKo5G1xIkbA"
)
GEMINI_SIG_CALLS = "CiQBcsjafA3kZ1nqU8Lw9m3aT0Yl2tE6sRk0q+L4uXy7pQm2Vn1FhWJkQpLm"
GEMINI_SIG_THOUGHT = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYd"
OLLAMA_TEMP = {"format": "celsius"}

RESPONSES: dict[tuple[str, str], Expected] = {
    ("anthropic", "response_text.json"): Expected(
        "msg_01XFDUDYJgAACzvnptvVoYEL",
        "claude-opus-4-6",
        [("text", "Hello!")],
        FinishReason.STOP,
        Usage(input_tokens=12, output_tokens=6),
    ),
    ("anthropic", "response_tool_use.json"): Expected(
        "msg_01Aq9w938a90dw8q",
        "claude-sonnet-4-5",
        [
            ("text", "I'll check the current weather in San Francisco for you."),
            ("tool_call", "toolu_01A09q90qw90lq917835lq9", "get_weather", SF_CELSIUS, None),
        ],
        FinishReason.TOOL_CALLS,
        Usage(),
    ),
    ("anthropic", "response_cache_usage.json"): Expected(
        "msg_01XFDUDYJgAACzvnptvVoYEL",
        "claude-opus-4-6",
        [("text", "Hello!")],
        FinishReason.STOP,
        # Anthropic's input_tokens (2048) excludes cache reads and writes; canonical input includes them.
        Usage(input_tokens=4096, output_tokens=503, cache_read_tokens=1800, cache_write_tokens=248),
    ),
    ("openai", "response_text.json"): Expected(
        "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "gpt-4.1-2025-04-14",
        [("text", "Hello! How can I assist you today?")],
        FinishReason.STOP,
        Usage(input_tokens=19, output_tokens=10, cache_read_tokens=0, reasoning_tokens=0),
    ),
    ("openai", "response_tool_calls.json"): Expected(
        "chatcmpl-abc123",
        "gpt-4o-mini",
        [("tool_call", "call_abc123", "get_current_weather", {"location": "Boston, MA"}, None)],
        FinishReason.TOOL_CALLS,
        Usage(input_tokens=82, output_tokens=17, reasoning_tokens=0),
    ),
    ("openai", "response_cache_usage.json"): Expected(
        "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "gpt-4.1-2025-04-14",
        [("text", "Hello! How can I assist you today?")],
        FinishReason.STOP,
        Usage(input_tokens=2006, output_tokens=300, cache_read_tokens=1920, reasoning_tokens=0),
    ),
    ("gemini", "response_text.json"): Expected(
        "aBcDeFgHiJkLmNoPqRsTuV",
        "gemini-2.0-flash",
        [("text", "Hello! How can I help you today?")],
        FinishReason.STOP,
        Usage(input_tokens=8, output_tokens=9),
    ),
    ("gemini", "response_function_call.json"): Expected(
        "qpc2afWVFJK4vr0Pq6WiyAU",
        "gemini-2.5-flash",
        [
            (
                "tool_call",
                "gemini_call_qpc2afWVFJK4vr0Pq6WiyAU_0",
                "check_flight",
                {"flight": "AA100"},
                GEMINI_SIG_FLIGHT,
            )
        ],
        FinishReason.TOOL_CALLS,
        # Gemini's candidatesTokenCount (14) excludes thoughts (104); canonical output includes them.
        Usage(input_tokens=83, output_tokens=118, reasoning_tokens=104),
    ),
    ("gemini", "response_cache_usage.json"): Expected(
        "Zk1tZ8yGN4Wl0-kP7qX2iQc",
        "gemini-2.5-flash",
        [("text", "The video shows a cat chasing a laser pointer.")],
        FinishReason.STOP,
        Usage(input_tokens=11200, output_tokens=523, cache_read_tokens=10240, reasoning_tokens=512),
    ),
    ("ollama", "response_text.json"): Expected(
        "ollama-20231212141343416799",
        "llama3.2",
        [("text", "Hello! How are you today?")],
        FinishReason.STOP,
        Usage(input_tokens=26, output_tokens=298),
    ),
    ("ollama", "response_tool_calls.json"): Expected(
        "ollama-20240722203328123648",
        "llama3.2",
        [
            (
                "tool_call",
                "ollama-20240722203328123648-call-0",
                "get_current_weather",
                {**OLLAMA_TEMP, "location": "Paris, FR"},
                None,
            )
        ],
        FinishReason.TOOL_CALLS,
        Usage(input_tokens=122, output_tokens=33),
    ),
    ("ollama", "response_thinking.json"): Expected(
        "ollama-20250529093556836222",
        "qwen3",
        [
            (
                "reasoning",
                "Count the letters: s-t-r-a-w-b-e-r-r-y. The r's are at positions 3, 8 and 9.",
                None,
                "ollama",
            ),
            ("text", "There are 3 r's in strawberry."),
        ],
        FinishReason.STOP,
        Usage(input_tokens=18, output_tokens=117),
    ),
}

STREAMS: dict[tuple[str, str], Expected] = {
    ("anthropic", "stream_text.sse"): Expected(
        "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "claude-opus-4-6",
        [("text", "Hello!")],
        FinishReason.STOP,
        Usage(input_tokens=25, output_tokens=15),
    ),
    ("anthropic", "stream_tool_use.sse"): Expected(
        "msg_014p7gG3wDgGV9EUtLvnow3U",
        "claude-opus-4-6",
        [
            ("text", "Okay, let's check the weather for San Francisco, CA:"),
            (
                "tool_call",
                "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "get_weather",
                {"location": "San Francisco, CA", "unit": "fahrenheit"},
                None,
            ),
        ],
        FinishReason.TOOL_CALLS,
        Usage(input_tokens=472, output_tokens=89),
    ),
    ("anthropic", "stream_parallel_tool_use.sse"): Expected(
        "msg_01QC4g3HwBThD4BaNtBckFDJ",
        "claude-sonnet-4-5-20250929",
        [
            ("tool_call", "toolu_01KFbKqPYSuAKujiL6mTfzYA", "get_weather", {"location": "Paris, France"}, None),
            ("tool_call", "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", {"location": "Bogotá, Colombia"}, None),
        ],
        FinishReason.TOOL_CALLS,
        Usage(input_tokens=2060, output_tokens=71, cache_read_tokens=1800, cache_write_tokens=248),
    ),
    ("anthropic", "stream_thinking.sse"): Expected(
        "msg_01...",
        "claude-opus-4-6",
        [
            ("reasoning", GCD_THINKING, ANTHROPIC_SIG, "anthropic"),
            ("text", "The greatest common divisor of 1071 and 462 is **21**."),
        ],
        FinishReason.STOP,
        Usage(),
    ),
    ("openai", "stream_text.sse"): Expected(
        "chatcmpl-123", "gpt-4o-mini", [("text", "Hello! How can I help?")], FinishReason.STOP, Usage()
    ),
    ("openai", "stream_tool_calls.sse"): Expected(
        "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "gpt-4o-2024-08-06",
        [
            ("tool_call", "call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather", {"location": "Paris, France"}, None),
            ("tool_call", "call_ZJ91NY5ZqWSmv8BbkjwxN9Rv", "get_weather", {"location": "Bogotá, Colombia"}, None),
        ],
        FinishReason.TOOL_CALLS,
        Usage(input_tokens=2006, output_tokens=52, cache_read_tokens=1920, reasoning_tokens=0),
    ),
    ("openai", "stream_reasoning.sse"): Expected(
        "5b2a0b3e-6f4c-4a8e-9d9c-2f1e0c7a8b51",
        "deepseek-reasoner",
        [("reasoning", "Compare 9.11 and 9.8: 0.11 < 0.80.", None, "openai"), ("text", "9.8 is greater.")],
        FinishReason.STOP,
        # DeepSeek reports cache hits as prompt_cache_hit_tokens.
        Usage(input_tokens=21, output_tokens=96, cache_read_tokens=16, reasoning_tokens=88),
    ),
    ("gemini", "stream_text.sse"): Expected(
        "IZI2acSKMoWl0-kPmYj2yQc",
        "gemini-2.5-flash",
        [("text", "Hello! How can I help you today?")],
        FinishReason.STOP,
        Usage(input_tokens=8, output_tokens=9),
    ),
    ("gemini", "stream_function_calls.sse"): Expected(
        "7Jk2acbQDZ2Hvr0P0Zf3oQ4",
        "gemini-2.5-flash",
        [
            (
                "tool_call",
                "gemini_call_7Jk2acbQDZ2Hvr0P0Zf3oQ4_0",
                "get_current_temperature",
                {"location": "Paris"},
                GEMINI_SIG_CALLS,
            ),
            (
                "tool_call",
                "gemini_call_7Jk2acbQDZ2Hvr0P0Zf3oQ4_1",
                "get_current_temperature",
                {"location": "London"},
                None,
            ),
        ],
        FinishReason.TOOL_CALLS,
        Usage(input_tokens=96, output_tokens=91, reasoning_tokens=61),
    ),
    ("gemini", "stream_thinking.sse"): Expected(
        "mV42aePxMo2pvr0PkbSg4A0",
        "gemini-2.5-flash",
        [
            (
                "reasoning",
                "**Comparing decimals**\n\nAlign the decimal places: 9.11 vs 9.80. 80 hundredths beat 11 hundredths.",
                None,
                "gemini",
            ),
            ("text", "9.8 is larger than 9.11."),
            # The signature arrives on an empty text part in the last chunk; it becomes a signature-only part.
            ("reasoning", "", GEMINI_SIG_THOUGHT, "gemini"),
        ],
        FinishReason.STOP,
        Usage(input_tokens=14, output_tokens=67, reasoning_tokens=58),
    ),
    ("ollama", "stream_text.ndjson"): Expected(
        "ollama-202308040852193854064550700",
        "llama3.2",
        [("text", "The sky is blue.")],
        FinishReason.STOP,
        Usage(input_tokens=26, output_tokens=282),
    ),
    ("ollama", "stream_tool_calls.ndjson"): Expected(
        "ollama-20250527225457641643",
        "qwen3",
        [
            ("text", "celsius</think>"),
            (
                "tool_call",
                "ollama-20250527225457641643-call-0",
                "get_current_weather",
                {**OLLAMA_TEMP, "location": "Toronto"},
                None,
            ),
            (
                "tool_call",
                "ollama-20250527225457641643-call-1",
                "get_current_weather",
                {**OLLAMA_TEMP, "location": "Montréal"},
                None,
            ),
        ],
        FinishReason.TOOL_CALLS,
        Usage(input_tokens=213, output_tokens=64),
    ),
    ("ollama", "stream_thinking.ndjson"): Expected(
        "ollama-20250529093556012345",
        "qwen3",
        [
            ("reasoning", "Count the letters: s-t-r-a-w-b-e-r-r-y. Three r's.", None, "ollama"),
            ("text", "There are 3 r's."),
        ],
        FinishReason.STOP,
        Usage(input_tokens=18, output_tokens=41),
    ),
}

RAW_ARGUMENTS: dict[tuple[str, str], list[str]] = {
    # Streamed argument fragments are passed through byte for byte: the concatenation is what the model wrote.
    ("anthropic", "stream_tool_use.sse"): ['{"location": "San Francisco, CA", "unit": "fahrenheit"}'],
    ("anthropic", "stream_parallel_tool_use.sse"): [
        '{"location": "Paris, France"}',
        '{"location": "Bogotá, Colombia"}',
    ],
    ("openai", "stream_tool_calls.sse"): ['{"location":"Paris, France"}', '{"location":"Bogotá, Colombia"}'],
    ("openai", "response_tool_calls.json"): ['{\n"location": "Boston, MA"\n}'],
}


@dataclass(frozen=True)
class ExpectedError:
    cls: type[UpstreamStatusError]
    status: int
    upstream_type: str | None
    retry_after_s: float | None = None
    message_part: str = ""


ERRORS: dict[tuple[str, str], ExpectedError] = {
    ("anthropic", "error_400.json"): ExpectedError(
        UpstreamBadRequestError, 400, "invalid_request_error", message_part="roles must alternate"
    ),
    ("anthropic", "error_401.json"): ExpectedError(UpstreamAuthError, 401, "authentication_error", None, "x-api-key"),
    ("anthropic", "error_429.json"): ExpectedError(UpstreamRateLimitError, 429, "rate_limit_error", 20.0, "rate limit"),
    ("anthropic", "error_500.json"): ExpectedError(
        UpstreamServerError, 500, "api_error", None, "Internal server error"
    ),
    ("anthropic", "error_529.json"): ExpectedError(UpstreamServerError, 529, "overloaded_error", None, "Overloaded"),
    ("openai", "error_400.json"): ExpectedError(
        UpstreamBadRequestError, 400, "invalid_request_error", None, "maximum context length"
    ),
    ("openai", "error_401.json"): ExpectedError(
        UpstreamAuthError, 401, "invalid_request_error", None, "Incorrect API key"
    ),
    ("openai", "error_429.json"): ExpectedError(UpstreamRateLimitError, 429, "tokens", 20.0, "Rate limit reached"),
    ("openai", "error_500.json"): ExpectedError(UpstreamServerError, 500, "server_error", None, "had an error"),
    ("gemini", "error_400.json"): ExpectedError(UpstreamBadRequestError, 400, "INVALID_ARGUMENT", None, "temprature"),
    ("gemini", "error_400_api_key.json"): ExpectedError(
        UpstreamAuthError, 400, "INVALID_ARGUMENT", None, "API key not valid"
    ),
    ("gemini", "error_403.json"): ExpectedError(UpstreamAuthError, 403, "PERMISSION_DENIED", None, "unregistered"),
    # RetryInfo.retryDelay ("37s") wins over the Retry-After header.
    ("gemini", "error_429.json"): ExpectedError(UpstreamRateLimitError, 429, "RESOURCE_EXHAUSTED", 37.0, "quota"),
    ("gemini", "error_500.json"): ExpectedError(UpstreamServerError, 500, "INTERNAL", None, "internal error"),
    ("gemini", "error_503.json"): ExpectedError(UpstreamServerError, 503, "UNAVAILABLE", None, "overloaded"),
    ("ollama", "error_400.json"): ExpectedError(UpstreamBadRequestError, 400, None, None, "model is required"),
    ("ollama", "error_404.json"): ExpectedError(UpstreamBadRequestError, 404, None, None, 'model "llama3" not found'),
    ("ollama", "error_429.json"): ExpectedError(UpstreamRateLimitError, 429, None, 20.0, "too many"),
    ("ollama", "error_500.json"): ExpectedError(UpstreamServerError, 500, None, None, "failed to generate"),
}

IN_BAND_ERRORS: dict[tuple[str, str], tuple[type[UpstreamStatusError], int, str]] = {
    ("anthropic", "stream_error.sse"): (UpstreamServerError, 529, "Overloaded"),
    ("ollama", "stream_error.ndjson"): (UpstreamServerError, 200, "encountered while running the model"),
}

STREAM_GOLDENS = sorted([*STREAMS, *IN_BAND_ERRORS])
"""Every stream transcript, for the re-chunking properties."""


def _ids(keys: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{fmt}/{name}" for fmt, name in keys]


# --- coverage of the fixture tree ---------------------------------------------------------------------


def test_every_golden_file_is_checked_and_sourced() -> None:
    on_disk = {(fmt, path.name) for fmt in TRANSLATORS for path in (FIXTURES / fmt).iterdir()} - {
        (fmt, "SOURCES.md") for fmt in TRANSLATORS
    }
    assert on_disk == {*RESPONSES, *STREAMS, *ERRORS, *IN_BAND_ERRORS}
    for fmt, name in sorted(on_disk):
        assert f"`{name}`" in (FIXTURES / fmt / "SOURCES.md").read_text(encoding="utf-8"), f"{fmt}/{name} unsourced"


# --- framing as each provider sends it ----------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name"), STREAM_GOLDENS, ids=_ids(STREAM_GOLDENS))
def test_stream_golden_framing_is_the_providers(fmt: str, name: str) -> None:
    data = golden(fmt, name)
    if fmt == "ollama":
        lines = data.split(b"\n")
        assert lines[-1] == b"" and all(line.startswith(b"{") and line.endswith(b"}") for line in lines[:-1])
        assert all(json.loads(line) for line in lines[:-1])
        return
    eol = b"\r\n" if fmt == "gemini" else b"\n"
    assert data.endswith(eol + eol)
    events = data[: -2 * len(eol)].split(eol + eol)
    for event in events:
        fields = event.split(eol)
        if fmt == "anthropic":
            # Anthropic names every event, and the name matches the type inside the data.
            assert fields[0].startswith(b"event: ") and fields[1].startswith(b"data: ") and len(fields) == 2
            assert json.loads(fields[1][6:])["type"] == fields[0][7:].decode()
        else:
            assert len(fields) == 1 and fields[0].startswith(b"data: ")
    if fmt == "openai":
        assert events[-1] == b"data: [DONE]"
    if fmt == "gemini":
        assert b"\n" not in data.replace(b"\r\n", b"")


# --- responses, streams and errors parse to the documented content ------------------------------------


@pytest.mark.parametrize(("fmt", "name"), sorted(RESPONSES), ids=_ids(sorted(RESPONSES)))
def test_response_golden_parses(fmt: str, name: str) -> None:
    response = TRANSLATORS[fmt].parse_response(json.loads(golden(fmt, name)))
    check(response, RESPONSES[fmt, name])


@pytest.mark.parametrize(("fmt", "name"), sorted(STREAMS), ids=_ids(sorted(STREAMS)))
def test_stream_golden_folds_to_the_answer(fmt: str, name: str) -> None:
    events = parse_stream(fmt, [golden(fmt, name)])
    assert events[0].kind == "message_start" and events[-1].kind == "message_end"
    check(fold(fmt, events), STREAMS[fmt, name])


@pytest.mark.parametrize(("fmt", "name"), sorted(STREAMS), ids=_ids(sorted(STREAMS)))
def test_stream_golden_closes_every_part_it_opens(fmt: str, name: str) -> None:
    events = parse_stream(fmt, [golden(fmt, name)])
    started = [event.index for event in events if event.kind == "part_start"]
    ended = [event.index for event in events if event.kind == "part_end"]
    assert sorted(started) == sorted(ended) == list(range(len(STREAMS[fmt, name].parts)))


@pytest.mark.parametrize(("fmt", "name"), sorted(RAW_ARGUMENTS), ids=_ids(sorted(RAW_ARGUMENTS)))
def test_tool_arguments_keep_the_models_exact_text(fmt: str, name: str) -> None:
    data = golden(fmt, name)
    if name.startswith("response_"):
        response = TRANSLATORS[fmt].parse_response(json.loads(data))
    else:
        response = fold(fmt, parse_stream(fmt, [data]))
    arguments = [part.arguments for part in response.parts if isinstance(part, ToolCallPart)]
    assert arguments == RAW_ARGUMENTS[fmt, name]


@pytest.mark.parametrize(("fmt", "name"), sorted(ERRORS), ids=_ids(sorted(ERRORS)))
def test_error_golden_maps_to_the_gateway_error(fmt: str, name: str) -> None:
    expected = ERRORS[fmt, name]
    status = int(name.split("_")[1].split(".")[0])
    error = TRANSLATORS[fmt].parse_error(status, golden(fmt, name), {"retry-after": "20"}, provider=PROVIDER)
    assert type(error) is expected.cls
    assert (error.upstream_status, error.upstream_type) == (expected.status, expected.upstream_type)
    assert error.message.startswith(PROVIDER) and expected.message_part in error.message
    if isinstance(error, UpstreamRateLimitError):
        assert error.retry_after_s == expected.retry_after_s


@pytest.mark.parametrize(("fmt", "name"), sorted(IN_BAND_ERRORS), ids=_ids(sorted(IN_BAND_ERRORS)))
def test_in_band_stream_error_raises_after_the_start(fmt: str, name: str) -> None:
    cls, status, message_part = IN_BAND_ERRORS[fmt, name]
    parser = TRANSLATORS[fmt].stream_parser(provider=PROVIDER)
    events: list[StreamEvent] = []
    with pytest.raises(UpstreamStatusError) as caught:
        for line in golden(fmt, name).splitlines(keepends=True):
            events.extend(parser.feed(line))
    assert type(caught.value) is cls
    assert caught.value.upstream_status == status and message_part in caught.value.message
    assert events and events[0].kind == "message_start"


def test_anthropic_in_band_overload_is_not_retried_as_a_client_error() -> None:
    with pytest.raises(UpstreamServerError) as caught:
        parse_stream("anthropic", [golden("anthropic", "stream_error.sse")])
    assert caught.value.upstream_type == "overloaded_error"


def test_deepseek_cache_hits_are_cache_reads() -> None:
    response = fold("openai", parse_stream("openai", [golden("openai", "stream_reasoning.sse")]))
    assert response.usage.cache_read_tokens == 16


# --- chunking does not matter -------------------------------------------------------------------------


def _whole(fmt: str, name: str) -> list[StreamEvent] | type[Exception]:
    """The events of the golden in one piece, or the error type it raises."""
    try:
        return parse_stream(fmt, [golden(fmt, name)])
    except UpstreamStatusError as exc:
        return type(exc)


def _chunked(fmt: str, chunks: Sequence[bytes]) -> list[StreamEvent] | type[Exception]:
    try:
        return parse_stream(fmt, chunks)
    except UpstreamStatusError as exc:
        return type(exc)


@pytest.mark.parametrize(("fmt", "name"), STREAM_GOLDENS, ids=_ids(STREAM_GOLDENS))
def test_every_two_piece_split_gives_the_same_events(fmt: str, name: str) -> None:
    data = golden(fmt, name)
    whole = _whole(fmt, name)
    for cut in range(len(data) + 1):
        assert _chunked(fmt, [data[:cut], data[cut:]]) == whole, f"split at byte {cut}"


@pytest.mark.parametrize(("fmt", "name"), STREAM_GOLDENS, ids=_ids(STREAM_GOLDENS))
def test_one_byte_at_a_time_gives_the_same_events(fmt: str, name: str) -> None:
    data = golden(fmt, name)
    assert _chunked(fmt, [data[i : i + 1] for i in range(len(data))]) == _whole(fmt, name)


@pytest.mark.parametrize(("fmt", "name"), STREAM_GOLDENS, ids=_ids(STREAM_GOLDENS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_chunking_gives_the_same_events(fmt: str, name: str, data: st.DataObject) -> None:
    raw = golden(fmt, name)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=60), label="cuts"))
    chunks = [raw[start:end] for start, end in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert _chunked(fmt, chunks) == _whole(fmt, name)
