"""The plan of one request: which deployments to try, in which order, and how many attempts in all.

A requested name is a combo, an alias, ``provider/model`` or a bare model id. What follows the first
deployment depends on the fallback scope (global, per alias, per combo, per key):

- ``configured``: the routing file's ``fallbacks`` for the name (or for the first deployment's
  ``provider/model``) only;
- ``same_model`` (default): those, then the same model id served by other providers, in config order;
- ``any``: those, then every other model of the same type, ranked by ``rank_any``.

A combo's members are its candidates, ordered per request by its strategy (``routing.combos``),
nested combos expanded in place; then its configured fallbacks. Everything that does not depend on
the request's moment (the expansion of names, the candidate lists of each scope) is computed once per
routing table and kept, so a request with 200 configured providers does not scan them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from polyroute.errors import GatewayError
from polyroute.routing.combos import Combo, ComboOrder, Strategy
from polyroute.routing.config import FallbackScope
from polyroute.routing.fallback import MAX_ATTEMPTS
from polyroute.routing.pricing import PriceTable
from polyroute.routing.table import Deployment, LiveRoutingTable, ModelInfo, RoutingTable
from polyroute.routing.telemetry import Telemetry

_MAX_CACHED_PLANS: Final = 10_000
ANY_RANKING_TTL_S: Final = 10.0
"""How long the ``any`` scope's ranking (which includes recent success rates) is reused."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Needs:
    """What a request needs of a model, for the ``any`` scope's ranking."""

    tools: bool = False
    vision: bool = False
    tokens: int = 0
    """An estimate of the prompt's size in tokens."""


