"""The shared limiter: every decision is one atomic Lua script in Redis, for any number of workers and hosts.

Scripts read the time from Redis (``TIME``), so every host agrees on windows and budget periods
whatever its own clock says; ``clock="caller"`` uses the ``now`` passed in instead (tests, replays).
All keys of one API key share a ``{key_id}`` hash tag, so a script touches one cluster slot.
Needs Redis 6.0 or later (``KEEPTTL``). The data layout, the connection pool and the retries of
writes that did not land are described in docs/architecture.md ("Limits").
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from polyroute.core.keys import Budget, Limits
from polyroute.errors import LimiterUnavailableError
from polyroute.limits.base import (
    CONCURRENCY_RETRY_S,
    LEASE_TTL_S,
    REQUEST_WINDOWS_S,
    TOKEN_BUCKETS_S,
    TOKEN_WINDOWS_S,
    Admission,
    KeyState,
    Refusal,
    Window,
)

logger = logging.getLogger(__name__)

_US: Final = 1_000_000
_SPEND_GRACE_S: Final = 3600
"""Spend counters live this long past their period's end (a late charge still finds its period)."""

_CONSTANTS: Final = f"""
local US = {_US}
local DAY = 86400 * US
local LEASE_TTL = {round(LEASE_TTL_S * _US)}
local CONCURRENCY_RETRY = {round(CONCURRENCY_RETRY_S * _US)}
local SPEND_GRACE_MS = {_SPEND_GRACE_S * 1000}
local REQUEST_WINDOWS = {{{", ".join(str(round(length * _US)) for _, length in REQUEST_WINDOWS_S)}}}
local TOKEN_WINDOWS = {{
  {{list = 3, sum = 4, length = {round(TOKEN_WINDOWS_S[0][1] * _US)}, bucket = {round(TOKEN_BUCKETS_S[0] * _US)}}},
  {{list = 5, sum = 6, length = {round(TOKEN_WINDOWS_S[1][1] * _US)}, bucket = {round(TOKEN_BUCKETS_S[1] * _US)}}},
}}
"""

_PRELUDE: Final = (
    _CONSTANTS
    + """
-- KEYS (every script): 1 admissions (zset: unique member, score = admission time), 2 leases (zset: lease,
-- score = expiry), 3/4 minute tokens (list of "bucket:tokens", oldest first / their sum), 5/6 day tokens,
-- 7 the base name of the spend counters (":d:<day>", ":w:<week>", ":m:<month>", ":t"). Times are in µs.

local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * US + tonumber(t[2])
end

local function fmt(n)
  return string.format('%.0f', n)
end

local function bucket_of(entry)
  local sep = string.find(entry, ':', 1, true)
  return tonumber(string.sub(entry, 1, sep - 1)), tonumber(string.sub(entry, sep + 1))
end

-- Year and month of a day number (days since 1970-01-01); Howard Hinnant's civil_from_days.
local function month_of(day)
  local z = day + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  return yoe + era * 400 + (m <= 2 and 1 or 0), m
end

-- The day number of the first day of a month; Howard Hinnant's days_from_civil.
local function first_day(y, m)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5)
  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
end

-- The spend counter and end (µs) of the UTC day, ISO week and calendar month holding now.
local function periods(now)
  local day = math.floor(now / DAY)
  local week = math.floor((day + 3) / 7)
  local y, m = month_of(day)
  local next_y, next_m = y, m + 1
  if next_m == 13 then next_y, next_m = y + 1, 1 end
  return {
    {KEYS[7] .. ':d:' .. fmt(day), (day + 1) * DAY},
    {KEYS[7] .. ':w:' .. fmt(week), (week * 7 + 4) * DAY},
    {KEYS[7] .. ':m:' .. fmt(y * 12 + m - 1), first_day(next_y, next_m) * DAY},
  }
end

local function number_at(key)
  return tonumber(redis.call('GET', key) or '0')
end

-- The tokens a window still counts at now, without changing anything.
local function counted_tokens(w, now)
  local horizon = now - w.length
  local total = 0
  for _, entry in ipairs(redis.call('LRANGE', KEYS[w.list], 0, -1)) do
    local number, tokens = bucket_of(entry)
    if (number + 1) * w.bucket > horizon then total = total + tokens end
  end
  return total
end
"""
)

