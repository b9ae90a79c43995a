"""The routing file's ``prices`` section: valid overrides, and every error with its path."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from polyroute.errors import ConfigError
from polyroute.routing.config import PriceOverride, parse_price_overrides, parse_routing_config


def problems_of(raw: object, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_routing_config(raw, environ or {})
    return caught.value.problems


def test_parse_routing_config_without_prices_has_none() -> None:
    assert parse_routing_config({}, {}).prices == {}


def test_parse_routing_config_prices_are_exact_decimals() -> None:
    raw = {"prices": {"gpt-4o": {"input": 2.5, "output": 10, "cache_read": 1.25, "cache_write": "2.50"}}}

    config = parse_routing_config(raw, {})

    assert config.prices == {
        "gpt-4o": PriceOverride(
            input=Decimal("2.5"), output=Decimal("10"), cache_read=Decimal("1.25"), cache_write=Decimal("2.50")
        )
    }
    assert config.prices["gpt-4o"].cache_read == Decimal("1.25")


def test_parse_routing_config_prices_left_out_are_unknown() -> None:
    config = parse_routing_config({"prices": {"local/*": {"input": 0, "output": 0}}}, {})

    assert config.prices["local/*"] == PriceOverride(input=Decimal(0), output=Decimal(0))
    assert config.prices["local/*"].cache_read is None


def test_parse_routing_config_prices_interpolate_environment_variables() -> None:
    config = parse_routing_config({"prices": {"m": {"input": "${IN}", "output": "${OUT:-4}"}}}, {"IN": "0.5"})

    assert config.prices["m"] == PriceOverride(input=Decimal("0.5"), output=Decimal("4"))


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ({"gpt-4o": {"input": -0.01}}, ["prices.gpt-4o.input: Input should be greater than or equal to 0"]),
        ({"gpt-4o": {"output": "ten"}}, ["prices.gpt-4o.output: Input should be a valid decimal"]),
        ({"gpt-4o": {"output": float("nan")}}, ["prices.gpt-4o.output: Input should be a finite number"]),
        (
            {"gpt-4o": {"output": True}},
            ["prices.gpt-4o.output: Decimal input should be an integer, float, string or Decimal object"],
        ),
        ({"gpt-4o": {"input": 1, "per": "token"}}, ["prices.gpt-4o.per: unknown key"]),
        ({"gpt-4o": {}}, ["prices.gpt-4o: give at least one of input, output, cache_read, cache_write"]),
        ({"gpt-4o": 2.5}, ["prices.gpt-4o: Input should be a valid dictionary or instance of PriceOverride"]),
        ({"": {"input": 1}}, ["prices..[key]: String should have at least 1 character"]),
    ],
    ids=["negative", "not-a-number", "nan", "boolean", "unknown-field", "empty", "not-a-mapping", "empty-key"],
)
def test_parse_routing_config_invalid_price_reports_its_path(prices: dict[str, Any], expected: list[str]) -> None:
    assert problems_of({"prices": prices}) == expected


def test_parse_routing_config_prices_must_be_a_mapping() -> None:
    assert problems_of({"prices": [{"gpt-4o": {"input": 1}}]}) == ["prices: Input should be a valid dictionary"]


def test_parse_routing_config_price_with_unset_variable_reports_only_that() -> None:
    assert problems_of({"prices": {"m": {"input": "${PRICE}"}}}) == [
        "prices.m.input: environment variable PRICE is not set"
    ]


def test_parse_routing_config_several_price_problems_are_reported_at_once() -> None:
    problems = problems_of({"prices": {"a": {"input": -1}, "b": {"output": -2}}})

    assert problems == [
        "prices.a.input: Input should be greater than or equal to 0",
        "prices.b.output: Input should be greater than or equal to 0",
    ]


def test_parse_price_overrides_validates_a_runtime_mapping_like_the_file() -> None:
    assert parse_price_overrides({"o3": {"input": 2, "output": 8}}) == {
        "o3": PriceOverride(input=Decimal(2), output=Decimal(8))
    }
    with pytest.raises(ConfigError) as caught:
        parse_price_overrides({"o3": {"input": -2}})
    assert caught.value.problems == ["prices.o3.input: Input should be greater than or equal to 0"]


def test_parse_price_overrides_rejects_a_non_mapping() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_price_overrides(["o3"])

    assert caught.value.problems == ["prices: Input should be a valid dictionary"]
