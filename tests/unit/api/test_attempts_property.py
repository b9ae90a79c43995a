"""Properties of the fallback loop (``api.attempts.Attempts``) over random failure patterns.

A plan of 1 to 8 deployments, each on its own provider with 1 to 3 credentials, and a scripted
outcome per (deployment, credential). The expected run is modelled independently: deployments in
plan order, credentials fill-first; a server-class failure (5xx, 529, timeout, connection error,
empty answer) ends the deployment, a 429 or 401 moves on to its next credential, a 400 ends the
request; at most ``max_attempts`` attempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyroute.api.attempts import Attempts, Try
from polyroute.api.outcome import Outcome
from polyroute.api.services import Services
from polyroute.errors import (
    NoDeploymentAvailableError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamConnectionError,
    UpstreamEmptyAnswerError,
    UpstreamError,
    UpstreamRateLimitError,
    UpstreamServerError,
    UpstreamTimeoutError,
)
from polyroute.health import InProcessHealth
from polyroute.routing.config import ProviderConfig
from polyroute.routing.credentials import CredentialRotation
from polyroute.routing.discovery import make_target
from polyroute.routing.planner import Plan
from polyroute.routing.table import Deployment
from polyroute.routing.telemetry import Telemetry
from polyroute.upstream.client import Timeouts
from polyroute.wire import WireFormat

TIMEOUTS = Timeouts(connect_s=1.0, first_byte_s=1.0, stream_idle_s=1.0, total_s=1.0)
OK = "ok"


def _server(provider: str, status: int) -> UpstreamError:
    return UpstreamServerError(f"{provider} failed", provider=provider, upstream_status=status)


FAILURES: dict[str, Callable[[str], UpstreamError]] = {
    "500": lambda p: _server(p, 500),
    "529": lambda p: _server(p, 529),
    "timeout": lambda p: UpstreamTimeoutError(f"{p} timed out", provider=p),
    "connection": lambda p: UpstreamConnectionError(f"{p} unreachable", provider=p),
    "empty": lambda p: UpstreamEmptyAnswerError(f"{p} said nothing", provider=p),
    "429": lambda p: UpstreamRateLimitError(f"{p} rate limited", provider=p, retry_after_s=None),
    "401": lambda p: UpstreamAuthError(f"{p} refused the key", provider=p, upstream_status=401),
}
REQUEST_ERRORS = frozenset({"400", "404", "422"})
"""Upstream refusals of the request itself: returned to the client at once."""
NEXT_CREDENTIAL = frozenset({"429", "401"})
"""Failures after which the same deployment's next credential is tried; every other one ends the deployment."""


@dataclass(frozen=True)
class Scenario:
    deployments: list[Deployment]
    outcomes: list[list[str]]
    """Per deployment, per credential: ``ok``, a key of ``FAILURES``, or one of ``REQUEST_ERRORS``."""
    max_attempts: int


@st.composite
def scenarios(draw: st.DrawFn, *, outcomes: st.SearchStrategy[str]) -> Scenario:
    count = draw(st.integers(1, 8))
    deployments = []
    table = []
    for index in range(count):
        keys = draw(st.integers(1, 3))
        config = ProviderConfig(
            name=f"p{index}",
            format=WireFormat.OPENAI,
            base_url="http://127.0.0.1:9/v1",
            api_keys=[f"sk-p{index}-key-{k}" for k in range(keys)],
        )
        deployments.append(Deployment(config.name, "m", make_target(config, TIMEOUTS)))
        table.append(draw(st.lists(outcomes, min_size=keys, max_size=keys)))
    return Scenario(deployments, table, draw(st.integers(1, 6)))


def expected_run(scenario: Scenario) -> tuple[list[tuple[int, int]], str]:
    """The (deployment, credential) pairs the loop should try, in order, and how the run ends."""
    visits: list[tuple[int, int]] = []
    for index, row in enumerate(scenario.outcomes):
        for credential, outcome in enumerate(row):
            if len(visits) >= scenario.max_attempts:
                return visits, "exhausted"
            visits.append((index, credential))
            if outcome == OK:
                return visits, OK
            if outcome in REQUEST_ERRORS:
                return visits, "request_error"
            if outcome not in NEXT_CREDENTIAL:
                break
    return visits, "exhausted"


@dataclass
class Run:
    visits: list[tuple[int, int]]
    raised: BaseException | None
    errors: dict[tuple[int, int], UpstreamError]
    outcome: Outcome
    headers: dict[bytes, bytes]