_ADMIT: Final = (
    _PRELUDE
    + """
-- ARGV: 1 now ('' = server time), 2 unique member, 3-5 requests per minute/hour/day, 6-7 tokens per
-- minute/day, 8 max concurrent, 9-12 budget per day/week/month/total, 13 warn fraction ('' = no limit).
local now = clock(ARGV[1])
local function opt(i)
  if ARGV[i] == '' then return nil end
  return tonumber(ARGV[i])
end
local refusal, retry, warning = nil, 0, 0
local function refuse(kind, wait)
  if refusal == nil or wait > retry then refusal, retry = kind, wait end
end

local budgets = {opt(9), opt(10), opt(11), opt(12)}
if budgets[1] or budgets[2] or budgets[3] or budgets[4] then
  local warn = tonumber(ARGV[13])
  local p = periods(now)
  p[4] = {KEYS[7] .. ':t', math.huge}
  for i = 1, 4 do
    local limit = budgets[i]
    if limit then
      local spend = number_at(p[i][1])
      if spend >= limit then refuse('budget', p[i][2] - now) end
      if spend >= warn * limit then warning = 1 end
    end
  end
end

local requests = {opt(3), opt(4), opt(5)}
local counts, longest = {}, nil
for i = 1, 3 do
  if requests[i] then longest = REQUEST_WINDOWS[i] end
end
if longest then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now - longest))
  for i = 1, 3 do
    local limit = requests[i]
    if limit then
      local from = '(' .. fmt(now - REQUEST_WINDOWS[i])
      local count = redis.call('ZCOUNT', KEYS[1], from, '+inf')
      counts[i] = count
      if count >= limit then
        if limit <= 0 then
          refuse('requests', math.huge)
        else
          local entry = redis.call('ZRANGEBYSCORE', KEYS[1], from, '+inf', 'WITHSCORES', 'LIMIT', count - limit, 1)
          refuse('requests', tonumber(entry[2]) + REQUEST_WINDOWS[i] - now)
        end
      end
    end
  end
end

for i = 1, 2 do
  local limit = opt(5 + i)
  if limit then
    local w = TOKEN_WINDOWS[i]
    local list, sum = KEYS[w.list], KEYS[w.sum]
    local horizon = now - w.length
    local total, dropped = number_at(sum), false
    while true do
      local head = redis.call('LINDEX', list, 0)
      if not head then
        if dropped or total ~= 0 then redis.call('DEL', sum) end
        total, dropped = 0, false
        break
      end
      local number, tokens = bucket_of(head)
      if (number + 1) * w.bucket > horizon then break end
      redis.call('LPOP', list)
      total, dropped = total - tokens, true
    end
    if dropped then redis.call('SET', sum, fmt(total), 'KEEPTTL') end
    if total >= limit then
      local wait = math.huge
      if limit > 0 then
        for _, entry in ipairs(redis.call('LRANGE', list, 0, -1)) do
          local number, tokens = bucket_of(entry)
          total = total - tokens
          if total < limit then wait = (number + 1) * w.bucket + w.length - now; break end
        end
      end
      refuse('tokens', wait)
    end
  end
end

local maximum = opt(8)
if maximum then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now))
  if redis.call('ZCARD', KEYS[2]) >= maximum then
    refuse('concurrency', maximum > 0 and CONCURRENCY_RETRY or math.huge)
  end
end

local lease = ''
if refusal == nil then
  if longest then
    redis.call('ZADD', KEYS[1], fmt(now), ARGV[2])
    redis.call('PEXPIRE', KEYS[1], math.ceil(longest / 1000))
    for i = 1, 3 do
      if counts[i] then counts[i] = counts[i] + 1 end
    end
  end
  if maximum then
    redis.call('ZADD', KEYS[2], fmt(now + LEASE_TTL), ARGV[2])
    redis.call('PEXPIRE', KEYS[2], math.ceil(LEASE_TTL / 1000))
    lease = ARGV[2]
  end
end

-- The tightest request window: least remaining, then latest reset.
local limit, remaining, reset = -1, -1, -1
for i = 1, 3 do
  local count = counts[i]
  if count then
    local left = math.max(requests[i] - count, 0)
    if limit == -1 or left <= remaining then
      local until_free = 0
      if count > 0 then
        local from = '(' .. fmt(now - REQUEST_WINDOWS[i])
        local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
        until_free = tonumber(oldest[2]) + REQUEST_WINDOWS[i] - now
      end
      if limit == -1 or left < remaining or until_free > reset then
        limit, remaining, reset = requests[i], left, until_free
      end
    end
  end
end

if retry == math.huge then retry = -1 end
return {refusal or '', retry, limit, remaining, reset, lease, warning}
"""
)

