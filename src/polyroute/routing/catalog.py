"""The built-in catalog of well-known services (``catalog.yaml``) and model-type guessing.

Zero-config mode registers every catalog service whose key variable is set, plus keyless ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import yaml

from polyroute.routing.config import ModelType, ProviderConfig
from polyroute.wire import MediaApi, WireFormat

# First match wins; anything unmatched is a text model.
_TYPE_PATTERNS: tuple[tuple[re.Pattern[str], ModelType], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), model_type)
    for pattern, model_type in (
        (r"embed|bge-|e5-|gte-|nomic-embed|minilm", ModelType.EMBEDDING),
        (r"whisper|transcri|tts|speech|audio|voxtral|nova-\d|^eleven", ModelType.AUDIO),
        (r"sora|veo|video|seedance|kling|wan-?2", ModelType.VIDEO),
        (r"dall-e|gpt-image|flux|imagen|stable-diffusion|sdxl|sd3|image|kontext|seedream|turbo-img", ModelType.IMAGE),
    )
)


def guess_model_type(model_id: str) -> ModelType:
    """What a model produces, guessed from its id when config does not say."""
    for pattern, model_type in _TYPE_PATTERNS:
        if pattern.search(model_id):
            return model_type
    return ModelType.TEXT


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogEntry:
    """A service zero-config mode knows how to reach."""

    name: str
    base_url: str
    key_env: str
    models_url: str | None = None
    is_keyless: bool = False
    stream_usage: bool = True
    media_api: MediaApi | None = None


def load_catalog() -> tuple[CatalogEntry, ...]:
    """Read the packaged catalog."""
    text = resources.files("polyroute.routing").joinpath("catalog.yaml").read_text(encoding="utf-8")
    return tuple(
        CatalogEntry(
            name=item["name"],
            base_url=item["base_url"],
            key_env=item["key_env"],
            models_url=item.get("models_url"),
            is_keyless=bool(item.get("keyless", False)),
            stream_usage=bool(item.get("stream_usage", True)),
            media_api=MediaApi(item["media_api"]) if item.get("media_api") else None,
        )
        for item in yaml.safe_load(text)
    )


def zero_config_providers(environ: Mapping[str, str], *, include_keyless: bool) -> list[tuple[ProviderConfig, str]]:
    """Catalog services to register, each with the reason it was registered."""
    found: list[tuple[ProviderConfig, str]] = []
    for entry in load_catalog():
        key = environ.get(entry.key_env, "").strip()
        if key:
            reason = f"environment variable {entry.key_env} is set"
        elif entry.is_keyless and include_keyless:
            reason = "keyless service, registered by default"
        else:
            continue
        config = ProviderConfig(
            name=entry.name,
            format=WireFormat.OPENAI,
            base_url=entry.base_url,
            api_key=key or None,
            models_url=entry.models_url,
            stream_usage=entry.stream_usage,
            media_api=entry.media_api,
        )
        found.append((config, reason))
    return found
