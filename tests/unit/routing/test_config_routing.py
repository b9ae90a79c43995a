"""The routing file's combos, alias options, ``routing`` section and per-model details, and each error with its path."""

from __future__ import annotations

from typing import Any

import pytest

from polyroute.errors import ConfigError
from polyroute.routing.config import (
    ComboConfig,
    CredentialStrategy,
    FallbackScope,
    ModelEntry,
    RouteOptions,
    RoutingOptions,
    Strategy,
    parse_routing_config,
)

STRATEGIES = "'priority', 'round-robin', 'weighted', 'random', 'least-busy', 'least-latency', 'cheapest' or 'hedged'"
ALIAS_SHAPE = "must be provider/model or {model, fallback_scope, max_attempts}"


def provider(name: str = "main", **fields: Any) -> dict[str, Any]:
    return {"name": name, "format": "openai", "base_url": "http://127.0.0.1:9/v1", **fields}


def document(**sections: Any) -> dict[str, Any]:
    """Two providers (``main``, ``spare``) and an alias ``smart``, with ``sections`` added or replaced."""
    return {"providers": [provider("main"), provider("spare")], "aliases": {"smart": "main/big"}, **sections}


def problems_of(raw: object, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_routing_config(raw, environ or {})
    return caught.value.problems


# The routing section


def test_parse_routing_config_routing_section_defaults() -> None:
    config = parse_routing_config({}, {})

    assert config.routing == RoutingOptions()
    assert config.routing.fallback_scope is FallbackScope.SAME_MODEL
    assert config.routing.max_attempts == 5
    assert config.routing.credential_strategy is CredentialStrategy.FILL_FIRST
    assert config.combos == {}
    assert config.alias_options == {}


def test_parse_routing_config_routing_section_is_read() -> None:
    raw = {"routing": {"fallback_scope": "any", "max_attempts": "${ATTEMPTS}", "credential_strategy": "round-robin"}}

    config = parse_routing_config(raw, {"ATTEMPTS": "20"})

    assert config.routing == RoutingOptions(
        fallback_scope=FallbackScope.ANY, max_attempts=20, credential_strategy=CredentialStrategy.ROUND_ROBIN
    )


@pytest.mark.parametrize(
    ("routing", "expected"),
    [
        ({"max_attempts": 0}, "routing.max_attempts: Input should be greater than or equal to 1"),
        ({"max_attempts": 21}, "routing.max_attempts: Input should be less than or equal to 20"),
        (
            {"max_attempts": 2.5},
            "routing.max_attempts: Input should be a valid integer, got a number with a fractional part",
        ),
        ({"fallback_scope": "anywhere"}, "routing.fallback_scope: must be one of 'same_model', 'configured' or 'any'"),
        (
            {"credential_strategy": "fill_first"},
            "routing.credential_strategy: must be one of 'fill-first' or 'round-robin'",
        ),
        ({"retries": 2}, "routing.retries: unknown key"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_parse_routing_config_invalid_routing_section_reports_its_path(routing: dict[str, Any], expected: str) -> None:
    assert problems_of({"routing": routing}) == [expected]


def test_parse_routing_config_routing_section_must_be_a_mapping() -> None:
    assert problems_of({"routing": ["any"]}) == [
        "routing: Input should be a valid dictionary or instance of RoutingOptions"
    ]


# Providers and models


def test_parse_routing_config_credential_strategy_per_provider() -> None:
    raw = {"providers": [provider("a", credential_strategy="round-robin"), provider("b")]}

    first, second = parse_routing_config(raw, {}).providers

    assert first.credential_strategy is CredentialStrategy.ROUND_ROBIN
    assert second.credential_strategy is None


def test_parse_routing_config_unknown_credential_strategy_is_reported() -> None:
    assert problems_of({"providers": [provider(credential_strategy="random")]}) == [
        "providers[0].credential_strategy: must be one of 'fill-first' or 'round-robin'"
    ]


def test_parse_routing_config_model_context_length_and_capabilities() -> None:
    models = ["plain", {"id": "big", "context_length": "${CTX}", "capabilities": ["tools", "vision"]}, {"id": "none"}]
    raw = {"providers": [provider(models=[*models, {"id": "bare", "capabilities": []}])]}

    config = parse_routing_config(raw, {"CTX": "128000"})

    assert config.providers[0].models == [
        ModelEntry(id="plain"),
        ModelEntry(id="big", context_length=128_000, capabilities=["tools", "vision"]),
        ModelEntry(id="none"),
        ModelEntry(id="bare", capabilities=[]),
    ]
    plain, _, _, bare = config.providers[0].models or []
    assert (plain.context_length, plain.capabilities) == (None, None)
    assert bare.capabilities == []


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"context_length": 0}, "providers[0].models[0].context_length: Input should be greater than 0"),
        (
            {"context_length": "long"},
            "providers[0].models[0].context_length: Input should be a valid integer, "
            "unable to parse string as an integer",
        ),
        (
            {"capabilities": ["tools", "audio"]},
            "providers[0].models[0].capabilities[1]: Input should be 'tools', 'vision', 'reasoning' or 'json'",
        ),
        ({"capabilities": "tools"}, "providers[0].models[0].capabilities: Input should be a valid list"),
    ],
    ids=["zero-context", "text-context", "unknown-capability", "capabilities-not-a-list"],
)
def test_parse_routing_config_invalid_model_details_report_their_path(entry: dict[str, Any], expected: str) -> None:
    assert problems_of({"providers": [provider(models=[{"id": "m", **entry}])]}) == [expected]


