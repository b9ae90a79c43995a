"""Health state shared by every worker and instance through Redis, read from a local mirror.

Layout (every key shares the hash tag ``{prefix}``): one key per entry (``:e:<key>``, expiring with the
entry), an index of them (``:index``, a sorted set scored by expiry), the profile (``:profile``), a
change counter (``:seq``) and the channel (``:changes``). A change runs the pure step of
``transitions`` on the stored value and writes the outcome with a compare-and-set script, retried
when another instance got there first; the script also PUBLISHes the change with its number, so
every subscriber applies changes in the order they happened. Redis being unreachable never fails a
caller: changes then apply to this worker only (a throttled warning), and the subscriber reloads the
full state once it reconnects (dropping such local-only changes).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Final, cast

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from polyroute.health.base import EntryKind, FailureKind, HealthEntry
from polyroute.health.bus import SharedChangeBus
from polyroute.health.entries import Entry, EntryKey, decode, encode, from_record, key_of, member_of, to_record
from polyroute.health.listener import Listener
from polyroute.health.memory import InProcessHealth
from polyroute.health.profile import ResilienceProfile
from polyroute.health.store import clear_keys, reset_keys
from polyroute.health.transitions import R, Step, claim
from polyroute.types import JSONObject

_CAS: Final = """
-- KEYS: 1 the entry, 2 the index (member -> expiry in epoch ms), 3 the change counter. ARGV: 1 the expected
-- value ('' = none), 2 the new value ('' = delete), 3 its expiry (epoch ms), 4 the channel, 5 the change
-- message, 6 the member. Returns {1, '', change number} or, when the value is not the expected one, {0, value}.
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return {0, current} end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[6])
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[6])
end
local seq = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[4], seq .. ':' .. ARGV[5])
return {1, '', seq}
"""
_DROP: Final = """
-- KEYS: 1 the index, 2 the change counter, 3... the entries. ARGV: 1 the channel, 2 the change message,
-- 3... the members. Returns how many entries existed.
local deleted = 0
if #KEYS > 2 then
  deleted = redis.call('DEL', unpack(KEYS, 3))
  redis.call('ZREM', KEYS[1], unpack(ARGV, 3))
