"""A documented estimate of a request's input tokens, for providers that cannot count them for us.

Used by ``count_tokens`` endpoints when the upstream has no counting endpoint of its own, and marked
as an estimate wherever it is shown. The rule (documented in docs/formats/anthropic.md):
- text (system prompt, messages, tool results, tool-call arguments): one token per 4 UTF-8 bytes,
  rounded up per piece; most tokenizers of current models land within about 25% of this on English
  and code, and above it on other scripts;
- each tool definition: its name, description and JSON Schema (compact JSON) counted as text;
- each image: 1,600 tokens (what Anthropic's rule, pixels / 750, gives for a ~1.15 megapixel image;
  the size is not known without decoding it);
- 3 tokens per message and 3 for the reply's priming, as the OpenAI cookbook counts chat overhead.
"""

from __future__ import annotations

import json

from polyroute.core.messages import ChatRequest, ImagePart, Part, ReasoningPart, TextPart, ToolCallPart, ToolResultPart

IMAGE_TOKENS = 1600
MESSAGE_OVERHEAD_TOKENS = 3
REPLY_PRIMING_TOKENS = 3
BYTES_PER_TOKEN = 4


def _text_tokens(text: str) -> int:
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)


def _part_tokens(part: Part) -> int:
    if isinstance(part, TextPart):
        return _text_tokens(part.text)
    if isinstance(part, ImagePart):
        return IMAGE_TOKENS
    if isinstance(part, ToolCallPart):
        return _text_tokens(part.name) + _text_tokens(part.arguments)
    if isinstance(part, ToolResultPart):
        return sum(_part_tokens(item) for item in part.content)
    assert isinstance(part, ReasoningPart)
    return _text_tokens(part.text)


def estimate_input_tokens(request: ChatRequest) -> int:
    """The estimated number of input tokens ``request`` costs (see the module docstring for the rule)."""
    total = REPLY_PRIMING_TOKENS + sum(_text_tokens(part.text) for part in request.system)
    for message in request.messages:
        total += MESSAGE_OVERHEAD_TOKENS + sum(_part_tokens(part) for part in message.parts)
    for tool in request.tools:
        schema = json.dumps(tool.parameters, separators=(",", ":"))
        total += _text_tokens(tool.name) + _text_tokens(tool.description or "") + _text_tokens(schema)
    return total
