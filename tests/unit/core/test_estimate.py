"""Token estimates: the bytes/4 rule, output and usage estimates, and the optional exact counter."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from polyroute.core import estimate
from polyroute.core.estimate import (
    count_by_bytes,
    default_counter,
    estimate_input_tokens,
    estimate_output_tokens,
    estimate_usage,
    installed_token_counter,
)
from polyroute.core.messages import (
    ChatRequest,
    ImagePart,
    Message,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
    Usage,
)


@pytest.fixture(autouse=True)
def fresh_counter_cache() -> Iterator[None]:
    installed_token_counter.cache_clear()
    yield
    installed_token_counter.cache_clear()


class WordEncoding:
    """Stands in for a bpe-openai encoding: one token per whitespace-separated word."""

    def __init__(self, *, refuse_over: int | None = None) -> None:
        self.pieces: list[str] = []
        self.refuse_over = refuse_over

    def encode_ordinary(self, text: str) -> list[int]:
        self.pieces.append(text)
        if self.refuse_over is not None and len(text) > self.refuse_over:
            raise ValueError("Input too long to encode safely")
        return list(range(len(text.split())))


def install_fake_bpe(monkeypatch: pytest.MonkeyPatch, encoding: object) -> list[str]:
    asked: list[str] = []

    def get_encoding(name: str) -> object:
        asked.append(name)
        return encoding

    module = types.ModuleType("bpe_openai")
    setattr(module, "get_encoding", get_encoding)  # noqa: B010
    monkeypatch.setitem(sys.modules, "bpe_openai", module)
    return asked


@pytest.fixture
def no_bpe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bpe_openai", None)  # makes the import raise ImportError


def user(*parts: object) -> Message:
    return Message(role="user", parts=parts)  # type: ignore[arg-type]


# The bytes/4 rule


@pytest.mark.parametrize(
    ("text", "tokens"), [("", 0), ("abc", 1), ("abcd", 1), ("abcde", 2), ("é", 1), ("日本語", 3), ("🙂🙂", 2)]
)
def test_count_by_bytes_is_one_token_per_four_utf8_bytes_rounded_up(text: str, tokens: int) -> None:
    assert count_by_bytes(text) == tokens


def test_estimate_output_tokens_uses_the_same_rule_as_input_text() -> None:
    assert estimate_output_tokens("The capital of France is Paris.", counter=count_by_bytes) == 8  # 31 bytes


def test_estimate_input_tokens_counts_every_part_with_overheads() -> None:
    request = ChatRequest(
        model="m",
        system=(TextPart(text="Be brief."),),  # 9 bytes: 3
        messages=(
            user(TextPart(text="hi"), ImagePart(url="https://example.org/a.png")),  # 1 + 1600
            Message(
                role="assistant",
                parts=(ReasoningPart(text="thinking"), ToolCallPart(call_id="c", name="get", arguments="{}")),
            ),  # 2 + 1 + 1
            user(ToolResultPart(call_id="c", content=(TextPart(text="12345678"),))),  # 2
        ),
        tools=(ToolSpec(name="get", description="Get it", parameters={"type": "object"}),),  # 1 + 2 + 5
    )

    # priming 3 + system 3 + three messages x 3 + parts 1601 + 4 + 2 + tool 8
    assert estimate_input_tokens(request, counter=count_by_bytes) == 3 + 3 + 9 + 1601 + 4 + 2 + 8


def test_estimate_usage_estimates_input_and_output_and_leaves_the_rest_unreported() -> None:
    request = ChatRequest(model="m", messages=(user(TextPart(text="What is the capital of France?")),))

    usage = estimate_usage(request, "Paris is the capital of France.", counter=count_by_bytes)

    # input: priming 3 + message 3 + 30 bytes -> 8; output: 31 bytes -> 8
    assert usage == Usage(input_tokens=14, output_tokens=8)
    assert usage.cache_read_tokens is None
    assert usage.reasoning_tokens is None


def test_estimate_usage_of_an_empty_reply_has_zero_output() -> None:
    request = ChatRequest(model="m", messages=(user(TextPart(text="hi")),))

    assert estimate_usage(request, "", counter=count_by_bytes).output_tokens == 0


# Choosing the counter


@pytest.mark.usefixtures("no_bpe")
def test_default_counter_without_bpe_openai_is_the_bytes_rule() -> None:
    assert installed_token_counter() is None
    assert default_counter() is count_by_bytes
    assert estimate_output_tokens("abcde") == 2


def test_default_counter_with_bpe_openai_counts_o200k_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = install_fake_bpe(monkeypatch, WordEncoding())

    assert estimate_output_tokens("four words right here") == 4
    assert asked == ["o200k_base"]


def test_installed_counter_is_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = install_fake_bpe(monkeypatch, WordEncoding())

    estimate_output_tokens("a b")
    estimate_output_tokens("c d")

    assert asked == ["o200k_base"]


def test_estimate_usage_uses_the_installed_counter_for_both_sides(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_bpe(monkeypatch, WordEncoding())
    request = ChatRequest(model="m", messages=(user(TextPart(text="two words")),))

    assert estimate_usage(request, "three more words") == Usage(input_tokens=3 + 3 + 2, output_tokens=3)


def test_installed_counter_unusable_encoding_falls_back_to_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("bpe_openai")

    def get_encoding(name: str) -> object:
        raise KeyError(name)

    setattr(module, "get_encoding", get_encoding)  # noqa: B010
    monkeypatch.setitem(sys.modules, "bpe_openai", module)

    assert installed_token_counter() is None
    assert default_counter() is count_by_bytes


def test_installed_counter_splits_long_text_at_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    encoding = WordEncoding()
    install_fake_bpe(monkeypatch, encoding)
    monkeypatch.setattr(estimate, "_BPE_PIECE_CHARS", 10)

    assert estimate_output_tokens("alpha beta gamma delta") == 4

    assert "".join(encoding.pieces) == "alpha beta gamma delta"
    assert all(len(piece) <= 10 for piece in encoding.pieces)
    assert all(piece.startswith(" ") for piece in encoding.pieces[1:])


def test_installed_counter_cuts_text_without_spaces_at_the_piece_size(monkeypatch: pytest.MonkeyPatch) -> None:
    encoding = WordEncoding()
    install_fake_bpe(monkeypatch, encoding)
    monkeypatch.setattr(estimate, "_BPE_PIECE_CHARS", 4)

    estimate_output_tokens("abcdefghij")

    assert encoding.pieces == ["abcd", "efgh", "ij"]


def test_installed_counter_piece_it_refuses_is_counted_by_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_bpe(monkeypatch, WordEncoding(refuse_over=5))

    # "tiny" -> 1 token; "a b c d e f g" (13 bytes) is refused -> 4 by the rule
    assert estimate_output_tokens("tiny") == 1
    assert estimate_output_tokens("a b c d e f g") == 4
