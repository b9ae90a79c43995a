"""What each transcription API is sent, and its answers read into a ``Transcript``; the speech request."""

from __future__ import annotations

import json
from typing import Any

import pytest

from polyroute.errors import InvalidRequestError, UpstreamProtocolError
from polyroute.wire.audio import Segment, Task, Transcript, TranscriptionRequest, Word
from polyroute.wire.audio_providers import (
    AssemblyJob,
    assemblyai_speech_model,
    deepgram_params,
    openai_fields,
    openai_path,
    openai_response_format,
    parse_assemblyai_job,
    parse_assemblyai_upload,
    parse_deepgram_answer,
    parse_openai_answer,
    render_assemblyai_request,
    render_form_head,
    render_form_tail,
    segments_from_words,
)
from polyroute.wire.audio_speech import parse_speech_request, render_speech_request, speech_media_type
from tests.audio_samples import ASSEMBLYAI_COMPLETED, DEEPGRAM_ANSWER, OPENAI_VERBOSE

P = "prov"


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


# --- OpenAI-compatible ---------------------------------------------------------------------------


def test_openai_paths_and_formats() -> None:
    assert openai_path(Task.TRANSCRIBE) == "/audio/transcriptions"
    assert openai_path(Task.TRANSLATE) == "/audio/translations"
    assert openai_response_format("whisper-1") == "verbose_json"
    assert openai_response_format("whisper-large-v3-turbo") == "verbose_json"
    assert openai_response_format("gpt-4o-mini-transcribe") == "json"
    assert openai_response_format("GPT-4o-transcribe") == "json"


def test_openai_fields_use_the_upstream_model() -> None:
    request = TranscriptionRequest(
        task=Task.TRANSCRIBE,
        model="fast-stt",
        language="fr",
        prompt="Bonjour",
        temperature=0.0,
        extra=(("include[]", "logprobs"),),
    )

    assert openai_fields(request, "whisper-1") == [
        ("model", "whisper-1"),
        ("response_format", "verbose_json"),
        ("language", "fr"),
        ("prompt", "Bonjour"),
        ("temperature", "0.0"),
        ("include[]", "logprobs"),
    ]
    assert openai_fields(TranscriptionRequest(task=Task.TRANSLATE, model="m"), "gpt-4o-transcribe") == [
        ("model", "gpt-4o-transcribe"),
        ("response_format", "json"),
    ]


def test_form_head_and_tail_make_a_valid_body() -> None:
    head = render_form_head(
        [("model", "whisper-1"), ('odd"\r\nname', "v")], filename="audio.wav", media_type="audio/wav", boundary="BB"
    )

    assert head + b"DATA" + render_form_tail("BB") == (
        b'--BB\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        b'--BB\r\nContent-Disposition: form-data; name="odd%22%0D%0Aname"\r\n\r\nv\r\n'
        b'--BB\r\nContent-Disposition: form-data; name="file"; filename="audio.wav"\r\nContent-Type: audio/wav\r\n\r\n'
        b"DATA\r\n--BB--\r\n"
    )


def test_parse_openai_verbose_answer() -> None:
    transcript = parse_openai_answer(dumps(OPENAI_VERBOSE), "application/json", provider=P)

    assert transcript.text == "A steady tone. Nothing else."
    assert (transcript.language, transcript.duration_s) == ("english", 1.0)
    assert transcript.segments[1] == Segment(
        text=" Nothing else.",
        start_s=0.52,
        end_s=1.0,
        extra={k: v for k, v in OPENAI_VERBOSE["segments"][1].items() if k not in ("start", "end", "text")},
    )
    assert transcript.extra == {"usage": {"type": "duration", "seconds": 1}}
    assert transcript.words == ()


def test_parse_openai_json_answer_takes_the_duration_from_usage() -> None:
    body = dumps(
        {"text": "hi", "usage": {"type": "duration", "seconds": 3}, "words": [{"word": "hi", "start": 0, "end": 1}]}
    )
    transcript = parse_openai_answer(body, "application/json", provider=P)

    assert transcript == Transcript(
        text="hi",
        duration_s=3.0,
        words=(Word(text="hi", start_s=0.0, end_s=1.0),),
        extra={"usage": {"type": "duration", "seconds": 3}},
    )


