"""OpenAI's audio API on the client side: accepted files, the transcript, and its five response formats.

``POST /v1/audio/transcriptions`` and ``/v1/audio/translations`` answer with ``json`` (``text``, ``task``,
``language``, ``duration``), ``text``, ``srt``, ``vtt`` or ``verbose_json`` (with ``segments``).
See: https://platform.openai.com/docs/api-reference/audio/createTranscription
The providers' own transcription APIs are read in ``wire/audio_providers.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import orjson

from polyroute.errors import InvalidRequestError
from polyroute.types import JSONObject, JSONValue


class AudioFormat(StrEnum):
    """An accepted audio container, named by its usual file extension."""

    MP3 = "mp3"
    WAV = "wav"
    M4A = "m4a"
    FLAC = "flac"
    OGG = "ogg"
    WEBM = "webm"


EXPECTED_FORMATS: Final = "mp3, wav, m4a, flac, ogg or webm"

_EXTENSIONS: Final[Mapping[str, AudioFormat]] = {
    "mp3": AudioFormat.MP3,
    "mpga": AudioFormat.MP3,
    "mpeg": AudioFormat.MP3,
    "wav": AudioFormat.WAV,
    "wave": AudioFormat.WAV,
    "m4a": AudioFormat.M4A,
    "mp4": AudioFormat.M4A,
    "flac": AudioFormat.FLAC,
    "ogg": AudioFormat.OGG,
    "oga": AudioFormat.OGG,
    "opus": AudioFormat.OGG,
    "webm": AudioFormat.WEBM,
}
"""File extensions → container (OpenAI also takes mp4, mpeg and mpga: the same containers)."""

_MEDIA_TYPES: Final[Mapping[str, AudioFormat]] = {
    "audio/mpeg": AudioFormat.MP3,
    "audio/mp3": AudioFormat.MP3,
    "audio/mpga": AudioFormat.MP3,
    "audio/wav": AudioFormat.WAV,
    "audio/wave": AudioFormat.WAV,
    "audio/x-wav": AudioFormat.WAV,
    "audio/vnd.wave": AudioFormat.WAV,
    "audio/mp4": AudioFormat.M4A,
    "audio/m4a": AudioFormat.M4A,
    "audio/x-m4a": AudioFormat.M4A,
    "video/mp4": AudioFormat.M4A,
    "audio/flac": AudioFormat.FLAC,
    "audio/x-flac": AudioFormat.FLAC,
    "audio/ogg": AudioFormat.OGG,
    "audio/opus": AudioFormat.OGG,
    "application/ogg": AudioFormat.OGG,
    "audio/webm": AudioFormat.WEBM,
    "video/webm": AudioFormat.WEBM,
}
"""Declared media types → container; other types are refused, except the generic ones, which say nothing."""

_GENERIC_TYPES: Final = frozenset({"application/octet-stream", "binary/octet-stream"})

MEDIA_TYPE_OF: Final[Mapping[AudioFormat, str]] = {
    AudioFormat.MP3: "audio/mpeg",
    AudioFormat.WAV: "audio/wav",
    AudioFormat.M4A: "audio/mp4",
    AudioFormat.FLAC: "audio/flac",
    AudioFormat.OGG: "audio/ogg",
    AudioFormat.WEBM: "audio/webm",
}
"""The media type sent upstream for each container."""

SNIFF_BYTES: Final = 4096
"""How much of the start of a file ``check_audio`` and ``header_duration_s`` look at."""


class Task(StrEnum):
    """What the endpoint does with the speech."""

    TRANSCRIBE = "transcribe"
    TRANSLATE = "translate"
    """Into English text."""


class ResponseFormat(StrEnum):
    """The client's ``response_format``."""

    JSON = "json"
    TEXT = "text"
    SRT = "srt"
    VTT = "vtt"
    VERBOSE_JSON = "verbose_json"


