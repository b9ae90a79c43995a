"""Text to speech through the official SDK: the upstream's audio relayed as it arrives, fallback, bad requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.audio_fakes import SPEECH_CHUNKS, AudioSetup, running_audio_gateway
from tests.fakes import wait_for_log_row
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY

AUDIO = b"".join(SPEECH_CHUNKS)
SERVER_ERROR = {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AudioSetup]:
    with running_audio_gateway(tmp_path_factory.mktemp("speech")) as running:
        yield running


@pytest.fixture
def audio(setup: AudioSetup) -> AudioSetup:
    return setup.reset()


@pytest.fixture
def sdk(setup: AudioSetup) -> Iterator[openai.OpenAI]:
    with setup.sdk() as client:
        yield client


def test_speech_is_relayed_before_the_upstream_has_finished(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    audio.primary.speech_gate = gate = threading.Event()
    with sdk.audio.speech.with_streaming_response.create(
        model="oai/tts-1", input="Hello there", voice="alloy", response_format="mp3", speed=1.25
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        assert response.headers["x-polyroute-provider"] == "oai"
        assert response.headers["x-polyroute-model"] == "tts-1"
        assert "content-length" not in response.headers
        pieces = response.iter_bytes()
        first = next(pieces)
        # The upstream holds the rest back until now: the first piece came through on its own.
        gate.set()
        rest = b"".join(pieces)

    assert first == SPEECH_CHUNKS[0]
    assert first + rest == AUDIO
    assert audio.primary.gate_was_open
    [seen] = audio.primary.seen
    assert (seen.method, seen.path) == ("POST", "/v1/audio/speech")
    assert seen.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json() == {
        "model": "tts-1",
        "input": "Hello there",
        "voice": "alloy",
        "response_format": "mp3",
        "speed": 1.25,
    }


def test_speech_read_whole_and_logged(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    raw = sdk.audio.speech.with_raw_response.create(
        model="oai/tts-1", input="Hi", voice="nova", instructions="Speak slowly."
    )

    assert raw.content == AUDIO
    assert audio.primary.seen[0].json() == {
        "model": "tts-1",
        "input": "Hi",
        "voice": "nova",
        "instructions": "Speak slowly.",
    }
    row = wait_for_log_row(audio.gateway.database, raw.headers["x-request-id"])
    assert row["endpoint"] == "/v1/audio/speech"
    assert (row["requested_model"], row["provider"], row["upstream_model"]) == ("oai/tts-1", "oai", "tts-1")
    assert (row["status"], row["is_stream"], row["error_code"]) == (200, 1, None)
    assert row["ttft_ms"] is not None
    assert row["prompt_tokens"] is None


def test_speech_falls_back_to_the_next_provider(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    audio.primary.failures.append((503, SERVER_ERROR))
    raw = sdk.audio.speech.with_raw_response.create(model="oai/tts-1", input="Hi", voice="alloy")

    assert raw.content == AUDIO
    assert raw.headers["x-polyroute-provider"] == "backup"
    assert raw.headers["x-polyroute-fallback"] == "true"
    assert raw.headers["x-polyroute-attempts"] == "2"
    assert len(audio.primary.seen) == 1
    assert audio.backup.seen[0].json() == {"model": "tts-1", "input": "Hi", "voice": "alloy"}


def test_speech_cut_off_mid_answer_is_not_a_complete_file(audio: AudioSetup) -> None:
    audio.primary.speech_cut = True
    audio.primary.speech_gate = gate = threading.Event()
    body = {"model": "oai/tts-1", "input": "Hi", "voice": "alloy"}
    received = b""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with (
        httpx.Client(base_url=audio.gateway.url, timeout=15) as http,
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", "/v1/audio/speech", json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        for piece in response.iter_bytes():
            received += piece
            gate.set()  # the gateway has relayed the first piece: now the upstream breaks off

    assert received == SPEECH_CHUNKS[0]
    assert not audio.backup.seen  # the answer had begun: no second attempt
    row = wait_for_log_row(audio.gateway.database, request_id)
    assert (row["status"], row["provider"]) == (502, "oai")
    assert row["error_code"] is not None


def test_speech_empty_answer_falls_back(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    audio.primary.speech_empty = True
    raw = sdk.audio.speech.with_raw_response.create(model="oai/tts-1", input="Hi", voice="alloy")

    assert raw.content == AUDIO
    assert raw.headers["x-polyroute-provider"] == "backup"
    assert len(audio.primary.seen) == len(audio.backup.seen) == 1


def test_client_leaving_mid_speech_stops_the_upstream(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    audio.primary.speech_gate = gate = threading.Event()
    with sdk.audio.speech.with_streaming_response.create(model="oai/tts-1", input="Hi", voice="alloy") as response:
        request_id = response.headers["x-request-id"]
        assert next(response.iter_bytes()) == SPEECH_CHUNKS[0]
    # The client has closed its connection before the upstream finished.
    row = wait_for_log_row(audio.gateway.database, request_id)
    gate.set()

    assert (row["status"], row["error_code"]) == (499, "client_disconnected")
    assert not audio.primary.speech_finished.wait(0.5)


@pytest.mark.parametrize(
    ("body", "param", "phrase"),
    [
        ({"model": "oai/tts-1", "input": "Hi"}, "voice", "voice: is required"),
        ({"model": "oai/tts-1", "input": "", "voice": "alloy"}, "input", "input: must not be empty"),
        ({"model": "oai/tts-1", "input": "Hi", "voice": "alloy", "speed": 9}, "speed", "from 0.25 to 4.0"),
        ({"model": "oai/tts-1", "input": "Hi", "voice": "alloy", "response_format": "ogg"}, "response_format", "ogg"),
        ({"input": "Hi", "voice": "alloy"}, "model", "model: is required"),
    ],
    ids=["no-voice", "empty-input", "speed", "format", "no-model"],
)
def test_speech_bad_requests(
    audio: AudioSetup, sdk: openai.OpenAI, body: dict[str, object], param: str, phrase: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.post("/audio/speech", body=body, cast_to=httpx.Response)

    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == param
    assert phrase in caught.value.body["message"]
    assert audio.upstream_requests == 0


def test_speech_needs_an_openai_compatible_provider(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.audio.speech.create(model="deepgram/nova-3", input="Hi", voice="alloy")

    assert isinstance(caught.value.body, dict)
    assert "deepgram/nova-3" in caught.value.body["message"]
    assert "OpenAI-compatible /audio/speech" in caught.value.body["message"]
    assert audio.upstream_requests == 0


def test_speech_with_a_text_model_names_the_chat_endpoint(audio: AudioSetup, sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.audio.speech.create(model="oai/gpt-4o", input="Hi", voice="alloy")

    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "wrong_endpoint"
    assert "POST /v1/chat/completions" in caught.value.body["message"]
    assert audio.upstream_requests == 0