# Aliases in object form


def test_parse_routing_config_alias_object_form_splits_model_and_options() -> None:
    aliases = {
        "smart": "main/big",
        "fast": {"model": "main/big", "fallback_scope": "any", "max_attempts": 3},
        "plain": {"model": "spare/small"},
        "scoped": {"model": "spare/small", "fallback_scope": "configured"},
    }

    config = parse_routing_config(document(aliases=aliases), {})

    assert config.aliases == {"smart": "main/big", "fast": "main/big", "plain": "spare/small", "scoped": "spare/small"}
    assert config.alias_options == {
        "fast": RouteOptions(fallback_scope=FallbackScope.ANY, max_attempts=3),
        "scoped": RouteOptions(fallback_scope=FallbackScope.CONFIGURED),
    }


def test_parse_routing_config_alias_object_form_interpolates_variables() -> None:
    raw = document(aliases={"fast": {"model": "${PROVIDER}/big", "max_attempts": "${N:-2}"}})

    config = parse_routing_config(raw, {"PROVIDER": "spare"})

    assert config.aliases == {"fast": "spare/big"}
    assert config.alias_options == {"fast": RouteOptions(max_attempts=2)}


def test_parse_routing_config_alias_object_form_still_names_a_provider() -> None:
    raw = document(aliases={"fast": {"model": "nowhere/big", "max_attempts": 2}, "bare": {"model": "big"}})

    assert problems_of(raw) == [
        "aliases.fast: no provider named 'nowhere'",
        "aliases.bare: 'big' is not provider/model",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"fallback_scope": "any"}, ["aliases.fast.model: required"]),
        (
            {"model": "main/big", "max_attempts": 0},
            ["aliases.fast.max_attempts: Input should be greater than or equal to 1"],
        ),
        (
            {"model": "main/big", "max_attempts": 99},
            ["aliases.fast.max_attempts: Input should be less than or equal to 20"],
        ),
        (
            {"model": "main/big", "fallback_scope": "all"},
            ["aliases.fast.fallback_scope: must be one of 'same_model', 'configured' or 'any'"],
        ),
        ({"model": "main/big", "strategy": "priority"}, ["aliases.fast.strategy: unknown key"]),
        ({"model": ""}, ["aliases.fast.model: String should have at least 1 character"]),
        ({"model": 7}, ["aliases.fast.model: Input should be a valid string"]),
        (
            {"max_attempts": 50, "colour": "red"},
            [
                "aliases.fast.max_attempts: Input should be less than or equal to 20",
                "aliases.fast.model: required",
                "aliases.fast.colour: unknown key",
            ],
        ),
        (None, [f"aliases.fast: {ALIAS_SHAPE}"]),
        (["main/big"], [f"aliases.fast: {ALIAS_SHAPE}"]),
        (3, [f"aliases.fast: {ALIAS_SHAPE}"]),
        ("", ["aliases.fast: String should have at least 1 character"]),
    ],
    ids=[
        "no-model",
        "zero-attempts",
        "too-many-attempts",
        "unknown-scope",
        "unknown-key",
        "empty-model",
        "model-not-text",
        "several",
        "null",
        "list",
        "number",
        "empty-string",
    ],
)
def test_parse_routing_config_invalid_alias_object_reports_its_path(value: object, expected: list[str]) -> None:
    assert problems_of(document(aliases={"smart": "main/big", "fast": value})) == expected


