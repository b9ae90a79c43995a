"""Golden cross-format matrix: what each provider really sends, relayed to a client of every format.

For every stream golden of an upstream format U and every client format C: the golden bytes are parsed with U's
``stream_parser``, the events rendered with C's ``stream_renderer``, those bytes parsed back with C's
``stream_parser``, and both event sequences folded with the ``Accumulator``. The two folds must agree on text,
tool calls (name and parsed JSON arguments), reasoning text, finish reason and usage (input and output tokens),
and on the order of those parts. Every response golden goes the same way through ``parse_response`` and
``render_response``.

What a pair legitimately loses is asserted exactly, in tables: reasoning signatures and encrypted reasoning
(``REASONING``), and usage counts Anthropic's stream format cannot leave out (``expected_usage``). Goldens are
found by listing the fixture directories, so a new golden joins the matrix by being there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from polyroute.core.accumulate import Accumulator
from polyroute.core.events import StreamEvent
from polyroute.core.messages import ChatResponse, ReasoningPart, TextPart, ToolCallPart
from polyroute.core.reasoning import ForeignReasoningFilter
from polyroute.errors import UpstreamStatusError
from polyroute.wire import WireFormat
from polyroute.wire.registry import TRANSLATORS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wire"
FORMATS = list(TRANSLATORS)
PROVIDER = "golden"
IN_BAND_ERRORS = {("anthropic", "stream_error.sse"): 529, ("ollama", "stream_error.ndjson"): 200}
"""Stream goldens that end in an in-band error, with the status it stands for: there is no answer to relay
(test_goldens.py covers them)."""


def discover(prefix: str) -> list[tuple[str, str]]:
    """Every golden whose name starts with ``prefix``, by format directory."""
    return sorted(
        (fmt_dir.name, path.name)
        for fmt_dir in FIXTURES.iterdir()
        if fmt_dir.is_dir()
        for path in fmt_dir.iterdir()
        if path.name.startswith(prefix)
    )


STREAM_GOLDENS = [key for key in discover("stream_") if key not in IN_BAND_ERRORS]
RESPONSE_GOLDENS = discover("response_")


def golden(fmt: str, name: str) -> bytes:
    return (FIXTURES / fmt / name).read_bytes()


# --- the round trips -------------------------------------------------------------------------------------------


def parse_stream(fmt: WireFormat, data: bytes) -> list[StreamEvent]:
    parser = TRANSLATORS[fmt].stream_parser(provider=PROVIDER)
    return [*parser.feed(data), *parser.finish()]


def crossing(events: list[StreamEvent], upstream: WireFormat, client: WireFormat) -> list[StreamEvent]:
    """The events as the pipeline passes them to a client of another format."""
    if upstream is client:
        return events
    keep = ForeignReasoningFilter(keep_text=client is not WireFormat.ANTHROPIC)
    return [passed for event in events for passed in keep.feed(event)]


def render_stream(fmt: WireFormat, events: Iterable[StreamEvent]) -> bytes:
    renderer = TRANSLATORS[fmt].stream_renderer(now_s=0)
    return b"".join([frame for event in events for frame in renderer.feed(event)] + renderer.finish())


def fold(events: Iterable[StreamEvent]) -> ChatResponse:
    accumulator = Accumulator()
    for event in events:
        accumulator.feed(event)
    return accumulator.result()


def streamed(fmt: str, name: str, client: WireFormat) -> tuple[ChatResponse, ChatResponse]:
    """The upstream's fold, and the fold of what a client of format ``client`` is sent.

    Across formats the events pass the gateway's reasoning filter first, as api/pipeline.py does.
    """
    events = parse_stream(WireFormat(fmt), golden(fmt, name))
    relayed = parse_stream(client, render_stream(client, crossing(events, WireFormat(fmt), client)))
    return fold(events), fold(relayed)


def answered(fmt: str, name: str, client: WireFormat) -> tuple[ChatResponse, ChatResponse]:
    """The upstream's answer, and what a client of format ``client`` reads from the body it is sent."""
    upstream = TRANSLATORS[WireFormat(fmt)].parse_response(json.loads(golden(fmt, name)))
    client_tr = TRANSLATORS[client]
    return upstream, client_tr.parse_response(client_tr.render_response(upstream, now_s=0))


# --- what is compared ------------------------------------------------------------------------------------------


