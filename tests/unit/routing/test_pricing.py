"""Prices and costs: the packaged table, id matching, override layers, and exact cost arithmetic."""

from __future__ import annotations

import re
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest
import yaml

from polyroute.core.messages import Usage
from polyroute.routing.config import PriceOverride
from polyroute.routing.pricing import (
    InvalidPricesError,
    Price,
    PriceEntry,
    PriceTable,
    cost_usd,
    cost_usd_exact,
    parse_builtin_prices,
)

TABLE = PriceTable.load(provider_names={"openai", "groq", "openrouter"})
BUILTIN = TABLE.entries("builtin")


def price_of(model: str, provider: str = "openai") -> Price:
    price = TABLE.lookup(provider, model)
    assert price is not None, f"{provider}/{model} has no price"
    return price


def d(text: str) -> Decimal:
    return Decimal(text)


def all_prices(price: Price) -> list[Decimal | None]:
    tier = [] if price.above is None else all_prices(price.above)
    return [price.input, price.output, price.cache_read, price.cache_write, *tier]


# The packaged table


def test_builtin_table_loads_with_a_date_stated_in_its_header() -> None:
    text = resources.files("polyroute.routing").joinpath("prices.yaml").read_text(encoding="utf-8")

    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", TABLE.builtin.checked_on)
    assert f"taken on {TABLE.builtin.checked_on}" in text
    assert len(BUILTIN) > 40


@pytest.mark.parametrize("entry", BUILTIN, ids=lambda entry: entry.model)
def test_builtin_entry_is_valid_and_non_negative(entry: PriceEntry) -> None:
    assert entry.price.input is not None
    assert entry.price.output is not None
    assert all(value >= 0 for value in all_prices(entry.price) if value is not None)
    assert entry.source is not None
    assert entry.source.startswith("https://")
    if entry.price.above_tokens is not None:
        assert entry.price.above_tokens > 0
    assert entry.price.above is None or entry.price.above_tokens is not None


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o3",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "claude-opus-4-5",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "deepseek-chat",
        "deepseek-v4-pro",
        "mistral-large-latest",
        "mistral-small-latest",
    ],
)
def test_builtin_table_covers_common_models(model: str) -> None:
    assert TABLE.lookup("any", model) is not None


def test_builtin_groq_llama_prices_apply_only_to_the_groq_provider() -> None:
    assert TABLE.lookup("groq", "llama-3.3-70b-versatile") == Price(input=d("0.59"), output=d("0.79"))
    assert TABLE.lookup("groq", "meta-llama/llama-4-scout-17b-16e-instruct") is not None
    assert TABLE.lookup("together", "llama-3.3-70b-versatile") is None


def test_builtin_anthropic_entries_price_cache_writes_apart_from_input() -> None:
    anthropic = [entry for entry in BUILTIN if entry.model.startswith("claude-")]

    assert anthropic
    for entry in anthropic:
        assert entry.price.cache_write is not None and entry.price.input is not None
        assert entry.price.cache_write == entry.price.input * d("1.25")


def test_builtin_cache_writes_at_input_price_where_the_vendor_charges_none_extra() -> None:
    assert price_of("gpt-4o").cache_write == d("2.5")
    assert price_of("gemini-2.5-pro").cache_write == d("1.25")
    assert price_of("deepseek-v4-flash").cache_write == d("0.14")
    assert price_of("llama-3.3-70b-versatile", "groq").cache_write is None
    assert price_of("mistral-large-2512").cache_write is None


def test_builtin_yaml_floats_become_exact_decimals() -> None:
    assert price_of("gpt-4o-mini").cache_read == d("0.075")
    assert price_of("deepseek-v4-pro").cache_read == d("0.003625")


# Matching model ids


