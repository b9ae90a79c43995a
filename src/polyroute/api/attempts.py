"""The fallback loop: one request tried over its plan's deployments and credentials until one answers.

The plan (``routing/planner.py``) orders the deployments; each deployment's provider may hold several
credentials, tried in its rotation (fill-first or round-robin; the same one for every request of a
session that sends ``X-Session-Id``). A candidate that is cooling down, whose credential is broken,
or whose circuit is open is skipped without a network call; a half-open one is tried by one request
only (the probe). What a failure leads to is the table in ``routing/fallback.py``. An attempt can only
fail before its answer has begun (after that, failures are delivered in-band by the endpoint), so
nothing is ever sent twice.

Hedged plans start the first attempt, and when it has not produced its first content within the
delay, the next one beside it; the first to produce content answers the client, the other is cancelled
(its upstream connection closed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import orjson
from starlette.types import Message, Scope, Send

from polyroute.api.access import Ticket
from polyroute.api.model_types import wrong_endpoint
from polyroute.api.outcome import Outcome
from polyroute.api.services import Services
from polyroute.core.estimate import estimate_input_tokens
from polyroute.core.messages import ChatRequest, ImagePart
from polyroute.errors import (
    GatewayError,
    NoDeploymentAvailableError,
    UpstreamError,
    UpstreamRateLimitError,
    UpstreamStatusError,
)
from polyroute.health import PROBE, FailureKind
from polyroute.routing.config import FallbackScope, ModelType
from polyroute.routing.fallback import Action, action_for
from polyroute.routing.planner import Needs, Plan
from polyroute.routing.table import Deployment
from polyroute.types import JSONObject, JSONValue

MAX_HISTORY_MESSAGE: Final = 300
DEFAULT_HEDGE_DELAY_MS: Final = 1000.0
"""The hedging delay when a hedged combo sets none and its first deployment has no recent p95 yet."""
SESSION_HEADER: Final = b"x-session-id"

_FAILURE_KINDS: Final = {
    Action.COOL_DOWN: FailureKind.RATE_LIMITED,
    Action.BROKEN_CREDENTIAL: FailureKind.AUTH,
    Action.NEXT: FailureKind.FAILURE,
}


@dataclass(frozen=True, slots=True)
class Try:
    """One attempt: a deployment, the index of its provider's credential, and whether any candidate follows."""

    deployment: Deployment
    credential: int
    last: bool
    """Nothing would be tried after this one: an empty answer is then passed on as it is."""
    fallback: bool
    """Not the plan's first deployment."""

    @property
    def credential_id(self) -> str:
        """The credential's public name."""
        return self.deployment.target.credential_ids[self.credential]


Attempt = Callable[[Try, Send | None], Awaitable[None]]
"""Answers the client through one candidate; the send, when given, replaces the request's own (hedging)."""


class _Step(Enum):
    DONE = "done"
    NEXT_CREDENTIAL = "next_credential"
    NEXT_DEPLOYMENT = "next_deployment"


