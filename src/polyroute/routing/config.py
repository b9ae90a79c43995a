"""The routing file (YAML): providers, their credentials and models, aliases, combos, fallbacks, prices, options.

``load_routing_config(path, environ)`` reads and validates it. Every problem is reported with its
path (``providers[2].base_url: not a URL``); unknown keys are errors. ``${VAR}`` and
``${VAR:-default}`` in string values are replaced from the environment mapping passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from polyroute.errors import ConfigError
from polyroute.routing.combos import FallbackScope as FallbackScope
from polyroute.routing.combos import Strategy as Strategy
from polyroute.routing.combos import find_cycle
from polyroute.wire import MEDIA_API_OF_FORMAT, MediaApi, WireFormat

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ModelType(StrEnum):
    """What a model produces; decides which endpoints may call it."""

    TEXT = "text"
    IMAGE = "image"
    EMBEDDING = "embedding"
    AUDIO = "audio"
    VIDEO = "video"


class CredentialStrategy(StrEnum):
    """Which of a provider's keys a request uses."""

    FILL_FIRST = "fill-first"
    """The first key that is not resting (after a 429 or a rejected key), in configured order."""
    ROUND_ROBIN = "round-robin"
    """The next key in turn, skipping resting ones."""


Capability = Literal["tools", "vision", "reasoning", "json"]
AttemptCount = Annotated[int, Field(ge=1, le=20)]
"""How many deployments one request may try."""
_Name = Annotated[str, Field(min_length=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _problem(loc: tuple[str | int, ...], message: str, value: object = None) -> InitErrorDetails:
    """One validation problem at ``loc`` (relative to the model raising it), for ``_raise_problems``."""
    return {"type": PydanticCustomError("routing_config", "{detail}", {"detail": message}), "loc": loc, "input": value}


def _raise_problems(model: str, problems: list[InitErrorDetails]) -> None:
    # A ValidationError raised in a validator keeps each problem's path (pydantic prefixes the outer one).
    if problems:
        raise ValidationError.from_exception_data(model, problems)


class ModelEntry(_Frozen):
    """One model a provider serves."""

    id: Annotated[str, Field(min_length=1)]
    type: ModelType | None = None
    """None means: guessed from the id (see ``routing.catalog.guess_model_type``)."""
    context_length: Annotated[int, Field(gt=0)] | None = None
    """Tokens the model accepts (prompt and answer); None when unknown."""
    capabilities: list[Capability] | None = None
    """What the model can do; None when unknown (not the same as an empty list: none of them)."""


def _model_entry(value: object) -> object:
    return {"id": value} if isinstance(value, str) else value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not a URL (expected http:// or https:// and a host)")
    return value.rstrip("/")


class ProviderConfig(_Frozen):
    """One upstream provider: where it is, how to authenticate, what it serves."""

    name: Annotated[str, Field(pattern=_NAME, max_length=64)]
    format: WireFormat
    base_url: Annotated[str, BeforeValidator(lambda v: _check_url(v) if isinstance(v, str) else v)]
    api_key: str | None = None
    api_keys: list[Annotated[str, Field(min_length=1)]] | None = None
    models: list[Annotated[ModelEntry, BeforeValidator(_model_entry)]] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    models_url: Annotated[str, BeforeValidator(lambda v: _check_url(v) if isinstance(v, str) else v)] | None = None
    """Where the model list lives when it is not the format's usual path under ``base_url``."""
    timeout_s: Annotated[float, Field(gt=0)] | None = None
    stream_usage: bool = True
    """OpenAI format: when a client streams without asking for usage, ask the upstream for its final usage
    chunk anyway (for accounting) and keep that chunk from the client; false for servers that refuse
    ``stream_options``."""
    credential_strategy: CredentialStrategy | None = None
    """Overrides ``routing.credential_strategy`` for this provider's keys."""
    media_api: MediaApi | None = None
    """The API its image, embedding and audio models speak; by default the one that goes with ``format``."""

    @property
    def effective_media_api(self) -> MediaApi | None:
        """``media_api``, else the format's own (None: the provider serves no media)."""
        return self.media_api or MEDIA_API_OF_FORMAT[self.format]

    @model_validator(mode="after")
    def _one_key_source(self) -> ProviderConfig:
        if self.api_key is not None and self.api_keys is not None:
            raise ValueError("give api_key or api_keys, not both")
        if self.api_keys is not None and not self.api_keys:
            raise ValueError("api_keys is empty")
        return self

    @property
    def credentials(self) -> tuple[str, ...]:
        """Every configured key, in the order they are used; empty for keyless providers."""
        if self.api_keys:
            return tuple(self.api_keys)
        return (self.api_key,) if self.api_key else ()


UsdPerMillion = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
"""A price in US dollars per million tokens: a finite, non-negative number."""


class PriceOverride(_Frozen):
    """Prices for the models one ``prices`` key matches, in USD per million tokens.

    A price left out is unknown, not zero: a request that needs it gets no cost (see ``routing.pricing``).
    """

    input: UsdPerMillion | None = None
    output: UsdPerMillion | None = None
    cache_read: UsdPerMillion | None = None
    cache_write: UsdPerMillion | None = None

    @model_validator(mode="after")
    def _some_price(self) -> PriceOverride:
        if self.input is None and self.output is None and self.cache_read is None and self.cache_write is None:
            raise ValueError("give at least one of input, output, cache_read, cache_write")
        return self


PriceKey = Annotated[str, Field(min_length=1, max_length=256)]
"""``model``, ``provider/model`` (when the part before the first ``/`` names a provider), ``*`` wildcards allowed."""

_PRICE_OVERRIDES: TypeAdapter[dict[PriceKey, PriceOverride]] = TypeAdapter(dict[PriceKey, PriceOverride])


def parse_price_overrides(raw: object) -> dict[str, PriceOverride]:
    """Validate a ``prices`` mapping given at run time (the routing file's is validated with the file).

    Raises:
        ConfigError: listing every problem as ``prices.<key>.<field>: message``.
    """
    try:
        return _PRICE_OVERRIDES.validate_python(raw)
    except ValidationError as exc:
        raise ConfigError([_describe({**e, "loc": ("prices", *e["loc"])}) for e in exc.errors()]) from None


class RouteOptions(_Frozen):
    """How one alias routes, where it differs from the ``routing`` section."""

    fallback_scope: FallbackScope | None = None
    max_attempts: AttemptCount | None = None


class _AliasRoute(RouteOptions):
    """An alias in object form: ``fast: {model: main/big, fallback_scope: any, max_attempts: 3}``."""

    model: _Name


_ALIAS_ROUTE: TypeAdapter[_AliasRoute] = TypeAdapter(_AliasRoute)
_ALIAS_SHAPE = "must be provider/model or {model, fallback_scope, max_attempts}"


def _alias_target(value: object) -> object:
    """An alias value in either form → its ``provider/model``; object-form problems keep their own paths."""
    if isinstance(value, dict):
        return _ALIAS_ROUTE.validate_python(value).model
    if isinstance(value, str):
        return value
    raise PydanticCustomError("alias_shape", _ALIAS_SHAPE)


class RoutingOptions(_Frozen):
    """The ``routing`` section: defaults for every request, overridable per alias, combo or provider."""

    fallback_scope: FallbackScope = FallbackScope.SAME_MODEL
    max_attempts: AttemptCount = 5
    credential_strategy: CredentialStrategy = CredentialStrategy.FILL_FIRST


class ComboConfig(_Frozen):
    """One entry of ``combos``: a name standing for several models, tried in the strategy's order."""

    strategy: Strategy = Strategy.PRIORITY
    models: Annotated[list[_Name], Field(min_length=1, max_length=50)]
    """Each an alias, ``provider/model`` of a configured provider, or another combo."""
    weights: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = None
    """Per member, for ``weighted``; a member left out weighs 1.0."""
    max_attempts: AttemptCount | None = None
    hedge_delay_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """``hedged`` only: how long the first attempt runs alone before the next one starts alongside it."""
    fallback_scope: FallbackScope | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ComboConfig:
        problems: list[InitErrorDetails] = []
        seen: set[str] = set()
        for index, member in enumerate(self.models):
            if member in seen:
                problems.append(_problem(("models", index), f"{member!r} is listed twice", member))
            seen.add(member)
        problems.extend(
            _problem(("weights", key), "not one of the combo's models", key)
            for key in self.weights or {}
            if key not in seen
        )
        if self.hedge_delay_ms is not None and self.strategy is not Strategy.HEDGED:
            problems.append(_problem(("hedge_delay_ms",), "only for strategy hedged", self.hedge_delay_ms))
        _raise_problems("ComboConfig", problems)
        return self


class RoutingConfig(_Frozen):
    """The whole routing file."""

    providers: list[ProviderConfig] = Field(default_factory=list)
    aliases: dict[_Name, Annotated[_Name, BeforeValidator(_alias_target)]] = Field(default_factory=dict)
    """Alias → ``provider/model``; the file may give an alias as ``{model, fallback_scope, max_attempts}``."""
    alias_options: dict[_Name, RouteOptions] = Field(default_factory=dict)
    """Options of the aliases given in object form with at least one option."""
    prices: dict[PriceKey, PriceOverride] = Field(default_factory=dict)
    """Per-model price overrides, applied over the built-in table (``routing/prices.yaml``)."""
    fallbacks: dict[_Name, Annotated[list[_Name], Field(max_length=10)]] = Field(default_factory=dict)
    """Per requested name (``provider/model``, alias or combo): the models to try next, in order, before the
    same model on other providers."""
    combos: dict[Annotated[str, Field(min_length=1, max_length=256)], ComboConfig] = Field(default_factory=dict)
    routing: RoutingOptions = Field(default_factory=RoutingOptions)

    @model_validator(mode="before")
    @classmethod
    def _split_alias_options(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("aliases"), dict):
            return data
        options: dict[object, RouteOptions] = {}
        for name, value in data["aliases"].items():
            if not isinstance(value, dict):
                continue
            try:
                route = _ALIAS_ROUTE.validate_python(value)
            except ValidationError:
                continue  # reported with its path when the aliases field is validated
            if route.fallback_scope is not None or route.max_attempts is not None:
                options[name] = RouteOptions(fallback_scope=route.fallback_scope, max_attempts=route.max_attempts)
        given = data.get("alias_options", {})
        if not options or not isinstance(given, dict):
            return data
        return {**data, "alias_options": {**given, **options}}

    @field_validator("providers")
    @classmethod
    def _unique_names(cls, providers: list[ProviderConfig]) -> list[ProviderConfig]:
        seen: set[str] = set()
        for provider in providers:
            if provider.name in seen:
                raise ValueError(f"provider name {provider.name!r} is used twice")
            seen.add(provider.name)
        return providers

    @model_validator(mode="after")
    def _references_resolve(self) -> RoutingConfig:
        providers = {p.name for p in self.providers}
        _raise_problems(
            "RoutingConfig",
            [
                *_alias_problems(self, providers),
                *_fallback_problems(self, providers),
                *_combo_problems(self, providers),
            ],
        )
        return self


def _provider_of(name: str, providers: set[str]) -> str | None:
    """The provider when ``name`` is ``provider/model`` of a configured one."""
    prefix, sep, model = name.partition("/")
    return prefix if sep and model and prefix in providers else None


def _names_nothing(config: RoutingConfig, providers: set[str], name: str) -> bool:
    return name not in config.aliases and name not in config.combos and _provider_of(name, providers) is None


def _names_nothing_message(name: str) -> str:
    return f"{name!r} is neither an alias nor provider/model nor a combo"


def _alias_problems(config: RoutingConfig, providers: set[str]) -> list[InitErrorDetails]:
    problems: list[InitErrorDetails] = []
    for alias, target in config.aliases.items():
        prefix, sep, model = target.partition("/")
        if not sep or not model:
            problems.append(_problem(("aliases", alias), f"{target!r} is not provider/model", target))
        elif prefix not in providers:
            problems.append(_problem(("aliases", alias), f"no provider named {prefix!r}", target))
    problems.extend(
        _problem(("alias_options", name), f"no alias named {name!r}", name)
        for name in config.alias_options
        if name not in config.aliases
    )
    return problems


def _fallback_problems(config: RoutingConfig, providers: set[str]) -> list[InitErrorDetails]:
    problems: list[InitErrorDetails] = []
    for name, targets in config.fallbacks.items():
        for index, target in enumerate(targets):
            at = ("fallbacks", name, index)
            if _names_nothing(config, providers, target):
                problems.append(_problem(at, _names_nothing_message(target), target))
            elif target == name:
                problems.append(_problem(at, "a model cannot fall back to itself", target))
    return problems


def _combo_problems(config: RoutingConfig, providers: set[str]) -> list[InitErrorDetails]:
    problems: list[InitErrorDetails] = []
    for name, combo in config.combos.items():
        owner = _provider_of(name, providers)
        if name in config.aliases:
            problems.append(_problem(("combos", name), "the name is taken by an alias", name))
        elif owner is not None:
            problems.append(_problem(("combos", name), f"looks like provider/model of provider {owner!r}", name))
        problems.extend(
            _problem(("combos", name, "models", index), _names_nothing_message(member), member)
            for index, member in enumerate(combo.models)
            if _names_nothing(config, providers, member)
        )
    cycle = find_cycle({name: [m for m in combo.models if m in config.combos] for name, combo in config.combos.items()})
    if cycle is not None:
        problems.append(_problem(("combos", cycle[0]), f"cycle {' -> '.join(cycle)}", cycle[0]))
    return problems


def load_routing_config(path: Path, environ: Mapping[str, str]) -> RoutingConfig:
    """Read, interpolate and validate a routing file.

    Raises:
        ConfigError: listing every problem as ``path: message``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
    return parse_routing_config({} if raw is None else raw, environ)


def parse_routing_config(raw: object, environ: Mapping[str, str]) -> RoutingConfig:
    """Validate an already-parsed routing document.

    Raises:
        ConfigError: listing every problem as ``path: message``.
    """
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): must be a mapping with providers and aliases"])
    problems: list[str] = []
    interpolated = _interpolate(raw, environ, (), problems)
    try:
        config = RoutingConfig.model_validate(interpolated)
    except ValidationError as exc:
        # A field whose variable is unset already has its problem; its empty value's would only confuse.
        unset = {problem.partition(": ")[0] for problem in problems}
        problems.extend(p for p in map(_describe, exc.errors()) if p.partition(": ")[0] not in unset)
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def _interpolate(value: Any, environ: Mapping[str, str], path: tuple[str | int, ...], problems: list[str]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problems.append(f"{_format_path(path)}: environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(replace, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, environ, (*path, str(k)), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, environ, (*path, i), problems) for i, v in enumerate(value)]
    return value


def _format_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(error: Mapping[str, Any]) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required"
    elif kind == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
    elif kind == "enum":
        message = f"must be one of {error.get('ctx', {}).get('expected', '')}"
    else:
        message = error["msg"]
    return f"{_format_path(loc)}: {message}" if loc else message
