"""Documented estimates of token counts, for upstreams that cannot or did not count them for us.

Used by ``count_tokens`` endpoints when the upstream has no counting endpoint of its own, and for the
usage of an exchange whose upstream reported none; marked as an estimate wherever it is shown.
The rule (documented in docs/formats/anthropic.md):
- text (system prompt, messages, tool results, tool-call arguments): one token per 4 UTF-8 bytes,
  rounded up per piece; most tokenizers of current models land within about 25% of this on English
  and code, and above it on other scripts;
- each tool definition: its name, description and JSON Schema (compact JSON) counted as text;
- each image: 1,600 tokens (what Anthropic's rule, pixels / 750, gives for a ~1.15 megapixel image;
  the size is not known without decoding it);
- 3 tokens per message and 3 for the reply's priming, as the OpenAI cookbook counts chat overhead.

Output is estimated by the same text rule (``estimate_output_tokens``), and ``estimate_usage`` builds a
``Usage`` from both for an upstream that reported no usage at all.

Exact counts, when available: the optional ``bpe-openai`` package (PyPI) ships OpenAI's ``o200k_base``
encoding inside its wheel, so it counts offline (``tiktoken`` downloads its encodings on first use, which
an offline deployment cannot do). When it is installed, ``default_counter()`` counts text with it instead of the
byte rule: exact for OpenAI's o200k models (GPT-4o, GPT-4.1, o-series, GPT-5), another approximation for
other vendors' tokenizers. The per-message, priming and image constants above apply either way. Every
function takes ``counter=`` to choose explicitly (tests pass ``count_by_bytes``).
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable
from typing import Any, TypeAlias

from polyroute.core.messages import (
    ChatRequest,
    ImagePart,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)

IMAGE_TOKENS = 1600
MESSAGE_OVERHEAD_TOKENS = 3
REPLY_PRIMING_TOKENS = 3
BYTES_PER_TOKEN = 4


TokenCounter: TypeAlias = Callable[[str], int]
"""Counts the tokens of one piece of text."""

BPE_ENCODING = "o200k_base"
# bpe-openai refuses texts of a million characters or more than 200,000 tokens in one call; a piece of
# 40,000 characters stays under both (a character is at most 4 bytes, a token at least 1).
_BPE_PIECE_CHARS = 40_000


def count_by_bytes(text: str) -> int:
    """The documented rule: one token per 4 UTF-8 bytes, rounded up."""
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)


@functools.cache
def installed_token_counter() -> TokenCounter | None:
    """An exact ``o200k_base`` counter when the optional ``bpe-openai`` package is installed, else None."""
    try:
        encoding = importlib.import_module("bpe_openai").get_encoding(BPE_ENCODING)
    except (ImportError, OSError, RuntimeError, ValueError, KeyError, AttributeError):
        return None
    return functools.partial(_count_bpe, encoding)


def default_counter() -> TokenCounter:
    """The installed exact counter if there is one, else ``count_by_bytes``."""
    return installed_token_counter() or count_by_bytes


def _count_bpe(encoding: Any, text: str) -> int:
    total = 0
    start = 0
    while start < len(text):
        end = min(len(text), start + _BPE_PIECE_CHARS)
        if end < len(text):
            # Cut before a space, where a token boundary is (almost always) anyway.
            space = text.rfind(" ", start + 1, end)
            end = space if space > start else end
        piece = text[start:end]
        try:
            total += len(encoding.encode_ordinary(piece))
        except (ValueError, RuntimeError):
            total += count_by_bytes(piece)
        start = end
    return total


def _part_tokens(part: Part, count: TokenCounter) -> int:
    if isinstance(part, TextPart):
        return count(part.text)
    if isinstance(part, ImagePart):
        return IMAGE_TOKENS
    if isinstance(part, ToolCallPart):
        return count(part.name) + count(part.arguments)
    if isinstance(part, ToolResultPart):
        return sum(_part_tokens(item, count) for item in part.content)
    assert isinstance(part, ReasoningPart)
    return count(part.text)


def estimate_input_tokens(request: ChatRequest, *, counter: TokenCounter | None = None) -> int:
    """The estimated number of input tokens ``request`` costs (see the module docstring for the rule).

    ``counter`` counts each piece of text; None means ``default_counter()``.
    """
    count = counter or default_counter()
    total = REPLY_PRIMING_TOKENS + sum(count(part.text) for part in request.system)
    for message in request.messages:
        total += MESSAGE_OVERHEAD_TOKENS + sum(_part_tokens(part, count) for part in message.parts)
    for tool in request.tools:
        schema = json.dumps(tool.parameters, separators=(",", ":"))
        total += count(tool.name) + count(tool.description or "") + count(schema)
    return total


def estimate_output_tokens(text: str, *, counter: TokenCounter | None = None) -> int:
    """The estimated output tokens of a reply whose text (answer, reasoning, tool arguments) is ``text``.

    Same rule as for input text; ``counter`` as for ``estimate_input_tokens``.
    """
    return (counter or default_counter())(text)


def estimate_usage(request: ChatRequest, response_text: str, *, counter: TokenCounter | None = None) -> Usage:
    """An estimated ``Usage`` for an exchange whose upstream reported none.

    ``response_text`` is everything the model produced, accumulated: text, reasoning and tool-call
    arguments. Cache and reasoning counts stay None (not reported, not guessed).
    """
    count = counter or default_counter()
    return Usage(
        input_tokens=estimate_input_tokens(request, counter=count),
        output_tokens=estimate_output_tokens(response_text, counter=count),
    )