def run(scenario: Scenario) -> Run:
    """Run ``Attempts`` over the scenario with fresh health, telemetry and rotation."""
    services = cast(
        Services,
        _Services(health=InProcessHealth(), telemetry=Telemetry(), rotation=CredentialRotation()),
    )
    plan = Plan(deployments=scenario.deployments, configured=frozenset(), max_attempts=scenario.max_attempts)
    index_of = {deployment.label: index for index, deployment in enumerate(scenario.deployments)}
    visits: list[tuple[int, int]] = []
    errors: dict[tuple[int, int], UpstreamError] = {}

    async def attempt(candidate: Try, send: Any) -> None:
        assert send is None  # not hedged
        where = (index_of[candidate.deployment.label], candidate.credential)
        visits.append(where)
        outcome = scenario.outcomes[where[0]][where[1]]
        if outcome == OK:
            return
        provider = candidate.deployment.provider
        error = (
            UpstreamBadRequestError("bad temperature", provider=provider, upstream_status=int(outcome))
            if outcome in REQUEST_ERRORS
            else FAILURES[outcome](provider)
        )
        errors[where] = error
        raise error

    async def send(message: Any) -> None:
        raise AssertionError("the fake attempt answers nothing itself")

    scope: dict[str, Any] = {"type": "http", "headers": [], "state": {}}
    outcome = Outcome("openai")
    attempts = Attempts(services, scope, send, outcome, plan, attempt)
    raised: BaseException | None = None
    try:
        asyncio.run(attempts.run())
    except Exception as exc:
        raised = exc
    return Run(visits, raised, errors, outcome, dict(scope["state"].get("response_headers", ())))


@dataclass
class _Services:
    """What ``Attempts`` uses of ``Services`` (plans are passed in, so no planner)."""

    health: InProcessHealth
    telemetry: Telemetry
    rotation: CredentialRotation


ANY_OUTCOME = st.sampled_from([OK, *FAILURES, *sorted(REQUEST_ERRORS)])
NO_REQUEST_ERRORS = st.sampled_from([OK, *FAILURES])
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


@PROPERTY_SETTINGS
@given(scenarios(outcomes=ANY_OUTCOME))
def test_attempts_follow_the_modelled_order(scenario: Scenario) -> None:
    result = run(scenario)
    visits, ending = expected_run(scenario)

    assert result.visits == visits
    assert len(result.visits) <= scenario.max_attempts
    assert len(set(result.visits)) == len(result.visits)  # never the same deployment and credential twice
    if ending == OK:
        assert result.raised is None
        answered, _ = visits[-1]
        assert result.outcome.deployment is scenario.deployments[answered]
        assert (result.outcome.attempts, result.outcome.fallback) == (len(visits), answered > 0)
        assert result.headers[b"x-polyroute-attempts"] == str(len(visits)).encode()
        assert result.headers[b"x-polyroute-fallback"] == (b"true" if answered > 0 else b"false")
    elif ending == "request_error":
        assert result.raised is result.errors[visits[-1]]  # at once: nothing tried after it
    else:
        assert isinstance(result.raised, UpstreamError | NoDeploymentAvailableError)


@PROPERTY_SETTINGS
@given(scenarios(outcomes=NO_REQUEST_ERRORS))
def test_succeeds_exactly_when_a_reachable_candidate_would(scenario: Scenario) -> None:
    result = run(scenario)
    visits, _ = expected_run(scenario)
    reachable_success = any(scenario.outcomes[d][c] == OK for d, c in visits)

    assert (result.raised is None) == reachable_success
    if reachable_success:
        assert scenario.outcomes[result.visits[-1][0]][result.visits[-1][1]] == OK
        assert all(scenario.outcomes[d][c] != OK for d, c in result.visits[:-1])


@PROPERTY_SETTINGS
@given(scenarios(outcomes=st.sampled_from(list(FAILURES))))
def test_exhaustion_reports_what_was_tried(scenario: Scenario) -> None:
    result = run(scenario)
    visits, _ = expected_run(scenario)
    labels = [scenario.deployments[d].label for d, _ in visits]

    if len(visits) == 1:
        # One attempt in all: the client gets that upstream's own error.
        assert result.raised is result.errors[visits[0]]
        return
    assert isinstance(result.raised, NoDeploymentAvailableError)
    details = result.raised.details
    assert details["total_attempts"] == len(visits)
    assert result.raised.message == f"Service temporarily unavailable. All {len(visits)} models failed to respond."
    tried = details["tried_models"]
    assert isinstance(tried, list)
    assert list(dict.fromkeys(tried)) == list(dict.fromkeys(labels))
    history = details["error_history"]
    assert isinstance(history, list)
    assert [entry["model"] for entry in history if isinstance(entry, dict)] == labels


@pytest.mark.parametrize("status", sorted(REQUEST_ERRORS))
def test_request_error_is_raised_at_once(status: str) -> None:
    configs = [
        ProviderConfig(name=f"p{i}", format=WireFormat.OPENAI, base_url="http://127.0.0.1:9/v1", api_keys=["a", "b"])
        for i in range(3)
    ]
    deployments = [Deployment(c.name, "m", make_target(c, TIMEOUTS)) for c in configs]
    result = run(Scenario(deployments, [["429", status], [OK, OK], [OK, OK]], max_attempts=5))
    assert result.visits == [(0, 0), (0, 1)]
    assert isinstance(result.raised, UpstreamBadRequestError)
    assert result.raised.status_code == int(status)
