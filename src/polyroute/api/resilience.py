"""Management routes for resilience: the profile, deployment availability, and providers at a glance.

- ``GET /api/resilience``: the resilience profile (cooldown and circuit-breaker thresholds), the
  routing file's fallback options, and whether the state is shared (Redis) or per worker.
- ``PUT /api/resilience``: change the profile (fields left out keep their value); stored, so it
  survives a restart, and adopted by every worker and instance.
- ``POST /api/resilience/reset``: close breakers and end cooldowns, of one deployment
  (``{"deployment": "provider/model"}``) or of all.
- ``GET /api/models/availability``: deployments cooling down, with an open or half-open breaker, or
  whose credential was refused: until when, and the last error.
- ``POST /api/models/availability``: clear a deployment's cooldowns (``{"model": "provider/model"}``,
  optionally ``"credential"``).
- ``GET /api/monitoring/health``: every provider's state at a glance.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from starlette.requests import Request
from starlette.responses import Response

from polyroute.api.admin import actor_of, json_response
from polyroute.api.responses import parse_json_object
from polyroute.errors import InvalidRequestError
from polyroute.health import EntryKind, EntryState, Health, HealthEntry, ResilienceProfile
from polyroute.routing.table import LiveRoutingTable, ProviderState
from polyroute.routing.telemetry import Telemetry
from polyroute.storage.base import AuditEntry, AuditLog, SettingsStore
from polyroute.types import JSONObject, JSONValue

SETTING = "resilience_profile"
_UNAVAILABLE = frozenset({EntryState.COOLING, EntryState.BROKEN, EntryState.OPEN, EntryState.HALF_OPEN})


async def load_profile(health: Health, settings: SettingsStore) -> None:
    """Adopt the profile stored by ``PUT /api/resilience`` (an invalid stored one is ignored, as if absent)."""
    stored = await settings.get(SETTING)
    if isinstance(stored, dict) and stored:
        try:
            profile = ResilienceProfile.from_json(stored)
        except ValueError:
            return
        if profile != health.profile:
            await health.set_profile(profile)


class ResilienceApi:
    """The handlers; one instance per worker."""

    def __init__(
        self,
        health: Health,
        live: LiveRoutingTable,
        telemetry: Telemetry,
        settings: SettingsStore,
        audit: AuditLog,
        *,
        shared: bool,
    ) -> None:
        self.health = health
        self.live = live
        self.telemetry = telemetry
        self.settings = settings
        self.audit = audit
        self.shared = shared

    async def show(self, request: Request) -> Response:
        del request
        options = self.live.current.policy.options
        return json_response(
            {
                "profile": self.health.profile.to_json(),
                "fallback": {
                    "scope": options.fallback_scope.value,
                    "max_attempts": options.max_attempts,
                    "credential_strategy": options.credential_strategy.value,
                },
                "shared": self.shared,
            }
        )

    async def replace(self, request: Request) -> Response:
        body = parse_json_object(await request.body())
        before = self.health.profile
        try:
            profile = ResilienceProfile.from_json(body, base=before)
        except ValueError as exc:
            raise InvalidRequestError(str(exc), param=str(exc).partition(":")[0] or None) from None
        await self.settings.put(SETTING, profile.to_json())
        await self.health.set_profile(profile)
        await self._audit(request, "resilience.profile", None, before.to_json(), profile.to_json())
        return json_response({"profile": profile.to_json()})

    async def reset(self, request: Request) -> Response:
        raw = await request.body()
        body = parse_json_object(raw) if raw.strip() else {}
        deployment = _optional_label(body, "deployment")
        cleared = await self.health.reset(deployment)
        await self._audit(request, "resilience.reset", deployment, None, {"cleared": cleared})
        return json_response({"reset": cleared, "deployment": deployment})

    async def availability(self, request: Request) -> Response:
        del request
        entries = [e.to_json() for e in self.health.entries() if e.state in _UNAVAILABLE]
        return json_response({"object": "list", "data": entries, "now": time.time()})

    async def clear(self, request: Request) -> Response:
        body = parse_json_object(await request.body())
        model = _optional_label(body, "model")
        if model is None:
            raise InvalidRequestError("'model' is required: the provider/model to make available again", param="model")
        credential = body.get("credential")
        if credential is not None and not isinstance(credential, str):
            raise InvalidRequestError(
                "'credential' must be a string (a credential id from the list)", param="credential"
            )
        cleared = await self.health.clear(model, credential)
        await self._audit(request, "availability.clear", model, None, {"cleared": cleared})
        return json_response({"cleared": cleared, "model": model})

    async def overview(self, request: Request) -> Response:
        del request
        by_provider: dict[str, list[HealthEntry]] = {}
        for entry in self.health.entries():
            by_provider.setdefault(entry.provider, []).append(entry)
        providers = [
            _provider_health(state, by_provider.get(state.name, ()), self._in_flight)
            for state in self.live.current.providers
        ]
        counts: dict[str, int] = {}
        for provider in providers:
            counts[str(provider["status"])] = counts.get(str(provider["status"]), 0) + 1
        overall = "down" if providers and counts.get("down") == len(providers) else "ok"
        if overall == "ok" and (counts.get("down") or counts.get("degraded")):
            overall = "degraded"
        return json_response({"status": overall, "providers": providers, "shared": self.shared, "now": time.time()})

    def _in_flight(self, state: ProviderState) -> int:
        return sum(self.telemetry.in_flight(model.qualified_id) for model in state.models or ())

    async def _audit(
        self, request: Request, action: str, target: str | None, before: JSONObject | None, after: JSONObject
    ) -> None:
        actor, ip = actor_of(request)
        await self.audit.record(
            AuditEntry(at=time.time(), actor=actor, action=action, target=target, ip=ip, before=before, after=after)
        )


def _optional_label(body: JSONObject, name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or "/" not in value:
        raise InvalidRequestError(f"'{name}' must be a provider/model string", param=name)
    return value


def _provider_health(
    state: ProviderState, entries: Iterable[HealthEntry], in_flight: Callable[[ProviderState], int]
) -> dict[str, JSONValue]:
    """One provider: ``ok``, ``degraded`` (some deployment or credential unavailable) or ``down``."""
    entries = list(entries)
    credentials = len(state.target.credential_ids)
    broken = {e.credential for e in entries if e.kind is EntryKind.BROKEN and e.state is EntryState.BROKEN}
    open_breakers = [e.deployment for e in entries if e.kind is EntryKind.BREAKER and e.state is EntryState.OPEN]
    cooling = [e.deployment for e in entries if e.kind is EntryKind.COOLDOWN and e.state is EntryState.COOLING]
    status = "ok"
    if open_breakers or cooling or broken or state.status == "unreachable":
        status = "degraded"
    models = len(state.models) if state.models is not None else None
    if len(broken) >= credentials or (models and len(set(open_breakers)) >= models):
        status = "down"
    return {
        "provider": state.name,
        "format": state.target.wire_format.value,
        "status": status,
        "discovery": state.status,
        "models": models,
        "credentials": credentials,
        "broken_credentials": _names(broken),
        "open": _names(open_breakers),
        "cooling": _names(cooling),
        "in_flight": in_flight(state),
        "last_error": max(
            (e.last_error.to_json() for e in entries if e.last_error is not None),
            key=_when,
            default=None,
        ),
    }


def _when(error: JSONObject) -> float:
    at = error.get("at")
    return float(at) if isinstance(at, int | float) else 0.0


def _names(values: Iterable[str | None]) -> list[JSONValue]:
    found: list[JSONValue] = [v for v in sorted({v for v in values if v is not None})]
    return found
