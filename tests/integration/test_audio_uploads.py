"""Uploads: the size limit (413 before any upstream call), corrupt or unsupported files (400), malformed
forms, large files spooled to disk arriving intact, every accepted container, and AssemblyAI's poll timeout.

The gateway here runs with a 2 MiB upload limit and a 0.5 s transcript timeout.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.audio_fakes import AudioSetup, running_audio_gateway
from tests.audio_samples import flac_header, tone_wav
from tests.gateway_fixtures import ADMIN_KEY

LIMIT = 2 * 1024 * 1024
WAV = tone_wav()
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
NOT_AUDIO = "file: not a recognised audio format (expected mp3, wav, m4a, flac, ogg or webm)"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AudioSetup]:
    with running_audio_gateway(tmp_path_factory.mktemp("uploads"), max_audio_bytes=LIMIT, poll_timeout_s=0.5) as up:
        yield up


@pytest.fixture
def audio(setup: AudioSetup) -> AudioSetup:
    return setup.reset()


@pytest.fixture
def http(setup: AudioSetup) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=setup.gateway.url, headers=AUTH, timeout=15) as client:
        yield client


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code", "param"}
    return body["error"]  # type: ignore[no-any-return]


def transcribe(http: httpx.Client, file: tuple[str, bytes, str] | None, **fields: str) -> httpx.Response:
    return http.post(
        "/v1/audio/transcriptions",
        data={"model": "oai/whisper-1", **fields},
        files={"file": file} if file is not None else {"nothing": (None, b"")},
    )


# --- size ----------------------------------------------------------------------------------------


def test_upload_over_the_limit_is_refused_before_any_upstream_call(audio: AudioSetup, http: httpx.Client) -> None:
    big = WAV + bytes(LIMIT)
    response = transcribe(http, ("big.wav", big, "audio/wav"))
    follow_up = transcribe(http, ("tone.wav", WAV, "audio/wav"))

    error = error_of(response, 413)
    assert error["code"] == "payload_too_large"
    assert error["message"] == f"file: larger than the limit of {LIMIT} bytes (2 MiB)"
    assert follow_up.status_code == 200
    assert len(audio.primary.seen) == 1


def test_upload_over_the_limit_without_content_length_is_refused_while_reading(
    audio: AudioSetup, http: httpx.Client
) -> None:
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\noai/whisper-1\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:
        yield head + WAV
        for _ in range(LIMIT // 65536 + 2):
            yield bytes(65536)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = http.post(
        "/v1/audio/transcriptions",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )

    assert response.request.headers["transfer-encoding"] == "chunked"
    assert error_of(response, 413)["message"] == f"file: larger than the limit of {LIMIT} bytes (2 MiB)"
    assert audio.upstream_requests == 0


def test_sdk_sees_413_as_an_api_error(audio: AudioSetup) -> None:
    with audio.sdk() as sdk, pytest.raises(openai.APIStatusError) as caught:
        sdk.audio.transcriptions.create(file=("big.wav", WAV + bytes(LIMIT)), model="oai/whisper-1")

    assert caught.value.status_code == 413
    assert audio.upstream_requests == 0


def test_large_upload_is_spooled_and_arrives_intact_at_each_api(audio: AudioSetup, http: httpx.Client) -> None:
    big = tone_wav(50)  # 1.6 MB: past the in-memory spool, under the limit
    assert len(big) > 1024 * 1024
    openai_answer = transcribe(http, ("long.wav", big, "audio/wav"))
    deepgram_answer = transcribe(http, ("long.wav", big, "audio/wav"), model="deepgram/nova-3")

    assert openai_answer.status_code == 200 and deepgram_answer.status_code == 200
    digest = hashlib.sha256(big).hexdigest()
    assert hashlib.sha256(audio.primary.seen[0].file_bytes or b"").hexdigest() == digest
    assert hashlib.sha256(audio.other.seen[0].body).hexdigest() == digest
    assert openai_answer.json()["duration"] == 1.0  # what the upstream said, not the header's 50 s


# --- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "message"),
    [
        (("tone.wav", os.urandom(4096), "audio/wav"), NOT_AUDIO),
        (("tone.wav", WAV[:8], "audio/wav"), NOT_AUDIO),
        (("clip", b"<html>not audio</html>", "application/octet-stream"), NOT_AUDIO),
        (
            ("notes.txt", WAV, "text/plain"),
            "file: .txt files are not accepted (expected mp3, wav, m4a, flac, ogg or webm)",
        ),
        (("clip", WAV, "audio/x-aiff"), "file: audio/x-aiff is not an accepted audio type"),
        (("tone.mp3", WAV, "audio/mpeg"), "file: named or typed as mp3 but its content is wav"),
        (("tone.wav", b"", "audio/wav"), "file: the file is empty"),
    ],
    ids=["random-bytes", "truncated-header", "html", "txt", "aiff-type", "mismatch", "empty"],
)
def test_bad_files_are_400_naming_the_problem(
    audio: AudioSetup, http: httpx.Client, file: tuple[str, bytes, str], message: str
) -> None:
    error = error_of(transcribe(http, file), 400)

    assert error["param"] == "file"
    assert error["message"].startswith(message)
    assert audio.upstream_requests == 0


ID3_MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10) + b"\xff\xfb\x90\x64" + bytes(400)
FRAME_MP3 = b"\xff\xfb\x90\x64" + bytes(400)
M4A = b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isomiso2" + bytes(400)
OGG = b"OggS\x00\x02" + bytes(20) + b"\x01\x13OpusHead" + bytes(400)
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm" + bytes(400)


@pytest.mark.parametrize(
    ("name", "data", "sent_as"),
    [
        ("a.mp3", ID3_MP3, ("audio.mp3", "audio/mpeg")),
        ("a.mp3", FRAME_MP3, ("audio.mp3", "audio/mpeg")),
        ("a.m4a", M4A, ("audio.m4a", "audio/mp4")),
        ("a.mp4", M4A, ("audio.m4a", "audio/mp4")),
        ("a.ogg", OGG, ("audio.ogg", "audio/ogg")),
        ("a.opus", OGG, ("audio.ogg", "audio/ogg")),
        ("a.webm", WEBM, ("audio.webm", "audio/webm")),
        ("a.flac", flac_header(1), ("audio.flac", "audio/flac")),
        ("recording", WAV, ("audio.wav", "audio/wav")),
    ],
    ids=["mp3-id3", "mp3-frame", "m4a", "mp4", "ogg", "opus", "webm", "flac", "no-extension"],
)
def test_accepted_containers_are_forwarded_with_their_type(
    audio: AudioSetup, http: httpx.Client, name: str, data: bytes, sent_as: tuple[str, str]
) -> None:
    response = transcribe(http, (name, data, "application/octet-stream"))

    assert response.status_code == 200, response.text
    [seen] = audio.primary.seen
    assert (seen.file_name, seen.file_type) == sent_as
    assert seen.file_bytes == data


# --- forms ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param", "phrase"),
    [
        ({"model": ""}, "model", "model: is required"),
        ({"response_format": "diarized_json"}, "response_format", "is not one of json, text, srt, vtt, verbose_json"),
        ({"temperature": "3"}, "temperature", "from 0 to 1"),
        ({"temperature": "warm"}, "temperature", "from 0 to 1"),
        ({"stream": "true"}, "stream", "streamed transcription is not offered"),
    ],
    ids=["no-model", "format", "temperature-range", "temperature-text", "stream"],
)
def test_bad_fields_are_400_naming_the_field(
    audio: AudioSetup, http: httpx.Client, fields: dict[str, str], param: str, phrase: str
) -> None:
    error = error_of(transcribe(http, ("tone.wav", WAV, "audio/wav"), **fields), 400)

    assert error["param"] == param
    assert phrase in error["message"]
    assert audio.upstream_requests == 0


def test_missing_file_is_400(audio: AudioSetup, http: httpx.Client) -> None:
    error = error_of(transcribe(http, None), 400)

    assert error["param"] == "file"
    assert error["message"].startswith("file: is required")


def test_translation_takes_no_language(audio: AudioSetup, http: httpx.Client) -> None:
    response = http.post(
        "/v1/audio/translations",
        data={"model": "oai/whisper-1", "language": "de"},
        files={"file": ("tone.wav", WAV, "audio/wav")},
    )

    assert error_of(response, 400)["param"] == "language"
    assert audio.upstream_requests == 0


def test_json_body_is_not_a_form(audio: AudioSetup, http: httpx.Client) -> None:
    response = http.post("/v1/audio/transcriptions", json={"model": "oai/whisper-1", "file": "tone.wav"})

    assert error_of(response, 400)["message"] == "expected a multipart/form-data body, not application/json"


def test_form_without_its_closing_boundary_is_400(audio: AudioSetup, http: httpx.Client) -> None:
    body = b'--xyz\r\nContent-Disposition: form-data; name="model"\r\n\r\noai/whisper-1\r\n--xyz\r\n'
    response = http.post(
        "/v1/audio/transcriptions", content=body, headers={"Content-Type": "multipart/form-data; boundary=xyz"}
    )

    assert "ended before the closing boundary" in error_of(response, 400)["message"]


def test_two_files_are_400(audio: AudioSetup, http: httpx.Client) -> None:
    response = http.post(
        "/v1/audio/transcriptions",
        data={"model": "oai/whisper-1"},
        files=[("file", ("a.wav", WAV, "audio/wav")), ("file", ("b.wav", WAV, "audio/wav"))],
    )

    assert error_of(response, 400)["message"] == "file: only one file may be sent"


def test_unknown_model_is_404_and_a_text_model_names_the_chat_endpoint(audio: AudioSetup, http: httpx.Client) -> None:
    unknown = transcribe(http, ("tone.wav", WAV, "audio/wav"), model="oai/no-such-model")
    text_model = transcribe(http, ("tone.wav", WAV, "audio/wav"), model="oai/gpt-4o")

    assert error_of(unknown, 404)["param"] in (None, "model")
    wrong = error_of(text_model, 400)
    assert wrong["code"] == "wrong_endpoint"
    assert "POST /v1/chat/completions" in wrong["message"]
    assert audio.upstream_requests == 0


def test_provider_whose_media_api_cannot_transcribe(audio: AudioSetup, http: httpx.Client) -> None:
    error = error_of(transcribe(http, ("tone.wav", WAV, "audio/wav"), model="embedder/speechless"), 400)

    assert (
        error["message"]
        == "model: embedder/speechless is served through the cohere media API, which has no transcription"
    )
    assert audio.upstream_requests == 0


# --- AssemblyAI timeout --------------------------------------------------------------------------


def test_assemblyai_that_never_finishes_times_out(audio: AudioSetup, http: httpx.Client) -> None:
    audio.other.statuses.clear()
    audio.other.statuses.append("processing")
    response = transcribe(http, ("tone.wav", WAV, "audio/wav"), model="assemblyai/best")

    error = error_of(response, 504)
    assert error["message"] == "assemblyai did not finish the transcript within 0.5 s"
    polls = [s for s in audio.other.seen if s.method == "GET"]
    assert 1 <= len(polls) <= 3
