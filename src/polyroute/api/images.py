"""The images endpoints (not served yet)."""

from __future__ import annotations

from starlette.routing import Route

from polyroute.api.services import Services


def routes(services: Services) -> list[Route]:
    """The images routes."""
    del services
    return []
