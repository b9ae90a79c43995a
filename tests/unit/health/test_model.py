"""InProcessHealth against a small reference model, driven by hypothesis through random event sequences.

The model restates the semantics in the plainest form (lists and dicts, no shared code), so a
disagreement points at a bug in one or the other.
"""

from __future__ import annotations

import math
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from polyroute.health import PROBE, FailureKind, InProcessHealth, ResilienceProfile

T = TypeVar("T")
T0 = 1_700_000_000.0
MEMORY_S = 86400.0
DEPLOYMENTS = ("p/a", "p/b", "q/a")
CREDENTIALS = ("k1", "k2")
PROFILE = ResilienceProfile(
    cooldown_base_s=1,
    cooldown_max_s=8,
    broken_credential_s=30,
    failure_threshold=3,
    failure_rate=0.5,
    min_requests=4,
    window_s=10,
    open_s=5,
    max_open_s=20,
    probe_timeout_s=3,
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (InProcessHealth's never do)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise AssertionError("the coroutine suspended")


class Model:
    """The semantics, restated."""

    def __init__(self, profile: ResilienceProfile) -> None:
        self.p = profile
        self.now = T0
        self.cooldowns: dict[tuple[str, str], dict[str, float]] = {}
        self.broken: dict[tuple[str, str], float] = {}
        self.breakers: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[tuple[int, bool]]] = {}

    def _cooldown(self, key: tuple[str, str]) -> dict[str, float] | None:
        entry = self.cooldowns.get(key)
        return entry if entry is not None and self.now < entry["forget"] else None

    def _breaker(self, deployment: str) -> dict[str, Any] | None:
        entry = self.breakers.get(deployment)
        return entry if entry is not None and self.now < entry["forget"] else None

    def _count(self, deployment: str, failed: bool) -> tuple[int, int]:
        second = math.floor(self.now)
        kept = [e for e in self.events.get(deployment, []) if e[0] > second - math.ceil(self.p.window_s)]
        kept.append((second, failed))
        self.events[deployment] = kept
        return len(kept), sum(1 for _, f in kept if f)

    def _open(self, deployment: str, failures: int, opens: int) -> float:
        length = min(self.p.max_open_s, self.p.open_s * 2.0 ** (opens - 1))
        until = self.now + length
        self.breakers[deployment] = {
            "failures": failures,
            "opens": opens,
            "open_until": until,
            "probe_until": None,
            "forget": until + MEMORY_S,
        }
        return length

    def _remove_breaker(self, deployment: str) -> None:
        entry = self.breakers.pop(deployment, None)
        if entry is not None and entry["open_until"] is not None:
            self.events.pop(deployment, None)

    def failure(self, deployment: str, credential: str, kind: FailureKind, retry_after_s: float | None) -> float:
        if kind is FailureKind.RATE_LIMITED:
            old = self._cooldown((deployment, credential))
            strikes = int(old["strikes"]) + 1 if old else 1
            if retry_after_s is None:
                wait = min(self.p.cooldown_max_s, self.p.cooldown_base_s * 2.0 ** (strikes - 1))
            else:
                wait = max(0.0, retry_after_s)
            until = self.now + wait
            self.cooldowns[(deployment, credential)] = {
                "until": until,
                "strikes": strikes,
                "forget": until + self.p.cooldown_max_s,
            }
            return wait
        if kind is FailureKind.AUTH:
            self.broken[(deployment.split("/")[0], credential)] = self.now + self.p.broken_credential_s
            return self.p.broken_credential_s
        requests, failures = self._count(deployment, True)
        old_breaker = self._breaker(deployment)
        consecutive = (old_breaker["failures"] if old_breaker else 0) + 1
        if old_breaker is None or old_breaker["open_until"] is None:
            if consecutive >= self.p.failure_threshold or (
                requests >= self.p.min_requests and failures >= self.p.failure_rate * requests
            ):
                return self._open(deployment, consecutive, 1)
            self.breakers[deployment] = {
                "failures": consecutive,
                "opens": 0,
                "open_until": None,
                "probe_until": None,
                "forget": self.now + MEMORY_S,
            }
            return 0.0
        if self.now < old_breaker["open_until"]:
            old_breaker["failures"] = consecutive
            return 0.0
        return self._open(deployment, consecutive, int(old_breaker["opens"]) + 1)

    def success(self, deployment: str, credential: str) -> None:
        self._count(deployment, False)
        self.cooldowns.pop((deployment, credential), None)
        breaker = self._breaker(deployment)
        if breaker is not None and not (breaker["open_until"] is not None and self.now < breaker["open_until"]):
            self._remove_breaker(deployment)

    def claim(self, deployment: str) -> bool:
        breaker = self._breaker(deployment)
        if breaker is None or breaker["open_until"] is None:
            return True
        if self.now < breaker["open_until"]:
            return False
        if breaker["probe_until"] is not None and self.now < breaker["probe_until"]:
            return False
        breaker["probe_until"] = self.now + self.p.probe_timeout_s
        breaker["forget"] = max(breaker["forget"], breaker["probe_until"])
        return True

    def wait_s(self, deployment: str, credential: str) -> float:
        waits = []
        cooldown = self._cooldown((deployment, credential))
        if cooldown:
            waits.append(cooldown["until"] - self.now)
        broken_until = self.broken.get((deployment.split("/")[0], credential))
        if broken_until is not None:
            waits.append(broken_until - self.now)
        breaker = self._breaker(deployment)
        probe = False
        if breaker is not None and breaker["open_until"] is not None:
            if self.now < breaker["open_until"]:
                waits.append(breaker["open_until"] - self.now)
            elif breaker["probe_until"] is not None and self.now < breaker["probe_until"]:
                waits.append(breaker["probe_until"] - self.now)
            else:
                probe = True
        longest = max(waits, default=0.0)
        if longest > 0:
            return longest
        return PROBE if probe else 0.0

    def reset(self, deployment: str | None) -> int:
        cleared = 0
        for key in list(self.cooldowns):
            if deployment is None or key[0] == deployment:
                cleared += self._cooldown(key) is not None
                del self.cooldowns[key]
        for name in list(self.breakers):
            if deployment is None or name == deployment:
                cleared += self._breaker(name) is not None
                self._remove_breaker(name)
        if deployment is None:
            cleared += sum(1 for until in self.broken.values() if self.now < until)
            self.broken.clear()
        return cleared

    def clear(self, deployment: str, credential: str | None) -> int:
        cleared = 0
        for key in list(self.cooldowns):
            if key[0] == deployment and credential in (None, key[1]):
                cleared += self._cooldown(key) is not None
                del self.cooldowns[key]
        for key, until in list(self.broken.items()):
            if key[0] == deployment.split("/")[0] and credential in (None, key[1]):
                cleared += self.now < until
                del self.broken[key]
        return cleared


class HealthMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model = Model(PROFILE)
        self.health = InProcessHealth(PROFILE, clock=lambda: self.model.now)

    @rule(dt=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 9.0, 11.0, 30.0, 400.0]))
    def advance(self, dt: float) -> None:
        self.model.now += dt

    @rule(
        deployment=st.sampled_from(DEPLOYMENTS),
        credential=st.sampled_from(CREDENTIALS),
        kind=st.sampled_from([FailureKind.FAILURE, FailureKind.FAILURE, FailureKind.RATE_LIMITED, FailureKind.AUTH]),
        retry_after_s=st.none() | st.sampled_from([0.0, 2.5, 7.0]),
    )
    def failure(self, deployment: str, credential: str, kind: FailureKind, retry_after_s: float | None) -> None:
        got = run(self.health.failure(deployment, credential, kind, retry_after_s=retry_after_s))
        assert got == self.model.failure(deployment, credential, kind, retry_after_s)

    @rule(deployment=st.sampled_from(DEPLOYMENTS), credential=st.sampled_from(CREDENTIALS))
    def success(self, deployment: str, credential: str) -> None:
        self.health.success(deployment, credential)
        self.model.success(deployment, credential)

    @rule(deployment=st.sampled_from(DEPLOYMENTS))
    def claim(self, deployment: str) -> None:
        assert run(self.health.claim_probe(deployment)) == self.model.claim(deployment)

    @rule(deployment=st.none() | st.sampled_from(DEPLOYMENTS))
    def reset(self, deployment: str | None) -> None:
        assert run(self.health.reset(deployment)) == self.model.reset(deployment)

    @rule(deployment=st.sampled_from(DEPLOYMENTS), credential=st.none() | st.sampled_from(CREDENTIALS))
    def clear(self, deployment: str, credential: str | None) -> None:
        assert run(self.health.clear(deployment, credential)) == self.model.clear(deployment, credential)

    @invariant()
    def waits_agree(self) -> None:
        for deployment in DEPLOYMENTS:
            for credential in CREDENTIALS:
                expected = self.model.wait_s(deployment, credential)
                assert self.health.wait_s(deployment, credential) == pytest.approx(expected, abs=1e-9)


TestHealthMatchesTheModel = HealthMachine.TestCase
TestHealthMatchesTheModel.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
