"""Model and provider listings: ``/v1/models``, ``/v1/models/{id}``, ``/v1/models/list``, ``/v1/providers``."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response

from polyroute.errors import InvalidRequestError, ModelNotFoundError
from polyroute.routing.config import ModelType
from polyroute.routing.table import LiveRoutingTable, ModelInfo, ProviderState, RoutingTable

_TYPES = ", ".join(t.value for t in ModelType)


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


class ModelListing:
    """Handlers that describe what the routing table can serve; ``created`` is when the gateway started."""

    def __init__(self, live: LiveRoutingTable, *, created: int) -> None:
        self._live = live
        self._created = created

    def _entry(self, model: ModelInfo) -> dict[str, Any]:
        return {
            "id": model.qualified_id,
            "object": "model",
            "created": self._created,
            "owned_by": model.provider,
            "provider": model.provider,
            "type": model.type.value,
        }

    def entries(
        self, table: RoutingTable | None = None, *, provider: str | None = None, wanted: str | None = None
    ) -> list[dict[str, Any]]:
        """OpenAI-style entries for every model and alias (of type ``wanted``, from ``provider``)."""
        table = table if table is not None else self._live.current
        entries = [self._entry(m) for m in table.models() if provider in (None, m.provider)]
        for alias, target in table.aliases.items():
            owner, _, model_id = target.partition("/")
            if provider in (None, owner):
                state = table.provider(owner)
                known = next((m for m in (state.models or ()) if m.id == model_id), None) if state else None
                entry = self._entry(known or ModelInfo(id=model_id, provider=owner, type=ModelType.TEXT))
                entries.append({**entry, "id": alias, "owned_by": "polyroute", "alias_for": target})
        if provider is None:
            for name, combo in table.policy.combos.items():
                combo_entry = {"id": name, "object": "model", "created": self._created, "owned_by": "polyroute"}
                combo_entry.update(provider=None, type=ModelType.TEXT.value, combo=combo.strategy.value)
                entries.append({**combo_entry, "members": list(combo.models)})
        return [e for e in entries if wanted in (None, e["type"])]

    def _filtered(self, request: Request) -> list[dict[str, Any]]:
        wanted = request.query_params.get("type")
        if wanted is not None and wanted not in {t.value for t in ModelType}:
            raise InvalidRequestError(f"type must be one of {_TYPES}", param="type")
        return self.entries(self._live.current, provider=request.query_params.get("provider"), wanted=wanted)

    async def list_models(self, request: Request) -> Response:
        """``GET /v1/models``: the OpenAI list, each entry with ``provider`` and ``type``."""
        return _json({"object": "list", "data": self._filtered(request)})

    async def list_models_by_type(self, request: Request) -> Response:
        """``GET /v1/models/list?type=&provider=``: the same list, filterable by type."""
        entries = self._filtered(request)
        return _json({"object": "list", "data": entries, "total": len(entries)})

    async def get_model(self, request: Request) -> Response:
        """``GET /v1/models/{id}``: one model by qualified id, alias or bare id."""
        model_id = request.path_params["target"]
        table = self._live.current
        for entry in self.entries(table):
            if entry["id"] == model_id:
                return _json(entry)
        deployment = table.resolve(model_id)  # raises ModelNotFoundError with suggestions
        matches = [m for m in table.models() if m.provider == deployment.provider and m.id == deployment.model]
        if not matches:
            raise ModelNotFoundError(f"The model {model_id!r} is not listed by its provider", param="model")
        return _json(self._entry(matches[0]))

    async def list_providers(self, request: Request) -> Response:
        """``GET /v1/providers?name=``: each provider, why it is registered, and what it serves."""
        name = request.query_params.get("name")
        table = self._live.current
        data = [_describe_provider(p) for p in table.providers if name in (None, p.name)]
        return _json({"object": "list", "data": data})


def _public_url(url: str) -> str:
    """A URL without credentials or query string (either may carry a key)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _describe_provider(state: ProviderState) -> dict[str, Any]:
    models = state.models or ()
    return {
        "name": state.name,
        "format": state.config.format.value,
        "base_url": _public_url(state.config.base_url),
        "registered_because": state.source,
        "status": state.status,
        "reachable": {"ok": True, "unreachable": False}.get(state.status),
        "detail": state.detail,
        "credentials": len(state.config.credentials),
        "models": [m.id for m in models] if state.models is not None else None,
        "model_count": len(models),
        "model_counts": dict(Counter(m.type.value for m in models)),
    }
