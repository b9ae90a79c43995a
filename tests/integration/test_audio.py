"""Transcriptions and translations through the official SDK: OpenAI-compatible, Deepgram and AssemblyAI upstreams.

Real WAV bytes (a 440 Hz tone written with ``wave``) go through the gateway's multipart parser and out to
fakes that parse what they receive with their own reader, so every test also checks that the file
arrived byte for byte. Response formats, fallback and the request log are checked on the same gateway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import openai
import pytest

from tests.audio_fakes import ASSEMBLYAI_KEY, DEEPGRAM_KEY, AudioSetup, running_audio_gateway
from tests.audio_samples import OPENAI_VERBOSE, TRANSCRIPT_ID, UPLOAD_URL, flac_header, tone_wav
from tests.fakes import wait_for_log_row
from tests.gateway_fixtures import UPSTREAM_KEY

WAV = tone_wav()
SRT = "1\n00:00:00,000 --> 00:00:00,520\nA steady tone.\n\n2\n00:00:00,520 --> 00:00:01,000\nNothing else.\n\n"
# The SDK marks ``audio.translations`` deprecated (whisper-1 is its only model); the endpoint is still OpenAI's.
SDK_TRANSLATIONS = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:00.520\nA steady tone.\n\n00:00:00.520 --> 00:00:01.000\nNothing else.\n\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AudioSetup]:
    with running_audio_gateway(tmp_path_factory.mktemp("audio")) as running:
        yield running


@pytest.fixture
def audio(setup: AudioSetup) -> AudioSetup:
    return setup.reset()


@pytest.fixture
def sdk(setup: AudioSetup) -> Iterator[openai.OpenAI]:
    with setup.sdk() as client:
        yield client


# --- OpenAI-compatible ---------------------------------------------------------------------------


def test_transcription_json_carries_text_task_language_and_duration(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    raw = sdk.audio.transcriptions.with_raw_response.create(file=("tone.wav", WAV, "audio/wav"), model="oai/whisper-1")
    result = raw.parse()

    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["x-polyroute-provider"] == "oai"
    assert raw.headers["x-polyroute-model"] == "whisper-1"
    assert raw.headers["x-polyroute-fallback"] == "false"
    assert raw.http_response.json() == {
        "text": "A steady tone. Nothing else.",
        "task": "transcribe",
        "language": "english",
        "duration": 1.0,
        "usage": {"type": "duration", "seconds": 1},
    }
    assert result.text == "A steady tone. Nothing else."
    [seen] = audio.primary.seen
    assert seen.path == "/v1/audio/transcriptions"
    assert seen.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert seen.fields == {"model": "whisper-1", "response_format": "verbose_json"}
    assert (seen.file_name, seen.file_type) == ("audio.wav", "audio/wav")
    assert seen.file_bytes is not None
    assert hashlib.sha256(seen.file_bytes).digest() == hashlib.sha256(WAV).digest()
    assert not audio.backup.seen and not audio.other.seen


def test_transcription_options_are_forwarded(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    sdk.audio.transcriptions.create(
        file=("tone.wav", WAV),
        model="oai/whisper-1",
        language="en",
        prompt="A tone, then silence.",
        temperature=0.2,
        timestamp_granularities=["word", "segment"],
    )

    [seen] = audio.primary.seen
    assert seen.fields == {
        "model": "whisper-1",
        "response_format": "verbose_json",
        "language": "en",
        "prompt": "A tone, then silence.",
        "temperature": "0.2",
        # aiohttp's reader keeps the last of repeated names; both values were sent.
        "timestamp_granularities[]": "segment",
    }


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [("text", "A steady tone. Nothing else.\n"), ("srt", SRT), ("vtt", VTT)],
)
def test_transcription_text_formats(audio: AudioSetup, sdk: openai.OpenAI, response_format: str, expected: str) -> None:
    raw = sdk.audio.transcriptions.with_raw_response.create(
        file=("tone.wav", WAV),
        model="oai/whisper-1",
        response_format=response_format,  # type: ignore[call-overload]
    )

    assert raw.parse() == expected
    content_type = "text/vtt; charset=utf-8" if response_format == "vtt" else "text/plain; charset=utf-8"
    assert raw.headers["content-type"] == content_type
    assert audio.primary.seen[0].fields["response_format"] == "verbose_json"


def test_transcription_verbose_json_keeps_the_upstream_segments(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    result = sdk.audio.transcriptions.create(
        file=("tone.wav", WAV), model="oai/whisper-1", response_format="verbose_json"
    )

    assert result.task == "transcribe"  # type: ignore[attr-defined]
    assert (result.language, result.duration, result.text) == ("english", 1.0, "A steady tone. Nothing else.")
    assert [s.model_dump() for s in result.segments or []] == OPENAI_VERBOSE["segments"]
    assert result.words is None


@SDK_TRANSLATIONS
def test_translation_goes_to_the_translations_endpoint(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    raw = sdk.audio.translations.with_raw_response.create(file=("tone.wav", WAV), model="oai/whisper-1")

    assert raw.http_response.json() == {
        "text": "A steady tone. Nothing else.",
        "task": "translate",
        "language": "english",
        "duration": 1.0,
        "usage": {"type": "duration", "seconds": 1},
    }
    [seen] = audio.primary.seen
    assert seen.path == "/v1/audio/translations"
    assert seen.fields == {"model": "whisper-1", "response_format": "verbose_json"}
    assert seen.file_bytes == WAV


@SDK_TRANSLATIONS
def test_translation_srt(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    assert sdk.audio.translations.create(file=("tone.wav", WAV), model="oai/whisper-1", response_format="srt") == SRT


def test_json_only_model_gets_json_and_the_duration_from_the_wav_header(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    raw = sdk.audio.transcriptions.with_raw_response.create(
        file=("tone.wav", WAV), model="oai/gpt-4o-transcribe", language="en"
    )

    assert raw.http_response.json() == {
        "text": "A steady tone. Nothing else.",
        "task": "transcribe",
        "language": "en",
        "duration": 1.0,
        "usage": {"type": "tokens", "input_tokens": 20, "output_tokens": 8},
    }
    assert audio.primary.seen[0].fields["response_format"] == "json"


def test_json_only_model_subtitles_are_one_cue_over_the_flac_duration(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    flac = flac_header(2.5)
    vtt = sdk.audio.transcriptions.create(
        file=("clip.flac", flac, "audio/flac"), model="oai/gpt-4o-transcribe", response_format="vtt"
    )

    assert vtt == "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nA steady tone. Nothing else.\n\n"
    [seen] = audio.primary.seen
    assert (seen.file_name, seen.file_type, seen.file_bytes) == ("audio.flac", "audio/flac", flac)


def test_transcription_falls_back_to_the_next_provider(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    audio.primary.failures.append(
        (500, {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}})
    )
    raw = sdk.audio.transcriptions.with_raw_response.create(file=("tone.wav", WAV), model="oai/whisper-1")

    assert raw.parse().text == "A steady tone. Nothing else."
    assert raw.headers["x-polyroute-provider"] == "backup"
    assert raw.headers["x-polyroute-model"] == "whisper-1"
    assert raw.headers["x-polyroute-attempts"] == "2"
    assert raw.headers["x-polyroute-fallback"] == "true"
    assert len(audio.primary.seen) == 1
    [seen] = audio.backup.seen
    assert seen.file_bytes == WAV
    assert seen.fields == {"model": "whisper-1", "response_format": "verbose_json"}
    row = wait_for_log_row(audio.gateway.database, raw.headers["x-request-id"])
    assert row["endpoint"] == "/v1/audio/transcriptions"
    assert (row["requested_model"], row["provider"], row["upstream_model"]) == ("oai/whisper-1", "backup", "whisper-1")
    assert (row["status"], row["attempts"], row["fallback"], row["is_stream"]) == (200, 2, 1, 0)
    assert row["prompt_tokens"] is None and row["completion_tokens"] is None


def test_transcription_request_log_row(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    raw = sdk.audio.transcriptions.with_raw_response.create(file=("tone.wav", WAV), model="deepgram/nova-3")

    row = wait_for_log_row(audio.gateway.database, raw.headers["x-request-id"])
    assert (row["requested_model"], row["provider"], row["upstream_model"]) == ("deepgram/nova-3", "deepgram", "nova-3")
    assert (row["status"], row["error_code"], row["client_format"]) == (200, None, "openai")


# --- Deepgram ------------------------------------------------------------------------------------


def test_deepgram_gets_the_raw_audio_and_answers_verbose_json(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    raw = sdk.audio.transcriptions.with_raw_response.create(
        file=("tone.wav", WAV), model="deepgram/nova-3", language="en", response_format="verbose_json"
    )
    result = raw.parse()

    assert raw.headers["x-polyroute-provider"] == "deepgram"
    assert raw.headers["x-polyroute-model"] == "nova-3"
    assert (result.text, result.language, result.duration) == ("Hello there. How are you?", "en", 1.0)
    assert [(s.id, s.start, s.end, s.text) for s in result.segments or []] == [
        (0, 0.08, 0.4, "Hello there."),
        (1, 0.56, 0.96, "How are you?"),
    ]
    assert [(w.word, w.start, w.end) for w in result.words or []] == [
        ("Hello", 0.08, 0.24),
        ("there.", 0.24, 0.4),
        ("How", 0.56, 0.64),
        ("are", 0.64, 0.72),
        ("you?", 0.72, 0.96),
    ]
    [seen] = audio.other.seen
    assert (seen.method, seen.path) == ("POST", "/v1/listen")
    assert seen.query == {"model": "nova-3", "smart_format": "true", "language": "en"}
    assert seen.headers["Authorization"] == f"Token {DEEPGRAM_KEY}"
    assert seen.headers["Content-Type"] == "audio/wav"
    assert seen.body == WAV


def test_deepgram_detects_the_language_when_none_is_given(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    raw = sdk.audio.transcriptions.with_raw_response.create(file=("tone.wav", WAV), model="deepgram/nova-3")

    assert raw.http_response.json() == {
        "text": "Hello there. How are you?",
        "task": "transcribe",
        "language": "en",
        "duration": 1.0,
    }
    assert audio.other.seen[0].query == {"model": "nova-3", "smart_format": "true", "detect_language": "true"}


def test_deepgram_srt_is_built_from_its_words(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    srt = sdk.audio.transcriptions.create(file=("tone.wav", WAV), model="deepgram/nova-3", response_format="srt")

    assert srt == "1\n00:00:00,080 --> 00:00:00,400\nHello there.\n\n2\n00:00:00,560 --> 00:00:00,960\nHow are you?\n\n"


@SDK_TRANSLATIONS
def test_deepgram_cannot_translate(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.audio.translations.create(file=("tone.wav", WAV), model="deepgram/nova-3")

    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == "model"
    assert error["code"] == "unsupported_feature"
    assert "deepgram/nova-3" in error["message"] and "cannot translate" in error["message"]
    assert audio.upstream_requests == 0


def test_deepgram_refuses_a_prompt_rather_than_dropping_it(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.audio.transcriptions.create(file=("tone.wav", WAV), model="deepgram/nova-3", prompt="names: Ada")

    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "prompt"
    assert "takes no prompt" in caught.value.body["message"]
    assert audio.upstream_requests == 0


def test_pinned_provider_route(audio: AudioSetup) -> None:
    with audio.sdk() as client:
        pinned = client.with_options(base_url=audio.gateway.url + "/v1/providers/deepgram")
        result = pinned.audio.transcriptions.create(file=("tone.wav", WAV), model="nova-3")

    assert result.text == "Hello there. How are you?"
    assert audio.other.seen[0].path == "/v1/listen"


# --- AssemblyAI ----------------------------------------------------------------------------------


def test_assemblyai_uploads_creates_a_transcript_and_polls_until_completed(
    audio: AudioSetup, sdk: openai.OpenAI
) -> None:
    raw = sdk.audio.transcriptions.with_raw_response.create(file=("tone.wav", WAV), model="assemblyai/best")

    assert raw.headers["x-polyroute-provider"] == "assemblyai"
    assert raw.headers["x-polyroute-model"] == "best"
    assert raw.http_response.json() == {
        "text": "Good morning. Welcome back.",
        "task": "transcribe",
        "language": "en_us",
        "duration": 1.0,
    }
    upload, create, *polls = audio.other.seen
    assert (upload.method, upload.path, upload.body) == ("POST", "/v2/upload", WAV)
    assert upload.headers["Content-Type"] == "application/octet-stream"
    assert upload.headers["Authorization"] == ASSEMBLYAI_KEY
    assert (create.method, create.path) == ("POST", "/v2/transcript")
    assert create.json() == {"audio_url": UPLOAD_URL, "speech_model": "best", "language_detection": True}
    assert create.headers["Authorization"] == ASSEMBLYAI_KEY
    # The job is created queued; the polls see queued, processing, then completed.
    assert [(p.method, p.path) for p in polls] == [("GET", f"/v2/transcript/{TRANSCRIPT_ID}")] * 3
    assert all(p.headers["Authorization"] == ASSEMBLYAI_KEY for p in polls)


def test_assemblyai_language_and_subtitles(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    audio.other.statuses.clear()
    audio.other.statuses.append("completed")
    srt = sdk.audio.transcriptions.create(
        file=("tone.wav", WAV), model="assemblyai/best", language="en", response_format="srt"
    )

    assert (
        srt == "1\n00:00:00,120 --> 00:00:00,650\nGood morning.\n\n2\n00:00:00,700 --> 00:00:00,990\nWelcome back.\n\n"
    )
    assert audio.other.seen[1].json() == {"audio_url": UPLOAD_URL, "speech_model": "best", "language_code": "en"}


def test_assemblyai_error_status_is_an_upstream_error(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    audio.other.statuses = type(audio.other.statuses)(["processing", "error"])
    audio.other.assemblyai_error = "Transcoding failed. File does not appear to contain audio."
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.audio.transcriptions.create(file=("tone.wav", WAV), model="assemblyai/best")

    assert caught.value.status_code == 502
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "transcription_failed"
    assert caught.value.body["message"] == (
        "assemblyai could not transcribe the audio: Transcoding failed. File does not appear to contain audio."
    )
    assert [s.path for s in audio.other.seen][:2] == ["/v2/upload", "/v2/transcript"]
    assert len(audio.other.seen) == 4