NO_NEEDS: Final = Needs()


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The candidates of one request, in order, and the rules for trying them."""

    deployments: Sequence[Deployment]
    configured: frozenset[tuple[str, str]]
    """``(provider, model)`` of the configured fallbacks: where a context-length failure may go."""
    max_attempts: int
    hedge_delay_ms: float | None = None
    """Hedged combos: start the next deployment after this long without a first byte (None: not hedged;
    0: the first deployment's recent p95 time to first token)."""


class _MemberSignals:
    """Live signals of a combo member, by the member's name (the deployment it resolves to)."""

    __slots__ = ("_prices", "_resolve", "_telemetry")

    def __init__(self, resolve: Callable[[str], Deployment | None], telemetry: Telemetry, prices: PriceTable) -> None:
        self._resolve = resolve
        self._telemetry = telemetry
        self._prices = prices

    def in_flight(self, label: str) -> int:
        found = self._resolve(label)
        return self._telemetry.in_flight(found.label) if found is not None else 0

    def ewma_ttft_ms(self, label: str) -> float | None:
        found = self._resolve(label)
        return self._telemetry.ewma_ttft_ms(found.label) if found is not None else None

    def price_per_million(self, label: str) -> float | None:
        found = self._resolve(label)
        price = self._prices.lookup(found.provider, found.model) if found is not None else None
        if price is None or (price.input is None and price.output is None):
            return None
        return float((price.input or 0) + (price.output or 0))


class Planner:
    """Builds plans against the live routing table; per-worker state (combo counters, caches)."""

    def __init__(
        self, live: LiveRoutingTable, telemetry: Telemetry, prices: Callable[[], PriceTable], order: ComboOrder
    ) -> None:
        self._live = live
        self._telemetry = telemetry
        self._prices = prices
        self._order = order
        self._table: RoutingTable | None = None
        self._cache: dict[tuple[str, str | None, FallbackScope], Plan] = {}
        self._members: dict[str, Deployment | None] = {}
        self._ranked: dict[tuple[str, str, bool, bool, int], tuple[float, list[Deployment]]] = {}

    def plan(
        self,
        name: str,
        *,
        provider: str | None = None,
        scope: FallbackScope | None = None,
        needs: Callable[[], Needs] | None = None,
    ) -> Plan:
        """The plan for a requested name (``provider`` pins it to one provider: no other is tried).

        Raises:
            ModelNotFoundError: the name matches nothing.
            InvalidRequestError: the name belongs to another provider than the pinned one.
        """
        table = self._current()
        policy = table.policy
        combo = policy.combos.get(name) if provider is None else None
        if combo is not None:
            return self._combo_plan(table, combo, scope)
        options = policy.alias_options.get(name)
        scope = scope or (options.fallback_scope if options else None) or policy.options.fallback_scope
        attempts = (options.max_attempts if options else None) or policy.options.max_attempts
        key = (name, provider, scope)
        plan = self._cache.get(key)
        if plan is None:
            found = self._candidates(table, name, provider, scope)
            plan = Plan(deployments=found, configured=self._configured(table, name, found[0]), max_attempts=attempts)
            if len(self._cache) < _MAX_CACHED_PLANS:
                self._cache[key] = plan
        if scope is FallbackScope.ANY and provider is None:
            chosen = plan.deployments
            plan = replace(plan, deployments=(*chosen, *self._any(table, chosen, (needs or _no_needs)())))
        return plan

    def _current(self) -> RoutingTable:
        table = self._live.current
        if table is not self._table:
            self._table, self._cache, self._members, self._ranked = table, {}, {}, {}
        return table

    def _candidates(
        self, table: RoutingTable, name: str, provider: str | None, scope: FallbackScope
    ) -> tuple[Deployment, ...]:
        first = table.resolve(name, provider=provider)
        if provider is not None:
            return (first,)
        found = [first, *self._expand_all(table, table.fallbacks.get(name) or table.fallbacks.get(first.label) or ())]
        if scope is not FallbackScope.CONFIGURED:
            found.extend(table.alternatives(first))
        return _unique(found)

    def _configured(self, table: RoutingTable, name: str, first: Deployment) -> frozenset[tuple[str, str]]:
        names = table.fallbacks.get(name) or table.fallbacks.get(first.label) or ()
        return frozenset((d.provider, d.model) for d in self._expand_all(table, names))

    def _combo_plan(self, table: RoutingTable, combo: Combo, scope: FallbackScope | None) -> Plan:
        found = self._expand_combo(table, combo, ())
        if not found:
            raise table.not_found(combo.name)
        fallbacks = self._expand_all(table, table.fallbacks.get(combo.name) or ())
        found.extend(fallbacks)
        scope = scope or combo.fallback_scope or FallbackScope.CONFIGURED
        if scope is not FallbackScope.CONFIGURED:
            found.extend(alt for first in tuple(found) for alt in table.alternatives(first))
        hedge = None
        if combo.strategy is Strategy.HEDGED:
            hedge = combo.hedge_delay_ms or 0.0
        return Plan(
            deployments=_unique(found),
            configured=frozenset((d.provider, d.model) for d in fallbacks),
            max_attempts=combo.max_attempts or table.policy.options.max_attempts,
            hedge_delay_ms=hedge,
        )

    def _expand_combo(self, table: RoutingTable, combo: Combo, seen: tuple[str, ...]) -> list[Deployment]:
        signals = _MemberSignals(lambda member: self._member(table, member), self._telemetry, self._prices())
        found: list[Deployment] = []
        for member in self._order.order(combo, combo.models, _same, signals):
            nested = table.policy.combos.get(member)
            if nested is not None:
                if member not in seen:  # cycles are refused at load; this only guards run-time edits
                    found.extend(self._expand_combo(table, nested, (*seen, combo.name)))
                continue
            deployment = self._member(table, member)
            if deployment is not None:
                found.append(deployment)
        return found

    def _expand_all(self, table: RoutingTable, names: Sequence[str]) -> list[Deployment]:
        found: list[Deployment] = []
        for name in names:
            combo = table.policy.combos.get(name)
            if combo is not None:
                found.extend(self._expand_combo(table, combo, ()))
            elif (deployment := self._member(table, name)) is not None:
                found.append(deployment)
        return found

    def _member(self, table: RoutingTable, name: str) -> Deployment | None:
        if name in self._members:
            return self._members[name]
        try:
            found: Deployment | None = table.resolve(name)
        except GatewayError:
            found = None  # a member whose provider has not listed the model (yet): skipped, not fatal
        if len(self._members) < _MAX_CACHED_PLANS:
            self._members[name] = found
        return found

    def _any(self, table: RoutingTable, chosen: Sequence[Deployment], needs: Needs) -> list[Deployment]:
        # Ranked once per first deployment, kind of need and size class, for ANY_RANKING_TTL_S.
        key = (chosen[0].provider, chosen[0].model, needs.tools, needs.vision, needs.tokens.bit_length())
        now = time.monotonic()
        cached = self._ranked.get(key)
        if cached is not None and cached[0] > now:
            ranked = cached[1]
        else:
            ranked = rank_any(table, chosen[:1], needs, self._telemetry.success_rate)
            if len(self._ranked) >= _MAX_CACHED_PLANS:
                self._ranked.clear()
            self._ranked[key] = (now + ANY_RANKING_TTL_S, ranked)
        taken = {(d.provider, d.model) for d in chosen}
        return [d for d in ranked if (d.provider, d.model) not in taken]


def rank_any(
    table: RoutingTable,
    chosen: Sequence[Deployment],
    needs: Needs,
    success_rate: Callable[[str], float | None],
    *,
    limit: int = MAX_ATTEMPTS * 4,
) -> list[Deployment]:
    """Other models of the first one's type for the ``any`` scope, best first, at most ``limit``.

    Models known to lack a capability the request needs (tools, vision) or known to have a smaller
    context window than the prompt are left out. The rest: the first deployment's provider before the
    others; within each, by score (all needed capabilities declared +2; a declared context window at least
    twice the prompt +1; the recent success rate, 0.5 when unknown), ties in config order.
    """
    first = chosen[0]
    taken = {(d.provider, d.model) for d in chosen}
    kind = table.model_type(first)
    scored: list[tuple[int, float, int, ModelInfo]] = []
    for index, model in enumerate(table.models()):
        if model.type is not kind or (model.provider, model.id) in taken or not _fits(model, needs):
            continue
        rate = success_rate(model.qualified_id)
        score = _score(model, needs) + (0.5 if rate is None else rate)
        scored.append((0 if model.provider == first.provider else 1, -score, index, model))
    scored.sort(key=lambda row: row[:3])
    found = []
    for *_, model in scored[:limit]:
        deployment = table.deployment_of(model)
        if deployment is not None:
            found.append(deployment)
    return found


def _fits(model: ModelInfo, needs: Needs) -> bool:
    caps = model.capabilities
    if caps is not None and ((needs.tools and "tools" not in caps) or (needs.vision and "vision" not in caps)):
        return False
    return model.context_length is None or model.context_length >= needs.tokens


def _score(model: ModelInfo, needs: Needs) -> float:
    score = 0.0
    caps = model.capabilities
    if caps is not None and (not needs.tools or "tools" in caps) and (not needs.vision or "vision" in caps):
        score += 2
    if model.context_length is not None and model.context_length >= 2 * needs.tokens:
        score += 1
    return score


def _unique(found: Sequence[Deployment]) -> tuple[Deployment, ...]:
    unique: dict[tuple[str, str], Deployment] = {}
    for deployment in found:
        unique.setdefault((deployment.provider, deployment.model), deployment)
    return tuple(unique.values())


def _same(name: str) -> str:
    return name


def _no_needs() -> Needs:
    return NO_NEEDS
