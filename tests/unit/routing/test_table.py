"""RoutingTable: how a requested model name becomes a deployment, pinned or not, and how tables are replaced."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from polyroute.errors import InvalidRequestError, ModelNotFoundError
from polyroute.routing.config import ModelType, ProviderConfig
from polyroute.routing.discovery import make_target
from polyroute.routing.table import (
    Deployment,
    LiveRoutingTable,
    ModelInfo,
    ProviderState,
    RoutingTable,
    configured_models,
)
from polyroute.upstream.client import Timeouts

TIMEOUTS = Timeouts(connect_s=1.0, first_byte_s=2.0, stream_idle_s=3.0, total_s=4.0)


def state(name: str, models: Sequence[Any] | None = None, **fields: Any) -> ProviderState:
    """A registered provider; ``models=None`` means its list is unknown."""
    config = ProviderConfig(name=name, format="openai", base_url=f"https://{name}.example/v1", models=models, **fields)
    listed = configured_models(config)
    return ProviderState(
        config=config,
        target=make_target(config, TIMEOUTS),
        source="config file",
        models=listed,
        status="configured" if listed is not None else "pending",
    )


def table(*providers: ProviderState, aliases: Mapping[str, str] | None = None) -> RoutingTable:
    return RoutingTable(providers, aliases or {})


def where(deployment: Deployment) -> tuple[str, str]:
    return deployment.provider, deployment.model


@pytest.fixture
def routes() -> RoutingTable:
    return table(
        state("openai", ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]),
        state("groq", ["llama-3.3-70b-versatile", "gpt-4o-mini"]),
        state("openrouter", ["meta-llama/llama-3.3-70b-instruct:free", "deepseek/deepseek-r1"]),
        state("local", None),
        aliases={"fast": "groq/llama-3.3-70b-versatile", "gpt-4o": "openrouter/deepseek/deepseek-r1"},
    )


# Unpinned resolution


def test_resolve_alias_routes_to_its_target(routes: RoutingTable) -> None:
    assert where(routes.resolve("fast")) == ("groq", "llama-3.3-70b-versatile")


def test_resolve_alias_shadows_a_bare_model_id(routes: RoutingTable) -> None:
    assert where(routes.resolve("gpt-4o")) == ("openrouter", "deepseek/deepseek-r1")


def test_resolve_bare_id_listed_twice_goes_to_first_provider_in_config_order(routes: RoutingTable) -> None:
    assert where(routes.resolve("gpt-4o-mini")) == ("openai", "gpt-4o-mini")


def test_resolve_bare_id_order_follows_config_not_names() -> None:
    routes = table(state("zeta", ["m"]), state("alpha", ["m"]))

    assert where(routes.resolve("m")) == ("zeta", "m")


def test_resolve_provider_slash_model_picks_that_provider(routes: RoutingTable) -> None:
    assert where(routes.resolve("groq/gpt-4o-mini")) == ("groq", "gpt-4o-mini")


def test_resolve_provider_slash_model_reaches_model_shadowed_by_alias(routes: RoutingTable) -> None:
    assert where(routes.resolve("openai/gpt-4o")) == ("openai", "gpt-4o")


def test_resolve_model_id_with_slash_bare(routes: RoutingTable) -> None:
    assert where(routes.resolve("meta-llama/llama-3.3-70b-instruct:free")) == (
        "openrouter",
        "meta-llama/llama-3.3-70b-instruct:free",
    )


def test_resolve_model_id_with_slash_prefixed(routes: RoutingTable) -> None:
    assert where(routes.resolve("openrouter/meta-llama/llama-3.3-70b-instruct:free")) == (
        "openrouter",
        "meta-llama/llama-3.3-70b-instruct:free",
    )


def test_resolve_qualified_name_wins_over_same_bare_id_of_another_provider() -> None:
    """Module docstring: alias, then ``provider/model``, then bare; ``qualified_id`` "always routes here"."""
    routes = table(state("openai", ["gpt-4o"]), state("openrouter", ["openai/gpt-4o"]))

    assert where(routes.resolve("openai/gpt-4o")) == ("openai", "gpt-4o")


def test_resolve_unknown_models_provider_forwards_any_prefixed_name(routes: RoutingTable) -> None:
    assert where(routes.resolve("local/anything:7b")) == ("local", "anything:7b")
    assert where(routes.resolve("local/org/model")) == ("local", "org/model")


def test_resolve_unknown_models_provider_does_not_claim_bare_names(routes: RoutingTable) -> None:
    with pytest.raises(ModelNotFoundError):
        routes.resolve("anything:7b")


def test_resolve_listed_provider_rejects_unlisted_model(routes: RoutingTable) -> None:
    with pytest.raises(ModelNotFoundError, match="'groq/gpt-4o'"):
        routes.resolve("groq/gpt-4o")


@pytest.mark.parametrize("name", ["", "/", "openai/", "/gpt-4o", "nobody/gpt-4o", "gpt-5-ultra"])
def test_resolve_unknown_name_raises_model_not_found(routes: RoutingTable, name: str) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        routes.resolve(name)

    assert caught.value.param == "model"
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"


def test_resolve_unknown_model_message_lists_close_matches(routes: RoutingTable) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        routes.resolve("gpt-4o-mimi")

    message = caught.value.message
    assert message.startswith("The model 'gpt-4o-mimi' does not exist; did you mean ")
    assert "gpt-4o-mini" in message
    assert "openai/gpt-4o-mini" in message


def test_resolve_unknown_model_close_matches_include_aliases(routes: RoutingTable) -> None:
    with pytest.raises(ModelNotFoundError, match="did you mean .*fast"):
        routes.resolve("fats")


def test_resolve_nothing_close_points_to_model_list(routes: RoutingTable) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        routes.resolve("zzzzzzzzzzzzzzzzzz")

    assert caught.value.message.endswith("; GET /v1/models lists what is available")


def test_resolve_on_empty_table_raises_model_not_found() -> None:
    with pytest.raises(ModelNotFoundError):
        table().resolve("gpt-4o")


def test_resolve_alias_to_unregistered_provider_is_not_found() -> None:
    routes = table(state("openai", ["gpt-4o"]), aliases={"fast": "groq/llama"})

    with pytest.raises(ModelNotFoundError):
        routes.resolve("fast")


def test_resolve_alias_to_unlisted_model_still_routes() -> None:
    routes = table(state("openai", ["gpt-4o"]), aliases={"next": "openai/gpt-5"})

    assert where(routes.resolve("next")) == ("openai", "gpt-5")


# Pinned resolution


def test_resolve_pinned_bare_name_gets_the_prefix(routes: RoutingTable) -> None:
    assert where(routes.resolve("gpt-4o-mini", provider="groq")) == ("groq", "gpt-4o-mini")


def test_resolve_pinned_prefixed_name_of_same_provider(routes: RoutingTable) -> None:
    assert where(routes.resolve("groq/gpt-4o-mini", provider="groq")) == ("groq", "gpt-4o-mini")


def test_resolve_pinned_alias_of_same_provider(routes: RoutingTable) -> None:
    assert where(routes.resolve("fast", provider="groq")) == ("groq", "llama-3.3-70b-versatile")


def test_resolve_pinned_alias_of_other_provider_is_invalid(routes: RoutingTable) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        routes.resolve("fast", provider="openai")

    assert caught.value.param == "model"
    assert "'groq'" in caught.value.message
    assert "'openai'" in caught.value.message


def test_resolve_pinned_prefixed_name_of_other_provider_is_invalid(routes: RoutingTable) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        routes.resolve("openai/gpt-4o-mini", provider="groq")

    assert caught.value.param == "model"
    assert caught.value.status_code == 400


def test_resolve_pinned_unknown_provider_is_invalid(routes: RoutingTable) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        routes.resolve("gpt-4o", provider="azure")

    assert caught.value.param == "provider"
    assert caught.value.message == "unknown provider 'azure'; known: openai, groq, openrouter, local"


def test_resolve_pinned_unknown_provider_on_empty_table_says_none() -> None:
    with pytest.raises(InvalidRequestError, match="known: none"):
        table().resolve("gpt-4o", provider="openai")


def test_resolve_pinned_model_id_with_slash(routes: RoutingTable) -> None:
    deployment = routes.resolve("meta-llama/llama-3.3-70b-instruct:free", provider="openrouter")

    assert where(deployment) == ("openrouter", "meta-llama/llama-3.3-70b-instruct:free")


def test_resolve_pinned_listed_id_whose_prefix_names_another_provider() -> None:
    routes = table(state("openai", ["gpt-4o"]), state("openrouter", ["openai/gpt-4o"]))

    assert where(routes.resolve("openai/gpt-4o", provider="openrouter")) == ("openrouter", "openai/gpt-4o")


def test_resolve_pinned_unlisted_model_is_not_found(routes: RoutingTable) -> None:
    with pytest.raises(ModelNotFoundError, match="'groq/text-embedding-3-small'"):
        routes.resolve("text-embedding-3-small", provider="groq")


def test_resolve_pinned_unknown_models_provider_forwards_bare_name(routes: RoutingTable) -> None:
    assert where(routes.resolve("qwen3:8b", provider="local")) == ("local", "qwen3:8b")


# Deployments


def test_resolve_repeated_returns_the_same_deployment_object(routes: RoutingTable) -> None:
    first = routes.resolve("gpt-4o-mini")

    assert routes.resolve("gpt-4o-mini") is first
    assert routes.resolve("openai/gpt-4o-mini") is first
    assert routes.resolve("gpt-4o-mini", provider="openai") is first


def test_resolve_alias_and_qualified_name_share_the_deployment(routes: RoutingTable) -> None:
    assert routes.resolve("fast") is routes.resolve("groq/llama-3.3-70b-versatile")


def test_resolve_unlisted_names_are_reused_too(routes: RoutingTable) -> None:
    assert routes.resolve("local/a") is routes.resolve("local/a")


def test_deployment_carries_provider_target_and_label(routes: RoutingTable) -> None:
    deployment = routes.resolve("groq/gpt-4o-mini")

    assert deployment.target is routes.provider("groq").target  # type: ignore[union-attr]
    assert deployment.label == "groq/gpt-4o-mini"


# Table contents and replacement


def test_models_lists_every_known_model_in_config_order(routes: RoutingTable) -> None:
    assert [m.qualified_id for m in routes.models()] == [
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "openai/text-embedding-3-small",
        "groq/llama-3.3-70b-versatile",
        "groq/gpt-4o-mini",
        "openrouter/meta-llama/llama-3.3-70b-instruct:free",
        "openrouter/deepseek/deepseek-r1",
    ]


def test_provider_lookup_by_name(routes: RoutingTable) -> None:
    assert routes.provider("groq") is routes.providers[1]
    assert routes.provider("azure") is None


def test_replace_provider_returns_new_table_and_leaves_old_unchanged(routes: RoutingTable) -> None:
    old_local = routes.provider("local")
    assert old_local is not None

    new = routes.replace_provider(old_local.with_models(["qwen3:8b"]))

    assert new is not routes
    assert [p.name for p in new.providers] == ["openai", "groq", "openrouter", "local"]
    assert where(new.resolve("qwen3:8b")) == ("local", "qwen3:8b")
    assert routes.provider("local") is old_local
    assert old_local.models is None
    with pytest.raises(ModelNotFoundError):
        routes.resolve("qwen3:8b")
    assert new.aliases == routes.aliases


def test_replace_provider_new_list_makes_old_models_unroutable(routes: RoutingTable) -> None:
    groq = routes.provider("groq")
    assert groq is not None

    new = routes.replace_provider(groq.with_models(["mixtral-8x7b"]))

    with pytest.raises(ModelNotFoundError):
        new.resolve("groq/gpt-4o-mini")
    assert where(routes.resolve("groq/gpt-4o-mini")) == ("groq", "gpt-4o-mini")


def test_replace_provider_unknown_name_is_added_at_the_end(routes: RoutingTable) -> None:
    new = routes.replace_provider(state("ollama", ["llama3.2"]))

    assert [p.name for p in new.providers][-1] == "ollama"
    assert len(routes.providers) == 4
    assert where(new.resolve("ollama/llama3.2")) == ("ollama", "llama3.2")


def test_live_routing_table_swaps_whole_tables(routes: RoutingTable) -> None:
    live = LiveRoutingTable(routes)
    replaced = routes.replace_provider(state("extra", ["x"]))

    live.current = replaced

    assert live.current is replaced


# ProviderState


def test_with_models_dedups_keeping_first_order() -> None:
    updated = state("local", None).with_models(["b", "a", "b", "c", "a"])

    assert [m.id for m in updated.models or ()] == ["b", "a", "c"]


def test_with_models_guesses_types_and_marks_ok() -> None:
    pending = state("local", None).unreachable("connection refused")

    updated = pending.with_models(["llama3.2", "nomic-embed-text", "whisper-1", "flux-schnell", "sora-2"])

    assert updated.status == "ok"
    assert updated.detail is None
    assert updated.models == (
        ModelInfo(id="llama3.2", provider="local", type=ModelType.TEXT),
        ModelInfo(id="nomic-embed-text", provider="local", type=ModelType.EMBEDDING),
        ModelInfo(id="whisper-1", provider="local", type=ModelType.AUDIO),
        ModelInfo(id="flux-schnell", provider="local", type=ModelType.IMAGE),
        ModelInfo(id="sora-2", provider="local", type=ModelType.VIDEO),
    )


def test_with_models_leaves_original_state_unchanged() -> None:
    original = state("local", None)

    original.with_models(["a"])

    assert original.models is None
    assert original.status == "pending"


def test_with_models_empty_list_is_known_and_empty() -> None:
    updated = state("local", None).with_models([])

    assert updated.models == ()
    with pytest.raises(ModelNotFoundError):
        table(updated).resolve("local/anything")


def test_unreachable_keeps_models_and_records_detail() -> None:
    listed = state("openai", ["gpt-4o"])

    down = listed.unreachable("timed out")

    assert (down.status, down.detail, down.models) == ("unreachable", "timed out", listed.models)


def test_configured_models_uses_explicit_type_over_guess() -> None:
    config = ProviderConfig(
        name="p",
        format="openai",
        base_url="https://p.example",
        models=["gpt-image-1", {"id": "gpt-image-1-chat", "type": "text"}],
    )

    assert configured_models(config) == (
        ModelInfo(id="gpt-image-1", provider="p", type=ModelType.IMAGE),
        ModelInfo(id="gpt-image-1-chat", provider="p", type=ModelType.TEXT),
    )


def test_configured_models_none_when_config_lists_none() -> None:
    assert configured_models(ProviderConfig(name="p", format="openai", base_url="https://p.example")) is None


def test_model_info_qualified_id_prefixes_provider() -> None:
    assert ModelInfo(id="org/m:free", provider="or", type=ModelType.TEXT).qualified_id == "or/org/m:free"


def test_models_of_audio_only_media_apis_are_audio_models_unless_the_config_says_otherwise() -> None:
    from polyroute.routing.config import ModelType, ProviderConfig
    from polyroute.routing.table import configured_models

    def types(media_api: str) -> list[ModelType]:
        config = ProviderConfig.model_validate(
            {
                "name": "p",
                "format": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "media_api": media_api,
                "models": ["best", "nano", {"id": "helper", "type": "text"}],
            }
        )
        return [m.type for m in configured_models(config) or ()]

    assert types("assemblyai") == [ModelType.AUDIO, ModelType.AUDIO, ModelType.TEXT]
    assert types("deepgram") == [ModelType.AUDIO, ModelType.AUDIO, ModelType.TEXT]
    assert types("openai") == [ModelType.TEXT, ModelType.TEXT, ModelType.TEXT]
