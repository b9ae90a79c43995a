"""The key lifecycle against a model: random sequences of create, use, revoke, rotate and expiry changes.

Drives the real ``KeyService`` over ``SqlKeyStore`` on a temporary SQLite database, with the
``KeyRing`` cache and the ``Authenticator`` deciding each request from a hand-made ASGI scope, and
compares every verdict with what a plain dictionary of keys says it must be.
"""

from __future__ import annotations

import asyncio
import string
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, multiple, rule, run_state_machine_as_test
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.api.access import KeyRing
from polyroute.api.key_service import KeyChanges, KeyService, KeySpec
from polyroute.core.keys import ApiKey, KeyStatus, KeyType
from polyroute.errors import GatewayError, InvalidRequestError
from polyroute.middleware.authentication import Authenticator
from polyroute.storage.audit import SqlAuditLog
from polyroute.storage.keys import SqlKeyStore
from polyroute.storage.migrate import upgrade
from polyroute.storage.sql import create_engine

T = TypeVar("T")

LIFETIME_S = {KeyType.TEST: 3600.0, KeyType.FULL: 30 * 86400.0, KeyType.ADMIN: None}
INFERENCE_PATHS = ("/v1/chat/completions", "/v1/messages", "/v1/models", "/api/chat", "/api/generate")
MANAGEMENT_PATHS = ("/api/keys", "/api/keys/key_0", "/api/usage/history", "/api/rate-limits", "/api/pricing")
ACCEPTED = (200, "accepted")


def scope_for(path: str, secret: str, style: str) -> dict[str, Any]:
    """A request scope presenting ``secret`` the way one client API does."""
    header = {
        "bearer": (b"authorization", f"Bearer {secret}".encode()),
        "x-api-key": (b"x-api-key", secret.encode()),
        "x-goog-api-key": (b"x-goog-api-key", secret.encode()),
    }[style]
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"content-type", b"application/json"), header],
        "query_string": b"",
        "client": ("127.0.0.1", 40000),
        "state": {},
    }


@dataclass
class Expected:
    """What the model knows of one key."""

    secret: str
    type: KeyType
    expires_at: float | None
    revoked: bool = False
    revoked_at: float | None = None

    def verdict(self, path: str, now: float) -> tuple[int, str]:
        if self.revoked:
            return 403, "key_revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return 401, "key_expired"
        if path in MANAGEMENT_PATHS and self.type is not KeyType.ADMIN:
            return 403, "admin_key_required"
        return ACCEPTED


@dataclass
class World:
    """What every example shares: one event loop and one migrated database."""

    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)