def essence(response: ChatResponse) -> dict[str, Any]:
    """Text, tool calls, reasoning text, finish reason and usage; parts without content are left out."""
    return {
        "text": [part.text for part in response.parts if isinstance(part, TextPart) and part.text],
        "calls": [(part.name, json.loads(part.arguments)) for part in response.parts if isinstance(part, ToolCallPart)],
        "reasoning": [part.text for part in response.parts if isinstance(part, ReasoningPart) and part.text],
        "finish": response.finish_reason,
        "usage": (response.usage.input_tokens, response.usage.output_tokens),
    }


def order(response: ChatResponse) -> list[str]:
    """The kinds of the parts that have content, in order."""
    return [
        part.kind
        for part in response.parts
        if isinstance(part, ToolCallPart) or (isinstance(part, TextPart | ReasoningPart) and part.text)
    ]


Seal = tuple[str, str | None, str | None]
"""A reasoning part as (text, signature, redacted)."""


def seals(response: ChatResponse) -> list[Seal]:
    return [(part.text, part.signature, part.redacted) for part in response.parts if isinstance(part, ReasoningPart)]


def expected_usage(upstream: ChatResponse, client: WireFormat, *, is_stream: bool) -> tuple[int | None, int | None]:
    """The usage a client reads: the upstream's, except where the client's format cannot leave a count out.

    Anthropic's SDKs need ``message_start.usage`` and ``message_delta.usage.output_tokens``, so a stream rendered
    for Anthropic says 0 where the upstream reported nothing (docs/formats/anthropic_messages.md, known gaps).
    """
    counts = (upstream.usage.input_tokens, upstream.usage.output_tokens)
    if is_stream and client is WireFormat.ANTHROPIC:
        return (counts[0] or 0, counts[1] or 0)
    return counts


# --- what each pair does with reasoning ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a client format makes of the upstream's reasoning parts; the base class keeps them as they are."""

    why: str

    def apply(self, upstream: Sequence[Seal]) -> list[Seal]:
        return list(upstream)


@dataclass(frozen=True)
class Unsigned(Outcome):
    """The format has reasoning text but no signature: text is kept, signatures and encrypted data are lost,
    and a signature-only part (no text) disappears."""

    def apply(self, upstream: Sequence[Seal]) -> list[Seal]:
        return [(text, None, None) for text, _, _ in upstream if text]


@dataclass(frozen=True)
class Dropped(Outcome):
    """The format carries no reasoning from another format at all."""

    def apply(self, upstream: Sequence[Seal]) -> list[Seal]:
        return []


@dataclass(frozen=True)
class ItemIds(Outcome):
    """Responses: every reasoning part becomes a reasoning item, known by the id given here (its signature)."""

    ids: tuple[str, ...] = ()

    def apply(self, upstream: Sequence[Seal]) -> list[Seal]:
        return [(text, item_id, None) for (text, _, _), item_id in zip(upstream, self.ids, strict=True)]


NO_SIGNATURE_OPENAI = "Chat Completions' reasoning_content has no field for a signature or encrypted reasoning"
NO_SIGNATURE_OLLAMA = "Ollama's thinking has no field for a signature or encrypted reasoning"
ITEM_ID = (
    "a Responses reasoning item is known by its id, derived from the response id and its position; Anthropic and"
    " Gemini signatures cannot be sent back to OpenAI, so they are not carried"
)
FOREIGN_SIGNATURE = "across formats the pipeline strips signatures and encrypted reasoning from streamed reasoning"
SIGNED_ONLY = "an Anthropic client takes reasoning only signed by its own provider: a crossing stream drops it"
OWN_ONLY = "render_response sends reasoning only to the format that made it (docs/translation.md, Reasoning)"

