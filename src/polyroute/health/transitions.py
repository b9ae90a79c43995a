"""The health state machine as pure functions: an entry, the profile and ``now`` in; the next entry out.

Each event is a ``Step``: a function from the current entry (None when there is none) to the next
entry (None to delete it) and a result. ``InProcessHealth`` applies a step to its dicts;
``RedisHealth`` applies the same step inside a compare-and-set loop, so there is one state machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Final, TypeAlias, TypeVar

from polyroute.health.base import PROBE, EntryKind, EntryState, FailureKind, HealthEntry, LastError
from polyroute.health.entries import Breaker, Broken, Cooldown, Entry, EntryKey, provider_of
from polyroute.health.profile import ResilienceProfile

R = TypeVar("R")
Step: TypeAlias = Callable[[Entry | None], tuple[Entry | None, R]]

BREAKER_MEMORY_S: Final = 86400.0
"""A breaker with no change for this long past its open time is forgotten (it closes, counts reset)."""
_MAX_DOUBLINGS: Final = 60


def live(entry: Entry | None, now: float) -> Entry | None:
    """The entry, or None once it has expired."""
    if entry is None or entry.expires_at <= now:
        return None
    return entry


def backoff_s(base_s: float, max_s: float, count: int) -> float:
    """``base_s`` doubled ``count - 1`` times, at most ``max_s``."""
    return min(max_s, base_s * 2.0 ** min(count - 1, _MAX_DOUBLINGS))


def rate_limited(
    profile: ResilienceProfile, now: float, *, retry_after_s: float | None, error: LastError
) -> Step[float]:
    """A 429: cool down for ``Retry-After`` when given, else exponentially per consecutive 429."""

    def step(entry: Entry | None) -> tuple[Entry | None, float]:
        current = live(entry, now)
        strikes = (current.strikes if isinstance(current, Cooldown) else 0) + 1
        if retry_after_s is not None:
            wait = max(0.0, retry_after_s)
        else:
            wait = backoff_s(profile.cooldown_base_s, profile.cooldown_max_s, strikes)
        until = now + wait
        cooldown = Cooldown(until=until, strikes=strikes, expires_at=until + profile.cooldown_max_s, last_error=error)
        return cooldown, wait

    return step


def auth_failed(profile: ResilienceProfile, now: float, *, error: LastError) -> Step[float]:
    """A 401/403: block the provider's credential for ``broken_credential_s``."""

    def step(entry: Entry | None) -> tuple[Entry | None, float]:
        wait = profile.broken_credential_s
        if wait <= 0:
            return live(entry, now), 0.0
        return Broken(until=now + wait, expires_at=now + wait, last_error=error), wait

    return step


def failed(profile: ResilienceProfile, now: float, *, error: LastError, requests: int, failures: int) -> Step[float]:
    """A failure counted by the breaker; ``requests``/``failures`` are this instance's rate window, this one included.

    Closed: opens at ``failure_threshold`` consecutive failures, or at ``failure_rate`` with at least
    ``min_requests`` in the window. Open: only counted. Half-open: opens again, for twice as long.
    """

    def step(entry: Entry | None) -> tuple[Entry | None, float]:
        current = live(entry, now)
        breaker = current if isinstance(current, Breaker) else None
        consecutive = (breaker.failures if breaker else 0) + 1
        if breaker is None or breaker.open_until is None:
            rate_tripped = requests >= profile.min_requests and failures >= profile.failure_rate * requests
            if consecutive >= profile.failure_threshold or rate_tripped:
                return _opened(profile, now, failures=consecutive, opens=1, error=error)
            return _breaker(now, failures=consecutive, opens=0, open_until=None, error=error), 0.0
        if now < breaker.open_until:
            return replace(breaker, failures=consecutive, last_error=error), 0.0
        return _opened(profile, now, failures=consecutive, opens=breaker.opens + 1, error=error)

    return step


def succeeded(now: float) -> Step[None]:
    """A success: forgets a cooldown's strikes; closes a closed-with-failures or half-open breaker.

    A success while the breaker is still open (a request sent before it opened) changes nothing.
    """

    def step(entry: Entry | None) -> tuple[Entry | None, None]:
        current = live(entry, now)
        if isinstance(current, Breaker) and current.open_until is not None and now < current.open_until:
            return current, None
        if isinstance(current, Broken):
            return current, None
        return None, None

    return step


