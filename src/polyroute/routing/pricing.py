"""What a request cost: prices per model, and exact cost arithmetic over a ``Usage``.

``PriceTable`` answers "what does this model cost through this provider" from three layers, searched in
order until one knows the model:

1. run-time overrides (``with_runtime_overrides``; for an admin endpoint),
2. the routing file's ``prices`` section (``RoutingConfig.prices``),
3. the built-in table ``prices.yaml``, whose header names its sources, their date, and how model ids
   (dated snapshots, documented aliases) find their entry.

Within a layer, a key qualified by a provider name (``groq/llama-3.3-70b-versatile``: the part before the
first ``/`` names a configured provider) beats a bare model key; an exact key beats a ``*`` pattern; a
longer pattern beats a shorter one. Model ids are compared case-insensitively, provider names exactly.

``cost_usd`` is pure: it bills uncached input, cache reads, cache writes and output separately, in
``Decimal``, and returns None rather than a guess whenever a count or a price it needs is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from importlib import resources
from typing import Any, Literal

import yaml

from polyroute.core.messages import Usage
from polyroute.errors import ConfigError
from polyroute.routing.config import PriceOverride, parse_price_overrides

PER = Decimal(1_000_000)
"""Prices are per this many tokens."""
RESOLUTION = Decimal("1e-9")
"""Costs are rounded (half to even) to this many US dollars."""
# 60 significant digits: every product of a token count below 10**30 and a price of up to 30 digits is exact.
_EXACT = Context(prec=60)
_PRICE_FIELDS = ("input", "output", "cache_read", "cache_write")

Layer = Literal["runtime", "config", "builtin"]


class InvalidPricesError(ValueError):
    """Run-time price overrides were rejected; ``problems`` lists ``prices.<key>.<field>: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """What one model costs, in US dollars per million tokens; None where the price is unknown."""

    input: Decimal | None = None
    """Uncached input tokens."""
    output: Decimal | None = None
    """Output tokens, reasoning tokens included."""
    cache_read: Decimal | None = None
    """Input tokens served from the prompt cache."""
    cache_write: Decimal | None = None
    """Input tokens written to the prompt cache."""
    above_tokens: int | None = None
    """Requests with more input tokens than this (cached ones included) are billed at ``above`` throughout."""
    above: Price | None = None
    """The prices past ``above_tokens``; None there means the vendor charges more but the rates are unknown."""

    def for_input(self, input_tokens: int) -> Price | None:
        """The prices a request with ``input_tokens`` input tokens is billed at; None when unknown."""
        if self.above_tokens is not None and input_tokens > self.above_tokens:
            return self.above
        return self


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceEntry:
    """One key of a layer, for listing the table (the future ``/api/pricing``)."""

    layer: Layer
    provider: str | None
    """The provider the key is qualified by; None for a bare model key."""
    model: str
    """Model id or ``*`` pattern, as written."""
    price: Price
    aliases: tuple[str, ...] = ()
    source: str | None = None


def cost_usd(price: Price | None, usage: Usage) -> float | None:
    """US dollars ``usage`` cost at ``price``, rounded to 1e-9; None when it cannot be known exactly.

    Input is billed as (input_tokens - cache_read - cache_write) x input price + cache_read x cache-read
    price + cache_write x cache-write price, and output_tokens x output price (reasoning tokens are
    already inside output_tokens). None, never 0, when: there is no price; the input or output count was
    not reported; the input or output price is unknown; cache tokens were reported but their price is
    unknown; or the counts are impossible (negative, or more cached than input tokens).
    """
    exact = cost_usd_exact(price, usage)
    return None if exact is None else float(exact)


def cost_usd_exact(price: Price | None, usage: Usage) -> Decimal | None:
    """``cost_usd`` as a ``Decimal`` (already rounded to 1e-9), for sums that must stay exact."""
    if price is None or usage.input_tokens is None or usage.output_tokens is None:
        return None
    cache_read = usage.cache_read_tokens or 0
    cache_write = usage.cache_write_tokens or 0
    uncached = usage.input_tokens - cache_read - cache_write
    if min(uncached, cache_read, cache_write, usage.output_tokens) < 0:
        return None
    rates = price.for_input(usage.input_tokens)
    if rates is None or rates.input is None or rates.output is None:
        return None
    total = _EXACT.multiply(Decimal(uncached), rates.input)
    total = _EXACT.add(total, _EXACT.multiply(Decimal(usage.output_tokens), rates.output))
    for tokens, rate in ((cache_read, rates.cache_read), (cache_write, rates.cache_write)):
        if tokens:
            if rate is None:
                return None
            total = _EXACT.add(total, _EXACT.multiply(Decimal(tokens), rate))
    return _EXACT.divide(total, PER).quantize(RESOLUTION, rounding=ROUND_HALF_EVEN, context=_EXACT)


