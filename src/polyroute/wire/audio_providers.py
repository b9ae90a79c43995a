"""The transcription APIs upstream, as pure translation: what to send each one, and its answer as a ``Transcript``.

- OpenAI-compatible (OpenAI, Groq, local whisper servers): multipart ``/audio/transcriptions`` and
  ``/audio/translations``; https://platform.openai.com/docs/api-reference/audio
- Deepgram: ``POST /v1/listen`` with the audio as the body; https://developers.deepgram.com/reference/speech-to-text-api/listen
- AssemblyAI: ``POST /v2/upload``, ``POST /v2/transcript``, then ``GET /v2/transcript/{id}`` until done;
  https://www.assemblyai.com/docs/api-reference/transcripts
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from polyroute.errors import UpstreamProtocolError
from polyroute.types import JSONObject
from polyroute.wire.audio import Segment, Task, Transcript, TranscriptionRequest, Word

# OpenAI's gpt-4o transcription models answer only json or text, not verbose_json (API reference,
# createTranscription ``response_format``, observed 2025-03); whisper-1, Groq and local whisper servers do all.
_JSON_ONLY_MODELS: Final = re.compile(r"gpt-4o.*transcribe", re.IGNORECASE)

_SEGMENT_END: Final = (".", "?", "!", "。", "？", "！")
_SEGMENT_GAP_S: Final = 1.0
"""A pause this long between two words starts a new segment (for providers that give only words)."""
_SEGMENT_MAX_WORDS: Final = 40

_JOB_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


# --- OpenAI-compatible ---------------------------------------------------------------------------


def openai_path(task: Task) -> str:
    """The endpoint under the provider's base URL."""
    return "/audio/translations" if task is Task.TRANSLATE else "/audio/transcriptions"


def openai_response_format(model: str) -> str:
    """What to ask the upstream for: ``verbose_json`` (language, duration, segments) where the model offers it."""
    return "json" if _JSON_ONLY_MODELS.search(model) else "verbose_json"


def openai_fields(request: TranscriptionRequest, model: str) -> list[tuple[str, str]]:
    """The text fields of the upstream form, the upstream's model id in place of the client's name."""
    fields = [("model", model), ("response_format", openai_response_format(model))]
    if request.language is not None:
        fields.append(("language", request.language))
    if request.prompt is not None:
        fields.append(("prompt", request.prompt))
    if request.temperature is not None:
        fields.append(("temperature", repr(request.temperature)))
    fields.extend(request.extra)
    return fields


def _quote(value: str) -> str:
    # The HTML form encoding of names in Content-Disposition (WHATWG "multipart/form-data encoding algorithm").
    return value.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")


def render_form_head(fields: Sequence[tuple[str, str]], *, filename: str, media_type: str, boundary: str) -> bytes:
    """The multipart body up to the file's bytes: every text field, then the file part's headers."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n{value}\r\n'
        for name, value in fields
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{_quote(filename)}"\r\n'
        f"Content-Type: {media_type}\r\n\r\n"
    )
    return "".join(parts).encode()


def render_form_tail(boundary: str) -> bytes:
    """The multipart body after the file's bytes."""
    return f"\r\n--{boundary}--\r\n".encode()


def parse_openai_answer(body: bytes, content_type: str, *, provider: str) -> Transcript:
    """An OpenAI-compatible transcription answer (``json``/``verbose_json``, or plain text from a lenient server).

    Raises:
        UpstreamProtocolError: a JSON answer without its ``text``, or malformed segments.
    """
    if content_type != "application/json" and not body.lstrip().startswith(b"{"):
        return Transcript(text=body.decode("utf-8", errors="replace").strip())
    data = _object(body, provider)
    text = data.get("text")
    if not isinstance(text, str):
        raise UpstreamProtocolError(f"{provider} sent a transcription without its text", provider=provider)
    usage = data.get("usage")
    duration = _number(data.get("duration"))
    if duration is None and isinstance(usage, dict) and usage.get("type") == "duration":
        duration = _number(usage.get("seconds"))  # whisper-1's json answer bills by duration
    language = data.get("language")
    known = ("text", "task", "language", "duration", "segments", "words")
    return Transcript(
        text=text,
        language=language if isinstance(language, str) and language else None,
        duration_s=duration,
        segments=tuple(_openai_segment(s, provider) for s in _list(data.get("segments"))),
        words=tuple(_word(w, "word", 1, provider) for w in _list(data.get("words"))),
        extra={k: v for k, v in data.items() if k not in known},
    )


def _openai_segment(raw: Any, provider: str) -> Segment:
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
        raise UpstreamProtocolError(f"{provider} sent a malformed transcription segment", provider=provider)
    start, end = _number(raw.get("start")), _number(raw.get("end"))
    if start is None or end is None:
        raise UpstreamProtocolError(f"{provider} sent a segment without its timing", provider=provider)
    extra = {k: v for k, v in raw.items() if k not in ("start", "end", "text")}
    return Segment(text=raw["text"], start_s=start, end_s=end, extra=extra)


# --- Deepgram ------------------------------------------------------------------------------------


DEEPGRAM_PATH: Final = "/v1/listen"


def deepgram_params(model: str, language: str | None) -> dict[str, str]:
    """The query of ``POST /v1/listen``: the model, smart formatting, and the language (else detection)."""
    params = {"model": model, "smart_format": "true"}
    if language is not None:
        params["language"] = language
    else:
        params["detect_language"] = "true"
    return params


