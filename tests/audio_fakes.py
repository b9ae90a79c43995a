"""FakeAudioApi: a real aiohttp server on 127.0.0.1 speaking the audio APIs of OpenAI, Deepgram and AssemblyAI.

- OpenAI-compatible: ``POST /v1/audio/transcriptions|translations`` (multipart, parsed here with aiohttp's own
  reader so the gateway's forwarding is checked by an independent parser) and ``POST /v1/audio/speech``
  (audio bytes sent in pieces, optionally held until the test has read the first one).
- Deepgram: ``POST /v1/listen`` with the raw audio as the body.
- AssemblyAI: ``POST /v2/upload`` (raw bytes), ``POST /v2/transcript``, ``GET /v2/transcript/{id}``
  walking ``queued`` → ``processing`` → ``completed`` (or ``error``).

Answers follow each provider's API reference. The server runs in its own thread and event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import openai
import pytest
from aiohttp import BodyPartReader, web

from polyroute.api import audio
from tests.audio_samples import ASSEMBLYAI_COMPLETED, DEEPGRAM_ANSWER, OPENAI_VERBOSE, TRANSCRIPT_ID, UPLOAD_URL
from tests.fakes import LoopbackServer
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY, RunningGateway, start_gateway

SPEECH_CHUNKS: Final = (
    b"ID3\x04\x00\x00\x00\x00\x00\x00",
    b"\xff\xfb\x90\x64" + bytes(400),
    b"\xff\xfb\x90\x64" + bytes(7),
)


@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    fields: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None
    file_type: str | None = None
    file_bytes: bytes | None = None

    def json(self) -> Any:
        return json.loads(self.body)


class FakeAudioApi(LoopbackServer):
    """The audio APIs of three providers on one loopback port, with failures on demand and a record of requests."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Seen] = []
        self.failures: deque[tuple[int, dict[str, Any]]] = deque()
        """Error answers (status, JSON body) given to the next requests, whatever their path."""
        self.openai_answer: dict[str, Any] | None = None
        """Overrides the transcription answer (else chosen by the requested response_format)."""
        self.statuses: deque[str] = deque()
        self.assemblyai_error: str | None = None
        self.speech_gate: threading.Event | None = None
        """When set, the speech answer waits after its first piece until the test sets this event."""
        self.speech_cut = False
        """Drop the connection after the first piece of speech (and after the gate, when there is one)."""
        self.speech_empty = False
        """Answer a speech request with 200 and no bytes."""
        self.speech_finished = threading.Event()
        """Set when a speech answer was written to its end."""
        self.gate_was_open = False

    def reset(self) -> None:
        self.seen.clear()
        self.failures.clear()
        self.openai_answer = None
        self.statuses = deque(["queued", "processing", "completed"])
        self.assemblyai_error = None
        self.speech_gate = None
        self.speech_cut = False
        self.speech_empty = False
        self.speech_finished.clear()
        self.gate_was_open = False

    def build_app(self) -> web.Application:
        self.reset()
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._fail_on_demand])
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        app.router.add_post("/v1/audio/translations", self._transcribe)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_post("/v1/listen", self._listen)
        app.router.add_post("/v2/upload", self._upload)
        app.router.add_post("/v2/transcript", self._create_transcript)
        app.router.add_get("/v2/transcript/{id}", self._poll_transcript)
        return app

    @web.middleware
    async def _fail_on_demand(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self.failures:
            status, body = self.failures.popleft()
            self.seen.append(self._seen(request, await request.read()))
            return web.json_response(body, status=status)
        return await handler(request)

    def _seen(self, request: web.Request, body: bytes = b"") -> Seen:
        return Seen(request.method, request.path, dict(request.query), dict(request.headers), body)

    async def _transcribe(self, request: web.Request) -> web.Response:
        seen = self._seen(request)
        reader = await request.multipart()
        async for part in reader:
            assert isinstance(part, BodyPartReader)
            if part.filename is not None:
                seen.file_name, seen.file_type = part.filename, part.headers.get("Content-Type")
                seen.file_bytes = await part.read()
            else:
                seen.fields[part.name or ""] = await part.text()
        self.seen.append(seen)
        if self.openai_answer is not None:
            return web.json_response(self.openai_answer)
        answer = dict(OPENAI_VERBOSE)
        if request.path.endswith("translations"):
            answer["task"] = "translate"
        if seen.fields.get("response_format") == "json":
            answer = {"text": answer["text"], "usage": {"type": "tokens", "input_tokens": 20, "output_tokens": 8}}
        return web.json_response(answer)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(self._seen(request, await request.read()))
        if self.speech_empty:
            return web.Response(body=b"", content_type="audio/mpeg")
        response = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
        await response.prepare(request)
        await response.write(SPEECH_CHUNKS[0])
        if self.speech_gate is not None:
            deadline = time.monotonic() + 5
            while not self.speech_gate.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            self.gate_was_open = self.speech_gate.is_set()
        if self.speech_cut:
            request.transport.close()  # type: ignore[union-attr]
            return response
        for piece in SPEECH_CHUNKS[1:]:
            await response.write(piece)
        await response.write_eof()
        self.speech_finished.set()
        return response

    async def _listen(self, request: web.Request) -> web.Response:
        self.seen.append(self._seen(request, await request.read()))
        return web.json_response(DEEPGRAM_ANSWER)

    async def _upload(self, request: web.Request) -> web.Response:
        self.seen.append(self._seen(request, await request.read()))
        return web.json_response({"upload_url": UPLOAD_URL})

    async def _create_transcript(self, request: web.Request) -> web.Response:
        self.seen.append(self._seen(request, await request.read()))
        return web.json_response(self._job("queued"))

    async def _poll_transcript(self, request: web.Request) -> web.Response:
        self.seen.append(self._seen(request))
        if request.match_info["id"] != TRANSCRIPT_ID:
            return web.json_response({"error": "Transcript not found"}, status=404)
        status = self.statuses.popleft() if len(self.statuses) > 1 else self.statuses[0]
        if status == "completed":
            return web.json_response(ASSEMBLYAI_COMPLETED)
        return web.json_response(self._job(status))

    def _job(self, status: str) -> dict[str, Any]:
        job: dict[str, Any] = dict.fromkeys(ASSEMBLYAI_COMPLETED)
        job.update(id=TRANSCRIPT_ID, audio_url=UPLOAD_URL, status=status, speech_model="best", language_code="en_us")
        if status == "error":
            job["error"] = self.assemblyai_error or "Transcoding failed. File does not appear to contain audio."
        return job


DEEPGRAM_KEY: Final = "dg-fake-deepgram-key-5f2a9c"
ASSEMBLYAI_KEY: Final = "aai-fake-assemblyai-key-77d1e0"


def audio_routing(primary: FakeAudioApi, backup: FakeAudioApi, other: FakeAudioApi) -> dict[str, Any]:
    """Providers in front of the fakes: two OpenAI-compatible ones (for fallback), Deepgram and AssemblyAI."""
    return {
        "providers": [
            {
                "name": "oai",
                "format": "openai",
                "base_url": primary.root + "/v1",
                "api_key": UPSTREAM_KEY,
                "models": ["whisper-1", "tts-1", "gpt-4o-transcribe", "gpt-4o"],
            },
            {
                "name": "backup",
                "format": "openai",
                "base_url": backup.root + "/v1",
                "api_key": UPSTREAM_KEY,
                "models": ["whisper-1", "tts-1"],
            },
            {
                "name": "deepgram",
                "format": "openai",
                "media_api": "deepgram",
                "base_url": other.root,
                "api_key": DEEPGRAM_KEY,
                "models": ["nova-3"],
            },
            {
                "name": "assemblyai",
                "format": "openai",
                "media_api": "assemblyai",
                "base_url": other.root,
                "api_key": ASSEMBLYAI_KEY,
                "models": [{"id": "best", "type": "audio"}],
            },
            {
                "name": "embedder",
                "format": "openai",
                "media_api": "cohere",
                "base_url": other.root,
                "models": [{"id": "speechless", "type": "audio"}],
            },
        ]
    }


@dataclass
class AudioSetup:
    """A gateway in front of three fakes: ``primary`` (oai), ``backup`` and ``other`` (Deepgram and AssemblyAI)."""

    gateway: RunningGateway
    primary: FakeAudioApi
    backup: FakeAudioApi
    other: FakeAudioApi

    def reset(self) -> AudioSetup:
        for fake in (self.primary, self.backup, self.other):
            fake.reset()
        return self

    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=15)

    @property
    def upstream_requests(self) -> int:
        return len(self.primary.seen) + len(self.backup.seen) + len(self.other.seen)


@contextmanager
def running_audio_gateway(
    data_dir: Any, *, max_audio_bytes: int | None = None, poll_timeout_s: float | None = None
) -> Iterator[AudioSetup]:
    """Start the fakes and a gateway in front of them (with a smaller upload limit or poll timeout when given)."""
    fakes = [FakeAudioApi().start() for _ in range(3)]
    try:
        settings: dict[str, Any] = {"audio_max_bytes": max_audio_bytes} if max_audio_bytes is not None else {}
        with pytest.MonkeyPatch.context() as patch:
            if poll_timeout_s is not None:
                patch.setattr(audio, "POLL_TIMEOUT_S", poll_timeout_s)
            running = start_gateway(audio_routing(*fakes), data_dir, **settings)
        try:
            yield AudioSetup(running, *fakes)
        finally:
            running.stop()
    finally:
        for fake in fakes:
            fake.stop()