class KeyLifecycle(RuleBasedStateMachine):
    """One example: a fresh key cache and service over the shared database, and the model beside them."""

    keys = Bundle("keys")

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.store = SqlKeyStore(world.engine)
        self.ring = KeyRing(self.store)
        self.service = KeyService(self.store, SqlAuditLog(world.engine), on_change=self.ring.forget_key)
        self.authenticator = Authenticator(keys=self.ring)
        self.model: dict[str, Expected] = {}

    def _verdict(self, path: str, secret: str, style: str) -> tuple[tuple[int, str], dict[str, Any]]:
        scope = scope_for(path, secret, style)
        error: GatewayError | None = self.world.run(self.authenticator.check(scope))
        if error is None:
            return ACCEPTED, scope
        return (error.status_code, error.code or ""), scope

    @rule(target=keys, key_type=st.sampled_from(KeyType))
    def create(self, key_type: KeyType) -> str:
        now = time.time()
        spec = KeySpec(type=key_type)
        secret, key = self.world.run(self.service.create(spec, actor="model", ip="127.0.0.1", now=now))
        lifetime = LIFETIME_S[key_type]
        assert key.expires_at == (None if lifetime is None else now + lifetime)
        assert secret.startswith(f"pr_{key_type.value}_")
        assert (key.type, key.status) == (key_type, KeyStatus.ACTIVE)
        self.model[key.id] = Expected(secret, key_type, key.expires_at)
        return key.id

    @rule(
        key_id=keys,
        path=st.sampled_from(INFERENCE_PATHS + MANAGEMENT_PATHS),
        style=st.sampled_from(["bearer", "x-api-key", "x-goog-api-key"]),
    )
    def use(self, key_id: str, path: str, style: str) -> None:
        expected = self.model[key_id]
        verdict, scope = self._verdict(path, expected.secret, style)
        assert verdict == expected.verdict(path, time.time()), (key_id, path, expected)
        if verdict == ACCEPTED:
            assert scope["state"]["key_id"] == key_id
            assert scope["state"]["key"].type is expected.type

    @rule(
        path=st.sampled_from(INFERENCE_PATHS + MANAGEMENT_PATHS),
        guess=st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=50),
        kind=st.sampled_from(KeyType),
    )
    def use_unknown(self, path: str, guess: str, kind: KeyType) -> None:
        verdict, scope = self._verdict(path, f"pr_{kind.value}_{guess}", "bearer")
        assert verdict == (401, "invalid_api_key")
        assert "key" not in scope["state"]

    @rule(key_id=keys)
    def revoke(self, key_id: str) -> None:
        expected = self.model[key_id]
        now = time.time()
        key = self.world.run(self.service.revoke(key_id, actor="model", ip=None, now=now))
        assert key.status is KeyStatus.REVOKED
        # Revoking again changes nothing: the first revocation's time stays.
        assert key.revoked_at == (expected.revoked_at if expected.revoked else now)
        expected.revoked = True
        expected.revoked_at = key.revoked_at

    @rule(target=keys, key_id=keys)
    def rotate(self, key_id: str) -> Any:
        old = self.model[key_id]
        rotation = self.service.rotate(key_id, actor="model", ip=None, now=time.time())
        if old.revoked:
            with pytest.raises(InvalidRequestError, match="is revoked and cannot be rotated"):
                self.world.run(rotation)
            return multiple()
        secret, new = self.world.run(rotation)
        assert (new.type, new.rotated_from, new.expires_at) == (old.type, key_id, old.expires_at)
        assert secret != old.secret
        old.revoked = True
        old.revoked_at = self.world.run(self.service.get(key_id)).revoked_at
        assert old.revoked_at is not None
        self.model[new.id] = Expected(secret, old.type, old.expires_at)
        return new.id

    @rule(key_id=keys, when=st.sampled_from(["past", "soon", "never"]))
    def patch_expiry(self, key_id: str, when: str) -> None:
        now = time.time()
        expires_at = {"past": now - 5.0, "soon": now + 600.0, "never": None}[when]
        changes = KeyChanges(expires_at=expires_at)
        key = self.world.run(self.service.update(key_id, changes, actor="model", ip=None, now=now))
        assert key.expires_at == expires_at
        self.model[key_id].expires_at = expires_at

    @rule(key_id=keys)
    def stored_matches_the_model(self, key_id: str) -> None:
        stored: ApiKey = self.world.run(self.service.get(key_id))
        expected = self.model[key_id]
        status = KeyStatus.REVOKED if expected.revoked else KeyStatus.ACTIVE
        assert (stored.status, stored.type, stored.expires_at) == (status, expected.type, expected.expires_at)


def test_key_lifecycle_matches_the_model(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    loop = asyncio.new_event_loop()
    engine = create_engine(url)
    world = World(loop, engine)
    try:
        world.run(upgrade(url))

        class OverThisDatabase(KeyLifecycle):
            def __init__(self) -> None:
                super().__init__(world)

        run_state_machine_as_test(
            OverThisDatabase,
            settings=settings(
                max_examples=60,
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
        total = world.run(SqlKeyStore(engine).count())
        assert total > 0
    finally:
        world.run(engine.dispose())
        loop.close()
