"""What the HTTP handlers are given: built once by ``app.py`` and passed in."""

from __future__ import annotations

from dataclasses import dataclass

from polyroute.api.access import Gate
from polyroute.api.pricing import Prices
from polyroute.health import Health
from polyroute.routing.credentials import CredentialRotation
from polyroute.routing.planner import Planner
from polyroute.routing.table import LiveRoutingTable
from polyroute.routing.telemetry import Telemetry
from polyroute.storage.base import RequestLog
from polyroute.upstream.client import UpstreamClient
from polyroute.upstream.images import ImageFetcher


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """The gateway's collaborators, shared by every handler of one worker."""

    routing: LiveRoutingTable
    upstream: UpstreamClient
    images: ImageFetcher
    request_log: RequestLog
    gate: Gate
    prices: Prices
    planner: Planner
    health: Health
    telemetry: Telemetry
    rotation: CredentialRotation
    max_body_bytes: int
