"""Which endpoint serves which type of model, and the error for a model sent to the wrong one."""

from __future__ import annotations

from typing import Final

from polyroute.errors import InvalidRequestError
from polyroute.routing.config import ModelType

ENDPOINT_OF_TYPE: Final[dict[ModelType, str]] = {
    ModelType.TEXT: "POST /v1/chat/completions",
    ModelType.IMAGE: "POST /v1/images/generations",
    ModelType.EMBEDDING: "POST /v1/embeddings",
    ModelType.AUDIO: "POST /v1/audio/transcriptions, /v1/audio/translations or /v1/audio/speech",
    ModelType.VIDEO: "none yet (video models are listed but not served)",
}
"""Where each type of model is served, for the 400 of a model sent to the wrong endpoint."""


def wrong_endpoint(name: str, found: ModelType, wanted: ModelType) -> InvalidRequestError:
    """The 400 for a model of type ``found`` requested from an endpoint for ``wanted`` models."""
    return InvalidRequestError(
        f"{name!r} is a {found.value} model and this endpoint serves {wanted.value} models; "
        f"use {ENDPOINT_OF_TYPE[found]}",
        param="model",
        code="wrong_endpoint",
    )