@dataclass(frozen=True, slots=True)
class ModelIdRules:
    """How a model id is normalised for a second and third look (``strip_prefixes``, ``snapshot_suffixes``)."""

    prefixes: tuple[str, ...]
    suffixes: tuple[re.Pattern[str], ...]

    def candidates(self, model: str) -> list[str]:
        """``model`` itself first, then with one prefix stripped, then with one snapshot suffix stripped."""
        model = model.casefold()
        found = [model]
        for prefix in self.prefixes:
            if model.startswith(prefix) and len(model) > len(prefix):
                found.append(model[len(prefix) :])
        for base in list(found):
            for suffix in self.suffixes:
                stripped = suffix.sub("", base)
                if stripped and stripped not in found:
                    found.append(stripped)
        return found


@dataclass(frozen=True, slots=True)
class _Index:
    """One layer's keys, ready for lookup."""

    exact: Mapping[tuple[str | None, str], Price]
    patterns: tuple[tuple[str | None, re.Pattern[str], Price], ...]
    """Longest pattern first."""

    def find(self, provider: str, candidates: list[str]) -> Price | None:
        for scope in (provider, None):
            for model in candidates:
                if (hit := self.exact.get((scope, model))) is not None:
                    return hit
            for pattern_scope, pattern, price in self.patterns:
                if pattern_scope == scope and any(pattern.fullmatch(model) for model in candidates):
                    return price
        return None


def _index(entries: Iterable[PriceEntry]) -> _Index:
    exact: dict[tuple[str | None, str], Price] = {}
    patterns: list[tuple[int, str | None, re.Pattern[str], Price]] = []
    for entry in entries:
        for name in (entry.model, *entry.aliases):
            key = name.casefold()
            if "*" in key:
                regex = ".*".join(re.escape(part) for part in key.split("*"))
                patterns.append((len(key), entry.provider, re.compile(regex, re.DOTALL), entry.price))
            else:
                exact[(entry.provider, key)] = entry.price
    patterns.sort(key=lambda item: -item[0])
    return _Index(exact, tuple((scope, pattern, price) for _, scope, pattern, price in patterns))


class PriceTable:
    """Prices by (provider, upstream model): run-time overrides, then the routing file's, then built-in.

    Immutable: ``with_runtime_overrides`` returns a new table, to be swapped in whole.
    """

    def __init__(
        self,
        builtin: BuiltinPrices,
        *,
        overrides: tuple[PriceEntry, ...] = (),
        runtime: tuple[PriceEntry, ...] = (),
        provider_names: frozenset[str] = frozenset(),
    ) -> None:
        self.builtin = builtin
        self.provider_names = provider_names
        self._entries = (*runtime, *overrides, *builtin.entries)
        self._layers = tuple(_index(layer) for layer in (runtime, overrides, builtin.entries))

    @classmethod
    def load(
        cls, *, overrides: Mapping[str, PriceOverride] | None = None, provider_names: Collection[str] = ()
    ) -> PriceTable:
        """The built-in table plus the routing file's ``prices`` section.

        ``provider_names`` are the configured providers: a key ``name/model`` whose ``name`` is one of them is
        qualified by that provider; any other key is a bare model id (which may itself contain ``/``).

        Raises:
            ValueError: the packaged ``prices.yaml`` is malformed (a packaging bug, caught by the tests).
        """
        text = resources.files("polyroute.routing").joinpath("prices.yaml").read_text(encoding="utf-8")
        names = frozenset(provider_names)
        return cls(
            parse_builtin_prices(yaml.safe_load(text)),
            overrides=_override_entries(overrides or {}, names, "config"),
            provider_names=names,
        )

    def with_runtime_overrides(self, raw: Mapping[str, object]) -> PriceTable:
        """A copy whose run-time layer is ``raw`` (replacing any earlier one), validated like ``prices``.

        Raises:
            InvalidPricesError: listing every problem as ``prices.<key>.<field>: message``.
        """
        try:
            parsed = parse_price_overrides(raw)
        except ConfigError as exc:
            raise InvalidPricesError(exc.problems) from None
        return PriceTable(
            self.builtin,
            overrides=self.entries("config"),
            runtime=_override_entries(parsed, self.provider_names, "runtime"),
            provider_names=self.provider_names,
        )

    def lookup(self, provider: str, model: str) -> Price | None:
        """The price of ``model`` served by the provider named ``provider``; None when no layer knows it."""
        candidates = self.builtin.rules.candidates(model)
        for layer in self._layers:
            if (price := layer.find(provider, candidates)) is not None:
                return price
        return None

    def cost_usd(self, provider: str, model: str, usage: Usage) -> float | None:
        """``cost_usd(self.lookup(provider, model), usage)``."""
        return cost_usd(self.lookup(provider, model), usage)

    def entries(self, layer: Layer | None = None) -> tuple[PriceEntry, ...]:
        """Every key of ``layer`` (of all layers when None), in lookup order of the layers."""
        return tuple(entry for entry in self._entries if layer is None or entry.layer == layer)


def _override_entries(
    overrides: Mapping[str, PriceOverride], provider_names: frozenset[str], layer: Layer
) -> tuple[PriceEntry, ...]:
    entries = []
    for key, override in overrides.items():
        prefix, sep, rest = key.partition("/")
        provider, model = (prefix, rest) if sep and rest and prefix in provider_names else (None, key)
        price = Price(
            input=override.input,
            output=override.output,
            cache_read=override.cache_read,
            cache_write=override.cache_write,
        )
        entries.append(PriceEntry(layer=layer, provider=provider, model=model, price=price))
    return tuple(entries)


