"""How each wire format carries a credential, as data: header name and value template."""

from __future__ import annotations

from collections.abc import Mapping

from polyroute.wire import MediaApi, WireFormat

# (header, value template, fixed headers) per format; "{key}" is replaced by the credential.
_AUTH_HEADERS: Mapping[WireFormat, tuple[str, str, Mapping[str, str]]] = {
    WireFormat.OPENAI: ("Authorization", "Bearer {key}", {}),
    # https://docs.anthropic.com/en/api/versioning: the version header is required on every call.
    WireFormat.ANTHROPIC: ("x-api-key", "{key}", {"anthropic-version": "2023-06-01"}),
    WireFormat.GEMINI: ("x-goog-api-key", "{key}", {}),
    # Ollama itself takes no key; a bearer token is what hosted Ollama and proxies in front of it expect.
    WireFormat.OLLAMA: ("Authorization", "Bearer {key}", {}),
    WireFormat.RESPONSES: ("Authorization", "Bearer {key}", {}),
}


def auth_headers(wire_format: WireFormat, key: str | None) -> dict[str, str]:
    """The headers that authenticate one request with ``key`` (only the fixed ones when keyless)."""
    header, template, fixed = _AUTH_HEADERS[wire_format]
    headers = dict(fixed)
    if key:
        headers[header] = template.format(key=key)
    return headers


# The same for the media APIs; the OpenAI-compatible, Gemini and Ollama ones authenticate as their format does.
_MEDIA_AUTH_HEADERS: Mapping[MediaApi, tuple[str, str, Mapping[str, str]]] = {
    MediaApi.OPENAI: ("Authorization", "Bearer {key}", {}),
    MediaApi.POLLINATIONS: ("Authorization", "Bearer {key}", {}),
    MediaApi.GEMINI: ("x-goog-api-key", "{key}", {}),
    MediaApi.OLLAMA: ("Authorization", "Bearer {key}", {}),
    # https://developers.deepgram.com/reference/authentication
    MediaApi.DEEPGRAM: ("Authorization", "Token {key}", {}),
    # https://www.assemblyai.com/docs/api-reference: the key itself, no scheme.
    MediaApi.ASSEMBLYAI: ("Authorization", "{key}", {}),
    MediaApi.COHERE: ("Authorization", "Bearer {key}", {}),
}


def media_auth_headers(media_api: MediaApi, key: str | None) -> dict[str, str]:
    """The headers that authenticate one media request with ``key`` (none when keyless)."""
    header, template, fixed = _MEDIA_AUTH_HEADERS[media_api]
    headers = dict(fixed)
    if key:
        headers[header] = template.format(key=key)
    return headers
