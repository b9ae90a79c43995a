"""Prices and costs at run time: the table in use, ``GET``/``PUT /api/pricing``, and a request's cost.

The table is the built-in one under the routing file's ``prices`` section, under run-time overrides
set through the API (kept in the settings store, so they survive a restart and reach every worker
at its next start).
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from polyroute.api.admin import actor_of, json_response
from polyroute.api.responses import parse_json_object
from polyroute.core.messages import Usage
from polyroute.errors import InvalidRequestError
from polyroute.routing.pricing import InvalidPricesError, Price, PriceEntry, PriceTable, cost_usd
from polyroute.routing.table import Deployment
from polyroute.storage.base import AuditEntry, AuditLog, SettingsStore
from polyroute.types import JSONObject

SETTING = "prices"


_MAX_CACHED_PRICES = 10_000


class Prices:
    """The price table in use (swapped whole when overrides change), with each model's price looked up once."""

    def __init__(self, table: PriceTable) -> None:
        self._table = table
        self._found: dict[tuple[str, str], Price | None] = {}

    @property
    def table(self) -> PriceTable:
        """The table in use."""
        return self._table

    @table.setter
    def table(self, table: PriceTable) -> None:
        self._table = table
        self._found = {}

    def cost(self, deployment: Deployment, model: str | None, usage: Usage | None) -> float | None:
        """What a request cost: None when its usage or the model's price is unknown."""
        if usage is None:
            return None
        key = (deployment.provider, model or deployment.model)
        if key in self._found:
            price = self._found[key]
        else:
            price = self._table.lookup(*key)
            if len(self._found) < _MAX_CACHED_PRICES:  # model names come from upstreams: bound the cache
                self._found[key] = price
        return cost_usd(price, usage)

    async def load_overrides(self, settings: SettingsStore) -> None:
        """Apply the run-time overrides stored earlier (invalid stored ones are ignored, as if absent)."""
        stored = await settings.get(SETTING)
        if isinstance(stored, dict) and stored:
            try:
                self.table = self._table.with_runtime_overrides(stored)
            except InvalidPricesError:
                return


def _entry(entry: PriceEntry) -> JSONObject:
    out: JSONObject = {
        "layer": entry.layer,
        "provider": entry.provider,
        "model": entry.model,
        "aliases": list(entry.aliases),
        "source": entry.source,
    }
    for name in ("input", "output", "cache_read", "cache_write"):
        value = getattr(entry.price, name)
        out[name] = float(value) if value is not None else None
    return out


class PricingApi:
    """``GET /api/pricing`` (every entry, run-time ones first) and ``PUT /api/pricing`` (replace the overrides)."""

    def __init__(self, prices: Prices, settings: SettingsStore, audit: AuditLog) -> None:
        self.prices = prices
        self.settings = settings
        self.audit = audit

    async def show(self, request: Request) -> Response:
        del request
        table = self.prices.table
        entries = [_entry(entry) for entry in table.entries()]
        return json_response({"object": "list", "checked_on": table.builtin.checked_on, "data": entries})

    async def replace(self, request: Request) -> Response:
        body = parse_json_object(await request.body())
        try:
            table = self.prices.table.with_runtime_overrides(body)
        except InvalidPricesError as exc:
            first = exc.problems[0] if exc.problems else "invalid prices"
            raise InvalidRequestError("; ".join(exc.problems), param=first.partition(":")[0]) from None
        before = await self.settings.get(SETTING)
        await self.settings.put(SETTING, body)
        self.prices.table = table
        actor, ip = actor_of(request)
        await self.audit.record(
            AuditEntry(
                at=time.time(),
                actor=actor,
                action="pricing.replace",
                target=None,
                ip=ip,
                before=before if isinstance(before, dict) else None,
                after=body,
            )
        )
        return json_response({"object": "list", "data": [_entry(e) for e in table.entries("runtime")]})
