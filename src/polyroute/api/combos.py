"""Combos at run time: ``GET /api/combos``, ``PUT /api/combos/{name}``, ``DELETE /api/combos/{name}``.

A combo set through the API is validated like one in the routing file (its members must name an
alias, ``provider/model`` of a registered provider, or another combo; no cycles), stored in the
settings store (it survives a restart), and overrides a routing-file combo of the same name. Deleting
it brings the routing file's back. Every worker and instance adopts the change (through the change
bus when several share Redis).
"""

from __future__ import annotations

import dataclasses
import time

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from polyroute.api.admin import actor_of, json_response
from polyroute.api.responses import parse_json_object
from polyroute.errors import InvalidRequestError, NotFoundError
from polyroute.health import ChangeBus
from polyroute.routing.combos import Combo, find_cycle
from polyroute.routing.config import ComboConfig
from polyroute.routing.table import LiveRoutingTable, RoutingTable
from polyroute.storage.base import AuditEntry, AuditLog, SettingsStore
from polyroute.types import JSONObject

SETTING = "combos"
TOPIC = "combos"
_NAME_MAX = 256


def combo_json(combo: Combo, source: str) -> JSONObject:
    """A combo as the API shows it."""
    return {
        "name": combo.name,
        "strategy": combo.strategy.value,
        "models": list(combo.models),
        "weights": dict(combo.weights) or None,
        "max_attempts": combo.max_attempts,
        "hedge_delay_ms": combo.hedge_delay_ms,
        "fallback_scope": combo.fallback_scope.value if combo.fallback_scope else None,
        "source": source,
    }


class ComboRegistry:
    """The routing file's combos under the ones set at run time; applies them to the live table."""

    def __init__(self, live: LiveRoutingTable, settings: SettingsStore, bus: ChangeBus, audit: AuditLog) -> None:
        self.live = live
        self.settings = settings
        self.audit = audit
        self.bus = bus
        self.base = dict(live.current.policy.combos)
        self.runtime: dict[str, Combo] = {}
        bus.subscribe(self._changed)

    async def load(self) -> None:
        """Apply the stored run-time combos (invalid stored entries are skipped, as if absent)."""
        stored = await self.settings.get(SETTING)
        runtime: dict[str, Combo] = {}
        if isinstance(stored, dict):
            for name, raw in stored.items():
                try:
                    runtime[name] = Combo.from_config(name, ComboConfig.model_validate(raw))
                except ValidationError:
                    continue
        self.runtime = runtime
        self._apply()

    async def _changed(self, topic: str) -> None:
        if topic == TOPIC:
            await self.load()

    def _apply(self) -> None:
        table = self.live.current
        combos = {**self.base, **self.runtime}
        self.live.current = table.with_policy(dataclasses.replace(table.policy, combos=combos))

    async def list(self, request: Request) -> Response:
        del request
        combos = self.live.current.policy.combos
        data = [combo_json(c, "api" if n in self.runtime else "config") for n, c in combos.items()]
        return json_response({"object": "list", "data": data})

    async def put(self, request: Request) -> Response:
        name = _name(request)
        try:
            config = ComboConfig.model_validate(parse_json_object(await request.body()))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise InvalidRequestError(f"{where}: {first['msg']}", param=where) from None
        combo = Combo.from_config(name, config)
        _check(self.live.current, {**self.base, **self.runtime, name: combo}, combo)
        before = self.runtime.get(name) or self.base.get(name)
        stored: JSONObject = {n: _config_json(c) for n, c in {**self.runtime, name: combo}.items()}
        await self.settings.put(SETTING, stored)
        self.runtime[name] = combo
        self._apply()
        await self.bus.publish(TOPIC)
        await self._audit(request, "combo.put", name, before, combo)
        return json_response(combo_json(combo, "api"), status=200 if before else 201)

    async def delete(self, request: Request) -> Response:
        name = _name(request)
        if name not in self.runtime:
            if name in self.base:
                raise InvalidRequestError(
                    f"combo {name!r} is defined in the routing file; change it there", param="name"
                )
            raise NotFoundError(f"no combo named {name!r}")
        before = self.runtime.pop(name)
        remaining = {**self.base, **self.runtime}
        for other in remaining.values():
            if name in other.models and name not in self.base:
                self.runtime[name] = before
                raise InvalidRequestError(f"combo {other.name!r} still uses {name!r}", param="name")
        remaining_json: JSONObject = {n: _config_json(c) for n, c in self.runtime.items()}
        await self.settings.put(SETTING, remaining_json)
        self._apply()
        await self.bus.publish(TOPIC)
        await self._audit(request, "combo.delete", name, before, None)
        return json_response({"deleted": True, "name": name})

    async def _audit(self, request: Request, action: str, name: str, before: Combo | None, after: Combo | None) -> None:
        actor, ip = actor_of(request)
        await self.audit.record(
            AuditEntry(
                at=time.time(),
                actor=actor,
                action=action,
                target=name,
                ip=ip,
                before=_config_json(before) if before else None,
                after=_config_json(after) if after else None,
            )
        )


def _name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not name or len(name) > _NAME_MAX or any(ord(c) < 0x20 for c in name):
        raise InvalidRequestError("a combo name is 1 to 256 printable characters", param="name")
    return name


def _check(table: RoutingTable, combos: dict[str, Combo], combo: Combo) -> None:
    if combo.name in table.aliases or (table.provider(combo.name.partition("/")[0]) and "/" in combo.name):
        raise InvalidRequestError(f"{combo.name!r} is already an alias or a provider/model name", param="name")
    for index, member in enumerate(combo.models):
        prefix, sep, model = member.partition("/")
        known = member in combos or member in table.aliases or (sep and model and table.provider(prefix))
        if not known:
            raise InvalidRequestError(
                f"models[{index}]: {member!r} is neither an alias nor provider/model of a provider nor a combo",
                param=f"models[{index}]",
            )
    cycle = find_cycle({name: [m for m in c.models if m in combos] for name, c in combos.items()})
    if cycle is not None:
        raise InvalidRequestError(f"cycle {' -> '.join(cycle)}", param="models")


def _config_json(combo: Combo) -> JSONObject:
    body = combo_json(combo, "api")
    return {k: v for k, v in body.items() if k not in ("name", "source") and v is not None}