def plan_request(
    services: Services,
    scope: Scope,
    request: ChatRequest | dict[str, Any],
    *,
    provider: str | None,
    images: bool = False,
) -> Plan:
    """The plan for a chat request (a canonical one, or an OpenAI body on the fast path), under its key's scope.

    With ``images``, an image model is accepted too (the endpoint answers with the generated image).

    Raises:
        ModelNotFoundError: the name matches nothing.
        InvalidRequestError: the name belongs to another provider than the pinned one, or to a model that
            is not a text model (naming the endpoint that serves it).
    """
    key = scope["state"].get("key")
    scope_of_key = FallbackScope(key.fallback_scope) if key is not None and key.fallback_scope else None
    if isinstance(request, ChatRequest):
        model = request.model

        def needs() -> Needs:
            vision = any(isinstance(p, ImagePart) for m in request.messages for p in m.parts)
            return Needs(tools=bool(request.tools), vision=vision, tokens=estimate_input_tokens(request))

    else:
        model = request["model"]

        def needs() -> Needs:
            raw = orjson.dumps(request.get("messages"))
            return Needs(tools=bool(request.get("tools")), vision=b'"image_url"' in raw, tokens=len(raw) // 4)

    plan = services.planner.plan(model, provider=provider, scope=scope_of_key, needs=needs)
    kind = services.routing.current.model_type(plan.deployments[0])
    if kind is not ModelType.TEXT and not (images and kind is ModelType.IMAGE):
        raise wrong_endpoint(model, kind, ModelType.TEXT)
    return plan


async def finish_request(services: Services, scope: Scope, outcome: Outcome, ticket: Ticket | None) -> None:
    """After the answer: its cost, the key's charge and lease, and the request-log row (always)."""
    try:
        outcome.price(services.prices)
        await services.gate.settle(ticket, outcome.usage, outcome.cost_usd)
    finally:
        outcome.record(services.request_log, scope)


def session_of(scope: Scope) -> bytes | None:
    """The client's ``X-Session-Id``, if it sent one."""
    for name, value in scope["headers"]:
        if name == SESSION_HEADER:
            return value or None
    return None


class Attempts:
    """Runs one request's plan; built per request."""

    __slots__ = (
        "_attempt",
        "_base_headers",
        "_configured_only",
        "_history",
        "_last",
        "_next_deployment",
        "_waits",
        "can_fall_back",
        "outcome",
        "plan",
        "scope",
        "send",
        "services",
        "session",
        "tried",
    )

    def __init__(
        self, services: Services, scope: Scope, send: Send, outcome: Outcome, plan: Plan, attempt: Attempt
    ) -> None:
        self.services = services
        self.scope = scope
        self.send = send
        self.outcome = outcome
        self.plan = plan
        self._attempt = attempt
        self.session = session_of(scope)
        first = plan.deployments[0]
        self.can_fall_back = len(plan.deployments) > 1 or len(first.target.credential_ids) > 1
        self._base_headers = list(scope["state"].get("response_headers", ()))
        self.tried: list[JSONValue] = []
        self._history: list[JSONValue] = []
        self._waits: list[tuple[str, float]] = []
        self._last: UpstreamError | None = None
        self._configured_only = False
        self._next_deployment = False

    async def run(self) -> None:
        """Try the plan until a candidate answers.

        Raises:
            UpstreamError: the only candidate failed, or a failure the table returns to the client.
            NoDeploymentAvailableError: several candidates failed, or none could be tried.
        """
        hedge = self.plan.hedge_delay_ms
        tries = self._tries()
        while (candidate := await self._next(tries)) is not None:
            if hedge is not None and not candidate.last:
                hedge = None
                if await self._hedge(candidate, tries):
                    return
                continue
            if await self._step(candidate, None) is _Step.DONE:
                return
        raise self._exhausted()

    async def _next(self, tries: Iterator[tuple[Try, bool]]) -> Try | None:
        """The next candidate; one whose breaker is half-open only if this request wins its probe."""
        for candidate, probe in tries:
            if not probe:
                return candidate
            if await self.services.health.claim_probe(candidate.deployment.label):
                return candidate
            self._waits.append((candidate.deployment.label, 1.0))
        return None

    def _tries(self) -> Iterator[tuple[Try, bool]]:
        """The candidates still worth a network call, in order, each once, within the attempt limit.

        Each comes with whether it is a half-open breaker's probe. A plain generator: no task is left to close it.
        """
        health = self.services.health
        deployments = self.plan.deployments
        limit = self.plan.max_attempts
        final = len(deployments) - 1
        for index, deployment in enumerate(deployments):
            if self._configured_only and (deployment.provider, deployment.model) not in self.plan.configured:
                continue
            order = self.services.rotation.order(deployment, self.session)
            self._next_deployment = False
            for position, credential in enumerate(order):
                if len(self.tried) >= limit:
                    return
                credential_id = deployment.target.credential_ids[credential]
                # A lone candidate is always tried: skipping it could only turn its answer into a 503.
                wait = health.wait_s(deployment.label, credential_id) if self.can_fall_back else 0.0
                if wait > 0:
                    self._waits.append((deployment.label, wait))
                    continue
                last = (index == final and position == len(order) - 1) or len(self.tried) + 1 >= limit
                yield Try(deployment, credential, last, index > 0), wait == PROBE
                if self._next_deployment:
                    break

    async def _step(self, candidate: Try, send: Send | None) -> _Step:
        """One attempt and what its failure leads to; raises what goes to the client at once."""
        deployment = candidate.deployment
        telemetry = self.services.telemetry
        if send is None:
            self._announce(candidate)
        started = time.perf_counter()
        telemetry.started(deployment.label)
        try:
            await self._attempt(candidate, send)
        except UpstreamError as error:
            telemetry.finished(deployment.label, ttft_ms=None, ok=False)
            return await self._failed(candidate, error)
        except asyncio.CancelledError:
            # A hedged attempt that lost the race (or a client that left) is not the deployment's failure.
            telemetry.finished(deployment.label, ttft_ms=None, ok=True)
            raise
        except BaseException:
            telemetry.finished(deployment.label, ttft_ms=None, ok=False)
            raise
        telemetry.finished(deployment.label, ttft_ms=self._ttft_ms(started), ok=True)
        if self.can_fall_back:  # a lone candidate's health is neither read nor written
            self.services.health.success(deployment.label, candidate.credential_id)
        return _Step.DONE

    def _announce(self, candidate: Try) -> None:
        """Count the attempt and name it in the answer's headers."""
        self.tried.append(candidate.deployment.label)
        self.outcome.deployment = candidate.deployment
        self.outcome.attempts = len(self.tried)
        self.outcome.fallback = candidate.fallback
        self.scope["state"]["response_headers"] = [*self._base_headers, *self._headers(candidate)]

    def _headers(self, candidate: Try) -> tuple[tuple[bytes, bytes], ...]:
        return (
            (b"x-polyroute-attempts", str(len(self.tried)).encode()),
            (b"x-polyroute-fallback", b"true" if candidate.fallback else b"false"),
        )

    def _ttft_ms(self, started: float) -> float:
        """The attempt's own time to first byte (the whole answer's time when it was not streamed)."""
        outcome = self.outcome
        if outcome.ttft_ms is None:
            return (time.perf_counter() - started) * 1000.0
        return max(0.0, outcome.ttft_ms - (started - outcome.started) * 1000.0)

    async def _failed(self, candidate: Try, error: UpstreamError) -> _Step:
        action = action_for(error)
        if action is Action.RETURN or not self.can_fall_back:
            raise error
        if action is Action.LARGER_CONTEXT:
            if self._configured_only or not self.plan.configured:
                raise error
            self._configured_only = True
            self._note(candidate, error)
            self._next_deployment = True
            return _Step.NEXT_DEPLOYMENT
        await self._record(candidate, error, action)
        self._note(candidate, error)
        if action is Action.NEXT:
            self._next_deployment = True
            return _Step.NEXT_DEPLOYMENT
        return _Step.NEXT_CREDENTIAL

    async def _record(self, candidate: Try, error: UpstreamError, action: Action) -> None:
        status = error.upstream_status if isinstance(error, UpstreamStatusError) else None
        retry = error.retry_after_s if isinstance(error, UpstreamRateLimitError) else None
        await self.services.health.failure(
            candidate.deployment.label,
            candidate.credential_id,
            _FAILURE_KINDS[action],
            retry_after_s=retry,
            status=status,
            message=error.message[:MAX_HISTORY_MESSAGE],
        )

    def _note(self, candidate: Try, error: UpstreamError) -> None:
        self._history.append(_entry(candidate.deployment, error))
        self._last = error

    async def _hedge(self, first: Try, tries: Iterator[tuple[Try, bool]]) -> bool:
        """Race ``first`` against the next candidate; True when one of them answered."""
        delay_ms = self.plan.hedge_delay_ms or self.services.telemetry.p95_ttft_ms(first.deployment.label)
        race = _Race(self)
        if await race.start(first, (delay_ms or DEFAULT_HEDGE_DELAY_MS) / 1000.0):
            return True
        if race.failed_early:
            return False  # the first failed before the delay: the loop goes on as usual
        self._next_deployment = True  # the hedge is another deployment, not this one's next credential
        return await race.join(await self._next(tries))

    def _exhausted(self) -> GatewayError:
        if len(self.tried) == 1 and self._last is not None:
            return self._last
        return _all_failed(self.tried, self._history, self._waits)


class _Race:
    """Two attempts of a hedged request; the first to send content wins and the other is cancelled."""

    __slots__ = ("_attempts", "_tasks", "failed_early", "winner")

    def __init__(self, attempts: Attempts) -> None:
        self._attempts = attempts
        self._tasks: dict[asyncio.Task[_Step], Try] = {}
        self.winner: asyncio.Task[_Step] | None = None
        self.failed_early = False

    async def start(self, first: Try, delay_s: float) -> bool:
        task = self._spawn(first)
        done, _ = await asyncio.wait({task}, timeout=delay_s)
        if not done:
            return False
        self.failed_early = task.result() is not _Step.DONE
        return not self.failed_early

    async def join(self, second: Try | None) -> bool:
        if second is not None:
            self._spawn(second)
        pending = set(self._tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.cancelled():
                        continue
                    if task.result() is _Step.DONE:
                        return True
            return False
        finally:
            for task in pending:
                task.cancel()

    def _spawn(self, candidate: Try) -> asyncio.Task[_Step]:
        attempts = self._attempts
        attempts.tried.append(candidate.deployment.label)
        headers = attempts._headers(candidate)
        committed = False

        async def send(message: Message) -> None:
            nonlocal committed
            if not committed:
                self._claim(task, candidate, headers)
                committed = True
            await attempts.send(message)

        task = asyncio.get_running_loop().create_task(attempts._step(candidate, send))
        self._tasks[task] = candidate
        return task

    def _claim(self, task: asyncio.Task[_Step], candidate: Try, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        if self.winner is not None and self.winner is not task:
            raise asyncio.CancelledError  # lost the race (its cancellation is already on the way)
        self.winner = task
        attempts = self._attempts
        for other in self._tasks:
            if other is not task:
                other.cancel()
        attempts.outcome.deployment = candidate.deployment
        attempts.outcome.attempts = len(attempts.tried)
        attempts.outcome.fallback = candidate.fallback
        attempts.scope["state"]["response_headers"] = [*attempts._base_headers, *headers]


def _entry(deployment: Deployment, error: UpstreamError) -> JSONObject:
    status = error.upstream_status if isinstance(error, UpstreamStatusError) else None
    return {
        "model": deployment.label,
        "status": status,
        "type": error.code,
        "message": error.message[:MAX_HISTORY_MESSAGE],
    }


def _all_failed(
    tried: list[JSONValue], history: list[JSONValue], waits: list[tuple[str, float]]
) -> NoDeploymentAvailableError:
    count = len(tried)
    headers = {"Retry-After": str(max(1, round(min(w for _, w in waits))))} if waits and not history else None
    message = (
        f"Service temporarily unavailable. All {count} models failed to respond."
        if count
        else "Service temporarily unavailable. No candidate model can be tried now "
        "(cooling down after rate limits, circuit open, or credential refused)."
    )
    details: JSONObject = {"total_attempts": count, "tried_models": tried, "error_history": history}
    if waits:
        details["unavailable"] = [{"model": label, "retry_after_s": round(wait, 1)} for label, wait in waits]
    return NoDeploymentAvailableError(message, details=details, headers=headers)
