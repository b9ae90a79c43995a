"""Transcription through each media API upstream: OpenAI-compatible, Deepgram, and AssemblyAI (upload, then poll).

The file is streamed from its spool into every attempt's request (a fallback re-reads it from the start);
what each API wants and answers is translated in ``wire/audio_providers.py``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final

from polyroute.api.audio_upload import AudioUpload
from polyroute.api.media import MediaCall
from polyroute.errors import InvalidRequestError, UpstreamServerError, UpstreamTimeoutError
from polyroute.upstream.client import UpstreamClient, UpstreamTarget
from polyroute.wire import MediaApi
from polyroute.wire.audio import MEDIA_TYPE_OF, AudioFormat, Task, Transcript, TranscriptionRequest
from polyroute.wire.audio_providers import (
    ASSEMBLYAI_TRANSCRIPT_PATH,
    ASSEMBLYAI_UPLOAD_PATH,
    DEEPGRAM_PATH,
    AssemblyJob,
    deepgram_params,
    openai_fields,
    openai_path,
    parse_assemblyai_job,
    parse_assemblyai_upload,
    parse_deepgram_answer,
    parse_openai_answer,
    render_assemblyai_request,
    render_form_head,
    render_form_tail,
)

FIRST_POLL_DELAY_S: Final = 0.2
MAX_POLL_DELAY_S: Final = 2.0
POLL_GROWTH: Final = 1.5
"""Each wait for an AssemblyAI transcript is this much longer than the last, up to ``MAX_POLL_DELAY_S``."""

_NAMES: Final[Mapping[MediaApi, str]] = {MediaApi.DEEPGRAM: "Deepgram's API", MediaApi.ASSEMBLYAI: "AssemblyAI's API"}


@dataclass(frozen=True, slots=True)
class Transcription:
    """A transcription or translation request: its fields, and its file (checked to be audio)."""

    fields: TranscriptionRequest
    upload: AudioUpload
    audio_format: AudioFormat

    @property
    def model(self) -> str:
        """The model the client asked for."""
        return self.fields.model


Transcribe = Callable[[MediaCall[Transcription]], Awaitable[Transcript]]


class Transcribers:
    """Sends one attempt of a transcription to its deployment's media API."""

    def __init__(self, upstream: UpstreamClient, *, poll_timeout_s: float) -> None:
        self._upstream = upstream
        self._poll_timeout_s = poll_timeout_s
        self._by_api: Mapping[MediaApi, Transcribe] = {
            MediaApi.OPENAI: self._openai,
            MediaApi.DEEPGRAM: self._deepgram,
            MediaApi.ASSEMBLYAI: self._assemblyai,
        }

    async def transcribe(self, call: MediaCall[Transcription]) -> Transcript:
        """The transcript from ``call.deployment``.

        Raises:
            InvalidRequestError: the deployment's API cannot do what the request asks.
            UpstreamError: the attempt failed (the next candidate may try).
        """
        media_api = call.deployment.target.media_api
        transcribe = self._by_api.get(media_api) if media_api is not None else None
        if transcribe is None:
            raise InvalidRequestError(
                f"model: {call.deployment.label} is served through the {media_api or 'no'} media API, "
                "which has no transcription",
                param="model",
            )
        return await transcribe(call)

    async def _openai(self, call: MediaCall[Transcription]) -> Transcript:
        request, target = call.request, call.deployment.target
        boundary = "polyroute" + secrets.token_hex(16)
        head = render_form_head(
            openai_fields(request.fields, call.deployment.model),
            filename=f"audio.{request.audio_format.value}",
            media_type=MEDIA_TYPE_OF[request.audio_format],
            boundary=boundary,
        )
        tail = render_form_tail(boundary)
        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + request.upload.size + len(tail)),
        }
        reply = await self._upstream.request(
            target,
            "POST",
            openai_path(request.fields.task),
            data=_framed(head, request.upload, tail),
            headers=headers,
            credential=call.candidate.credential,
        )
        return parse_openai_answer(reply.body, reply.content_type, provider=target.name)

    async def _deepgram(self, call: MediaCall[Transcription]) -> Transcript:
        _check_supported(call, MediaApi.DEEPGRAM)
        request, target = call.request, call.deployment.target
        reply = await self._upstream.request(
            target,
            "POST",
            DEEPGRAM_PATH,
            data=request.upload.chunks(),
            headers=_raw_audio_headers(request.upload, MEDIA_TYPE_OF[request.audio_format]),
            params=deepgram_params(call.deployment.model, request.fields.language),
            credential=call.candidate.credential,
        )
        return parse_deepgram_answer(reply.body, provider=target.name)

    async def _assemblyai(self, call: MediaCall[Transcription]) -> Transcript:
        _check_supported(call, MediaApi.ASSEMBLYAI)
        request, target, credential = call.request, call.deployment.target, call.candidate.credential
        uploaded = await self._upstream.request(
            target,
            "POST",
            ASSEMBLYAI_UPLOAD_PATH,
            data=request.upload.chunks(),
            headers=_raw_audio_headers(request.upload, "application/octet-stream"),
            credential=credential,
        )
        upload_url = parse_assemblyai_upload(uploaded.body, provider=target.name)
        created = await self._upstream.request(
            target,
            "POST",
            ASSEMBLYAI_TRANSCRIPT_PATH,
            data=render_assemblyai_request(upload_url, call.deployment.model, request.fields.language),
            headers={"Content-Type": "application/json"},
            credential=credential,
        )
        job = await self._until_done(target, parse_assemblyai_job(created.body, provider=target.name), credential)
        if job.transcript is None:
            message = target.redact(job.error or "unknown error")[:300]
            raise UpstreamServerError(
                f"{target.name} could not transcribe the audio: {message}",
                provider=target.name,
                upstream_status=created.status,
                code="transcription_failed",
            )
        return job.transcript

    async def _until_done(self, target: UpstreamTarget, job: AssemblyJob, credential: int) -> AssemblyJob:
        """Poll the job until it is completed or failed, waiting a little longer each time, within the timeout."""
        deadline = time.monotonic() + self._poll_timeout_s
        delay_s = FIRST_POLL_DELAY_S
        address = target.url(ASSEMBLYAI_TRANSCRIPT_PATH) / job.id
        while job.is_pending:
            if time.monotonic() + delay_s > deadline:
                raise UpstreamTimeoutError(
                    f"{target.name} did not finish the transcript within {self._poll_timeout_s:g} s",
                    provider=target.name,
                )
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * POLL_GROWTH, MAX_POLL_DELAY_S)
            reply = await self._upstream.request(target, "GET", address, credential=credential)
            job = parse_assemblyai_job(reply.body, provider=target.name)
        return job


