"""Every media route: images, embeddings and audio (each module owns its paths)."""

from __future__ import annotations

from starlette.routing import Route

from polyroute.api import audio, embeddings, images
from polyroute.api.services import Services


def media_routes(services: Services, *, audio_max_bytes: int | None = None) -> list[Route]:
    """The routes of every media endpoint, served through Starlette."""
    return [
        *images.routes(services),
        *embeddings.routes(services),
        *audio.routes(services, max_audio_bytes=audio_max_bytes),
    ]
