"""The fallback loop: one request tried over its candidate deployments until one answers.

Candidates are the resolved deployment, the routing file's ``fallbacks`` for the requested name, then
the same model on other providers (unless the client pinned a provider), at most ``MAX_ATTEMPTS``,
each at most once. What a failure leads to is the table
in ``routing/fallback.py``. An attempt can only fail before its answer has begun (after that,
failures are delivered in-band by the endpoint), so nothing is ever sent twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import Scope

from polyroute.api.outcome import Outcome
from polyroute.api.services import Services
from polyroute.errors import NoDeploymentAvailableError, UpstreamError, UpstreamRateLimitError, UpstreamStatusError
from polyroute.routing.fallback import MAX_ATTEMPTS, Action, action_for
from polyroute.routing.table import Deployment
from polyroute.types import JSONObject, JSONValue

MAX_HISTORY_MESSAGE = 300


def _entry(deployment: Deployment, error: UpstreamError) -> JSONObject:
    status = error.upstream_status if isinstance(error, UpstreamStatusError) else None
    return {
        "model": deployment.label,
        "status": status,
        "type": error.code,
        "message": error.message[:MAX_HISTORY_MESSAGE],
    }


async def run_attempts(
    services: Services,
    scope: Scope,
    outcome: Outcome,
    first: Deployment,
    attempt: Callable[[Deployment], Awaitable[None]],
    *,
    pinned: bool,
) -> None:
    """Try ``first``, then its alternatives, until one answers.

    Raises:
        UpstreamError: the only candidate failed, or a failure the table returns to the client.
        NoDeploymentAvailableError: several candidates failed, or every one is cooling down.
    """
    table = services.routing.current
    queue = [first] if pinned else table.candidates(outcome.model or first.label, first, limit=MAX_ATTEMPTS)
    can_fall_back = len(queue) > 1
    state = scope["state"]
    base_headers = list(state.get("response_headers", ()))
    history: list[JSONValue] = []
    tried: list[JSONValue] = []
    waits: list[float] = []
    last: UpstreamError | None = None
    for deployment in queue:
        wait = services.cooldowns.remaining_s(deployment.label) if can_fall_back else 0.0
        if wait > 0:
            waits.append(wait)
            continue
        tried.append(deployment.label)
        outcome.deployment = deployment
        state["response_headers"] = [
            *base_headers,
            (b"x-polyroute-attempts", str(len(tried)).encode()),
            (b"x-polyroute-fallback", b"true" if deployment is not first else b"false"),
        ]
        try:
            await attempt(deployment)
        except UpstreamError as error:
            action = action_for(error)
            if action is Action.RETURN or not can_fall_back:
                raise
            if action is Action.COOL_DOWN:
                retry = error.retry_after_s if isinstance(error, UpstreamRateLimitError) else None
                services.cooldowns.cool(deployment.label, retry)
            history.append(_entry(deployment, error))
            last = error
            continue
        services.cooldowns.succeeded(deployment.label)
        return
    if len(tried) == 1 and last is not None:
        raise last
    raise _all_failed(tried, history, waits)


def _all_failed(tried: list[JSONValue], history: list[JSONValue], waits: list[float]) -> NoDeploymentAvailableError:
    count = len(tried)
    headers = {"Retry-After": str(max(1, round(min(waits))))} if waits and not history else None
    message = (
        f"Service temporarily unavailable. All {count} models failed to respond."
        if count
        else "Service temporarily unavailable. Every candidate model is cooling down after rate limits."
    )
    details: JSONObject = {"total_attempts": count, "tried_models": tried, "error_history": history}
    return NoDeploymentAvailableError(message, details=details, headers=headers)
