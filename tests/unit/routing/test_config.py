"""Routing file parsing: valid documents, every error with its path, ``${VAR}`` interpolation, no secrets echoed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polyroute.errors import ConfigError
from polyroute.routing.config import ModelEntry, ModelType, load_routing_config, parse_routing_config
from polyroute.wire import WireFormat

SECRET = "sk-proj-Zq8vN3xT5wY2bR9kL4mP7sQ1uE6hJ0cA"


def provider(name: str = "openai", **fields: Any) -> dict[str, Any]:
    """A valid provider mapping, with ``fields`` added or replaced."""
    return {"name": name, "format": "openai", "base_url": "https://api.openai.com/v1", **fields}


def problems_of(raw: object, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_routing_config(raw, environ or {})
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


# Valid documents


def test_parse_routing_config_empty_document_has_no_providers_or_aliases() -> None:
    config = parse_routing_config({}, {})

    assert config.providers == []
    assert config.aliases == {}


def test_parse_routing_config_minimal_provider_is_keyless_with_unknown_models() -> None:
    config = parse_routing_config({"providers": [provider()]}, {})

    only = config.providers[0]
    assert only.format is WireFormat.OPENAI
    assert only.credentials == ()
    assert only.models is None
    assert only.headers == {}
    assert only.timeout_s is None
    assert only.models_url is None


def test_parse_routing_config_single_api_key_is_the_only_credential() -> None:
    config = parse_routing_config({"providers": [provider(api_key="sk-one")]}, {})

    assert config.providers[0].credentials == ("sk-one",)


def test_parse_routing_config_api_keys_keep_their_order() -> None:
    config = parse_routing_config({"providers": [provider(api_keys=["k1", "k2", "k3"])]}, {})

    assert config.providers[0].credentials == ("k1", "k2", "k3")


def test_parse_routing_config_empty_api_key_means_keyless() -> None:
    config = parse_routing_config({"providers": [provider(api_key="")]}, {})

    assert config.providers[0].credentials == ()


def test_parse_routing_config_models_accept_strings_and_objects() -> None:
    models = ["gpt-4o", {"id": "text-embedding-3-small", "type": "embedding"}, {"id": "custom"}]

    config = parse_routing_config({"providers": [provider(models=models)]}, {})

    assert config.providers[0].models == [
        ModelEntry(id="gpt-4o"),
        ModelEntry(id="text-embedding-3-small", type=ModelType.EMBEDDING),
        ModelEntry(id="custom", type=None),
    ]


@pytest.mark.parametrize("model_type", list(ModelType), ids=str)
def test_parse_routing_config_model_type_accepts_every_member(model_type: ModelType) -> None:
    config = parse_routing_config({"providers": [provider(models=[{"id": "m", "type": model_type.value}])]}, {})

    assert config.providers[0].models == [ModelEntry(id="m", type=model_type)]


@pytest.mark.parametrize("wire_format", list(WireFormat), ids=str)
def test_parse_routing_config_format_accepts_every_wire_format(wire_format: WireFormat) -> None:
    config = parse_routing_config({"providers": [provider(format=wire_format.value)]}, {})

    assert config.providers[0].format is wire_format


def test_parse_routing_config_optional_fields_are_kept() -> None:
    raw = provider(
        headers={"HTTP-Referer": "https://example.org", "X-Title": "polyroute"},
        timeout_s=30,
        models_url="https://models.example.org/catalog/",
    )

    only = parse_routing_config({"providers": [raw]}, {}).providers[0]

    assert only.headers == {"HTTP-Referer": "https://example.org", "X-Title": "polyroute"}
    assert only.timeout_s == 30.0
    assert only.models_url == "https://models.example.org/catalog"


def test_parse_routing_config_base_url_loses_trailing_slashes() -> None:
    config = parse_routing_config({"providers": [provider(base_url="http://127.0.0.1:11434/v1//")]}, {})

    assert config.providers[0].base_url == "http://127.0.0.1:11434/v1"


def test_parse_routing_config_aliases_name_provider_and_model() -> None:
    raw = {
        "providers": [provider("openrouter", base_url="https://openrouter.ai/api/v1")],
        "aliases": {"fast": "openrouter/meta-llama/llama-3.3-70b-instruct:free"},
    }

    config = parse_routing_config(raw, {})

    assert config.aliases == {"fast": "openrouter/meta-llama/llama-3.3-70b-instruct:free"}


def test_parse_routing_config_result_is_frozen() -> None:
    config = parse_routing_config({"providers": [provider()]}, {})

    with pytest.raises(ValueError, match="frozen"):
        config.providers[0].name = "other"  # type: ignore[misc]


# Errors, each with its path


def test_parse_routing_config_reports_several_problems_at_once() -> None:
    raw = {
        "providers": [
            provider(colour="red"),
            {"format": "openai", "base_url": "https://a.example"},
            provider("bad", base_url="ftp://files.example.org"),
            provider("worse", format="soap"),
        ]
    }

    problems = problems_of(raw)

    assert problems == [
        "providers[0].colour: unknown key",
        "providers[1].name: required",
        "providers[2].base_url: not a URL (expected http:// or https:// and a host)",
        "providers[3].format: must be one of 'openai', 'anthropic', 'gemini', 'ollama' or 'responses'",
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"base_url": "not a url"}, "providers[0].base_url: not a URL (expected http:// or https:// and a host)"),
        ({"base_url": "https://"}, "providers[0].base_url: not a URL (expected http:// or https:// and a host)"),
        ({"base_url": "http://[::1"}, "providers[0].base_url: Invalid IPv6 URL"),
        ({"models_url": "/models"}, "providers[0].models_url: not a URL (expected http:// or https:// and a host)"),
        (
            {"format": "soap"},
            "providers[0].format: must be one of 'openai', 'anthropic', 'gemini', 'ollama' or 'responses'",
        ),
        ({"name": "has space"}, "providers[0].name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]*$'"),
        ({"name": "x" * 65}, "providers[0].name: String should have at most 64 characters"),
        ({"timeout_s": 0}, "providers[0].timeout_s: Input should be greater than 0"),
        ({"api_key": 5}, "providers[0].api_key: Input should be a valid string"),
        ({"api_keys": [""]}, "providers[0].api_keys[0]: String should have at least 1 character"),
        ({"headers": {"X-Count": 5}}, "providers[0].headers.X-Count: Input should be a valid string"),
        ({"models": [{"id": ""}]}, "providers[0].models[0].id: String should have at least 1 character"),
        ({"models": [{"id": "m", "size": 3}]}, "providers[0].models[0].size: unknown key"),
        ({"models": [{"type": "text"}]}, "providers[0].models[0].id: required"),
        (
            {"models": [{"id": "m", "type": "music"}]},
            "providers[0].models[0].type: must be one of 'text', 'image', 'embedding', 'audio' or 'video'",
        ),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_parse_routing_config_invalid_field_reports_its_path(fields: dict[str, Any], expected: str) -> None:
    assert problems_of({"providers": [provider(**fields)]}) == [expected]


def test_parse_routing_config_missing_required_fields_are_each_reported() -> None:
    assert problems_of({"providers": [{}]}) == [
        "providers[0].name: required",
        "providers[0].format: required",
        "providers[0].base_url: required",
    ]


def test_parse_routing_config_unknown_top_level_key_is_reported() -> None:
    assert problems_of({"providers": [], "models": []}) == ["models: unknown key"]


def test_parse_routing_config_wrong_container_types_are_reported() -> None:
    assert problems_of({"providers": {"openai": {}}, "aliases": ["fast"]}) == [
        "providers: Input should be a valid list",
        "aliases: Input should be a valid dictionary",
    ]


def test_parse_routing_config_duplicate_provider_names_are_reported() -> None:
    raw = {"providers": [provider("dup"), provider("other"), provider("dup")]}

    assert problems_of(raw) == ["providers: provider name 'dup' is used twice"]


def test_parse_routing_config_api_key_and_api_keys_together_are_reported() -> None:
    problems = problems_of({"providers": [provider(api_key="a", api_keys=["b"])]})

    assert problems == ["providers[0]: give api_key or api_keys, not both"]


def test_parse_routing_config_empty_api_keys_are_reported() -> None:
    assert problems_of({"providers": [provider(api_keys=[])]}) == ["providers[0]: api_keys is empty"]


@pytest.mark.parametrize("target", ["openai", "openai/"])
def test_parse_routing_config_alias_target_not_provider_slash_model_is_reported(target: str) -> None:
    problems = problems_of({"providers": [provider()], "aliases": {"fast": target}})

    assert problems == [f"aliases.fast: {target!r} is not provider/model"]


def test_parse_routing_config_alias_to_unknown_provider_is_reported() -> None:
    problems = problems_of({"providers": [provider()], "aliases": {"fast": "groq/llama-3.1-8b-instant"}})

    assert problems == ["aliases.fast: no provider named 'groq'"]


def test_parse_routing_config_alias_with_empty_provider_is_reported() -> None:
    problems = problems_of({"providers": [provider()], "aliases": {"fast": "/gpt-4o"}})

    assert problems == ["aliases.fast: no provider named ''"]


@pytest.mark.parametrize("raw", [[], ["providers"], "providers: []", 42, None], ids=repr)
def test_parse_routing_config_top_level_not_a_mapping_is_reported(raw: object) -> None:
    assert problems_of(raw) == ["(top level): must be a mapping with providers and aliases"]


# Interpolation


def test_parse_routing_config_interpolates_variables_everywhere() -> None:
    raw = {
        "providers": [
            provider(
                "${NAME}",
                base_url="https://${HOST}/v1",
                api_keys=["${KEY_A}", "${KEY_B}"],
                headers={"X-Org": "org-${ORG}"},
                timeout_s="${TIMEOUT}",
                models=["${MODEL}", {"id": "${MODEL}-mini", "type": "${KIND}"}],
            )
        ],
        "aliases": {"fast": "${NAME}/${MODEL}"},
    }
    environ = {
        "NAME": "corp",
        "HOST": "llm.corp.example",
        "KEY_A": "ka",
        "KEY_B": "kb",
        "ORG": "42",
        "TIMEOUT": "12.5",
        "MODEL": "m1",
        "KIND": "text",
    }

    config = parse_routing_config(raw, environ)

    only = config.providers[0]
    assert (only.name, only.base_url, only.credentials) == ("corp", "https://llm.corp.example/v1", ("ka", "kb"))
    assert only.headers == {"X-Org": "org-42"}
    assert only.timeout_s == 12.5
    assert only.models == [ModelEntry(id="m1"), ModelEntry(id="m1-mini", type=ModelType.TEXT)]
    assert config.aliases == {"fast": "corp/m1"}


def test_parse_routing_config_default_used_when_variable_unset() -> None:
    raw = {"providers": [provider(base_url="${BASE:-http://127.0.0.1:8000/v1}", api_key="${KEY:-}")]}

    only = parse_routing_config(raw, {}).providers[0]

    assert only.base_url == "http://127.0.0.1:8000/v1"
    assert only.credentials == ()


def test_parse_routing_config_set_variable_wins_over_default() -> None:
    raw = {"providers": [provider(api_key="${KEY:-fallback}")]}

    assert parse_routing_config(raw, {"KEY": "real"}).providers[0].credentials == ("real",)


def test_parse_routing_config_empty_variable_is_used_not_the_default() -> None:
    raw = {"providers": [provider(api_key="${KEY:-fallback}")]}

    assert parse_routing_config(raw, {"KEY": ""}).providers[0].credentials == ()


def test_parse_routing_config_substituted_value_is_not_interpolated_again() -> None:
    raw = {"providers": [provider(api_key="${KEY}")]}

    assert parse_routing_config(raw, {"KEY": "${OTHER}", "OTHER": "x"}).providers[0].credentials == ("${OTHER}",)


def test_parse_routing_config_non_string_values_are_left_alone() -> None:
    raw = {"providers": [provider(timeout_s=7)]}

    assert parse_routing_config(raw, {}).providers[0].timeout_s == 7.0


def test_parse_routing_config_unset_variable_names_the_field_and_variable() -> None:
    raw = {"providers": [provider(), provider("second", api_keys=["${SET}", "${MISSING_KEY}"])]}

    problems = problems_of(raw, {"SET": "k"})

    assert problems == ["providers[1].api_keys[1]: environment variable MISSING_KEY is not set"]


def test_parse_routing_config_unset_variables_are_reported_with_validation_errors() -> None:
    raw = {"providers": [provider(api_key="${OPENAI_API_KEY}", headers={"X-Org": "${ORG}"}, format="soap")]}

    problems = problems_of(raw)

    assert problems == [
        "providers[0].api_key: environment variable OPENAI_API_KEY is not set",
        "providers[0].headers.X-Org: environment variable ORG is not set",
        "providers[0].format: must be one of 'openai', 'anthropic', 'gemini', 'ollama' or 'responses'",
    ]


# No secrets in error messages


@pytest.mark.parametrize(
    "fields",
    [
        {"base_url": "${SECRET}"},
        {"base_url": "https://user:${SECRET}@[::1/v1"},
        {"models_url": "${SECRET}"},
        {"format": "${SECRET}"},
        {"timeout_s": "${SECRET}"},
        {"name": "${SECRET}+x"},
        {"api_keys": "${SECRET}"},
        {"headers": "${SECRET}"},
        {"models": [{"id": "m", "type": "${SECRET}"}]},
        {"models": "${SECRET}"},
        {"api_key": "${SECRET}", "api_keys": ["${SECRET}"]},
        {"api_keys": ["${SECRET}", ""]},
        {"api_key": "${SECRET}", "unknown": "${SECRET}"},
    ],
    ids=lambda fields: "+".join(fields),
)
def test_parse_routing_config_invalid_field_does_not_echo_interpolated_secret(fields: dict[str, Any]) -> None:
    problems = problems_of({"providers": [provider(**fields)]}, {"SECRET": SECRET})

    assert problems
    assert not [p for p in problems if SECRET in p]


def test_parse_routing_config_error_does_not_chain_the_validation_error() -> None:
    """pydantic's own ValidationError prints ``input_value=...``; it must not ride along as the cause."""
    with pytest.raises(ConfigError) as caught:
        parse_routing_config({"providers": [provider(timeout_s="${SECRET}")]}, {"SECRET": SECRET})

    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# Files


