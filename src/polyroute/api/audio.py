"""The audio endpoints: ``/v1/audio/transcriptions``, ``/v1/audio/translations`` and ``/v1/audio/speech``.

Transcriptions read a multipart upload as it arrives (capped, spooled once, checked to be audio by its
name and its magic bytes) before any upstream call, then go to an OpenAI-compatible API, Deepgram or
AssemblyAI with the shared fallback loop; the answer is rendered in the client's ``response_format``.
Speech relays the upstream's audio bytes as they arrive. Each route also has a pinned-provider twin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from polyroute.api.audio_upload import AudioUpload, read_audio_form
from polyroute.api.audio_upstreams import Transcribers, Transcription
from polyroute.api.media import MediaCall, MediaEndpoint
from polyroute.api.pipeline import ResponseHeaders
from polyroute.api.responses import DisconnectWatch, parse_json_object, read_body, send_bytes
from polyroute.api.services import Services
from polyroute.errors import InvalidRequestError, UpstreamEmptyAnswerError, UpstreamError
from polyroute.routing.config import ModelType
from polyroute.upstream.client import UpstreamStream
from polyroute.wire import MediaApi
from polyroute.wire.audio import (
    Task,
    check_audio,
    finish_transcript,
    header_duration_s,
    parse_transcription_fields,
    render_transcript,
)
from polyroute.wire.audio_speech import (
    SPEECH_PATH,
    SpeechRequest,
    parse_speech_request,
    render_speech_request,
    speech_media_type,
)

logger = logging.getLogger(__name__)

MAX_AUDIO_BYTES = 25 * 1024 * 1024
"""Largest audio file a transcription accepts (OpenAI's own limit), unless ``routes()`` is given another."""
POLL_TIMEOUT_S = 600.0
"""How long an AssemblyAI transcript may take before the attempt fails, unless ``routes()`` is given another."""

_UPLOAD_STATE: Final = "audio_upload"
"""``scope["state"]`` key of the request's spooled file, deleted when the request ends."""


class TranscriptionEndpoint(MediaEndpoint[Transcription]):
    """``POST /v1/audio/transcriptions`` or ``/v1/audio/translations`` (one instance per task)."""

    kind = ModelType.AUDIO

    def __init__(
        self,
        services: Services,
        task: Task,
        *,
        transcribers: Transcribers,
        headers: ResponseHeaders,
        max_audio_bytes: int = MAX_AUDIO_BYTES,
    ) -> None:
        super().__init__(services)
        self.task = task
        self.max_audio_bytes = max_audio_bytes
        self._transcribers = transcribers
        self._headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            upload: AudioUpload | None = scope["state"].pop(_UPLOAD_STATE, None)
            if upload is not None:
                upload.close()

    async def parse(self, scope: Scope, receive: Receive) -> Transcription:
        form = await read_audio_form(scope, receive, max_file_bytes=self.max_audio_bytes)
        upload = form.file
        if upload is not None:
            scope["state"][_UPLOAD_STATE] = upload
        fields = parse_transcription_fields(form.fields, self.task)
        if upload is None:
            raise InvalidRequestError("file: is required (the audio, as a multipart file field)", param="file")
        audio_format = check_audio(upload.filename, upload.content_type, upload.head, upload.size)
        return Transcription(fields, upload, audio_format)

    async def serve(self, call: MediaCall[Transcription]) -> None:
        request = call.request
        transcript = await self._transcribers.transcribe(call)
        call.outcome.upstream_model = call.deployment.model
        transcript = finish_transcript(
            transcript,
            self.task,
            requested_language=request.fields.language,
            duration_s=header_duration_s(request.audio_format, request.upload.head, request.upload.size),
        )
        body, media_type = render_transcript(transcript, request.fields.response_format, self.task)
        headers = self._headers(call.deployment, ((b"content-type", media_type.encode()),))
        await send_bytes(call.send, 200, body, headers)


@dataclass(frozen=True, slots=True)
class Speech:
    """A speech request, and the request's ``receive`` (to notice a client that leaves mid-audio)."""

    speech: SpeechRequest
    receive: Receive

    @property
    def model(self) -> str:
        """The model the client asked for."""
        return self.speech.model


class SpeechEndpoint(MediaEndpoint[Speech]):
    """``POST /v1/audio/speech``: the upstream's audio relayed as it arrives."""

    kind = ModelType.AUDIO

    def __init__(self, services: Services, *, headers: ResponseHeaders) -> None:
        super().__init__(services)
        self._headers = headers

    async def parse(self, scope: Scope, receive: Receive) -> Speech:
        payload = parse_json_object(await read_body(scope, receive, self.services.max_body_bytes))
        return Speech(parse_speech_request(payload), receive)

    async def serve(self, call: MediaCall[Speech]) -> None:
        deployment, speech = call.deployment, call.request.speech
        target = deployment.target
        if target.media_api is not MediaApi.OPENAI:
            raise InvalidRequestError(
                f"model: {deployment.label} is served through the {target.media_api or 'no'} media API; "
                "speech needs an OpenAI-compatible /audio/speech",
                param="model",
            )
        call.outcome.upstream_model = deployment.model
        call.outcome.is_stream = True
        body = render_speech_request(speech, deployment.model)
        credential = call.candidate.credential
        async with self.services.upstream.open_bytes(target, SPEECH_PATH, body, credential=credential) as opened:
            upstream_type, stream = opened
            # Until the first bytes have arrived nothing is sent, so a failure so far may still fall back.
            first = await stream.read()
            if not first:
                raise UpstreamEmptyAnswerError(f"{target.name} sent no audio", provider=target.name)
            media_type = speech_media_type(upstream_type, speech.response_format)
            headers = self._headers(deployment, ((b"content-type", media_type.encode()),))
            await call.send({"type": "http.response.start", "status": 200, "headers": list(headers)})
            call.outcome.mark_first_byte()
            await _relay(call, first, stream)


async def _relay(call: MediaCall[Speech], first: bytes, stream: UpstreamStream) -> None:
    """Pass the audio on; stop reading the upstream as soon as the client leaves."""
    with DisconnectWatch(call.request.receive) as watch:
        chunk = first
        try:
            while chunk:
                await call.send({"type": "http.response.body", "body": chunk, "more_body": True})
                chunk = await stream.read()
        except UpstreamError as error:
            # Past the first byte there is no way to say so in-band: the response is left unfinished,
            # so the client sees a cut-off transfer rather than a complete but truncated file.
            logger.warning("speech from %s broke off mid-answer (%s)", call.deployment.label, error.code)
            call.outcome.fail(502, error.code)
            return
        await call.send({"type": "http.response.body", "body": b"", "more_body": False})
    if watch.disconnected:
        call.outcome.fail(499, "client_disconnected")


def routes(
    services: Services, *, max_audio_bytes: int | None = None, poll_timeout_s: float | None = None
) -> list[Route]:
    """The audio routes, plain and pinned to a provider (``/v1/providers/{provider}/audio/...``)."""
    transcribers = Transcribers(
        services.upstream, poll_timeout_s=POLL_TIMEOUT_S if poll_timeout_s is None else poll_timeout_s
    )
    headers = ResponseHeaders()
    limit = MAX_AUDIO_BYTES if max_audio_bytes is None else max_audio_bytes
    endpoints: dict[str, MediaEndpoint[Any]] = {
        "transcriptions": TranscriptionEndpoint(
            services, Task.TRANSCRIBE, transcribers=transcribers, headers=headers, max_audio_bytes=limit
        ),
        "translations": TranscriptionEndpoint(
            services, Task.TRANSLATE, transcribers=transcribers, headers=headers, max_audio_bytes=limit
        ),
        "speech": SpeechEndpoint(services, headers=headers),
    }
    return [
        Route(f"{prefix}/audio/{name}", endpoint, methods=["POST"])
        for prefix in ("/v1", "/v1/providers/{provider}")
        for name, endpoint in endpoints.items()
    ]
