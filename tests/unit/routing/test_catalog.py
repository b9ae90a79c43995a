"""The packaged catalog of well-known services, zero-config registration, and model-type guessing."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from polyroute.routing.catalog import CatalogEntry, guess_model_type, load_catalog, zero_config_providers
from polyroute.routing.config import ModelType, ProviderConfig
from polyroute.wire import WireFormat

CATALOG = load_catalog()
KEYLESS = [entry for entry in CATALOG if entry.is_keyless]


def by_name(found: list[tuple[ProviderConfig, str]]) -> dict[str, tuple[ProviderConfig, str]]:
    return {config.name: (config, reason) for config, reason in found}


# The packaged catalog


def test_load_catalog_has_entries() -> None:
    assert CATALOG
    assert all(isinstance(entry, CatalogEntry) for entry in CATALOG)


def test_load_catalog_names_are_unique() -> None:
    names = [entry.name for entry in CATALOG]

    assert len(names) == len(set(names))


def test_load_catalog_key_variables_are_unique() -> None:
    variables = [entry.key_env for entry in CATALOG]

    assert len(variables) == len(set(variables))


@pytest.mark.parametrize("entry", CATALOG, ids=lambda entry: entry.name)
def test_load_catalog_entry_urls_are_https(entry: CatalogEntry) -> None:
    for url in filter(None, (entry.base_url, entry.models_url)):
        parts = urlsplit(url)
        assert parts.scheme == "https"
        assert parts.hostname
        assert not parts.query
        assert not url.endswith("/")


@pytest.mark.parametrize("entry", CATALOG, ids=lambda entry: entry.name)
def test_load_catalog_entry_is_a_valid_provider(entry: CatalogEntry) -> None:
    config = ProviderConfig(
        name=entry.name, format=WireFormat.OPENAI, base_url=entry.base_url, models_url=entry.models_url
    )

    assert config.base_url == entry.base_url


@pytest.mark.parametrize("entry", CATALOG, ids=lambda entry: entry.name)
def test_load_catalog_key_variable_is_upper_case_identifier(entry: CatalogEntry) -> None:
    assert entry.key_env.isidentifier()
    assert entry.key_env == entry.key_env.upper()


def test_load_catalog_pollinations_is_the_keyless_service() -> None:
    assert [entry.name for entry in KEYLESS] == ["pollinations"]


# Zero-config registration


def test_zero_config_providers_nothing_set_registers_nothing() -> None:
    assert zero_config_providers({}, include_keyless=False) == []


def test_zero_config_providers_nothing_set_registers_only_keyless_services() -> None:
    found = by_name(zero_config_providers({}, include_keyless=True))

    assert list(found) == ["pollinations"]
    config, reason = found["pollinations"]
    assert config.credentials == ()
    assert reason == "keyless service, registered by default"


@pytest.mark.parametrize("entry", CATALOG, ids=lambda entry: entry.name)
def test_zero_config_providers_key_variable_set_registers_that_service(entry: CatalogEntry) -> None:
    found = zero_config_providers({entry.key_env: "  secret-key-value \n"}, include_keyless=False)

    assert len(found) == 1
    config, reason = found[0]
    assert config.name == entry.name
    assert config.format is WireFormat.OPENAI
    assert config.base_url == entry.base_url
    assert config.models_url == entry.models_url
    assert config.credentials == ("secret-key-value",)
    assert reason == f"environment variable {entry.key_env} is set"


def test_zero_config_providers_reason_names_the_variable_not_the_key() -> None:
    found = zero_config_providers({"GROQ_API_KEY": "gsk-verysecret"}, include_keyless=False)

    assert [reason for _, reason in found] == ["environment variable GROQ_API_KEY is set"]
    assert "gsk-verysecret" not in found[0][1]


@pytest.mark.parametrize("value", ["", "   ", "\n"], ids=repr)
def test_zero_config_providers_blank_variable_registers_nothing(value: str) -> None:
    assert zero_config_providers({"OPENAI_API_KEY": value}, include_keyless=False) == []


def test_zero_config_providers_unrelated_variables_are_ignored() -> None:
    environ = {"OPENAI_KEY": "x", "PATH": "/usr/bin", "openai_api_key": "lower"}

    assert zero_config_providers(environ, include_keyless=False) == []


def test_zero_config_providers_several_keys_register_in_catalog_order() -> None:
    environ = {"OPENROUTER_API_KEY": "or", "OPENAI_API_KEY": "oa", "GITHUB_TOKEN": "gh"}

    found = zero_config_providers(environ, include_keyless=True)

    catalog_order = [entry.name for entry in CATALOG]
    names = [config.name for config, _ in found]
    assert names == sorted(names, key=catalog_order.index)
    assert set(names) == {"openai", "openrouter", "github", "pollinations"}


def test_zero_config_providers_keyless_service_with_key_uses_it() -> None:
    found = by_name(zero_config_providers({"POLLINATIONS_API_KEY": "pk"}, include_keyless=False))

    config, reason = found["pollinations"]
    assert config.credentials == ("pk",)
    assert reason == "environment variable POLLINATIONS_API_KEY is set"


def test_zero_config_providers_keyless_excluded_when_not_included() -> None:
    found = zero_config_providers({"OPENAI_API_KEY": "k"}, include_keyless=False)

    assert [config.name for config, _ in found] == ["openai"]


def test_zero_config_providers_github_gets_its_models_url() -> None:
    found = by_name(zero_config_providers({"GITHUB_TOKEN": "ghp"}, include_keyless=False))

    assert found["github"][0].models_url == "https://models.github.ai/catalog/models"


# Model-type guessing


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("text-embedding-3-small", ModelType.EMBEDDING),
        ("text-embedding-ada-002", ModelType.EMBEDDING),
        ("mistral-embed", ModelType.EMBEDDING),
        ("nomic-embed-text", ModelType.EMBEDDING),
        ("BAAI/bge-large-en-v1.5", ModelType.EMBEDDING),
        ("intfloat/multilingual-e5-large", ModelType.EMBEDDING),
        ("thenlper/gte-large", ModelType.EMBEDDING),
        ("sentence-transformers/all-MiniLM-L6-v2", ModelType.EMBEDDING),
        ("whisper-1", ModelType.AUDIO),
        ("whisper-large-v3-turbo", ModelType.AUDIO),
        ("gpt-4o-mini-transcribe", ModelType.AUDIO),
        ("tts-1-hd", ModelType.AUDIO),
        ("gpt-4o-mini-tts", ModelType.AUDIO),
        ("playai-tts", ModelType.AUDIO),
        ("voxtral-mini-latest", ModelType.AUDIO),
        ("speech-02-hd", ModelType.AUDIO),
        ("gpt-4o-audio-preview", ModelType.AUDIO),
        ("nova-3", ModelType.AUDIO),
        ("eleven_multilingual_v2", ModelType.AUDIO),
        ("sora", ModelType.VIDEO),
        ("sora-2-pro", ModelType.VIDEO),
        ("veo-3.0-generate-preview", ModelType.VIDEO),
        ("seedance-1-pro", ModelType.VIDEO),
        ("kling-v2", ModelType.VIDEO),
        ("wan2.1-t2v", ModelType.VIDEO),
        ("wan-2.2-t2v", ModelType.VIDEO),
        ("minimax-video-01", ModelType.VIDEO),
        ("dall-e-3", ModelType.IMAGE),
        ("gpt-image-1", ModelType.IMAGE),
        ("flux", ModelType.IMAGE),
        ("black-forest-labs/FLUX.1-schnell", ModelType.IMAGE),
        ("imagen-4.0-generate-001", ModelType.IMAGE),
        ("stable-diffusion-xl-base-1.0", ModelType.IMAGE),
        ("sdxl-lightning", ModelType.IMAGE),
        ("sd3-medium", ModelType.IMAGE),
        ("flux-kontext-pro", ModelType.IMAGE),
        ("seedream-3", ModelType.IMAGE),
        ("kontext-max", ModelType.IMAGE),
        ("turbo-img", ModelType.IMAGE),
        ("gemini-2.5-flash-image-preview", ModelType.IMAGE),
        ("gpt-4o", ModelType.TEXT),
        ("gpt-4o-mini", ModelType.TEXT),
        ("llama-3.3-70b", ModelType.TEXT),
        ("llama-3.3-70b-versatile", ModelType.TEXT),
        ("meta-llama/llama-3.3-70b-instruct:free", ModelType.TEXT),
        ("claude-sonnet-4-5", ModelType.TEXT),
        ("gemini-2.5-pro", ModelType.TEXT),
        ("deepseek-r1", ModelType.TEXT),
        ("qwen-2.5-72b-instruct", ModelType.TEXT),
        ("mistral-large-latest", ModelType.TEXT),
        ("o3-mini", ModelType.TEXT),
        ("", ModelType.TEXT),
    ],
)
def test_guess_model_type_by_id(model_id: str, expected: ModelType) -> None:
    assert guess_model_type(model_id) is expected


def test_guess_model_type_ignores_case() -> None:
    assert guess_model_type("DALL-E-3") is ModelType.IMAGE
    assert guess_model_type("Whisper-1") is ModelType.AUDIO


def test_guess_model_type_first_pattern_wins() -> None:
    """An id that mentions two kinds is classified by the earlier pattern (embedding before image)."""
    assert guess_model_type("image-embedding-v1") is ModelType.EMBEDDING