def test_parse_openai_answer_tolerates_plain_text_and_unlabelled_json() -> None:
    assert parse_openai_answer(b" hello\n", "text/plain", provider=P) == Transcript(text="hello")
    assert parse_openai_answer(b'{"text": "x", "language": ""}', "text/plain", provider=P) == Transcript(text="x")


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (b"[1]", "not a JSON object"),
        (b"{not json", "not a JSON object"),
        (dumps({"segments": []}), "without its text"),
        (dumps({"text": "x", "segments": ["bad"]}), "malformed transcription segment"),
        (dumps({"text": "x", "segments": [{"text": "a", "start": 0}]}), "without its timing"),
        (dumps({"text": "x", "words": [{"word": "a", "start": 0, "end": True}]}), "malformed word timing"),
        (dumps({"text": "x", "words": [7]}), "malformed word timing"),
    ],
)
def test_parse_openai_answer_refuses_malformed_answers(body: bytes, phrase: str) -> None:
    with pytest.raises(UpstreamProtocolError, match=phrase) as caught:
        parse_openai_answer(body, "application/json", provider=P)

    assert caught.value.provider == P


# --- Deepgram ------------------------------------------------------------------------------------


def test_deepgram_params() -> None:
    assert deepgram_params("nova-3", "de") == {"model": "nova-3", "smart_format": "true", "language": "de"}
    assert deepgram_params("nova-3", None) == {"model": "nova-3", "smart_format": "true", "detect_language": "true"}


def test_parse_deepgram_answer() -> None:
    transcript = parse_deepgram_answer(dumps(DEEPGRAM_ANSWER), provider=P)

    assert (transcript.text, transcript.language, transcript.duration_s) == ("Hello there. How are you?", "en", 1.0)
    assert [s.text for s in transcript.segments] == ["Hello there.", "How are you?"]
    assert transcript.words[0] == Word(text="Hello", start_s=0.08, end_s=0.24)


def test_parse_deepgram_answer_without_smart_format_metadata_or_words() -> None:
    body = dumps(
        {
            "results": {
                "channels": [
                    {"alternatives": [{"transcript": "", "words": [{"word": "hi", "start": 0.0, "end": 0.5}]}]}
                ]
            }
        }
    )
    transcript = parse_deepgram_answer(body, provider=P)

    assert transcript == Transcript(
        text="",
        words=(Word(text="hi", start_s=0.0, end_s=0.5),),
        segments=(Segment(text="hi", start_s=0.0, end_s=0.5),),
    )


@pytest.mark.parametrize(
    "body",
    [{}, {"results": {"channels": []}}, {"results": {"channels": [{"alternatives": [{}]}]}}, {"results": 3}],
)
def test_parse_deepgram_answer_without_a_transcript(body: dict[str, Any]) -> None:
    with pytest.raises(UpstreamProtocolError, match="without a transcript"):
        parse_deepgram_answer(dumps(body), provider=P)


# --- AssemblyAI ----------------------------------------------------------------------------------


def test_assemblyai_request() -> None:
    assert assemblyai_speech_model("assemblyai/best") == "best"
    assert assemblyai_speech_model("nano") == "nano"
    assert json.loads(render_assemblyai_request("https://cdn/x", "assemblyai/best", None)) == {
        "audio_url": "https://cdn/x",
        "speech_model": "best",
        "language_detection": True,
    }
    assert json.loads(render_assemblyai_request("https://cdn/x", "universal", "es")) == {
        "audio_url": "https://cdn/x",
        "speech_model": "universal",
        "language_code": "es",
    }


def test_parse_assemblyai_upload() -> None:
    assert parse_assemblyai_upload(dumps({"upload_url": "https://cdn/u"}), provider=P) == "https://cdn/u"
    with pytest.raises(UpstreamProtocolError, match="without upload_url"):
        parse_assemblyai_upload(dumps({"upload_url": ""}), provider=P)


