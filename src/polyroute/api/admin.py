"""Management routes (admin keys or a login session): keys, rate-limit state, the audit log.

``POST /api/keys`` returns the secret once; afterwards only its first characters (``display``) are
ever shown. Every change is recorded in the audit log with the acting key and the client's address.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from polyroute.api.key_service import KeyChanges, KeyService, KeySpec, key_record, parse_body
from polyroute.api.responses import parse_json_object
from polyroute.core.keys import KeyStatus, KeyType
from polyroute.errors import InvalidRequestError
from polyroute.limits.base import Limiter
from polyroute.storage.base import AuditLog

MAX_PAGE = 500


def json_response(body: object, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def actor_of(request: Request) -> tuple[str | None, str | None]:
    """Who is acting (the key id, or ``session:<digest prefix>``) and from where (the client address)."""
    state = request.scope.get("state") or {}
    client = request.client
    return state.get("key_id") or state.get("actor"), client.host if client else None


def int_param(request: Request, name: str, default: int, *, low: int = 0, high: int = MAX_PAGE) -> int:
    """A bounded integer query parameter.

    Raises:
        InvalidRequestError: not an integer in ``[low, high]``.
    """
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.lstrip("-").isdigit() or not low <= int(raw) <= high:
        raise InvalidRequestError(f"{name} must be an integer from {low} to {high}", param=name)
    return int(raw)


def _enum_param(request: Request, name: str, kind: type[KeyType] | type[KeyStatus]) -> Any:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise InvalidRequestError(f"{name} must be one of {choices}", param=name) from None


class KeysApi:
    """``/api/keys`` and ``/api/keys/{id}[/rotate]``."""

    def __init__(self, service: KeyService) -> None:
        self.service = service

    async def create(self, request: Request) -> Response:
        spec = parse_body(KeySpec, parse_json_object(await request.body()))
        actor, ip = actor_of(request)
        secret, key = await self.service.create(spec, actor=actor, ip=ip, now=time.time())
        return json_response({"key": secret, **key_record(key)}, status=201)

    async def list(self, request: Request) -> Response:
        limit = int_param(request, "limit", 50, low=1)
        offset = int_param(request, "offset", 0, high=10**9)
        page = await self.service.store.list(
            key_type=_enum_param(request, "type", KeyType),
            status=_enum_param(request, "status", KeyStatus),
            limit=limit,
            offset=offset,
        )
        data = [key_record(key) for key in page.keys]
        return json_response({"object": "list", "data": data, "total": page.total, "limit": limit, "offset": offset})

    async def show(self, request: Request) -> Response:
        return json_response(key_record(await self.service.get(request.path_params["key_id"])))

    async def update(self, request: Request) -> Response:
        changes = parse_body(KeyChanges, parse_json_object(await request.body()))
        actor, ip = actor_of(request)
        key = await self.service.update(request.path_params["key_id"], changes, actor=actor, ip=ip, now=time.time())
        return json_response(key_record(key))

    async def revoke(self, request: Request) -> Response:
        actor, ip = actor_of(request)
        key = await self.service.revoke(request.path_params["key_id"], actor=actor, ip=ip, now=time.time())
        return json_response(key_record(key))

    async def rotate(self, request: Request) -> Response:
        actor, ip = actor_of(request)
        secret, key = await self.service.rotate(request.path_params["key_id"], actor=actor, ip=ip, now=time.time())
        return json_response({"key": secret, **key_record(key)}, status=201)


class MonitorApi:
    """``GET /api/rate-limits`` and ``GET /api/compliance/audit-log``."""

    def __init__(self, service: KeyService, limiter: Limiter, audit: AuditLog) -> None:
        self.service = service
        self.limiter = limiter
        self.audit = audit

    async def rate_limits(self, request: Request) -> Response:
        key_id = request.query_params.get("key_id")
        keys = (
            [await self.service.get(key_id)]
            if key_id
            else (await self.service.store.list(status=KeyStatus.ACTIVE, limit=MAX_PAGE)).keys
        )
        now = time.time()
        data = []
        for key in keys:
            state = await self.limiter.state(key.id, now=now)
            data.append(
                {
                    "key_id": key.id,
                    "limits": key_record(key)["limits"],
                    "budget": key_record(key)["budget"],
                    "requests": state.requests,
                    "tokens": state.tokens,
                    "concurrent": state.concurrent,
                    "spend_usd": state.spend_usd,
                }
            )
        return json_response({"object": "list", "data": data})

    async def audit_log(self, request: Request) -> Response:
        entries = await self.audit.recent(limit=int_param(request, "limit", 100, low=1, high=10_000))
        data = [
            {
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "ip": e.ip,
                "before": e.before,
                "after": e.after,
            }
            for e in entries
        ]
        return json_response({"object": "list", "data": data})
