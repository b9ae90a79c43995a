"""Sealing tool-call signatures into ids and back."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from polyroute.core.events import PartStart, TextDelta
from polyroute.core.messages import (
    ChatRequest,
    ChatResponse,
    Message,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from polyroute.core.signatures import SEAL, seal_event, seal_id, seal_response, unseal_id, unseal_request

SIGNATURE = "CiQBjz1rX+/abc=="


@given(call_id=st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True), signature=st.text(min_size=1))
def test_seal_round_trips_and_stays_within_id_characters(call_id: str, signature: str) -> None:
    sealed = seal_id(call_id, signature)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", sealed)
    assert unseal_id(sealed) == (call_id, signature)


def test_unsigned_and_unsealed_ids_pass_unchanged() -> None:
    assert seal_id("call_1", None) == "call_1"
    assert unseal_id("call_1") == ("call_1", None)
    broken = f"call_1{SEAL}***"
    assert unseal_id(broken) == (broken, None)


def test_seal_response_only_touches_signed_calls() -> None:
    plain = ChatResponse(id="r", model="m", parts=(TextPart(text="hi"),))
    assert seal_response(plain) is plain
    signed = ChatResponse(
        id="r",
        model="m",
        parts=(
            ToolCallPart(call_id="a", name="f", arguments="{}", signature=SIGNATURE),
            ToolCallPart(call_id="b", name="f", arguments="{}"),
        ),
    )
    first, second = seal_response(signed).parts
    assert isinstance(first, ToolCallPart) and first.call_id == seal_id("a", SIGNATURE)
    assert isinstance(second, ToolCallPart) and second.call_id == "b"


def test_seal_event_only_touches_signed_tool_call_starts() -> None:
    start = PartStart(index=0, part_kind="tool_call", call_id="a", name="f", signature=SIGNATURE)
    assert seal_event(start) == PartStart(
        index=0, part_kind="tool_call", call_id=seal_id("a", SIGNATURE), name="f", signature=SIGNATURE
    )
    unsigned = PartStart(index=1, part_kind="tool_call", call_id="b", name="f")
    assert seal_event(unsigned) is unsigned
    delta = TextDelta(index=0, text="x")
    assert seal_event(delta) is delta


def test_unseal_request_restores_ids_and_signatures() -> None:
    sealed = seal_id("a", SIGNATURE)
    request = ChatRequest(
        model="m",
        messages=(
            Message(role="user", parts=(TextPart(text="go"),)),
            Message(role="assistant", parts=(ToolCallPart(call_id=sealed, name="f", arguments="{}"),)),
            Message(role="user", parts=(ToolResultPart(call_id=sealed, content=(TextPart(text="ok"),)),)),
        ),
    )
    restored = unseal_request(request)
    call = restored.messages[1].parts[0]
    result = restored.messages[2].parts[0]
    assert isinstance(call, ToolCallPart) and (call.call_id, call.signature) == ("a", SIGNATURE)
    assert isinstance(result, ToolResultPart) and result.call_id == "a"
    untouched = ChatRequest(model="m", messages=(Message(role="user", parts=(TextPart(text="go"),)),))
    assert unseal_request(untouched) is untouched