@dataclass(frozen=True, slots=True, kw_only=True)
class Word:
    """One recognised word with its timing."""

    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """A stretch of the transcript with its timing (a subtitle cue)."""

    text: str
    start_s: float
    end_s: float
    extra: Mapping[str, JSONValue] = field(default_factory=dict)
    """The upstream's other fields of the segment (OpenAI's ``seek``, ``tokens``, ``avg_logprob``…), kept as sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcript:
    """A transcription in the gateway's own form, whichever provider made it."""

    text: str
    language: str | None = None
    """As the upstream names it (``english`` for OpenAI, ``en`` for Deepgram, ``en_us`` for AssemblyAI)."""
    duration_s: float | None = None
    segments: tuple[Segment, ...] = ()
    words: tuple[Word, ...] = ()
    extra: Mapping[str, JSONValue] = field(default_factory=dict)
    """The upstream's other top-level fields (such as ``usage``), passed on in the JSON formats."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptionRequest:
    """The form fields of a transcription or translation request (the file travels apart)."""

    task: Task
    model: str
    language: str | None = None
    """ISO-639-1 code of the spoken language (transcriptions only); None: detected."""
    prompt: str | None = None
    response_format: ResponseFormat = ResponseFormat.JSON
    temperature: float | None = None
    extra: tuple[tuple[str, str], ...] = ()
    """Other fields (``timestamp_granularities[]``, ``include[]``…), passed on to OpenAI-compatible upstreams."""


_SINGLE_FIELDS: Final = frozenset({"model", "language", "prompt", "response_format", "temperature", "stream"})


def parse_transcription_fields(fields: Sequence[tuple[str, str]], task: Task) -> TranscriptionRequest:
    """Validate the text fields of the form (empty values count as absent).

    Raises:
        InvalidRequestError: a missing model, a value out of range, a field given twice, or an option
            this endpoint does not offer (streaming, a language for a translation); ``param`` names it.
    """
    single: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    for name, value in fields:
        if name not in _SINGLE_FIELDS:
            extra.append((name, value))
        elif name in single:
            raise InvalidRequestError(f"{name}: given more than once", param=name)
        else:
            single[name] = value.strip() if name != "prompt" else value
    model = single.get("model")
    if not model:
        raise InvalidRequestError("model: is required", param="model")
    if single.get("stream", "false").lower() not in ("false", "0", ""):
        raise InvalidRequestError("stream: streamed transcription is not offered; omit stream", param="stream")
    language = single.get("language") or None
    if language is not None and task is Task.TRANSLATE:
        raise InvalidRequestError(
            "language: a translation is always into English and takes no language; omit it", param="language"
        )
    if language is not None and len(language) > 32:
        raise InvalidRequestError("language: expected a language code such as en", param="language")
    return TranscriptionRequest(
        task=task,
        model=model,
        language=language,
        prompt=single.get("prompt") or None,
        response_format=_response_format(single.get("response_format")),
        temperature=_temperature(single.get("temperature")),
        extra=tuple(extra),
    )


def _response_format(value: str | None) -> ResponseFormat:
    if not value:
        return ResponseFormat.JSON
    try:
        return ResponseFormat(value)
    except ValueError:
        allowed = ", ".join(f.value for f in ResponseFormat)
        raise InvalidRequestError(
            f"response_format: {value[:32]!r} is not one of {allowed}", param="response_format"
        ) from None


def _temperature(value: str | None) -> float | None:
    if not value:
        return None
    try:
        temperature = float(value)
    except ValueError:
        temperature = -1.0
    if not 0.0 <= temperature <= 1.0:
        raise InvalidRequestError("temperature: expected a number from 0 to 1", param="temperature")
    return temperature


def _extension(filename: str | None) -> str | None:
    if not filename or "." not in filename:
        return None
    return filename.rsplit(".", 1)[1].strip().lower() or None


def declared_format(filename: str | None, content_type: str | None) -> AudioFormat | None:
    """The container the file's name (else its media type) claims; None when neither says.

    Raises:
        InvalidRequestError: the name or type claims something that is not an accepted audio format.
    """
    extension = _extension(filename)
    if extension is not None:
        found = _EXTENSIONS.get(extension)
        if found is None:
            raise InvalidRequestError(
                f"file: .{extension[:16]} files are not accepted (expected {EXPECTED_FORMATS})", param="file"
            )
        return found
    if content_type is None or content_type in _GENERIC_TYPES:
        return None
    found = _MEDIA_TYPES.get(content_type)
    if found is None:
        raise InvalidRequestError(
            f"file: {content_type[:64]} is not an accepted audio type (expected {EXPECTED_FORMATS})", param="file"
        )
    return found


def sniff_format(head: bytes) -> AudioFormat | None:
    """The container that the file's first bytes (magic numbers) show; None when none matches."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return AudioFormat.WAV
    if head[:4] == b"fLaC":
        return AudioFormat.FLAC
    if head[:4] == b"OggS":
        return AudioFormat.OGG
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: WebM (and Matroska, its parent format)
        return AudioFormat.WEBM
    if head[4:8] == b"ftyp":  # ISO base media (MP4/M4A)
        return AudioFormat.M4A
    if head[:3] == b"ID3" or _is_mpeg_audio_frame(head):
        return AudioFormat.MP3
    return None


def _is_mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, a layer, a bitrate and a sample rate that are not reserved."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 0x03, (head[1] >> 1) & 0x03
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0x03
    # Layer 0 is reserved (and is what AAC's ADTS headers carry); bitrate 15 and rate 3 are invalid.
    return version != 1 and layer != 0 and bitrate != 15 and rate != 3


def check_audio(filename: str | None, content_type: str | None, head: bytes, size: int) -> AudioFormat:
    """The file's container, after checking that it is non-empty audio of an accepted kind.

    Raises:
        InvalidRequestError: empty, unrecognised content, or content that is not what its name or type says.
    """
    if size == 0:
        raise InvalidRequestError("file: the file is empty", param="file")
    declared = declared_format(filename, content_type)
    found = sniff_format(head)
    if found is None:
        raise InvalidRequestError(
            f"file: not a recognised audio format (expected {EXPECTED_FORMATS})", param="file", code="invalid_audio"
        )
    if declared is not None and declared is not found:
        raise InvalidRequestError(
            f"file: named or typed as {declared.value} but its content is {found.value}",
            param="file",
            code="invalid_audio",
        )
    return found


