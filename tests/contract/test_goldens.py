"""Golden wire fixtures: what each provider really sends parses through the matching translator.

Every file under ``tests/fixtures/wire/<format>/`` is covered here: response bodies through
``parse_response``, stream transcripts through the format's byte-level ``stream_parser`` folded with the
``Accumulator``, error bodies through ``parse_error``. Stream transcripts must also parse to the same events
however the bytes are chunked (every two-piece split, and random splits with hypothesis). The Responses
goldens are also checked against the official SDK's types. Request bodies (``request_*.json``) are covered by
``test_golden_requests.py``, and every pair of formats by ``test_golden_matrix.py``.
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
from openai.types.responses import Response, ResponseCompletedEvent, ResponseStreamEvent
from openai.types.shared import ErrorObject
from pydantic import TypeAdapter

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
from polyroute.wire import anthropic_messages, gemini, ollama, openai_chat, openai_responses

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wire"
TRANSLATORS: dict[str, ModuleType] = {
    "anthropic": anthropic_messages,
    "gemini": gemini,
    "ollama": ollama,
    "openai": openai_chat,
    "responses": openai_responses,
}
PROVIDER = "golden"
REQUEST_PREFIX = "request_"
"""Request bodies live beside the answers but are checked by ``test_golden_requests.py``."""


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
    """A part as a comparable tuple; tool arguments as parsed JSON (raw text is checked separately).

    Reasoning with encrypted data (``redacted``) gets it as a fifth element; a four-element reasoning tuple
    therefore also says there was none.
    """
    if isinstance(part, TextPart):
        return ("text", part.text)
    if isinstance(part, ToolCallPart):
        return ("tool_call", part.call_id, part.name, json.loads(part.arguments), part.signature)
    assert isinstance(part, ReasoningPart), part
    described: tuple[Any, ...] = ("reasoning", part.text, part.signature, part.source_format)
    return described if part.redacted is None else (*described, part.redacted)


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
LUMINA = (
    "In a peaceful grove beneath a silver moon, a unicorn named Lumina discovered a hidden pool that reflected"
    " the stars. As she dipped her horn into the water, the pool began to shimmer, revealing a pathway to a"
    " magical realm of endless night skies. Filled with wonder, Lumina whispered a wish for all who dream to find"
    " their own hidden magic, and as she glanced back, her hoofprints sparkled like stardust."
)
FRANCE_SUMMARY = (
    "**Answering a simple question**\n\nI\u2019m looking at a straightforward question: the capital of France is"
    " Paris. It\u2019s a well-known fact, and I want to keep it brief and to the point. Paris is known for its"
    " history, art, and culture, so it might be nice to add just a hint of that charm. But mostly, I\u2019ll aim"
    " to focus on delivering a clear and direct answer, ensuring the user gets what they\u2019re looking for"
    " without any extra fluff."
)
GREETING_SUMMARY = (
    '**Responding to a greeting**\n\nThe user just said, "Hello!" So, it seems I need to engage. I\'ll greet'
    " them back and offer help since they're looking to chat. I could say something like, \"Hello! How can I"
    " assist you today?\" That feels friendly and open. They didn't ask a specific question, so this approach"
    " will work well for starting a conversation. Let's see where it goes from there!"
)
RS_FRANCE = "rs_6876cf02e0bc8192b74af0fb64b715ff06fa2fcced15a5ac"
RS_GREETING = "rs_6806bfca0b2481918a5748308061a2600d3ce51bdffd5476"
ENCRYPTED_FRANCE = (
    "gAAAAABodsU8wq3YBd2oT6yF1mV0kR7hLx9cNpZ4aJ3sE5uG8iW2tQ1vD6bM0nK7fH9jC4rX3yA5eL8oP2wS1zU6gI0qT9dN7mB3vR4cY6h"
    "F2kJ5sL8xE1pW0aZ3tQ7uG9iO4nD2bM5rC8yH1jV6fK3sX0eA7wL4oP9zT2gU5qI8dN1mB6vR3cY0hF7kJ2sL5xE8pW3aZ0tQ4u=="
)
ENCRYPTED_GREETING = (
    "gAAAAABoBr_KpJ3vL2q9XhQm7Yt4cN1sWfE8zRdU0aGkT6iBnO5xLyP3VwHjMrC9eZbF2uSgA7tKlD4qNoI1hXvY8mJcR6pW0sEzTfUyBdG"
    "3aLnK5iQx9OvHrM2eCtJ7wPuS4bNgZ1lFkD8yAoV6qXhI0jTmE3cRsW9nUpB5zLvG2aYtK7iOdM4eFxQ1rHsC8wJgN6lPuZ0bVyA3kTqE=="
)


def responses_usage(input_tokens: int, output_tokens: int, reasoning_tokens: int = 0) -> Usage:
    """Usage as the Responses API reports it: cache counts (here 0) and reasoning tokens always present."""
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=reasoning_tokens,
    )


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
    ("responses", "response_text.json"): Expected(
        "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        "gpt-4.1-2025-04-14",
        [("text", LUMINA)],
        FinishReason.STOP,
        responses_usage(36, 87),
    ),
    ("responses", "response_function_call.json"): Expected(
        "resp_67ca09c5efe0819096d0511c92b8c890096610f474011cc0",
        "gpt-4.1-2025-04-14",
        [
            (
                "tool_call",
                "call_unLAR8MvFNptuiZK6K6HCy5k",
                "get_current_weather",
                {"location": "Boston, MA", "unit": "celsius"},
                None,
            )
        ],
        # Responses has no finish reason for calls: a completed response that made one finished with TOOL_CALLS.
        FinishReason.TOOL_CALLS,
        responses_usage(291, 23),
    ),
    ("responses", "response_reasoning.json"): Expected(
        "resp_67ccd7eca01881908ff0b5146584e408072912b2993db808",
        "o1-2024-12-17",
        [("text", "The classic tongue twister...")],
        FinishReason.STOP,
        responses_usage(81, 1035, reasoning_tokens=832),
    ),
    ("responses", "response_reasoning_summary.json"): Expected(
        "resp_6876cf02a1b48192a6f1b2c3d4e5f60706fa2fcced15a5ac",
        "gpt-5-2025-08-07",
        [
            # The item id is the part's signature; the encrypted content rides as redacted data.
            ("reasoning", FRANCE_SUMMARY, RS_FRANCE, "responses", ENCRYPTED_FRANCE),
            ("text", "The capital of France is Paris."),
        ],
        FinishReason.STOP,
        responses_usage(13, 145, reasoning_tokens=128),
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
    ("responses", "stream_text.sse"): Expected(
        "resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654",
        "gpt-4.1-2025-04-14",
        [("text", "Hi there! How can I assist you today?")],
        FinishReason.STOP,
        responses_usage(37, 11),
    ),
    ("responses", "stream_function_call.sse"): Expected(
        "resp_1234xyz",
        "gpt-4.1-2025-04-14",
        [("tool_call", "call_1234xyz", "get_weather", {"location": "Paris, France"}, None)],
        FinishReason.TOOL_CALLS,
        responses_usage(57, 16),
    ),
    ("responses", "stream_reasoning.sse"): Expected(
        "resp_6806bfc9f3f0819192f1a9fd51a3f4f70d3ce51bdffd5476",
        "o4-mini-2025-04-16",
        [
            # A reasoning item arrives whole at its response.output_item.done, encrypted content included.
            ("reasoning", GREETING_SUMMARY, RS_GREETING, "responses", ENCRYPTED_GREETING),
            ("text", "Hello! How can I assist you today?"),
        ],
        FinishReason.STOP,
        responses_usage(8, 150, reasoning_tokens=128),
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
    ("responses", "stream_function_call.sse"): ['{"location":"Paris, France"}'],
    ("responses", "response_function_call.json"): ['{"location":"Boston, MA","unit":"celsius"}'],
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
    ("responses", "error_400.json"): ExpectedError(
        UpstreamBadRequestError, 400, "invalid_request_error", None, "input_texts"
    ),
    ("responses", "error_429.json"): ExpectedError(UpstreamRateLimitError, 429, "tokens", 20.0, "Rate limit reached"),
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
    assert sorted(path.name for path in FIXTURES.iterdir()) == sorted(TRANSLATORS)
    on_disk = {
        (fmt, path.name)
        for fmt in TRANSLATORS
        for path in (FIXTURES / fmt).iterdir()
        if path.name != "SOURCES.md" and not path.name.startswith(REQUEST_PREFIX)
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
        if fmt in ("anthropic", "responses"):
            # Anthropic and Responses name every event, and the name matches the type inside the data.
            assert fields[0].startswith(b"event: ") and fields[1].startswith(b"data: ") and len(fields) == 2
            assert json.loads(fields[1][6:])["type"] == fields[0][7:].decode()
        else:
            assert len(fields) == 1 and fields[0].startswith(b"data: ")
    if fmt == "openai":
        assert events[-1] == b"data: [DONE]"
    if fmt == "responses":
        # Every Responses event counts up from 0, and the stream ends with the finished response.
        payloads = [json.loads(event.split(eol)[1][6:]) for event in events]
        assert [payload["sequence_number"] for payload in payloads] == list(range(len(events)))
        assert payloads[-1]["type"] == "response.completed"
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


# --- the Responses goldens are what the official SDK reads --------------------------------------------------


SDK_STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
RESPONSES_BODIES = sorted(name for fmt, name in RESPONSES if fmt == "responses")
RESPONSES_STREAMS = sorted(name for fmt, name in STREAMS if fmt == "responses")


def sse_frames(data: bytes) -> list[tuple[str, bytes]]:
    """A named-event SSE transcript as (event name, data) pairs."""
    frames = []
    for frame in data.removesuffix(b"\n\n").split(b"\n\n"):
        event, payload = frame.split(b"\n")
        frames.append((event.removeprefix(b"event: ").decode(), payload.removeprefix(b"data: ")))
    return frames


@pytest.mark.parametrize("name", RESPONSES_BODIES)
def test_responses_body_golden_is_an_sdk_response(name: str) -> None:
    body = Response.model_validate(json.loads(golden("responses", name)))
    expected = RESPONSES["responses", name]
    assert (body.id, body.model, body.status) == (expected.id, expected.model, "completed")
    assert body.output_text == "".join(part[1] for part in expected.parts if part[0] == "text")
    assert body.usage is not None
    assert (body.usage.input_tokens, body.usage.output_tokens) == (
        expected.usage.input_tokens,
        expected.usage.output_tokens,
    )
    assert body.usage.output_tokens_details.reasoning_tokens == expected.usage.reasoning_tokens


@pytest.mark.parametrize("name", RESPONSES_STREAMS)
def test_responses_stream_golden_events_are_sdk_events(name: str) -> None:
    frames = sse_frames(golden("responses", name))
    events = [SDK_STREAM_EVENT.validate_json(payload) for _, payload in frames]
    # Each event validates as the SDK class its name stands for, numbered from 0 without gaps.
    assert [event.type for event in events] == [event_name for event_name, _ in frames]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1]
    assert isinstance(final, ResponseCompletedEvent)
    expected = STREAMS["responses", name]
    assert (final.response.id, final.response.model) == (expected.id, expected.model)
    assert final.response.output_text == "".join(part[1] for part in expected.parts if part[0] == "text")


@pytest.mark.parametrize("name", ["error_400.json", "error_429.json"])
def test_responses_error_golden_has_the_sdk_error_shape(name: str) -> None:
    error = ErrorObject.model_validate(json.loads(golden("responses", name))["error"])
    assert (error.type, error.code) == {
        "error_400.json": ("invalid_request_error", "invalid_value"),
        "error_429.json": ("tokens", "rate_limit_exceeded"),
    }[name]


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