def claim(profile: ResilienceProfile, now: float) -> Step[bool]:
    """Claim the half-open probe: True for one caller until ``probe_timeout_s``; True when closed; else False."""

    def step(entry: Entry | None) -> tuple[Entry | None, bool]:
        current = live(entry, now)
        if not isinstance(current, Breaker) or current.open_until is None:
            return current, True
        if now < current.open_until or (current.probe_until is not None and now < current.probe_until):
            return current, False
        probe_until = now + profile.probe_timeout_s
        return replace(current, probe_until=probe_until, expires_at=max(current.expires_at, probe_until)), True

    return step


def failure_key(kind: FailureKind, deployment: str, credential: str) -> EntryKey:
    """The entry a failure of ``kind`` changes: a cooldown, the provider's credential, or the breaker."""
    if kind is FailureKind.RATE_LIMITED:
        return EntryKey(EntryKind.COOLDOWN, deployment, credential)
    if kind is FailureKind.AUTH:
        return EntryKey(EntryKind.BROKEN, provider_of(deployment), credential)
    return EntryKey(EntryKind.BREAKER, deployment, "")


def failure_step(
    kind: FailureKind,
    profile: ResilienceProfile,
    *,
    retry_after_s: float | None,
    error: LastError,
    window: tuple[int, int],
) -> Step[float]:
    """How a failure of ``kind`` at ``error.at`` changes its entry; ``window``: (requests, failures) for the breaker."""
    now = error.at
    if kind is FailureKind.RATE_LIMITED:
        return rate_limited(profile, now, retry_after_s=retry_after_s, error=error)
    if kind is FailureKind.AUTH:
        return auth_failed(profile, now, error=error)
    requests, failures = window
    return failed(profile, now, error=error, requests=requests, failures=failures)


def breaker_wait_s(breaker: Breaker, now: float) -> float:
    """0 when closed, seconds left while open or while another caller's probe runs, else ``PROBE``."""
    if breaker.open_until is None:
        return 0.0
    if now < breaker.open_until:
        return breaker.open_until - now
    if breaker.probe_until is not None and now < breaker.probe_until:
        return breaker.probe_until - now
    return PROBE


def combined_wait_s(cooldown: Entry | None, broken: Entry | None, breaker: Entry | None, now: float) -> float:
    """The largest positive wait of the three; else ``PROBE`` when the breaker is half-open; else 0."""
    wait = 0.0
    if isinstance(cooldown, Cooldown):
        wait = cooldown.until - now
    if isinstance(broken, Broken) and broken.until - now > wait:
        wait = broken.until - now
    if isinstance(breaker, Breaker) and breaker.open_until is not None:
        breaker_wait = breaker_wait_s(breaker, now)
        if breaker_wait == PROBE:
            return wait if wait > 0 else PROBE
        wait = max(wait, breaker_wait)
    return wait if wait > 0 else 0.0


def view(key: EntryKey, entry: Entry, now: float) -> HealthEntry | None:
    """The entry as the API shows it; None for an entry with nothing left to show (a cooldown that ended)."""
    kind, subject, credential = key
    if isinstance(entry, Cooldown):
        if entry.until <= now:
            return None
        state, until, count = EntryState.COOLING, entry.until, entry.strikes
    elif isinstance(entry, Broken):
        state, until, count = EntryState.BROKEN, entry.until, 0
    else:
        state, until, count = _breaker_state(entry, now), None, entry.failures
        if state is EntryState.OPEN:
            until = entry.open_until
        elif state is EntryState.HALF_OPEN and entry.probe_until is not None and now < entry.probe_until:
            until = entry.probe_until
    return HealthEntry(
        kind=kind,
        deployment=None if kind is EntryKind.BROKEN else subject,
        provider=subject if kind is EntryKind.BROKEN else provider_of(subject),
        credential=credential if kind is not EntryKind.BREAKER else None,
        state=state,
        until=until,
        consecutive_failures=count,
        last_error=entry.last_error,
    )


def _breaker_state(breaker: Breaker, now: float) -> EntryState:
    if breaker.open_until is None:
        return EntryState.CLOSED
    return EntryState.OPEN if now < breaker.open_until else EntryState.HALF_OPEN


def _opened(
    profile: ResilienceProfile, now: float, *, failures: int, opens: int, error: LastError
) -> tuple[Breaker, float]:
    wait = backoff_s(profile.open_s, profile.max_open_s, opens)
    return _breaker(now, failures=failures, opens=opens, open_until=now + wait, error=error), wait


def _breaker(now: float, *, failures: int, opens: int, open_until: float | None, error: LastError) -> Breaker:
    return Breaker(
        failures=failures,
        opens=opens,
        open_until=open_until,
        probe_until=None,
        expires_at=(open_until or now) + BREAKER_MEMORY_S,
        last_error=error,
    )