def test_parse_assemblyai_jobs() -> None:
    queued = parse_assemblyai_job(dumps({"id": "abc-1", "status": "queued"}), provider=P)
    failed = parse_assemblyai_job(dumps({"id": "abc-1", "status": "error", "error": "no audio"}), provider=P)
    unexplained = parse_assemblyai_job(dumps({"id": "abc-1", "status": "error"}), provider=P)
    done = parse_assemblyai_job(dumps(ASSEMBLYAI_COMPLETED), provider=P)

    assert queued == AssemblyJob(id="abc-1", status="queued") and queued.is_pending
    assert failed == AssemblyJob(id="abc-1", status="error", error="no audio") and not failed.is_pending
    assert unexplained.error == "unknown error"
    assert done.transcript is not None and not done.is_pending
    assert (done.transcript.text, done.transcript.language, done.transcript.duration_s) == (
        "Good morning. Welcome back.",
        "en_us",
        1.0,
    )
    assert done.transcript.segments == (
        Segment(text="Good morning.", start_s=0.12, end_s=0.65),
        Segment(text="Welcome back.", start_s=0.7, end_s=0.99),
    )


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"status": "queued"}, "without a usable id"),
        ({"id": "../../etc", "status": "queued"}, "without a usable id"),
        ({"id": "abc", "status": "terminated"}, "unknown transcript status"),
        ({"id": "abc", "status": "completed"}, "completed transcript without its text"),
    ],
)
def test_parse_assemblyai_job_refuses(body: dict[str, Any], phrase: str) -> None:
    with pytest.raises(UpstreamProtocolError, match=phrase):
        parse_assemblyai_job(dumps(body), provider=P)


# --- segments ------------------------------------------------------------------------------------


def test_segments_split_on_sentence_ends_pauses_and_length() -> None:
    words = [Word(text="a", start_s=0.0, end_s=0.1), Word(text="b.", start_s=1.2, end_s=1.3)]
    words += [Word(text=f"w{i}", start_s=2.0 + i * 0.1, end_s=2.05 + i * 0.1) for i in range(45)]

    segments = segments_from_words(words)

    assert [(s.text, s.start_s) for s in segments[:2]] == [("a", 0.0), ("b.", 1.2)]
    assert len(segments[2].text.split()) == 40
    assert segments[3].text == "w40 w41 w42 w43 w44"
    assert segments_from_words([]) == ()


# --- speech --------------------------------------------------------------------------------------


def test_speech_request_round_trip() -> None:
    body = {"model": " tts-1 ", "input": "Hi", "voice": {"id": "voice_123"}, "speed": 2, "stream_format": "audio"}
    request = parse_speech_request(body)  # type: ignore[arg-type]

    assert (request.model, request.response_format) == ("tts-1", "mp3")
    assert json.loads(render_speech_request(request, "gpt-4o-mini-tts")) == {**body, "model": "gpt-4o-mini-tts"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": " ", "input": "Hi", "voice": "a"}, "model"),
        ({"model": "m", "voice": "a"}, "input"),
        ({"model": "m", "input": "", "voice": "a"}, "input"),
        ({"model": "m", "input": "Hi"}, "voice"),
        ({"model": "m", "input": "Hi", "voice": "a", "response_format": "ogg"}, "response_format"),
        ({"model": "m", "input": "Hi", "voice": ""}, "voice"),
        ({"model": "m", "input": "Hi", "voice": {"name": "x"}}, "voice"),
        ({"model": "m", "input": "Hi", "voice": "a", "speed": 0.1}, "speed"),
        ({"model": "m", "input": "Hi", "voice": "a", "instructions": 5}, "instructions"),
        ({"model": "m", "input": "Hi", "voice": "a", "stream_format": "ws"}, "stream_format"),
    ],
)
def test_speech_request_refuses(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_speech_request(body)

    assert caught.value.param == param


def test_speech_media_type() -> None:
    assert speech_media_type("audio/ogg", "opus") == "audio/ogg"
    assert speech_media_type("application/octet-stream", "wav") == "audio/wav"
    assert speech_media_type("", "pcm") == "audio/pcm"