@pytest.mark.parametrize(
    ("model", "same_as"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("o3-2025-04-16", "o3"),
        ("gpt-5-nano-2025-08-07", "gpt-5-nano"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"),
        ("GPT-4o", "gpt-4o"),
        ("mistral-medium-latest", "mistral-medium-3-5"),
        ("deepseek-reasoner", "deepseek-v4-flash"),
    ],
)
def test_lookup_snapshot_or_alias_finds_the_model_entry(model: str, same_as: str) -> None:
    assert price_of(model) == price_of(same_as)


def test_lookup_exact_snapshot_entry_wins_over_the_stripped_id() -> None:
    assert price_of("gpt-4o-2024-05-13") == Price(input=d("5.00"), output=d("15.00"), cache_write=d("5.00"))
    assert price_of("gpt-4o-2024-05-13") != price_of("gpt-4o")


@pytest.mark.parametrize(
    "model", ["gpt-4o-2024-08-06-extra", "gpt-4o-08-06", "claude-sonnet-4-5-2025", "gpt-4o-", "models/", "unknown"]
)
def test_lookup_unknown_or_malformed_id_has_no_price(model: str) -> None:
    assert TABLE.lookup("openai", model) is None


def test_lookup_openrouter_style_id_is_not_mistaken_for_a_vendor_id() -> None:
    assert TABLE.lookup("openrouter", "openai/gpt-4o") is None


# Override layers


def override(**prices: float) -> PriceOverride:
    return PriceOverride.model_validate(prices)


def test_config_override_beats_builtin() -> None:
    table = PriceTable.load(overrides={"gpt-4o": override(input=1, output=2)})

    assert table.lookup("openai", "gpt-4o") == Price(input=d("1"), output=d("2"))
    assert table.lookup("openai", "gpt-4o-2024-08-06") == Price(input=d("1"), output=d("2"))
    assert table.lookup("openai", "gpt-4o-mini") == price_of("gpt-4o-mini")


def test_provider_qualified_key_beats_bare_key() -> None:
    table = PriceTable.load(
        overrides={"gpt-4o": override(input=1, output=1), "azure/gpt-4o": override(input=3, output=3)},
        provider_names={"azure"},
    )

    assert table.lookup("azure", "gpt-4o") == Price(input=d("3"), output=d("3"))
    assert table.lookup("openai", "gpt-4o") == Price(input=d("1"), output=d("1"))


def test_key_prefix_that_names_no_provider_is_part_of_a_bare_model_id() -> None:
    table = PriceTable.load(overrides={"meta-llama/llama-x": override(input=1, output=1)}, provider_names={"groq"})

    assert table.lookup("anyone", "meta-llama/llama-x") == Price(input=d("1"), output=d("1"))
    assert table.entries("config")[0].provider is None


def test_key_prefix_that_names_a_provider_qualifies_a_model_id_with_slashes() -> None:
    table = PriceTable.load(
        overrides={"openrouter/openai/gpt-4o": override(input=2.75, output=11)}, provider_names={"openrouter"}
    )

    assert table.lookup("openrouter", "openai/gpt-4o") == Price(input=d("2.75"), output=d("11"))
    assert table.lookup("other", "openai/gpt-4o") is None


def test_patterns_rank_below_exact_keys_and_longest_pattern_wins() -> None:
    table = PriceTable.load(
        overrides={
            "*": override(input=9, output=9),
            "gpt-*": override(input=5, output=5),
            "gpt-4o*": override(input=4, output=4),
            "gpt-4o-mini": override(input=1, output=1),
        }
    )

    assert table.lookup("p", "gpt-4o-mini") == Price(input=d("1"), output=d("1"))
    assert table.lookup("p", "gpt-4o-2024-11-20") == Price(input=d("4"), output=d("4"))
    assert table.lookup("p", "gpt-5") == Price(input=d("5"), output=d("5"))
    assert table.lookup("p", "llama") == Price(input=d("9"), output=d("9"))


def test_qualified_pattern_beats_bare_exact_key() -> None:
    table = PriceTable.load(
        overrides={"local/*": override(input=0, output=0), "gpt-4o": override(input=1, output=1)},
        provider_names={"local"},
    )

    assert table.lookup("local", "gpt-4o") == Price(input=d("0"), output=d("0"))


def test_pattern_characters_other_than_star_are_literal() -> None:
    table = PriceTable.load(overrides={"claude-sonnet-4-5[1m]*": override(input=6, output=22.5)})

    assert table.lookup("p", "claude-sonnet-4-5[1m]-x") == Price(input=d("6"), output=d("22.5"))
    assert table.lookup("p", "claude-sonnet-4-5m-x") is None


def test_runtime_override_beats_config_and_builtin() -> None:
    table = PriceTable.load(overrides={"gpt-4o": override(input=1, output=1)}).with_runtime_overrides(
        {"gpt-4o": {"input": "0.5", "output": 0.25}}
    )

    assert table.lookup("openai", "gpt-4o") == Price(input=d("0.5"), output=d("0.25"))
    assert [entry.layer for entry in table.entries()][:2] == ["runtime", "config"]


def test_runtime_overrides_replace_earlier_ones_and_leave_the_old_table_unchanged() -> None:
    first = TABLE.with_runtime_overrides({"gpt-4o": {"input": 1, "output": 1}})
    second = first.with_runtime_overrides({"o3": {"input": 1, "output": 1}})

    assert first.lookup("openai", "gpt-4o") == Price(input=d("1"), output=d("1"))
    assert second.lookup("openai", "gpt-4o") == price_of("gpt-4o")
    assert TABLE.entries("runtime") == ()


def test_runtime_overrides_use_the_tables_provider_names() -> None:
    table = TABLE.with_runtime_overrides({"groq/llama-3.3-70b-versatile": {"input": 0, "output": 0}})

    assert table.lookup("groq", "llama-3.3-70b-versatile") == Price(input=d("0"), output=d("0"))
    assert table.entries("runtime")[0].provider == "groq"


@pytest.mark.parametrize(
    ("raw", "problems"),
    [
        ({"gpt-4o": {"input": -1, "output": 1}}, ["prices.gpt-4o.input: Input should be greater than or equal to 0"]),
        ({"gpt-4o": {"inputs": 1}}, ["prices.gpt-4o.inputs: unknown key"]),
        ({"gpt-4o": {}}, ["prices.gpt-4o: give at least one of input, output, cache_read, cache_write"]),
        ({"gpt-4o": {"output": "lots"}}, ["prices.gpt-4o.output: Input should be a valid decimal"]),
        ({"gpt-4o": {"output": float("inf")}}, ["prices.gpt-4o.output: Input should be a finite number"]),
    ],
)
def test_invalid_runtime_overrides_are_rejected_with_their_paths(raw: dict[str, Any], problems: list[str]) -> None:
    with pytest.raises(InvalidPricesError) as caught:
        TABLE.with_runtime_overrides(raw)

    assert caught.value.problems == problems


# Cost arithmetic, one usage shape per vendor (hand-computed)


@pytest.mark.parametrize(
    ("provider", "model", "usage", "expected"),
    [
        # OpenAI chat: 10,000 prompt tokens of which 2,000 cached; 8,000 x 2.50 + 2,000 x 1.25 + 500 x 10.
        ("openai", "gpt-4o", Usage(input_tokens=10_000, output_tokens=500, cache_read_tokens=2_000), 0.0275),
        # OpenAI reasoning: 2,500 of the 3,000 output tokens are reasoning, billed once as output:
        # 1,200 x 1.10 + 3,000 x 4.40.
        ("openai", "o4-mini", Usage(input_tokens=1_200, output_tokens=3_000, reasoning_tokens=2_500), 0.01452),
        # Anthropic: 100 uncached + 30,000 cache reads + 2,000 cache writes = 32,100 input:
        # 100 x 3 + 30,000 x 0.30 + 2,000 x 3.75 + 800 x 15.
        (
            "anthropic",
            "claude-sonnet-4-5-20250929",
            Usage(input_tokens=32_100, output_tokens=800, cache_read_tokens=30_000, cache_write_tokens=2_000),
            0.0288,
        ),
        # Anthropic past 200k input: every token at the long-context rates:
        # 200,000 x 6 + 50,000 x 0.60 + 1,000 x 22.50.
        (
            "anthropic",
            "claude-sonnet-4-5",
            Usage(input_tokens=250_000, output_tokens=1_000, cache_read_tokens=50_000),
            1.2525,
        ),
        # Gemini: promptTokenCount 5,000 including 4,000 cached; output = 200 candidates + 1,000 thoughts:
        # 1,000 x 0.30 + 4,000 x 0.03 + 1,200 x 2.50.
        (
            "google",
            "models/gemini-2.5-flash",
            Usage(input_tokens=5_000, output_tokens=1_200, cache_read_tokens=4_000, reasoning_tokens=1_000),
            0.00342,
        ),
        # Gemini 2.5 Pro past 200k: 300,000 x 2.50 + 2,000 x 15.
        ("google", "gemini-2.5-pro", Usage(input_tokens=300_000, output_tokens=2_000), 0.78),
        # DeepSeek: 9,000 of 10,000 prompt tokens hit the cache: 1,000 x 0.14 + 9,000 x 0.0028 + 500 x 0.28.
        (
            "deepseek",
            "deepseek-chat",
            Usage(input_tokens=10_000, output_tokens=500, cache_read_tokens=9_000),
            0.0003052,
        ),
        # Groq: 1,000 x 0.59 + 100 x 0.79.
        ("groq", "llama-3.3-70b-versatile", Usage(input_tokens=1_000, output_tokens=100), 0.000669),
        # Groq reports cached_tokens 0 for uncached models: no cache price needed.
        ("groq", "llama-3.1-8b-instant", Usage(input_tokens=1_000, output_tokens=100, cache_read_tokens=0), 0.000058),
        # Mistral: 2,000 x 0.10 + 300 x 0.30.
        ("mistral", "mistral-small-latest", Usage(input_tokens=2_000, output_tokens=300), 0.00029),
        # Haiku 5.5 at its 100k threshold stays in the lower band: 100,000 x 0.10 + 1,000 x 0.50.
        ("anthropic", "claude-haiku-5-5", Usage(input_tokens=100_000, output_tokens=1_000), 0.0105),
        # One token more and the whole request moves up: 100,001 x 0.50 + 1,000 x 2.50.
        ("anthropic", "claude-haiku-5-5", Usage(input_tokens=100_001, output_tokens=1_000), 0.0525005),
        # Nothing used costs nothing (0, not None).
        ("openai", "gpt-5", Usage(input_tokens=0, output_tokens=0), 0.0),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_cost_usd_matches_hand_computed_cost(provider: str, model: str, usage: Usage, expected: float) -> None:
    assert TABLE.cost_usd(provider, model, usage) == expected


def test_cost_usd_openai_cache_writes_bill_at_the_input_price() -> None:
    usage = Usage(input_tokens=3_000, output_tokens=0, cache_write_tokens=1_000)

    assert TABLE.cost_usd("openai", "gpt-5", usage) == 0.00375  # 3,000 x 1.25


def test_cost_usd_is_exact_where_floats_are_not() -> None:
    price = Price(input=d("0.1"), output=d("0.2"))

    assert cost_usd(price, Usage(input_tokens=1_000_000, output_tokens=1_000_000)) == 0.3
    assert 0.1 + 0.2 != 0.3


def test_cost_usd_exact_rounds_half_to_even_at_a_billionth() -> None:
    assert cost_usd_exact(Price(input=d("0.0028"), output=d("0")), Usage(input_tokens=1, output_tokens=0)) == d("3E-9")
    assert cost_usd_exact(Price(input=d("0.0025"), output=d("0")), Usage(input_tokens=1, output_tokens=0)) == d("2E-9")
    assert cost_usd_exact(Price(input=d("0.0035"), output=d("0")), Usage(input_tokens=1, output_tokens=0)) == d("4E-9")


def test_cost_usd_large_counts_stay_exact() -> None:
    price = Price(input=d("0.003625"), output=d("0.87"))
    usage = Usage(input_tokens=987_654_321_987, output_tokens=123_456_789)

    # 987,654,321,987 x 0.003625 / 1e6 = 3,580.246917202875; 123,456,789 x 0.87 / 1e6 = 107.40740643;
    # the sum 3,687.654323632875 rounds half-even to 3,687.654323633.
    assert cost_usd_exact(price, usage) == d("3687.654323633")


# None, never a guessed 0


@pytest.mark.parametrize(
    ("price", "usage"),
    [
        (None, Usage(input_tokens=10, output_tokens=10)),
        (Price(input=d("1"), output=d("1")), Usage(output_tokens=10)),
        (Price(input=d("1"), output=d("1")), Usage(input_tokens=10)),
        (Price(input=d("1")), Usage(input_tokens=10, output_tokens=10)),
        (Price(output=d("1")), Usage(input_tokens=10, output_tokens=10)),
        (Price(input=d("1"), output=d("1")), Usage(input_tokens=10, output_tokens=1, cache_read_tokens=5)),
        (Price(input=d("1"), output=d("1")), Usage(input_tokens=10, output_tokens=1, cache_write_tokens=5)),
        (
            Price(input=d("1"), output=d("1"), cache_read=d("0.1")),
            Usage(input_tokens=4, output_tokens=1, cache_read_tokens=5),
        ),
        (Price(input=d("1"), output=d("1")), Usage(input_tokens=10, output_tokens=-1)),
        (Price(input=d("1"), output=d("1"), above_tokens=5), Usage(input_tokens=6, output_tokens=1)),
    ],
    ids=[
        "no-price",
        "input-not-reported",
        "output-not-reported",
        "output-price-unknown",
        "input-price-unknown",
        "cache-read-price-unknown",
        "cache-write-price-unknown",
        "more-cached-than-input",
        "negative-count",
        "rates-above-threshold-unknown",
    ],
)
def test_cost_usd_unknown_is_none(price: Price | None, usage: Usage) -> None:
    assert cost_usd(price, usage) is None
    assert cost_usd_exact(price, usage) is None


def test_cost_usd_groq_reporting_cached_tokens_is_unknown() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=10, cache_read_tokens=500)

    assert TABLE.cost_usd("groq", "llama-3.3-70b-versatile", usage) is None


def test_cost_usd_openai_above_documented_context_rates_is_unknown() -> None:
    # 272,000 x 5 + 1 x 30.
    assert TABLE.cost_usd("openai", "gpt-5.5", Usage(input_tokens=272_000, output_tokens=1)) == 1.36003
    assert TABLE.cost_usd("openai", "gpt-5.5", Usage(input_tokens=272_001, output_tokens=1)) is None


def test_cost_usd_unknown_model_is_none() -> None:
    assert TABLE.cost_usd("openai", "no-such-model", Usage(input_tokens=1, output_tokens=1)) is None


# Malformed tables are rejected with the path of the problem


def table_doc(**entry: Any) -> dict[str, Any]:
    return {
        "checked_on": "2026-01-01",
        "vendors": [{"vendor": "v", "source": "https://v.example", "checked": "2026-01-01", "models": {"m": entry}}],
    }


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (table_doc(input=1), "vendors[0].models.m: input and output are required"),
        (table_doc(input=-1, output=1), "vendors[0].models.m.input: must be a finite, non-negative number"),
        (table_doc(input=True, output=1), "vendors[0].models.m.input: must be a number"),
        (table_doc(input="x", output=1), "vendors[0].models.m.input: must be a number"),
        (table_doc(input=1, output=1, colour=1), "vendors[0].models.m: unknown key 'colour'"),
        (table_doc(input=1, output=1, above={"tokens": 0}), "vendors[0].models.m.above.tokens: must be a positive"),
        (table_doc(input=1, output=1, above={"tokens": 5, "input": 2}), "vendors[0].models.m.above: input and output"),
        (table_doc(input=1, output=1, aliases="m2"), "vendors[0].models.m.aliases: must be a list"),
        (table_doc(input=1, output=1, aliases=["m"]), "vendors[0].models.m: 'm' is listed twice"),
        (table_doc(input=1, output=1, aliases=["m-*"]), "vendors[0].models.m: 'm-*' is listed twice or is a pattern"),
        ({"checked_on": "2026-01-01", "vendors": []}, "vendors: must be a non-empty list"),
        ({"vendors": []}, "checked_on: must be a non-empty string"),
        (
            {**table_doc(input=1, output=1), "snapshot_suffixes": ["("]},
            "snapshot_suffixes[0]: not a regular expression",
        ),
        ({**table_doc(input=1, output=1), "strip_prefixes": "models/"}, "strip_prefixes: must be a list"),
        ([], "prices.yaml: must be a non-empty mapping"),
    ],
)
def test_parse_builtin_prices_rejects_malformed_documents(doc: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_builtin_prices(doc)


def test_parse_builtin_prices_rejects_unknown_vendor_keys_and_bad_flags() -> None:
    doc = table_doc(input=1, output=1)
    doc["vendors"][0]["cache_write_at_input"] = "yes"
    with pytest.raises(ValueError, match=r"vendors\[0\].cache_write_at_input: must be true or false"):
        parse_builtin_prices(doc)

    doc["vendors"][0] = {**doc["vendors"][0], "cache_write_at_input": True, "region": "eu"}
    with pytest.raises(ValueError, match=r"vendors\[0\]: unknown key 'region'"):
        parse_builtin_prices(doc)


def test_parse_builtin_prices_entry_source_defaults_to_the_vendor_source() -> None:
    parsed = parse_builtin_prices(yaml.safe_load("checked_on: '2026-01-01'\n" + _VENDOR_YAML))

    assert [(entry.provider, entry.model, entry.source) for entry in parsed.entries] == [
        ("host", "m", "https://v.example/prices")
    ]
    assert parsed.entries[0].price == Price(input=d("0.1"), output=d("0.3"), cache_write=d("0.1"))


_VENDOR_YAML = """
vendors:
  - vendor: v
    source: https://v.example/prices
    checked: "2026-01-01"
    provider: host
    cache_write_at_input: true
    models:
      m: {input: 0.1, output: 0.3}
"""