async def _framed(head: bytes, upload: AudioUpload, tail: bytes) -> AsyncIterator[bytes]:
    yield head
    async for chunk in upload.chunks():
        yield chunk
    yield tail


def _raw_audio_headers(upload: AudioUpload, media_type: str) -> dict[str, str]:
    return {"Content-Type": media_type, "Content-Length": str(upload.size)}


def _check_supported(call: MediaCall[Transcription], media_api: MediaApi) -> None:
    """Refuse, before any call, what the provider's API cannot do (rather than drop it silently).

    Raises:
        InvalidRequestError: a translation, a prompt, a temperature or another OpenAI-only field.
    """
    fields, label, api = call.request.fields, call.deployment.label, _NAMES[media_api]
    if fields.task is Task.TRANSLATE:
        raise InvalidRequestError(
            f"model: {label} speaks {api}, which transcribes but cannot translate; "
            "use a model of an OpenAI-compatible provider for /v1/audio/translations",
            param="model",
            code="unsupported_feature",
        )
    options = (("prompt", fields.prompt), ("temperature", fields.temperature))
    unsupported = [name for name, value in options if value is not None]
    unsupported += [name for name, _ in fields.extra]
    if unsupported:
        name = unsupported[0]
        raise InvalidRequestError(
            f"{name}: {label} speaks {api}, which takes no {name}; omit it", param=name, code="unsupported_feature"
        )