def header_duration_s(audio_format: AudioFormat, head: bytes, size: int) -> float | None:
    """The audio's length read from its header, for WAV and FLAC; None when the header does not say."""
    if audio_format is AudioFormat.WAV:
        return _wav_duration_s(head, size)
    if audio_format is AudioFormat.FLAC:
        return _flac_duration_s(head)
    return None


def _wav_duration_s(head: bytes, size: int) -> float | None:
    position, byte_rate = 12, 0
    while position + 8 <= len(head):
        chunk, length = head[position : position + 4], int.from_bytes(head[position + 4 : position + 8], "little")
        if chunk == b"fmt " and position + 16 <= len(head):
            byte_rate = int.from_bytes(head[position + 16 : position + 20], "little")
        elif chunk == b"data":
            data_bytes = min(length, size - position - 8)
            return data_bytes / byte_rate if byte_rate and data_bytes > 0 else None
        position += 8 + length + (length & 1)
    return None


def _flac_duration_s(head: bytes) -> float | None:
    # fLaC, then a metadata block header whose type (low 7 bits) 0 is STREAMINFO, 34 bytes long.
    if len(head) < 42 or head[4] & 0x7F != 0:
        return None
    info = head[8:42]
    sample_rate = (info[10] << 12) | (info[11] << 4) | (info[12] >> 4)
    samples = ((info[13] & 0x0F) << 32) | int.from_bytes(info[14:18], "big")
    return samples / sample_rate if sample_rate and samples else None


def finish_transcript(
    transcript: Transcript, task: Task, *, requested_language: str | None, duration_s: float | None
) -> Transcript:
    """Fill what the upstream left out: the language (asked for, or English for a translation) and the duration."""
    language = transcript.language
    if language is None:
        language = "english" if task is Task.TRANSLATE else requested_language
    duration = transcript.duration_s if transcript.duration_s is not None else duration_s
    if duration is None and transcript.segments:
        duration = transcript.segments[-1].end_s
    if language == transcript.language and duration == transcript.duration_s:
        return transcript
    return Transcript(
        text=transcript.text,
        language=language,
        duration_s=duration,
        segments=transcript.segments,
        words=transcript.words,
        extra=transcript.extra,
    )


def render_transcript(transcript: Transcript, response_format: ResponseFormat, task: Task) -> tuple[bytes, str]:
    """The answer's body and content type in the client's ``response_format``."""
    if response_format is ResponseFormat.TEXT:
        return (transcript.text + "\n").encode(), "text/plain; charset=utf-8"
    if response_format is ResponseFormat.SRT:
        return _render_srt(transcript).encode(), "text/plain; charset=utf-8"
    if response_format is ResponseFormat.VTT:
        return _render_vtt(transcript).encode(), "text/vtt; charset=utf-8"
    body: JSONObject = {
        "text": transcript.text,
        "task": task.value,
        "language": transcript.language,
        "duration": transcript.duration_s,
    }
    if response_format is ResponseFormat.VERBOSE_JSON:
        body["segments"] = [_render_segment(index, s) for index, s in enumerate(transcript.segments)]
        if transcript.words:
            body["words"] = [{"word": w.text, "start": w.start_s, "end": w.end_s} for w in transcript.words]
    for key, value in transcript.extra.items():
        body.setdefault(key, value)
    return orjson.dumps(body), "application/json"


def _render_segment(index: int, segment: Segment) -> JSONObject:
    rendered: JSONObject = {"id": index, "start": segment.start_s, "end": segment.end_s, "text": segment.text}
    rendered.update(segment.extra)
    return rendered


def _cues(transcript: Transcript) -> tuple[Segment, ...]:
    """The subtitle cues: the segments, else the whole text as one cue over the whole duration."""
    if transcript.segments:
        return transcript.segments
    if not transcript.text.strip():
        return ()
    return (Segment(text=transcript.text, start_s=0.0, end_s=transcript.duration_s or 0.0),)


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(text: str) -> str:
    """One line of cue text: a blank line would end the cue early, and ``-->`` would read as a timing line."""
    return " ".join(text.split()).replace("-->", "->")


def _render_srt(transcript: Transcript) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm`` times, a blank line after each."""
    return "".join(
        f"{number}\n{_timestamp(cue.start_s, ',')} --> {_timestamp(cue.end_s, ',')}\n{_cue_text(cue.text)}\n\n"
        for number, cue in enumerate(_cues(transcript), start=1)
    )


def _render_vtt(transcript: Transcript) -> str:
    """WebVTT: the ``WEBVTT`` header, then ``HH:MM:SS.mmm`` cues (https://www.w3.org/TR/webvtt1/)."""
    cues = "".join(
        f"{_timestamp(cue.start_s, '.')} --> {_timestamp(cue.end_s, '.')}\n{_cue_text(cue.text)}\n\n"
        for cue in _cues(transcript)
    )
    return "WEBVTT\n\n" + cues
