"""The gateway-wide IP filter: the rules in force in this worker, and ``GET``/``PUT /api/settings/ip-filter``.

The rules live in the settings store (``ip_filter``) and, parsed, in memory: ``Authenticator`` asks
``IpFilter.screen`` on every request but ``/health`` and ``/ready``, before any key lookup, and with
both lists empty that costs one attribute check. A background task reads the store once a second, so
a change made through any worker or instance is in force everywhere within about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from polyroute.api.admin import actor_of, json_response
from polyroute.api.responses import parse_json_object
from polyroute.core.ip_rules import InvalidIpRulesError, IpRules, Verdict
from polyroute.errors import GatewayError, InvalidRequestError, PermissionDeniedError
from polyroute.storage.base import AuditEntry, AuditLog, SettingsStore

logger = logging.getLogger(__name__)

SETTING: Final = "ip_filter"
_MAX_REMEMBERED: Final = 4096
"""Verdicts remembered per worker (by client address) until the rules change; past this many, start over."""
_MESSAGES: Final = {
    Verdict.BLOCKED: "requests from this address are blocked by the gateway's IP filter",
    Verdict.NOT_ALLOWED: "this address is not on the gateway's IP allow list",
}


class IpFilter:
    """The rules in force in this worker: loaded at start, then re-read from the store every ``interval_s``."""

    def __init__(self, store: SettingsStore, *, interval_s: float = 1.0) -> None:
        self._store = store
        self._interval_s = interval_s
        self.rules = IpRules()
        self._enforced: IpRules | None = None
        """``rules`` when either list has entries, else None (the hot path then does nothing)."""
        self._verdicts: dict[str | None, Verdict] = {}
        """Verdicts of ``_enforced`` by address: parsing an address costs more than the rest of the check."""
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def screen(self, scope: Scope) -> GatewayError | None:
        """The refusal for this request's client address, or None when the rules let it through."""
        rules = self._enforced
        if rules is None:
            return None
        client = scope.get("client")
        address = client[0] if client else None
        verdict = self._verdicts.get(address)
        if verdict is None:
            if len(self._verdicts) >= _MAX_REMEMBERED:
                self._verdicts = {}
            verdict = self._verdicts[address] = rules.verdict(address)
        if verdict is Verdict.ALLOWED:
            return None
        return PermissionDeniedError(_MESSAGES[verdict], code=verdict.value)

    def apply(self, rules: IpRules) -> None:
        """Put ``rules`` in force in this worker."""
        self.rules = rules
        self._verdicts = {}
        self._enforced = None if rules.is_empty else rules

    async def load(self) -> None:
        """Read the stored rules and put them in force (stored rules that do not parse are logged and ignored)."""
        stored = await self._store.get(SETTING)
        try:
            rules = IpRules() if stored is None else IpRules.parse(stored)
        except InvalidIpRulesError as exc:
            logger.error("the stored IP filter is invalid (%s); keeping the rules in force", exc)
            return
        if rules != self.rules:
            self.apply(rules)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.load()
            except Exception as exc:  # a background task: keep the rules in force and try again next time
                if not self._failing:
                    logger.warning("could not read the IP filter from storage (%s); keeping the rules in force", exc)
                self._failing = True
            else:
                self._failing = False

    def start(self) -> None:
        """Begin re-reading the stored rules every ``interval_s``."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def aclose(self) -> None:
        """Stop re-reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _lockout_error(rules: IpRules, address: str | None) -> InvalidRequestError | None:
    """Why ``rules`` would refuse the caller's own address, or None when they let it through."""
    verdict = rules.verdict(address)
    if verdict is Verdict.ALLOWED:
        return None
    shown = address or "(unknown)"
    if verdict is Verdict.BLOCKED:
        index = rules.blocking_entry(address)
        param = f"block[{index}]"
        message = (
            f"refused: {param} ({rules.block[index or 0]}) covers your own address {shown}, so these rules would "
            "lock you out; remove that entry, or make the change from an address the rules let through"
        )
    else:
        param = "allow"
        message = (
            f"refused: the allow list does not include your own address {shown}, so these rules would lock you "
            "out; add your address (or its network) to allow"
        )
    return InvalidRequestError(message, param=param, code="ip_filter_locks_out_caller")


class IpFilterApi:
    """``GET /api/settings/ip-filter`` and ``PUT /api/settings/ip-filter`` (``{"allow": [...], "block": [...]}``)."""

    def __init__(self, ip_filter: IpFilter, store: SettingsStore, audit: AuditLog) -> None:
        self.ip_filter = ip_filter
        self.store = store
        self.audit = audit

    async def show(self, request: Request) -> Response:
        del request
        await self.ip_filter.load()
        return json_response(self.ip_filter.rules.to_json())

    async def replace(self, request: Request) -> Response:
        try:
            rules = IpRules.parse(parse_json_object(await request.body()))
        except InvalidIpRulesError as exc:
            raise InvalidRequestError(str(exc), param=exc.param) from None
        actor, ip = actor_of(request)
        if (lockout := _lockout_error(rules, ip)) is not None:
            raise lockout
        await self.ip_filter.load()
        before = self.ip_filter.rules.to_json()
        after = rules.to_json()
        await self.store.put(SETTING, after)
        self.ip_filter.apply(rules)
        entry = AuditEntry(
            at=time.time(), actor=actor, action="settings.ip_filter", target=None, ip=ip, before=before, after=after
        )
        await self.audit.record(entry)
        return json_response(after)