_CHARGE: Final = (
    _PRELUDE
    + """
-- ARGV: 1 now ('' = server time), 2 tokens, 3 charge the minute window ('1'), 4 the day window, 5 cost ('' = none).
local now = clock(ARGV[1])
local tokens = tonumber(ARGV[2])
for i = 1, 2 do
  if tokens > 0 and ARGV[2 + i] == '1' then
    local w = TOKEN_WINDOWS[i]
    local list, sum = KEYS[w.list], KEYS[w.sum]
    local number = math.floor(now / w.bucket)
    local tail = redis.call('LINDEX', list, -1)
    local last, counted = nil, 0
    if tail then last, counted = bucket_of(tail) end
    if last and last >= number then
      number = last
      redis.call('LSET', list, -1, fmt(last) .. ':' .. fmt(counted + tokens))
    else
      redis.call('RPUSH', list, fmt(number) .. ':' .. fmt(tokens))
    end
    local ttl = math.max(1, math.ceil(((number + 1) * w.bucket + w.length - now) / 1000))
    redis.call('SET', sum, fmt(number_at(sum) + tokens), 'PX', ttl)
    redis.call('PEXPIRE', list, ttl)
  end
end
if ARGV[5] ~= '' then
  local cost = tonumber(ARGV[5])
  for _, period in ipairs(periods(now)) do
    local ttl = math.max(1, math.ceil((period[2] - now) / 1000)) + SPEND_GRACE_MS
    redis.call('SET', period[1], string.format('%.17g', number_at(period[1]) + cost), 'PX', ttl)
  end
  local total = KEYS[7] .. ':t'
  redis.call('SET', total, string.format('%.17g', number_at(total) + cost))
end
return 1
"""
)

_FORGET: Final = """
-- KEYS: 1 admissions, 2 leases. ARGV: 1 the member proposed by an admission whose answer was lost.
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('ZREM', KEYS[2], ARGV[1])
"""

_STATE: Final = (
    _PRELUDE
    + """
-- ARGV: 1 now ('' = server time). Reads only.
local now = clock(ARGV[1])
local answer = {}
for i = 1, 3 do
  answer[i] = redis.call('ZCOUNT', KEYS[1], '(' .. fmt(now - REQUEST_WINDOWS[i]), '+inf')
end
answer[4] = counted_tokens(TOKEN_WINDOWS[1], now)
answer[5] = counted_tokens(TOKEN_WINDOWS[2], now)
answer[6] = redis.call('ZCOUNT', KEYS[2], '(' .. fmt(now), '+inf')
for i, period in ipairs(periods(now)) do
  answer[6 + i] = redis.call('GET', period[1]) or '0'
end
answer[10] = redis.call('GET', KEYS[7] .. ':t') or '0'
return answer
"""
)

_ADMITTED: Final = Admission(admitted=True)
_TOKENS_MINUTE: Final = 1
_TOKENS_DAY: Final = 2
_SPEND: Final = 4
_FAILURES: Final = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)
"""What makes Redis "unavailable" (anything else is a bug or a misconfigured server, and is raised as it is)."""
_RETRY_FIRST_S: Final = 0.05
_RETRY_MAX_S: Final = 2.0
"""Backoff between attempts at a pending write while Redis does not answer."""
_DROP_REPORT_S: Final = 10.0
"""Dropped pending writes are logged at most this often (a count and what they carried)."""
_CLOSE_WAIT_S: Final = 1.0
"""How long ``aclose`` gives pending writes to land before they are logged as lost."""


class _Script:
    """A Lua script run by its SHA1, loaded on first use and again after ``NOSCRIPT`` (a restarted server)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


_ADMIT_SCRIPT: Final = _Script(_ADMIT)
_CHARGE_SCRIPT: Final = _Script(_CHARGE)
_FORGET_SCRIPT: Final = _Script(_FORGET)
_STATE_SCRIPT: Final = _Script(_STATE)


class _UnsentError(RedisConnectionError):
    """No connection could be had (none free in time, or none could be opened): the command never left."""


class _Pool(ConnectionPool):
    """The connection pool, whose failure to hand out a connection is an ``_UnsentError``."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise _UnsentError(type(exc).__name__) from exc