REASONING: dict[tuple[str, str, WireFormat], Outcome] = {
    ("anthropic", "stream_thinking.sse", WireFormat.OPENAI): Unsigned(NO_SIGNATURE_OPENAI),
    ("anthropic", "stream_thinking.sse", WireFormat.OLLAMA): Unsigned(NO_SIGNATURE_OLLAMA),
    ("anthropic", "stream_thinking.sse", WireFormat.GEMINI): Unsigned(FOREIGN_SIGNATURE),
    ("anthropic", "stream_thinking.sse", WireFormat.RESPONSES): ItemIds(ITEM_ID, ("rs_msg_01..._0",)),
    ("gemini", "stream_thinking.sse", WireFormat.OPENAI): Unsigned(NO_SIGNATURE_OPENAI),
    ("gemini", "stream_thinking.sse", WireFormat.OLLAMA): Unsigned(NO_SIGNATURE_OLLAMA),
    ("gemini", "stream_thinking.sse", WireFormat.ANTHROPIC): Dropped(SIGNED_ONLY),
    ("openai", "stream_reasoning.sse", WireFormat.ANTHROPIC): Dropped(SIGNED_ONLY),
    ("ollama", "stream_thinking.ndjson", WireFormat.ANTHROPIC): Dropped(SIGNED_ONLY),
    ("gemini", "stream_thinking.sse", WireFormat.RESPONSES): ItemIds(
        ITEM_ID, ("rs_mV42aePxMo2pvr0PkbSg4A0_0", "rs_mV42aePxMo2pvr0PkbSg4A0_2")
    ),
    ("ollama", "stream_thinking.ndjson", WireFormat.RESPONSES): ItemIds(ITEM_ID, ("rs_ollama-20250529093556012345_0",)),
    ("openai", "stream_reasoning.sse", WireFormat.RESPONSES): ItemIds(
        ITEM_ID, ("rs_5b2a0b3e-6f4c-4a8e-9d9c-2f1e0c7a8b51_0",)
    ),
    ("responses", "stream_reasoning.sse", WireFormat.OPENAI): Unsigned(NO_SIGNATURE_OPENAI),
    ("responses", "stream_reasoning.sse", WireFormat.OLLAMA): Unsigned(NO_SIGNATURE_OLLAMA),
    ("responses", "stream_reasoning.sse", WireFormat.GEMINI): Unsigned(FOREIGN_SIGNATURE),
    ("responses", "stream_reasoning.sse", WireFormat.ANTHROPIC): Dropped(SIGNED_ONLY),
    ("ollama", "response_thinking.json", WireFormat.ANTHROPIC): Dropped(OWN_ONLY),
    ("ollama", "response_thinking.json", WireFormat.GEMINI): Dropped(OWN_ONLY),
    ("ollama", "response_thinking.json", WireFormat.RESPONSES): ItemIds(ITEM_ID, ("rs_ollama-20250529093556836222_0",)),
    ("responses", "response_reasoning_summary.json", WireFormat.OPENAI): Unsigned(NO_SIGNATURE_OPENAI),
    ("responses", "response_reasoning_summary.json", WireFormat.OLLAMA): Unsigned(NO_SIGNATURE_OLLAMA),
    ("responses", "response_reasoning_summary.json", WireFormat.ANTHROPIC): Dropped(OWN_ONLY),
    ("responses", "response_reasoning_summary.json", WireFormat.GEMINI): Dropped(OWN_ONLY),
}
"""Every pair that does not hand the client the upstream's reasoning parts unchanged. Absent pairs keep them."""

KEEP = Outcome("the client's format is the upstream's, or the upstream sent no signature or encrypted reasoning")

# --- translator bugs the goldens expose (tests marked xfail, strict) ---

ORDER_BUG = (
    "Responses StreamParser numbers a reasoning item's canonical part when its response.output_item.done arrives,"
    " not by output_index: the Responses StreamRenderer keeps the reasoning item (output_index 0) open until the"
    " OpenAI chat parser ends that part at the end of the stream, after the message item (output_index 1) has"
    " started, so the re-parsed answer puts the text before the reasoning"
)
XFAIL: dict[tuple[str, tuple[str, str, WireFormat]], str] = {
    ("order", ("openai", "stream_reasoning.sse", WireFormat.RESPONSES)): ORDER_BUG,
}


def assert_same_id(relayed: ChatResponse, upstream: ChatResponse, client: WireFormat) -> None:
    """The client sees the upstream's response id; Ollama answers carry none, so its parsers derive one."""
    if client is WireFormat.OLLAMA:
        assert relayed.id.startswith("ollama-")
    else:
        assert relayed.id == upstream.id


def expected_essence(
    fmt: str, name: str, client: WireFormat, upstream: ChatResponse, *, is_stream: bool
) -> dict[str, Any]:
    """The upstream's essence as a client of ``client`` must read it: usage and reasoning as the tables say."""
    kept = REASONING.get((fmt, name, client), KEEP).apply(seals(upstream))
    return essence(upstream) | {
        "reasoning": [text for text, _, _ in kept if text],
        "usage": expected_usage(upstream, client, is_stream=is_stream),
    }


def pairs(goldens: list[tuple[str, str]], check: str) -> list[Any]:
    """Every (golden, client format) pair, those with a known translator bug marked xfail."""
    params = []
    for fmt, name in goldens:
        for client in FORMATS:
            reason = XFAIL.get((check, (fmt, name, client)))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(fmt, name, client, marks=marks, id=f"{fmt}/{name}->{client.value}"))
    return params


# --- the fixture tree ------------------------------------------------------------------------------------------