def test_load_routing_config_reads_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "polyroute.yaml"
    path.write_text(
        "providers:\n"
        "  - name: groq\n"
        "    format: openai\n"
        "    base_url: https://api.groq.com/openai/v1\n"
        "    api_key: ${GROQ_API_KEY}\n"
        "    models: [llama-3.3-70b-versatile, {id: whisper-large-v3, type: audio}]\n"
        "aliases:\n"
        "  fast: groq/llama-3.3-70b-versatile\n",
        encoding="utf-8",
    )

    config = load_routing_config(path, {"GROQ_API_KEY": "gsk-1"})

    assert config.providers[0].credentials == ("gsk-1",)
    assert config.providers[0].models == [
        ModelEntry(id="llama-3.3-70b-versatile"),
        ModelEntry(id="whisper-large-v3", type=ModelType.AUDIO),
    ]
    assert config.aliases == {"fast": "groq/llama-3.3-70b-versatile"}


def test_load_routing_config_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing configured yet\n", encoding="utf-8")

    assert load_routing_config(path, {}).providers == []


def test_load_routing_config_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("providers:\n  - name: [unclosed\n", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_routing_config(path, {})

    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"{path}: not valid YAML:")


def test_load_routing_config_list_document_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- name: openai\n", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_routing_config(path, {})

    assert caught.value.problems == ["(top level): must be a mapping with providers and aliases"]