class _Slots:
    """The pool's connections as slots: a command takes one, or waits for one in arrival order.

    Not redis-py's ``BlockingConnectionPool``: a connection it frees can be taken by a newcomer before
    the waiter it woke, and under load some waiters starved until their timeout while the median wait
    was short. Here a freed slot goes to the longest waiter, and taking a free one does not suspend.
    """

    __slots__ = ("free", "waiters")

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def wait(self, timeout_s: float) -> None:
        """Wait for a slot (the caller found none free).

        Raises:
            _UnsentError: none came within ``timeout_s``.
        """
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as the wait ended: pass it on
            elif waiter in self.waiters:  # not yet skipped by a release
                self.waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise _UnsentError(f"no free connection within {timeout_s:g} s") from None
            raise

    def release(self) -> None:
        """Give a slot back: to the longest waiter, else to the free ones."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # a waiter whose wait has just ended is skipped
                waiter.set_result(None)
                return
        self.free += 1


@dataclass(frozen=True, slots=True)
class _Write:
    """A write that Redis did not take when it was made, retried in the background."""

    script: _Script | None
    """None for a lease's ``ZREM``."""
    key_id: str
    args: tuple[str, ...]
    not_before: float
    """``loop.time()`` before which it is not sent."""
    tokens: int = 0
    cost_usd: float | None = None


def _arg(value: float | None) -> str:
    return "" if value is None else repr(value)


def _unavailable(exc: Exception) -> LimiterUnavailableError:
    name = str(exc) if isinstance(exc, _UnsentError) else type(exc).__name__
    return LimiterUnavailableError(f"the rate limiter (Redis) is unavailable: {name}")


def _may_have_run(exc: LimiterUnavailableError) -> bool:
    """Whether the command behind a failure may have run: it was sent, and its answer is what was lost.

    A read-only replica (``READONLY``, after a failover) refuses a script at its first write, and every
    script here writes before it changes anything else.
    """
    return not isinstance(exc.__cause__, (_UnsentError, ReadOnlyError))


