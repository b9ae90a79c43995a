"""Tool-call signatures carried through clients whose format has no field for them.

Gemini attaches a ``thoughtSignature`` to each function call and (for its thinking models) refuses
a later turn whose function call lacks it. A client of another format (an OpenAI or Anthropic
client using a Gemini model) has nowhere to keep it, but it does echo tool-call ids verbatim. So
when an answer crosses formats, a signed call's id is sealed as ``<id>__thsig_<signature>`` (the
signature in URL-safe base64, which keeps the id within ``[A-Za-z0-9_-]``, as Anthropic and OpenAI
require), and every request is unsealed as it arrives, before any upstream sees it. Stateless:
nothing is stored, and any worker can unseal what another sealed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace

from polyroute.core.events import PartStart, StreamEvent
from polyroute.core.messages import ChatRequest, ChatResponse, Message, Part, ToolCallPart, ToolResultPart

SEAL = "__thsig_"


def _encode(signature: str) -> str:
    return base64.urlsafe_b64encode(signature.encode("utf-8")).decode("ascii").rstrip("=")


def _decode(sealed: str) -> str | None:
    try:
        signature = base64.b64decode(sealed + "=" * (-len(sealed) % 4), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return signature or None


def seal_id(call_id: str, signature: str | None) -> str:
    """``call_id`` with ``signature`` sealed into it (unchanged when there is no signature)."""
    return call_id if not signature else f"{call_id}{SEAL}{_encode(signature)}"


def unseal_id(call_id: str) -> tuple[str, str | None]:
    """The original id and signature of a sealed id; an id that is not sealed comes back as it is."""
    head, sep, sealed = call_id.partition(SEAL)
    if not sep:
        return call_id, None
    signature = _decode(sealed)
    return (head, signature) if signature is not None else (call_id, None)


def seal_response(response: ChatResponse) -> ChatResponse:
    """The response with every signed tool call's signature sealed into its id."""
    if not any(isinstance(part, ToolCallPart) and part.signature for part in response.parts):
        return response
    parts = tuple(
        replace(part, call_id=seal_id(part.call_id, part.signature))
        if isinstance(part, ToolCallPart) and part.signature
        else part
        for part in response.parts
    )
    return replace(response, parts=parts)


def seal_event(event: StreamEvent) -> StreamEvent:
    """A tool-call ``PartStart`` that carries its signature, with the signature sealed into its id."""
    if isinstance(event, PartStart) and event.part_kind == "tool_call" and event.signature and event.call_id:
        return replace(event, call_id=seal_id(event.call_id, event.signature))
    return event


def _unseal_part(part: Part) -> Part:
    if isinstance(part, ToolCallPart) and SEAL in part.call_id:
        call_id, signature = unseal_id(part.call_id)
        return replace(part, call_id=call_id, signature=signature or part.signature)
    if isinstance(part, ToolResultPart) and SEAL in part.call_id:
        return replace(part, call_id=unseal_id(part.call_id)[0])
    return part


def unseal_request(request: ChatRequest) -> ChatRequest:
    """The request with sealed tool-call ids split back into ids and signatures."""
    if not any(
        isinstance(part, ToolCallPart | ToolResultPart) and SEAL in part.call_id
        for message in request.messages
        for part in message.parts
    ):
        return request
    messages = tuple(
        Message(role=message.role, parts=tuple(_unseal_part(part) for part in message.parts))
        for message in request.messages
    )
    return replace(request, messages=messages)