def test_parse_routing_config_alias_object_errors_come_with_other_errors() -> None:
    raw = document(aliases={"fast": {"max_attempts": 0}}, routing={"max_attempts": 0})
    raw["providers"].append(provider("bad", base_url="nope"))

    assert problems_of(raw) == [
        "providers[2].base_url: not a URL (expected http:// or https:// and a host)",
        "aliases.fast.max_attempts: Input should be greater than or equal to 1",
        "aliases.fast.model: required",
        "routing.max_attempts: Input should be greater than or equal to 1",
    ]


def test_parse_routing_config_alias_options_must_belong_to_an_alias() -> None:
    raw = document(alias_options={"ghost": {"max_attempts": 2}})

    assert problems_of(raw) == ["alias_options.ghost: no alias named 'ghost'"]


# Combos


def test_parse_routing_config_combo_defaults_to_priority() -> None:
    config = parse_routing_config(document(combos={"team": {"models": ["smart", "spare/small"]}}), {})

    assert config.combos == {"team": ComboConfig(models=["smart", "spare/small"])}
    combo = config.combos["team"]
    assert combo.strategy is Strategy.PRIORITY
    assert (combo.weights, combo.max_attempts, combo.hedge_delay_ms, combo.fallback_scope) == (None, None, None, None)


def test_parse_routing_config_combo_reads_every_field() -> None:
    combos = {
        "mix": {
            "strategy": "weighted",
            "models": ["smart", "spare/small", "fast"],
            "weights": {"smart": 3, "spare/small": "0.5"},
            "max_attempts": 4,
            "fallback_scope": "same_model",
        },
        "fast": {"strategy": "hedged", "models": ["main/big", "spare/big"], "hedge_delay_ms": 250},
    }

    config = parse_routing_config(document(combos=combos), {})

    assert config.combos["mix"] == ComboConfig(
        strategy=Strategy.WEIGHTED,
        models=["smart", "spare/small", "fast"],
        weights={"smart": 3.0, "spare/small": 0.5},
        max_attempts=4,
        fallback_scope=FallbackScope.SAME_MODEL,
    )
    assert config.combos["fast"].hedge_delay_ms == 250.0


@pytest.mark.parametrize("strategy", list(Strategy), ids=str)
def test_parse_routing_config_combo_accepts_every_strategy(strategy: Strategy) -> None:
    config = parse_routing_config(document(combos={"c": {"strategy": strategy.value, "models": ["smart"]}}), {})

    assert config.combos["c"].strategy is strategy


def test_parse_routing_config_combo_members_may_be_combos_nested_without_cycles() -> None:
    combos = {
        "outer": {"models": ["inner", "smart"]},
        "inner": {"models": ["deepest", "main/x"]},
        "deepest": {"models": ["spare/y"]},
    }

    config = parse_routing_config(document(combos=combos), {})

    assert list(config.combos) == ["outer", "inner", "deepest"]


