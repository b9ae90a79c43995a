"""RoutingTable: resolves a requested model name to a deployment (provider + upstream model).

A table is immutable; discovery and admin edits build a new one and swap it in ``LiveRoutingTable``.
Resolution order: an alias; ``provider/model`` for a model that provider lists, or for any model
of a provider whose list is unknown; then a bare model id that some provider lists (the first in
config order wins).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from polyroute.errors import InvalidRequestError, ModelNotFoundError
from polyroute.routing.catalog import guess_model_type
from polyroute.routing.combos import Combo
from polyroute.routing.config import ModelType, ProviderConfig, RouteOptions, RoutingOptions
from polyroute.upstream.client import UpstreamTarget
from polyroute.wire import MediaApi

_MAX_CACHED_DEPLOYMENTS = 10_000

DiscoveryStatus = Literal["configured", "ok", "pending", "unreachable"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """A model one provider serves."""

    id: str
    """The upstream's own id."""
    provider: str
    type: ModelType
    context_length: int | None = None
    """The model's context window in tokens, when the routing file says."""
    capabilities: frozenset[str] | None = None
    """``tools``, ``vision``, ``reasoning``, ``json`` as the routing file declares them; None when unknown."""

    @property
    def qualified_id(self) -> str:
        """``provider/model``, the name that always routes here."""
        return f"{self.provider}/{self.id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderState:
    """A registered provider: its config, how to reach it, what it serves, and why it is here."""

    config: ProviderConfig
    target: UpstreamTarget
    source: str
    """Why it was registered: ``config file``, an environment variable, a local server found, a default."""
    models: tuple[ModelInfo, ...] | None
    """None while the list is unknown (discovery pending or failed); such a provider still routes."""
    status: DiscoveryStatus
    detail: str | None = None

    @property
    def name(self) -> str:
        """The provider's name, the prefix of its models."""
        return self.config.name

    def with_models(self, ids: Iterable[str], *, images: Iterable[str] = ()) -> ProviderState:
        """The same provider with a freshly listed set of models (``images``: ones its media API lists apart)."""
        typed = {i: guess_model_type(i) for i in ids}
        typed.update((i, ModelType.IMAGE) for i in images if i not in typed)
        models = tuple(ModelInfo(id=i, provider=self.name, type=t) for i, t in typed.items())
        return dataclasses.replace(self, models=models, status="ok", detail=None)

    def unreachable(self, detail: str) -> ProviderState:
        """The same provider, marked as not answering its model list."""
        return dataclasses.replace(self, status="unreachable", detail=detail)


AUDIO_ONLY_APIS = frozenset({MediaApi.DEEPGRAM, MediaApi.ASSEMBLYAI})
"""Media APIs that serve nothing but audio: their models are audio models unless the config says otherwise."""