def parse_deepgram_answer(body: bytes, *, provider: str) -> Transcript:
    """Deepgram's pre-recorded answer: ``results.channels[0].alternatives[0]`` and ``metadata.duration``.

    Raises:
        UpstreamProtocolError: the answer lacks its transcript.
    """
    data = _object(body, provider)
    try:
        channel = data["results"]["channels"][0]
        best = channel["alternatives"][0]
        text = best["transcript"]
    except (KeyError, IndexError, TypeError):
        text = None
    if not isinstance(text, str):
        raise UpstreamProtocolError(f"{provider} sent an answer without a transcript", provider=provider)
    metadata = data.get("metadata")
    duration = _number(metadata.get("duration")) if isinstance(metadata, dict) else None
    words = tuple(_deepgram_word(w, provider) for w in _list(best.get("words")))
    language = channel.get("detected_language")
    return Transcript(
        text=text,
        language=language if isinstance(language, str) and language else None,
        duration_s=duration,
        segments=segments_from_words(words),
        words=words,
    )


def _deepgram_word(raw: Any, provider: str) -> Word:
    # With smart_format, ``punctuated_word`` carries the capitals and punctuation the transcript shows.
    key = "punctuated_word" if isinstance(raw, dict) and isinstance(raw.get("punctuated_word"), str) else "word"
    return _word(raw, key, 1, provider)


# --- AssemblyAI ----------------------------------------------------------------------------------


ASSEMBLYAI_UPLOAD_PATH: Final = "/v2/upload"
ASSEMBLYAI_TRANSCRIPT_PATH: Final = "/v2/transcript"


@dataclass(frozen=True, slots=True, kw_only=True)
class AssemblyJob:
    """A transcript job as AssemblyAI reports it."""

    id: str
    status: str
    """``queued``, ``processing``, ``completed`` or ``error``."""
    error: str | None = None
    transcript: Transcript | None = None
    """Set once ``status`` is ``completed``."""

    @property
    def is_pending(self) -> bool:
        """Still queued or processing: poll again."""
        return self.status in ("queued", "processing")


def assemblyai_speech_model(model: str) -> str:
    """The ``speech_model`` for a model id (``assemblyai/best`` and ``best`` both mean ``best``)."""
    return model.rpartition("/")[2]


def render_assemblyai_request(upload_url: str, model: str, language: str | None) -> bytes:
    """The body of ``POST /v2/transcript``: the uploaded audio, the speech model, the language or its detection."""
    body: JSONObject = {"audio_url": upload_url, "speech_model": assemblyai_speech_model(model)}
    if language is not None:
        body["language_code"] = language
    else:
        body["language_detection"] = True
    return orjson.dumps(body)


def parse_assemblyai_upload(body: bytes, *, provider: str) -> str:
    """The ``upload_url`` of ``POST /v2/upload``'s answer.

    Raises:
        UpstreamProtocolError: no URL in the answer.
    """
    url = _object(body, provider).get("upload_url")
    if not isinstance(url, str) or not url:
        raise UpstreamProtocolError(f"{provider} sent an upload answer without upload_url", provider=provider)
    return url


def parse_assemblyai_job(body: bytes, *, provider: str) -> AssemblyJob:
    """A transcript object (from ``POST /v2/transcript`` or a poll); its transcript once completed.

    Raises:
        UpstreamProtocolError: no usable id, an unknown status, or a completed job without its text.
    """
    data = _object(body, provider)
    job_id, status = data.get("id"), data.get("status")
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise UpstreamProtocolError(f"{provider} sent a transcript without a usable id", provider=provider)
    if status not in ("queued", "processing", "completed", "error"):
        raise UpstreamProtocolError(f"{provider} sent an unknown transcript status", provider=provider)
    if status == "error":
        error = data.get("error")
        return AssemblyJob(id=job_id, status=status, error=error if isinstance(error, str) else "unknown error")
    if status != "completed":
        return AssemblyJob(id=job_id, status=status)
    text = data.get("text")
    if not isinstance(text, str):
        raise UpstreamProtocolError(f"{provider} sent a completed transcript without its text", provider=provider)
    # AssemblyAI times words in milliseconds; audio_duration is in seconds.
    words = tuple(_word(w, "text", 1000, provider) for w in _list(data.get("words")))
    language = data.get("language_code")
    transcript = Transcript(
        text=text,
        language=language if isinstance(language, str) and language else None,
        duration_s=_number(data.get("audio_duration")),
        segments=segments_from_words(words),
        words=words,
    )
    return AssemblyJob(id=job_id, status=status, transcript=transcript)


# --- shared --------------------------------------------------------------------------------------


def segments_from_words(words: Sequence[Word]) -> tuple[Segment, ...]:
    """Segments for providers that time only words: split after a sentence's end, a long pause, or 40 words."""
    segments: list[Segment] = []
    current: list[Word] = []
    for index, word in enumerate(words):
        current.append(word)
        following = words[index + 1] if index + 1 < len(words) else None
        if (
            following is None
            or word.text.endswith(_SEGMENT_END)
            or following.start_s - word.end_s >= _SEGMENT_GAP_S
            or len(current) >= _SEGMENT_MAX_WORDS
        ):
            text = " ".join(w.text for w in current)
            segments.append(Segment(text=text, start_s=current[0].start_s, end_s=current[-1].end_s))
            current = []
    return tuple(segments)


def _object(body: bytes, provider: str) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise UpstreamProtocolError(f"{provider} sent an answer that is not a JSON object", provider=provider)
    return data


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _word(raw: Any, key: str, per_second: int, provider: str) -> Word:
    """A timed word; the provider's times count ``per_second`` units in a second."""
    start = _number(raw.get("start")) if isinstance(raw, dict) else None
    end = _number(raw.get("end")) if isinstance(raw, dict) else None
    text = raw.get(key) if isinstance(raw, dict) else None
    if start is None or end is None or not isinstance(text, str):
        raise UpstreamProtocolError(f"{provider} sent a malformed word timing", provider=provider)
    return Word(text=text, start_s=start / per_second, end_s=end / per_second)