class RedisLimiter:
    """Limits and budgets shared by every worker and instance that uses the same Redis and prefix.

    Args:
        url: ``redis://`` or ``rediss://`` URL.
        prefix: prepended to every key this limiter writes.
        clock: ``"server"`` reads Redis's clock in every script (hosts need not agree on the time);
            ``"caller"`` uses the ``now`` passed to each call.
        timeout_s: connect and reply timeout; a slower Redis raises ``LimiterUnavailableError``.
        max_connections: the pool's size; more concurrent commands wait for a free connection.
        pool_timeout_s: how long a command waits for a free connection before Redis counts as unavailable.
        max_pending: writes kept for a retry while Redis does not answer; more are dropped and logged.
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings, each with a default
        self,
        url: str,
        *,
        prefix: str = "polyroute:",
        clock: Literal["server", "caller"] = "server",
        timeout_s: float = 0.5,
        max_connections: int = 128,
        pool_timeout_s: float = 2.0,
        max_pending: int = 10_000,
    ) -> None:
        # One retry, on a broken connection only (a pooled connection to a restarted server): a timed-out
        # script may have run, and running it twice would count the request twice.
        pool = _Pool.from_url(
            url,
            max_connections=max_connections,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._redis = Redis.from_pool(pool)
        self._slots = _Slots(max_connections)
        self._pool_timeout_s = pool_timeout_s
        self._prefix = prefix
        self._caller_clock = clock == "caller"
        self._timeout_s = timeout_s
        self._plans: dict[str, int] = {}
        """What ``charge`` records per key, from its latest admission through this object."""
        self._nonce = secrets.token_hex(6)
        self._ids = itertools.count(1)
        self._pending = _Backlog(self._write, max_pending=max_pending)

    async def admit(self, key_id: str, limits: Limits, budget: Budget, *, now: float, request_id: str) -> Admission:
        """Check and count the request in one script (``now`` is used only with ``clock="caller"``).

        When the answer is lost after the script may have run, what it may have taken (a lease, an
        admission) is given back in the background.

        Raises:
            LimiterUnavailableError: Redis did not answer in time.
        """
        unbudgeted = budget.is_unlimited
        if unbudgeted and limits.is_unlimited:
            self._plans.pop(key_id, None)
            return _ADMITTED
        self._plans[key_id] = (
            (limits.tokens_per_minute is not None) * _TOKENS_MINUTE
            | (limits.tokens_per_day is not None) * _TOKENS_DAY
            | (not unbudgeted) * _SPEND
        )
        member = f"{self._nonce}-{next(self._ids):x}"
        args = (
            self._now(now),
            member,
            _arg(limits.requests_per_minute),
            _arg(limits.requests_per_hour),
            _arg(limits.requests_per_day),
            _arg(limits.tokens_per_minute),
            _arg(limits.tokens_per_day),
            _arg(limits.max_concurrent),
            _arg(budget.daily_usd),
            _arg(budget.weekly_usd),
            _arg(budget.monthly_usd),
            _arg(budget.total_usd),
            repr(budget.warn_fraction),
        )
        try:
            reply = await self._call(_ADMIT_SCRIPT, key_id, args)
        except LimiterUnavailableError as exc:
            if _may_have_run(exc):
                self._forget(key_id, member)
            raise
        except asyncio.CancelledError:
            self._forget(key_id, member)
            raise
        refusal, retry_us, limit, remaining, reset_us, lease, warning = reply
        window = None if limit < 0 else Window(limit=limit, remaining=remaining, reset_s=reset_us / _US)
        if refusal:
            return Admission(
                admitted=False,
                refusal=Refusal(refusal.decode()),
                retry_after_s=None if retry_us < 0 else retry_us / _US,
                window=window,
                budget_warning=bool(warning),
            )
        return Admission(admitted=True, window=window, lease=lease.decode() or None, budget_warning=bool(warning))

    async def release(self, key_id: str, lease: str) -> None:
        """Give back a lease (idempotent); when Redis does not take it now, it is retried in the background."""
        try:
            await self._call(None, key_id, (lease,))
        except (LimiterUnavailableError, asyncio.CancelledError) as exc:
            self._pending.add(_Write(None, key_id, (lease,), 0.0))
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def charge(self, key_id: str, *, tokens: int, cost_usd: float | None, now: float) -> None:
        """Record tokens and cost in one script, for what the key's latest admission here limited.

        A charge that never reached Redis is retried in the background. One whose answer was lost is
        not (it may have been counted, and a charge counted twice is worse than one logged as lost).
        """
        plan = self._plans.get(key_id, 0)
        charge_tokens = tokens > 0 and plan & (_TOKENS_MINUTE | _TOKENS_DAY)
        charge_cost = cost_usd is not None and cost_usd > 0 and plan & _SPEND
        if not (charge_tokens or charge_cost):
            return
        args = (
            self._now(now),
            str(tokens) if charge_tokens else "0",
            "1" if plan & _TOKENS_MINUTE else "0",
            "1" if plan & _TOKENS_DAY else "0",
            _arg(cost_usd) if charge_cost else "",
        )
        try:
            await self._call(_CHARGE_SCRIPT, key_id, args)
        except LimiterUnavailableError as exc:
            write = _Write(_CHARGE_SCRIPT, key_id, args, 0.0, tokens, cost_usd)
            if _may_have_run(exc):
                _log_unanswered(write, exc)
            else:
                self._pending.add(write)

    async def state(self, key_id: str, *, now: float) -> KeyState:
        """The key's counts, read in one script.

        Raises:
            LimiterUnavailableError: Redis did not answer in time.
        """
        answer = await self._call(_STATE_SCRIPT, key_id, (self._now(now),))
        return KeyState(
            requests={name: int(count) for (name, _), count in zip(REQUEST_WINDOWS_S, answer[0:3], strict=True)},
            tokens={name: int(count) for (name, _), count in zip(TOKEN_WINDOWS_S, answer[3:5], strict=True)},
            concurrent=int(answer[5]),
            spend_usd={
                name: float(spent) for name, spent in zip(("day", "week", "month", "total"), answer[6:10], strict=True)
            },
        )

    async def aclose(self) -> None:
        """Give pending writes a last chance (``_CLOSE_WAIT_S``), then close the connection pool."""
        await self._pending.aclose(_CLOSE_WAIT_S)
        await self._redis.aclose()

    def _now(self, now: float) -> str:
        return str(round(now * _US)) if self._caller_clock else ""

    def _keys(self, key_id: str) -> tuple[str, ...]:
        base = f"{self._prefix}{{{key_id}}}:"
        return (
            base + "req",
            base + "lease",
            base + "tok:m",
            base + "tok:m:sum",
            base + "tok:d",
            base + "tok:d:sum",
            base + "usd",
        )

    def _forget(self, key_id: str, member: str) -> None:
        # Sent one timeout later: an admission stuck in a stalled Redis is then most likely done before
        # its undoing arrives (the two travel on different connections). Should it land later still,
        # its lease expires after LEASE_TTL_S like a crashed worker's.
        not_before = asyncio.get_running_loop().time() + self._timeout_s
        self._pending.add(_Write(_FORGET_SCRIPT, key_id, (member,), not_before))

    def _write(self, write: _Write) -> Awaitable[Any]:
        return self._call(write.script, write.key_id, write.args)

    async def _call(self, script: _Script | None, key_id: str, args: tuple[str, ...]) -> Any:
        """Run a script (None: ``ZREM`` the leases in ``args``) on a pooled connection, once one is free.

        Raises:
            LimiterUnavailableError: no connection could be had in time, or Redis did not answer in time.
        """
        keys = self._keys(key_id)
        command = ("ZREM", keys[1], *args) if script is None else ("EVALSHA", script.sha, len(keys), *keys, *args)
        slots = self._slots
        if slots.free and not slots.waiters:
            slots.free -= 1
        else:
            try:
                await slots.wait(self._pool_timeout_s)
            except _UnsentError as exc:
                raise _unavailable(exc) from exc
        redis = self._redis
        try:
            try:
                return await redis.execute_command(*command)  # type: ignore[no-untyped-call]
            except NoScriptError:
                if script is None:
                    raise
                await redis.execute_command("SCRIPT LOAD", script.source)  # type: ignore[no-untyped-call]
                return await redis.execute_command(*command)  # type: ignore[no-untyped-call]
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        finally:
            slots.release()


def _describe(write: _Write) -> str:
    if write.script is None:
        return "a lease's release (it expires on its own)"
    if write.script is _FORGET_SCRIPT:
        return "the undoing of an unanswered admission (its lease expires on its own)"
    return f"a charge of {write.tokens} tokens, {write.cost_usd} USD"


def _log_unanswered(write: _Write, exc: LimiterUnavailableError) -> None:
    logger.error("key %s: %s got no answer and may not be recorded: %s", write.key_id, _describe(write), exc)


class _Backlog:
    """Writes that Redis did not take, sent again in order by one background task once it answers.

    Bounded by ``max_pending``: beyond it new writes are dropped, counted, and logged at most every
    ``_DROP_REPORT_S``. A release or an undone admission is retried until it lands (both are
    idempotent); a charge is retried only while it never reached Redis.
    """

    def __init__(self, write: Callable[[_Write], Awaitable[None]], *, max_pending: int) -> None:
        self._write = write
        self._max_pending = max_pending
        self._queue: deque[_Write] = deque()
        self._task: asyncio.Task[None] | None = None
        self._dropped = _Dropped()
        self._reported_at = float("-inf")

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, write: _Write) -> None:
        if len(self._queue) >= self._max_pending:
            self._drop(write)
            self._report(force=False)
            return
        self._queue.append(write)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def aclose(self, wait_s: float) -> None:
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait([task], timeout=wait_s)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        while self._queue:
            self._drop(self._queue.popleft())
        self._report(force=True)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = _RETRY_FIRST_S
        while self._queue:
            write = self._queue[0]
            if (wait_s := write.not_before - loop.time()) > 0:
                await asyncio.sleep(wait_s)
                continue
            try:
                await self._write(write)
            except LimiterUnavailableError as exc:
                if write.script is _CHARGE_SCRIPT and _may_have_run(exc):
                    _log_unanswered(write, exc)
                else:
                    await asyncio.sleep(backoff)
                    backoff = min(2 * backoff, _RETRY_MAX_S)
                    continue
            except Exception:  # a background task: log, and go on with the next write
                logger.exception("key %s: %s failed", write.key_id, _describe(write))
            self._queue.popleft()
            backoff = _RETRY_FIRST_S

    def _drop(self, write: _Write) -> None:
        dropped = self._dropped
        if write.script is _CHARGE_SCRIPT:
            dropped.charges += 1
            dropped.tokens += write.tokens
            dropped.cost_usd += write.cost_usd or 0.0
        else:
            dropped.releases += 1

    def _report(self, *, force: bool) -> None:
        now = time.monotonic()
        dropped = self._dropped
        if not (dropped.releases or dropped.charges) or (now < self._reported_at + _DROP_REPORT_S and not force):
            return
        self._reported_at = now
        logger.error(
            "limiter writes lost (Redis did not take them; %d still pending): %d lease releases (they expire "
            "after %.0f s), %d charges (%d tokens, %.6f USD not counted)",
            len(self._queue),
            dropped.releases,
            LEASE_TTL_S,
            dropped.charges,
            dropped.tokens,
            dropped.cost_usd,
        )
        self._dropped = _Dropped()


@dataclass(slots=True)
class _Dropped:
    """Writes dropped since the last report."""

    releases: int = 0
    """Lease releases and undone admissions."""
    charges: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