@dataclass(frozen=True, slots=True, kw_only=True)
class BuiltinPrices:
    """The validated contents of ``prices.yaml``."""

    entries: tuple[PriceEntry, ...]
    rules: ModelIdRules
    checked_on: str
    """The date the prices were taken."""


def parse_builtin_prices(doc: object) -> BuiltinPrices:
    """Validate the parsed ``prices.yaml``: its entries, its id-matching rules and its date.

    Raises:
        ValueError: naming the first problem by its path in the file.
    """
    top = _mapping(doc, "prices.yaml")
    checked_on = _text(top.get("checked_on"), "checked_on")
    prefixes = tuple(_text(p, f"strip_prefixes[{i}]").casefold() for i, p in enumerate(_list(top, "strip_prefixes")))
    suffixes = []
    for i, raw in enumerate(_list(top, "snapshot_suffixes")):
        try:
            suffixes.append(re.compile(_text(raw, f"snapshot_suffixes[{i}]")))
        except re.error as exc:
            raise ValueError(f"snapshot_suffixes[{i}]: not a regular expression: {exc}") from None
    vendors = top.get("vendors")
    if not isinstance(vendors, list) or not vendors:
        raise ValueError("vendors: must be a non-empty list")
    entries: list[PriceEntry] = []
    seen: set[tuple[str | None, str]] = set()
    for i, vendor in enumerate(vendors):
        for entry in _vendor_entries(vendor, f"vendors[{i}]"):
            for name in (entry.model, *entry.aliases):
                key = (entry.provider, name.casefold())
                if key in seen or "*" in name:
                    raise ValueError(f"vendors[{i}].models.{entry.model}: {name!r} is listed twice or is a pattern")
                seen.add(key)
            entries.append(entry)
    return BuiltinPrices(entries=tuple(entries), rules=ModelIdRules(prefixes, tuple(suffixes)), checked_on=checked_on)


def _vendor_entries(raw: object, where: str) -> list[PriceEntry]:
    vendor = _mapping(raw, where)
    unknown = set(vendor) - {"vendor", "source", "checked", "cache_write_at_input", "provider", "models"}
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    _text(vendor.get("vendor"), f"{where}.vendor")
    _text(vendor.get("checked"), f"{where}.checked")
    source = _text(vendor.get("source"), f"{where}.source")
    provider = vendor.get("provider")
    if provider is not None:
        provider = _text(provider, f"{where}.provider")
    at_input = vendor.get("cache_write_at_input", False)
    if not isinstance(at_input, bool):
        raise ValueError(f"{where}.cache_write_at_input: must be true or false")
    entries = []
    for model, fields in _mapping(vendor.get("models"), f"{where}.models").items():
        at = f"{where}.models.{model}"
        body = _mapping(fields, at)
        aliases = body.get("aliases", [])
        if not isinstance(aliases, list):
            raise ValueError(f"{at}.aliases: must be a list")
        entries.append(
            PriceEntry(
                layer="builtin",
                provider=provider,
                model=_text(model, at),
                price=_builtin_price(body, at, cache_write_at_input=at_input),
                aliases=tuple(_text(alias, f"{at}.aliases") for alias in aliases),
                source=_text(body.get("source", source), f"{at}.source"),
            )
        )
    return entries


def _builtin_price(body: Mapping[str, Any], where: str, *, cache_write_at_input: bool) -> Price:
    unknown = set(body) - {*_PRICE_FIELDS, "above", "aliases", "source"}
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    rates = {name: _price_number(body[name], f"{where}.{name}") for name in _PRICE_FIELDS if name in body}
    if "input" not in rates or "output" not in rates:
        raise ValueError(f"{where}: input and output are required")
    if cache_write_at_input:
        rates.setdefault("cache_write", rates["input"])
    price = Price(
        input=rates["input"],
        output=rates["output"],
        cache_read=rates.get("cache_read"),
        cache_write=rates.get("cache_write"),
    )
    if "above" not in body:
        return price
    above = _mapping(body["above"], f"{where}.above")
    tokens = above.get("tokens")
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens <= 0:
        raise ValueError(f"{where}.above.tokens: must be a positive whole number of tokens")
    rest = {key: value for key, value in above.items() if key != "tokens"}
    tier = _builtin_price(rest, f"{where}.above", cache_write_at_input=cache_write_at_input) if rest else None
    return replace(price, above_tokens=tokens, above=tier)


def _price_number(value: object, where: str) -> Decimal:
    """A YAML number as an exact ``Decimal`` (floats go through their shortest repr: 0.075 stays 0.075)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{where}: must be a number")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise ValueError(f"{where}: must be a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{where}: must be a finite, non-negative number")
    return number


def _list(top: Mapping[str, Any], key: str) -> list[Any]:
    value = top.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{key}: must be a list")
    return value


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{where}: must be a non-empty mapping")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: must be a non-empty string")
    return value