def test_every_format_has_a_stream_and_a_response_golden() -> None:
    assert sorted(path.name for path in FIXTURES.iterdir() if path.is_dir()) == sorted(FORMATS)
    for fmt in FORMATS:
        assert any(golden_fmt == fmt for golden_fmt, _ in STREAM_GOLDENS), f"{fmt} has no stream golden"
        assert any(golden_fmt == fmt for golden_fmt, _ in RESPONSE_GOLDENS), f"{fmt} has no response golden"


@pytest.mark.parametrize(("fmt", "name"), sorted(IN_BAND_ERRORS))
def test_excluded_stream_goldens_are_in_band_errors(fmt: str, name: str) -> None:
    with pytest.raises(UpstreamStatusError) as caught:
        parse_stream(WireFormat(fmt), golden(fmt, name))
    assert caught.value.upstream_status == IN_BAND_ERRORS[fmt, name]


def test_every_table_entry_names_a_golden() -> None:
    goldens = set(STREAM_GOLDENS) | set(RESPONSE_GOLDENS)
    assert {(fmt, name) for fmt, name, _ in REASONING} <= goldens
    assert {(fmt, name) for _, (fmt, name, _) in XFAIL} <= goldens
    # A table entry for a pair of one format would say a format loses its own reasoning.
    assert all(WireFormat(fmt) is not client for fmt, _, client in REASONING)


# --- streams ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name", "client"), pairs(STREAM_GOLDENS, "essence"))
def test_stream_reaches_every_client_format(fmt: str, name: str, client: WireFormat) -> None:
    upstream, relayed = streamed(fmt, name, client)
    assert essence(relayed) == expected_essence(fmt, name, client, upstream, is_stream=True)
    assert_same_id(relayed, upstream, client)


@pytest.mark.parametrize(("fmt", "name", "client"), pairs(STREAM_GOLDENS, "order"))
def test_stream_keeps_the_order_of_parts(fmt: str, name: str, client: WireFormat) -> None:
    upstream, relayed = streamed(fmt, name, client)
    kept = order(upstream)
    if isinstance(REASONING.get((fmt, name, client)), Dropped):
        kept = [kind for kind in kept if kind != "reasoning"]
    assert order(relayed) == kept


@pytest.mark.parametrize(("fmt", "name", "client"), pairs(STREAM_GOLDENS, "reasoning"))
def test_stream_reasoning_follows_the_table(fmt: str, name: str, client: WireFormat) -> None:
    upstream, relayed = streamed(fmt, name, client)
    assert seals(relayed) == REASONING.get((fmt, name, client), KEEP).apply(seals(upstream))


# --- response bodies -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name", "client"), pairs(RESPONSE_GOLDENS, "essence"))
def test_response_reaches_every_client_format(fmt: str, name: str, client: WireFormat) -> None:
    upstream, relayed = answered(fmt, name, client)
    assert essence(relayed) == expected_essence(fmt, name, client, upstream, is_stream=False)
    assert_same_id(relayed, upstream, client)


@pytest.mark.parametrize(("fmt", "name", "client"), pairs(RESPONSE_GOLDENS, "order"))
def test_response_keeps_the_order_of_parts(fmt: str, name: str, client: WireFormat) -> None:
    upstream, relayed = answered(fmt, name, client)
    kept = order(upstream)
    if isinstance(REASONING.get((fmt, name, client)), Dropped):
        kept = [kind for kind in kept if kind != "reasoning"]
    assert order(relayed) == kept


@pytest.mark.parametrize(("fmt", "name", "client"), pairs(RESPONSE_GOLDENS, "reasoning"))
def test_response_reasoning_follows_the_table(fmt: str, name: str, client: WireFormat) -> None:
    upstream, relayed = answered(fmt, name, client)
    assert seals(relayed) == REASONING.get((fmt, name, client), KEEP).apply(seals(upstream))


def test_anthropic_client_gets_no_foreign_redacted_thinking() -> None:
    events = parse_stream(WireFormat.RESPONSES, golden("responses", "stream_reasoning.sse"))
    data = render_stream(WireFormat.ANTHROPIC, crossing(events, WireFormat.RESPONSES, WireFormat.ANTHROPIC))
    frames = [json.loads(line[6:]) for line in data.split(b"\n") if line.startswith(b"data: ")]
    blocks = {
        frame["index"]: frame["content_block"]["type"] for frame in frames if frame["type"] == "content_block_start"
    }
    deltas = [frame["delta"]["type"] for frame in frames if frame["type"] == "content_block_delta"]
    # The reasoning is left out (it could only be forged as Anthropic's); the answer is the first block.
    assert blocks == {0: "text"}
    assert deltas == ["text_delta"] * 9
