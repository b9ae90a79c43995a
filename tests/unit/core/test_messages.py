from __future__ import annotations

import dataclasses

import pytest

from polyroute.core.messages import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
    Message,
    ReasoningPart,
    ResponseFormat,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    Usage,
)


@pytest.mark.parametrize(
    ("part", "kind"),
    [
        (TextPart(text="hi"), "text"),
        (ImagePart(url="https://example.com/a.png"), "image"),
        (ToolCallPart(call_id="c1", name="f", arguments="{}"), "tool_call"),
        (ToolResultPart(call_id="c1"), "tool_result"),
        (ReasoningPart(text="hmm"), "reasoning"),
    ],
    ids=["text", "image", "tool_call", "tool_result", "reasoning"],
)
def test_part_default_kind_is_discriminator(part: object, kind: str) -> None:
    assert getattr(part, "kind") == kind  # noqa: B009


def test_part_assignment_raises_frozen_error() -> None:
    part = TextPart(text="hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        part.text = "bye"  # type: ignore[misc]


def test_part_positional_arguments_raise_type_error() -> None:
    with pytest.raises(TypeError):
        TextPart("hi")  # type: ignore[misc]


def test_part_slots_reject_unknown_attribute() -> None:
    assert not hasattr(TextPart(text="hi"), "__dict__")


def test_tool_call_part_keeps_invalid_json_arguments_verbatim() -> None:
    part = ToolCallPart(call_id="c1", name="f", arguments='{"a": 1,')
    assert part.arguments == '{"a": 1,'
    assert part.signature is None


def test_tool_result_part_holds_text_and_image_content() -> None:
    content = (TextPart(text="ok"), ImagePart(data="aGk=", media_type="image/png"))
    part = ToolResultPart(call_id="c1", content=content, is_error=True)
    assert part.content == content
    assert part.is_error is True


def test_reasoning_part_defaults_are_empty() -> None:
    part = ReasoningPart()
    assert (part.text, part.signature, part.redacted, part.source_format) == ("", None, None, None)


def test_message_equal_values_compare_and_hash_equal() -> None:
    first = Message(role="user", parts=(TextPart(text="hi"),))
    second = Message(role="user", parts=(TextPart(text="hi"),))
    assert first == second
    assert hash(first) == hash(second)


@pytest.mark.parametrize(
    ("member", "value"),
    [
        (FinishReason.STOP, "stop"),
        (FinishReason.LENGTH, "length"),
        (FinishReason.TOOL_CALLS, "tool_calls"),
        (FinishReason.CONTENT_FILTER, "content_filter"),
        (FinishReason.ERROR, "error"),
    ],
)
def test_finish_reason_value_equals_wire_string(member: FinishReason, value: str) -> None:
    assert member == value
    assert FinishReason(value) is member


def test_finish_reason_has_exactly_five_members() -> None:
    assert [member.value for member in FinishReason] == ["stop", "length", "tool_calls", "content_filter", "error"]


def test_chat_request_defaults_are_unset() -> None:
    request = ChatRequest(model="m", messages=(Message(role="user", parts=(TextPart(text="hi"),)),))
    assert request.system == ()
    assert request.tools == ()
    assert request.stop == ()
    assert request.stream is False
    assert request.extensions == {}
    assert request.tool_choice is None
    assert request.response_format is None
    assert request.reasoning_effort is None
    assert request.reasoning_budget_tokens is None


def test_chat_request_full_construction_keeps_every_field() -> None:
    request = ChatRequest(
        model="m",
        messages=(),
        system=(TextPart(text="be brief"),),
        tools=(ToolSpec(name="f", description="d", parameters={"type": "object"}),),
        tool_choice=ToolChoice(mode="tool", name="f"),
        max_output_tokens=10,
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop=("END",),
        stream=True,
        response_format=ResponseFormat(mode="json_schema", name="s", schema={"type": "object"}, strict=True),
        parallel_tool_calls=False,
        reasoning_effort="low",
        reasoning_budget_tokens=1024,
        user_id="u1",
        extensions={"openai_chat": {"seed": 1}},
    )
    assert request.tools[0].parameters == {"type": "object"}
    assert request.tool_choice == ToolChoice(mode="tool", name="f")
    assert request.response_format is not None
    assert request.response_format.strict is True
    assert request.extensions["openai_chat"] == {"seed": 1}


def test_tool_spec_default_parameters_are_not_shared() -> None:
    assert ToolSpec(name="a").parameters is not ToolSpec(name="b").parameters


def test_chat_response_message_is_assistant_turn_with_parts() -> None:
    parts = (TextPart(text="hi"),)
    response = ChatResponse(id="r1", model="m", parts=parts, finish_reason=FinishReason.STOP)
    assert response.message == Message(role="assistant", parts=parts)
    assert response.usage == Usage()
    assert response.created is None
    assert response.extensions == {}
