"""The composition root's own logic: which secrets the log redaction learns."""

from __future__ import annotations

from pydantic import SecretStr

from polyroute.app import secrets_of
from polyroute.routing.config import parse_routing_config
from polyroute.settings import Settings


def test_secrets_of_zero_config_includes_catalog_keys_from_the_environment() -> None:
    settings = Settings(admin_key=SecretStr("admin-secret"), pollinations=False)

    found = secrets_of(settings, None, {"GROQ_API_KEY": "gsk-zero-config", "UNRELATED": "not-a-key"})

    assert sorted(found) == ["admin-secret", "gsk-zero-config"]


def test_secrets_of_routing_file_includes_every_credential() -> None:
    routing = parse_routing_config(
        {
            "providers": [
                {"name": "a", "format": "openai", "base_url": "http://127.0.0.1:1/v1", "api_keys": ["k1", "k2"]},
                {"name": "b", "format": "openai", "base_url": "http://127.0.0.1:1/v1", "api_key": "${B_KEY}"},
            ]
        },
        {"B_KEY": "k3"},
    )

    found = secrets_of(Settings(pollinations=False), routing, {"GROQ_API_KEY": "ignored-with-a-file"})

    assert sorted(found) == ["k1", "k2", "k3"]
