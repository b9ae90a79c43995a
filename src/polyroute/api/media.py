"""What every media endpoint (images, embeddings, audio) shares: routing by model type, fallback, accounting.

A media endpoint reads its request (JSON or multipart), plans it like a chat request (aliases, combos,
fallbacks, pinned providers), keeps only candidates of its own model type, admits it through the key's
limits, tries the candidates through the same fallback loop as chat (``api/attempts.py``: the status →
action table, cooldowns, breakers, credentials), and writes one request-log row. A model of another
type is a 400 that names the endpoint that serves it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

from starlette.types import Receive, Scope, Send

from polyroute.api.access import Ticket
from polyroute.api.attempts import Attempts, Try, finish_request
from polyroute.api.model_types import wrong_endpoint
from polyroute.api.outcome import Outcome
from polyroute.api.responses import ClientDisconnectedError
from polyroute.api.services import Services
from polyroute.errors import GatewayError
from polyroute.routing.config import ModelType
from polyroute.routing.planner import Plan
from polyroute.routing.table import Deployment


def plan_media(services: Services, name: str, kind: ModelType, *, provider: str | None) -> Plan:
    """The plan for a media request: only candidates of ``kind`` (the first must be one).

    Raises:
        ModelNotFoundError: the name matches nothing.
        InvalidRequestError: the model is of another type (naming the endpoint that serves it).
    """
    plan = services.planner.plan(name, provider=provider)
    table = services.routing.current
    first_type = table.model_type(plan.deployments[0])
    if first_type is not kind:
        raise wrong_endpoint(name, first_type, kind)
    kept = tuple(d for d in plan.deployments if table.model_type(d) is kind)
    return replace(plan, deployments=kept) if len(kept) != len(plan.deployments) else plan


class MediaRequest(Protocol):
    """What the shared code needs of any media request."""

    @property
    def model(self) -> str: ...


R = TypeVar("R", bound=MediaRequest)


@dataclass(slots=True)
class MediaCall(Generic[R]):
    """One media request on its way: the parsed request, the attempt's candidate, where the answer goes."""

    scope: Scope
    request: R
    candidate: Try
    outcome: Outcome
    send: Send

    @property
    def deployment(self) -> Deployment:
        """Where this attempt goes."""
        return self.candidate.deployment


class MediaEndpoint(Generic[R]):
    """A raw ASGI endpoint for one kind of media; subclasses parse requests and serve one attempt."""

    kind: ModelType = ModelType.IMAGE

    def __init__(self, services: Services) -> None:
        self.services = services

    async def parse(self, scope: Scope, receive: Receive) -> R:
        """The request, validated (raises ``InvalidRequestError`` naming the field)."""
        raise NotImplementedError

    async def serve(self, call: MediaCall[R]) -> None:
        """Answer through ``call.deployment`` (raise an ``UpstreamError`` to let the next candidate try)."""
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = Outcome("openai")
        ticket: Ticket | None = None
        try:
            request = await self.parse(scope, receive)
            outcome.model = request.model
            params = scope.get("path_params")
            plan = plan_media(
                self.services, outcome.model, self.kind, provider=params.get("provider") if params else None
            )
            outcome.deployment = plan.deployments[0]
            ticket = await self.services.gate.admit(scope, plan.deployments[0], outcome.model)

            async def attempt(candidate: Try, hedged_send: Send | None) -> None:
                await self.serve(MediaCall(scope, request, candidate, outcome, hedged_send or send))

            await Attempts(self.services, scope, send, outcome, plan, attempt).run()
        except GatewayError as error:
            outcome.fail(error.status_code, error.code)
            raise
        except ClientDisconnectedError:
            outcome.fail(499, "client_disconnected")
        finally:
            await finish_request(self.services, scope, outcome, ticket)