def test_load_routing_config_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError) as caught:
        load_routing_config(path, {})

    assert caught.value.problems[0].startswith(f"{path}: cannot read:")


def test_load_routing_config_non_utf8_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"providers: []\n# caf\xe9\n")

    with pytest.raises(ConfigError) as caught:
        load_routing_config(path, {})

    assert caught.value.problems[0].startswith(f"{path}: cannot read:")


def test_load_routing_config_errors_carry_paths(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("providers:\n  - name: a\n    format: openai\n    base_url: nope\n", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_routing_config(path, {})

    assert caught.value.problems == ["providers[0].base_url: not a URL (expected http:// or https:// and a host)"]


@pytest.mark.parametrize(
    ("fallbacks", "problem"),
    [
        ({"smart": ["nowhere/x"]}, "fallbacks.smart[0]: 'nowhere/x' is neither an alias nor provider/model"),
        ({"smart": ["smart"]}, "fallbacks.smart[0]: a model cannot fall back to itself"),
    ],
)
def test_fallbacks_name_known_models(fallbacks: dict[str, list[str]], problem: str) -> None:
    raw = {
        "providers": [{"name": "p", "format": "openai", "base_url": "http://127.0.0.1:1/v1"}],
        "aliases": {"smart": "p/m"},
        "fallbacks": fallbacks,
    }
    with pytest.raises(ConfigError) as caught:
        parse_routing_config(raw, {})
    assert any(problem in line for line in caught.value.problems)