end
local seq = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[1], seq .. ':' .. ARGV[2])
return deleted
"""
_DROP_BATCH: Final = 500
"""Entries deleted per script call (Lua's unpack has a stack limit)."""
_CAS_TRIES: Final = 32
"""Compare-and-set rounds before giving up (changes of one key are serialised per instance, so this bounds
contention between instances)."""
_LOCK_STRIPES: Final = 64
_OFFLINE_S: Final = 1.0
"""After a Redis error, changes skip Redis for this long (a dead server must not slow every failure down)."""
_CLOSE_WAIT_S: Final = 1.0


class _Mirror:
    """The default of ``RedisHealth._shared``'s guess: the mirror's entry."""


_MIRROR: Final = _Mirror()


class RedisHealth:
    """Health state shared through Redis (see ``base.Health``); ``wait_s`` and clean successes stay local.

    Args:
        url: ``redis://`` or ``rediss://`` URL.
        prefix: names every key and the channel (all keys share the hash tag ``{prefix}``).
        clock: epoch seconds; instances compare times, so their clocks should agree.
        timeout_s: connect and read timeout of every Redis call.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "polyroute:health",
        clock: Callable[[], float] = time.time,
        profile: ResilienceProfile | None = None,
        timeout_s: float = 0.5,
    ) -> None:
        # One retry, on a broken connection only (a pooled connection to a restarted server).
        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._cas = self._redis.register_script(_CAS)
        self._drop_script = self._redis.register_script(_DROP)
        base = "{" + prefix + "}"
        self._entry_prefix, self._index, self._seq_key = f"{base}:e:", f"{base}:index", f"{base}:seq"
        self._profile_key, self._channel = f"{base}:profile", f"{base}:changes"
        self._local = InProcessHealth(profile, clock=clock)
        self._store, self._clock = self._local.store, clock
        self._seq = 0
        """The change number of the latest change message applied to the mirror."""
        self.instance_id = secrets.token_hex(8)
        """Names this object's subscriber connection (``CLIENT LIST``: ``polyroute-health-<id>``)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]
        """Changes of one key wait for each other here, so they do not race each other's compare-and-set."""
        self._offline_until = 0.0
        self._listener = Listener(
            url,
            channel=self._channel,
            name=f"polyroute-health-{self.instance_id}",
            timeout_s=timeout_s,
            on_connect=self._load,
            on_message=self._on_message,
        )
        self._log = self._listener.log
        self.bus = SharedChangeBus(self._send_topic)
        """Tells every instance that a setting changed (over this object's connection and subscription)."""

    @property
    def profile(self) -> ResilienceProfile:
        return self._local.profile

    @profile.setter
    def profile(self, profile: ResilienceProfile) -> None:
        self._local.profile = profile

    def wait_s(self, deployment: str, credential: str) -> float:
        return self._store.wait_s(deployment, credential, self._clock)

    async def claim_probe(self, deployment: str) -> bool:
        key = EntryKey(EntryKind.BREAKER, deployment, "")
        return await self._shared(key, claim(self.profile, self._clock()))

    async def failure(
        self,
        deployment: str,
        credential: str,
        kind: FailureKind,
        *,
        retry_after_s: float | None = None,
        status: int | None = None,
        message: str = "",
    ) -> float:
        key, step = self._local.failure_step(
            deployment, credential, kind, retry_after_s=retry_after_s, status=status, message=message
        )
        return await self._shared(key, step)

    def success(self, deployment: str, credential: str) -> None:
        for key, current, step in self._local.success_steps(deployment, credential):
            self._store.put(key, step(current)[0])
            self._spawn(self._shared(key, step, guess=current))

    def entries(self) -> list[HealthEntry]:
        return self._local.entries()

    async def reset(self, deployment: str | None = None) -> int:
        return await self._drop(lambda keys: reset_keys(keys, deployment))

    async def clear(self, deployment: str, credential: str | None = None) -> int:
        return await self._drop(lambda keys: clear_keys(keys, deployment, credential))

    async def set_profile(self, profile: ResilienceProfile) -> None:
        # Applied here first: a later profile from another instance then arrives after ours and wins.
        self._local.profile = profile
        record = profile.to_json()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._profile_key, orjson.dumps(record))
                pipe.publish(self._channel, _message({"op": "profile", "v": record}))
                await pipe.execute()
        except RedisError as exc:
            self._offline(exc, "the profile changed on this worker only")

    async def start(self) -> None:
        """Subscribe, then load the stored state and profile; with Redis unreachable, returns after one attempt."""
        await self._listener.start()

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=_CLOSE_WAIT_S)
        for task in set(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._listener.aclose()
        await self._redis.aclose()

    async def _shared(self, key: EntryKey, step: Step[R], *, guess: Entry | None | _Mirror = _MIRROR) -> R:
        """Run ``step`` on the stored entry (compare-and-set, retried on a concurrent change) and publish it.

        ``guess`` is the stored entry as far as is known; by default the mirror's (usually right: one round trip).
        """
        if time.monotonic() < self._offline_until:
            return self._local.apply(key, step)
        async with self._locks[hash(key) % _LOCK_STRIPES]:
            current = self._store.get(key, self._clock()) if isinstance(guess, _Mirror) else guess
            return await self._compare_and_set(key, step, current)

    async def _compare_and_set(self, key: EntryKey, step: Step[R], current: Entry | None) -> R:
        member = member_of(key)
        keys = (self._entry_prefix + member, self._index, self._seq_key)
        expected = encode(current)
        try:
            for _ in range(_CAS_TRIES):
                entry, result = step(current)
                if entry == current:
                    return result
                body = {"op": "set", "k": member, "v": None if entry is None else to_record(entry)}
                expires_ms = "" if entry is None else str(math.ceil(entry.expires_at * 1000))
                args = (expected, encode(entry), expires_ms, self._channel, orjson.dumps(body), member)
                answer = await self._cas(keys=keys, args=args)
                if answer[0]:
                    # Unless the subscriber has already applied this change (and maybe later ones) itself.
                    if answer[2] > self._seq:
                        self._store.put(key, entry)
                    return result
                current, expected = self._decoded(key, answer[1]), answer[1]
        except RedisError as exc:
            self._offline(exc, "a health change applies to this worker only")
            return self._local.apply(key, step)
        self._log.warning("health state: %s changed concurrently too often; applied on this worker only", member)
        return self._local.apply(key, step)

    async def _drop(self, select: Callable[[list[EntryKey]], list[EntryKey]]) -> int:
        # Dropped here first: changes made before ours may arrive after, but our own message follows them.
        dropped_here = self._local.drop(select(self._store.keys(self._clock())))
        cleared = 0
        try:
            members = cast(list[bytes], await self._redis.zrange(self._index, 0, -1))
            keys = select(self._stored_keys(members))
            for start in range(0, len(keys), _DROP_BATCH):
                batch = [member_of(key) for key in keys[start : start + _DROP_BATCH]]
                script_keys = [self._index, self._seq_key, *(self._entry_prefix + member for member in batch)]
                message = orjson.dumps({"op": "del", "k": batch})
                cleared += int(await self._drop_script(keys=script_keys, args=[self._channel, message, *batch]))
        except RedisError as exc:
            self._offline(exc, "entries cleared on this worker only")
            return max(cleared, dropped_here)
        return cleared

    async def _load(self) -> None:
        """Replace the mirror and the profile with what Redis holds (after every (re)subscription)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._seq_key)
            pipe.zremrangebyscore(self._index, "-inf", math.floor(self._clock() * 1000))
            pipe.zrange(self._index, 0, -1)
            pipe.get(self._profile_key)
            seq, _, members, profile = await pipe.execute()
        keys = self._stored_keys(members)
        values = await self._redis.mget([self._entry_prefix + member_of(key) for key in keys]) if keys else []
        loaded = []
        for key, raw in zip(keys, values, strict=True):
            entry = self._decoded(key, raw)
            if entry is not None:
                loaded.append((key, entry))
        self._store.replace_all(loaded)
        self._seq = int(seq or 0)
        if profile:
            self._adopt_profile(profile)
        self._offline_until = 0.0
        await self.bus.redeliver_seen()

    async def _on_message(self, data: bytes) -> None:
        try:
            seq, _, body = data.partition(b":")
            message = orjson.loads(body)
            op = message["op"]
            if op == "set":
                key = key_of(message["k"])
                value = message["v"]
                self._store.put(key, None if value is None else from_record(key.kind, value))
            elif op == "del":
                for member in message["k"]:
                    self._store.put(key_of(member), None)
            elif op == "profile":
                self._adopt_profile(message["v"])
            elif op == "topic" and message["from"] != self.instance_id:
                await self.bus.receive(message["t"])
            if int(seq):
                self._seq = int(seq)
        except (ValueError, KeyError, TypeError) as exc:
            self._log.warning("health state: ignored a malformed change message (%s)", exc)

    async def _send_topic(self, topic: str) -> None:
        try:
            await self._redis.publish(self._channel, _message({"op": "topic", "t": topic, "from": self.instance_id}))
        except RedisError as exc:
            self._offline(exc, f"the change of {topic!r} was announced to this worker only")

    def _adopt_profile(self, record: object) -> None:
        try:
            self._local.profile = ResilienceProfile.from_json(
                orjson.loads(record) if isinstance(record, bytes) else record
            )
        except ValueError as exc:
            self._log.warning("health state: ignored a stored profile (%s)", exc)

    def _stored_keys(self, members: Iterable[bytes | str]) -> list[EntryKey]:
        keys = []
        for member in members:
            try:
                keys.append(key_of(member))
            except ValueError:
                self._log.warning("health state: ignored a malformed key %r", member)
        return keys

    def _decoded(self, key: EntryKey, raw: bytes | str | None) -> Entry | None:
        try:
            return decode(key.kind, raw)
        except ValueError as exc:
            self._log.warning("health state: a malformed entry will be overwritten (%s)", exc)
            return None

    def _offline(self, exc: Exception, consequence: str) -> None:
        self._offline_until = time.monotonic() + _OFFLINE_S
        self._log.warning("health state: Redis unavailable (%s); %s", type(exc).__name__, consequence)

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _message(body: JSONObject) -> bytes:
    """A change message without a change number (it changes no entry)."""
    return b"0:" + orjson.dumps(body)