def configured_models(config: ProviderConfig) -> tuple[ModelInfo, ...] | None:
    """The models a provider's config lists, with their types; None when it lists none."""
    if config.models is None:
        return None
    audio_only = config.effective_media_api in AUDIO_ONLY_APIS
    return tuple(
        ModelInfo(
            id=m.id,
            provider=config.name,
            type=m.type or (ModelType.AUDIO if audio_only else guess_model_type(m.id)),
            context_length=m.context_length,
            capabilities=frozenset(m.capabilities) if m.capabilities is not None else None,
        )
        for m in config.models
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingPolicy:
    """The routing file's rules beyond name resolution: combos, per-alias options, global options."""

    combos: Mapping[str, Combo]
    alias_options: Mapping[str, RouteOptions]
    options: RoutingOptions


DEFAULT_POLICY = RoutingPolicy(combos={}, alias_options={}, options=RoutingOptions())


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where one request goes: a provider's target and the upstream model id."""

    provider: str
    model: str
    target: UpstreamTarget
    kind: ModelType | None = dataclasses.field(default=None, compare=False)
    """What the model produces (None: guessed from its id when first asked)."""
    label: str = dataclasses.field(init=False, compare=False)
    """``provider/model`` (built once: the request path reads it several times)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.provider}/{self.model}")
        if self.kind is None:
            object.__setattr__(self, "kind", guess_model_type(self.model))


class RoutingTable:
    """Immutable name → deployment resolution over the registered providers."""

    def __init__(
        self,
        providers: Sequence[ProviderState],
        aliases: Mapping[str, str],
        fallbacks: Mapping[str, Sequence[str]] | None = None,
        policy: RoutingPolicy = DEFAULT_POLICY,
    ) -> None:
        self.providers = tuple(providers)
        self.policy = policy
        self.aliases = dict(aliases)
        self.fallbacks = {name: tuple(targets) for name, targets in (fallbacks or {}).items()}
        self._by_name = {p.name: p for p in self.providers}
        self._deployments: dict[tuple[str, str], Deployment] = {}
        self._qualified: dict[str, Deployment] = {}
        self._bare: dict[str, Deployment] = {}
        self._by_model: dict[str, list[Deployment]] = {}
        self._types: dict[tuple[str, str], ModelType] = {}
        for provider in self.providers:
            for model in provider.models or ():
                self._types[(provider.name, model.id)] = model.type
                deployment = self._deployment(provider, model.id)
                self._qualified[model.qualified_id] = deployment
                self._bare.setdefault(model.id, deployment)
                self._by_model.setdefault(model.id, []).append(deployment)
        self._alias_targets = {
            alias: self._deployment(self._by_name[p], m)
            for alias, (p, _, m) in ((a, t.partition("/")) for a, t in self.aliases.items())
            if p in self._by_name
        }

    def provider(self, name: str) -> ProviderState | None:
        """A registered provider by name."""
        return self._by_name.get(name)

    def replace_provider(self, state: ProviderState) -> RoutingTable:
        """A new table with one provider's state replaced (or added at the end)."""
        providers = [state if p.name == state.name else p for p in self.providers]
        if state.name not in self._by_name:
            providers.append(state)
        return RoutingTable(providers, self.aliases, self.fallbacks, self.policy)

    def with_policy(self, policy: RoutingPolicy) -> RoutingTable:
        """A new table with other combos or options (the providers and their lists unchanged)."""
        return RoutingTable(self.providers, self.aliases, self.fallbacks, policy)

    def models(self) -> list[ModelInfo]:
        """Every known model, in config order."""
        return [m for p in self.providers for m in p.models or ()]

    def resolve(self, name: str, *, provider: str | None = None) -> Deployment:
        """The deployment for a requested model name, optionally pinned to one provider.

        Raises:
            ModelNotFoundError: the name matches nothing; the message lists close matches.
            InvalidRequestError: the name belongs to another provider than the pinned one.
        """
        if provider is not None:
            return self._resolve_pinned(name, provider)
        found = self._alias_targets.get(name) or self._qualified.get(name)
        if found is not None:
            return found
        prefix, sep, model = name.partition("/")
        state = self._by_name.get(prefix) if sep and model else None
        if state is not None and state.models is None:
            return self._deployment(state, model)  # list unknown: the upstream decides
        found = self._bare.get(name)
        if found is None:
            raise self._not_found(name)
        return found

    def alternatives(self, deployment: Deployment) -> list[Deployment]:
        """The same model served by other providers, in config order (the default fallback scope)."""
        return [d for d in self._by_model.get(deployment.model, ()) if d.provider != deployment.provider]

    def model_type(self, deployment: Deployment) -> ModelType:
        """What the deployment's model produces (guessed from its id when no list says)."""
        return deployment.kind or guess_model_type(deployment.model)

    def deployment_of(self, model: ModelInfo) -> Deployment | None:
        """The deployment serving a listed model (None for a provider no longer registered)."""
        state = self._by_name.get(model.provider)
        return self._deployment(state, model.id) if state is not None else None

    def _resolve_pinned(self, name: str, provider: str) -> Deployment:
        state = self._by_name.get(provider)
        if state is None:
            raise InvalidRequestError(
                f"unknown provider {provider!r}; known: {', '.join(self._by_name) or 'none'}", param="provider"
            )
        alias = self._alias_targets.get(name)
        if alias is not None:
            if alias.provider != provider:
                raise _wrong_provider(name, alias.provider, provider)
            return alias
        found = self._qualified.get(f"{provider}/{name}")
        if found is not None:
            return found
        prefix, sep, model = name.partition("/")
        if sep and model and prefix in self._by_name:
            if prefix != provider:
                raise _wrong_provider(name, prefix, provider)
            name = model
        return self._checked(state, name, f"{provider}/{name}")

    def _checked(self, state: ProviderState, model: str, requested: str) -> Deployment:
        # A provider whose list is unknown still routes; the upstream decides.
        if state.models is not None and not any(m.id == model for m in state.models):
            raise self._not_found(requested)
        return self._deployment(state, model)

    def _deployment(self, state: ProviderState, model: str) -> Deployment:
        key = (state.name, model)
        found = self._deployments.get(key)
        if found is None:
            found = Deployment(state.name, model, state.target, self._types.get(key))
            # Names of unlisted models come from clients: cache a bounded number of them.
            if len(self._deployments) < _MAX_CACHED_DEPLOYMENTS:
                self._deployments[key] = found
        return found

    def not_found(self, name: str) -> ModelNotFoundError:
        """The 404 for a name that matches nothing, listing close matches."""
        return self._not_found(name)

    def _not_found(self, name: str) -> ModelNotFoundError:
        candidates = [*self.aliases, *self.policy.combos, *(m.qualified_id for m in self.models()), *self._bare]
        close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; GET /v1/models lists what is available"
        return ModelNotFoundError(f"The model {name!r} does not exist{hint}", param="model")


def _wrong_provider(name: str, owner: str, pinned: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"model {name!r} belongs to provider {owner!r}, not to the requested provider {pinned!r}", param="model"
    )


class LiveRoutingTable:
    """Holds the current table; readers take ``current`` once per request, writers swap it whole."""

    __slots__ = ("current",)

    def __init__(self, table: RoutingTable) -> None:
        self.current = table
