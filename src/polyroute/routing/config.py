"""The routing file (YAML): providers, their credentials and models, aliases, and price overrides.

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
from typing import Annotated, Any
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

from polyroute.errors import ConfigError
from polyroute.wire import WireFormat

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ModelType(StrEnum):
    """What a model produces; decides which endpoints may call it."""

    TEXT = "text"
    IMAGE = "image"
    EMBEDDING = "embedding"
    AUDIO = "audio"
    VIDEO = "video"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelEntry(_Frozen):
    """One model a provider serves."""

    id: Annotated[str, Field(min_length=1)]
    type: ModelType | None = None
    """None means: guessed from the id (see ``routing.catalog.guess_model_type``)."""


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


class RoutingConfig(_Frozen):
    """The whole routing file."""

    providers: list[ProviderConfig] = Field(default_factory=list)
    aliases: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = Field(
        default_factory=dict
    )
    prices: dict[PriceKey, PriceOverride] = Field(default_factory=dict)
    """Per-model price overrides, applied over the built-in table (``routing/prices.yaml``)."""
    fallbacks: dict[
        Annotated[str, Field(min_length=1)], Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=10)]
    ] = Field(default_factory=dict)
    """Per requested name (``provider/model`` or alias): the models to try next, in order, before the same
    model on other providers."""

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
    def _aliases_name_providers(self) -> RoutingConfig:
        names = {p.name for p in self.providers}
        for alias, target in self.aliases.items():
            prefix, sep, model = target.partition("/")
            if not sep or not model:
                raise ValueError(f"aliases.{alias}: {target!r} is not provider/model")
            if prefix not in names:
                raise ValueError(f"aliases.{alias}: no provider named {prefix!r}")
        for name, targets in self.fallbacks.items():
            for index, target in enumerate(targets):
                prefix, sep, model = target.partition("/")
                if target not in self.aliases and not (sep and model and prefix in names):
                    raise ValueError(f"fallbacks.{name}[{index}]: {target!r} is neither an alias nor provider/model")
                if target == name:
                    raise ValueError(f"fallbacks.{name}[{index}]: a model cannot fall back to itself")
        return self


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