@pytest.mark.parametrize(
    ("combo", "expected"),
    [
        ({"strategy": "fastest", "models": ["smart"]}, [f"combos.c.strategy: must be one of {STRATEGIES}"]),
        ({"models": ["smart"], "hedge_delay_ms": 100}, ["combos.c.hedge_delay_ms: only for strategy hedged"]),
        (
            {"strategy": "weighted", "models": ["smart"], "weights": {"smart": 1, "main/other": 2}},
            ["combos.c.weights.main/other: not one of the combo's models"],
        ),
        (
            {"strategy": "weighted", "models": ["smart"], "weights": {"smart": 0}},
            ["combos.c.weights.smart: Input should be greater than 0"],
        ),
        (
            {"strategy": "hedged", "models": ["smart"], "hedge_delay_ms": -1},
            ["combos.c.hedge_delay_ms: Input should be greater than 0"],
        ),
        ({"models": []}, ["combos.c.models: List should have at least 1 item after validation, not 0"]),
        (
            {"models": ["main/m"] * 51},
            ["combos.c.models: List should have at most 50 items after validation, not 51"],
        ),
        ({"models": ["smart", "spare/x", "smart"]}, ["combos.c.models[2]: 'smart' is listed twice"]),
        (
            {"models": ["smart"], "max_attempts": 21},
            ["combos.c.max_attempts: Input should be less than or equal to 20"],
        ),
        (
            {"models": ["smart"], "fallback_scope": "everywhere"},
            ["combos.c.fallback_scope: must be one of 'same_model', 'configured' or 'any'"],
        ),
        ({"strategy": "priority"}, ["combos.c.models: required"]),
        ({"models": ["smart"], "order": "fixed"}, ["combos.c.order: unknown key"]),
        (
            {"models": ["nothing", "nowhere/m", "smart"]},
            [
                "combos.c.models[0]: 'nothing' is neither an alias nor provider/model nor a combo",
                "combos.c.models[1]: 'nowhere/m' is neither an alias nor provider/model nor a combo",
            ],
        ),
    ],
    ids=[
        "unknown-strategy",
        "hedge-without-hedged",
        "weight-for-non-member",
        "zero-weight",
        "negative-hedge-delay",
        "no-models",
        "too-many-models",
        "duplicate-member",
        "too-many-attempts",
        "unknown-scope",
        "models-missing",
        "unknown-key",
        "member-names-nothing",
    ],
)
def test_parse_routing_config_invalid_combo_reports_its_path(combo: dict[str, Any], expected: list[str]) -> None:
    assert problems_of(document(combos={"c": combo})) == expected


def test_parse_routing_config_combo_problems_are_all_reported() -> None:
    combo = {"models": ["smart", "smart"], "weights": {"other": 1}, "hedge_delay_ms": 5}

    assert problems_of(document(combos={"c": combo})) == [
        "combos.c.models[1]: 'smart' is listed twice",
        "combos.c.weights.other: not one of the combo's models",
        "combos.c.hedge_delay_ms: only for strategy hedged",
    ]


def test_parse_routing_config_combo_named_like_an_alias_is_reported() -> None:
    assert problems_of(document(combos={"smart": {"models": ["main/big"]}})) == [
        "combos.smart: the name is taken by an alias"
    ]


def test_parse_routing_config_combo_named_like_provider_model_is_reported() -> None:
    combos = {"main/team": {"models": ["smart"]}, "other/team": {"models": ["smart"]}}

    assert problems_of(document(combos=combos)) == ["combos.main/team: looks like provider/model of provider 'main'"]


def test_parse_routing_config_combo_cycle_is_reported_with_its_path() -> None:
    combos = {"a": {"models": ["b"]}, "b": {"models": ["smart", "a"]}}

    assert problems_of(document(combos=combos)) == ["combos.a: cycle a -> b -> a"]


def test_parse_routing_config_combo_naming_itself_is_a_cycle() -> None:
    assert problems_of(document(combos={"a": {"models": ["smart", "a"]}})) == ["combos.a: cycle a -> a"]


def test_parse_routing_config_combo_cycle_reached_from_another_combo_names_the_loop() -> None:
    combos = {"entry": {"models": ["x"]}, "x": {"models": ["y"]}, "y": {"models": ["z"]}, "z": {"models": ["x"]}}

    assert problems_of(document(combos=combos)) == ["combos.x: cycle x -> y -> z -> x"]


# Fallbacks naming combos


def test_parse_routing_config_fallbacks_may_name_combos() -> None:
    raw = document(combos={"team": {"models": ["smart"]}}, fallbacks={"smart": ["team"], "team": ["spare/x"]})

    config = parse_routing_config(raw, {})

    assert config.fallbacks == {"smart": ["team"], "team": ["spare/x"]}


def test_parse_routing_config_every_reference_problem_is_reported() -> None:
    raw = document(
        aliases={"smart": "main/big", "lost": "nowhere/m"},
        combos={"team": {"models": ["ghost"]}},
        fallbacks={"smart": ["phantom", "smart"]},
    )

    assert problems_of(raw) == [
        "aliases.lost: no provider named 'nowhere'",
        "fallbacks.smart[0]: 'phantom' is neither an alias nor provider/model nor a combo",
        "fallbacks.smart[1]: a model cannot fall back to itself",
        "combos.team.models[0]: 'ghost' is neither an alias nor provider/model nor a combo",
    ]
