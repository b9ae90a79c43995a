"""The client side of the audio API: accepted files, form fields, durations from headers, the five response formats."""

from __future__ import annotations

import json

import pytest

from polyroute.errors import InvalidRequestError
from polyroute.wire.audio import (
    AudioFormat,
    ResponseFormat,
    Segment,
    Task,
    Transcript,
    TranscriptionRequest,
    Word,
    check_audio,
    declared_format,
    finish_transcript,
    header_duration_s,
    parse_transcription_fields,
    render_transcript,
    sniff_format,
)
from tests.audio_samples import flac_header, tone_wav

WAV = tone_wav()


# --- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (WAV[:64], AudioFormat.WAV),
        (b"fLaC\x00\x00\x00\x22", AudioFormat.FLAC),
        (b"OggS\x00\x02", AudioFormat.OGG),
        (b"\x1a\x45\xdf\xa3\x9f", AudioFormat.WEBM),
        (b"\x00\x00\x00\x20ftypM4A ", AudioFormat.M4A),
        (b"ID3\x04\x00", AudioFormat.MP3),
        (b"\xff\xfb\x90\x64", AudioFormat.MP3),  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz
        (b"\xff\xf3\x48\xc4", AudioFormat.MP3),  # MPEG-2 layer III
        (b"\xff\xf1\x50\x80", None),  # AAC ADTS: layer bits 00
        (b"\xff\xfb\xf0\x64", None),  # bitrate index 15 is invalid
        (b"\xff\xfb\x9c\x64", None),  # sample-rate index 3 is reserved
        (b"\xff\xeb\x90\x64", None),  # version 01 is reserved
        (b"\xff\xfb", None),
        (b"RIFF\x00\x00\x00\x00AVI ", None),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_sniff_format_reads_magic_bytes(head: bytes, expected: AudioFormat | None) -> None:
    assert sniff_format(head) is expected


@pytest.mark.parametrize(
    ("filename", "content_type", "expected"),
    [
        ("a.WAV", None, AudioFormat.WAV),
        ("x.y.mpga", "text/plain", AudioFormat.MP3),
        ("a.opus", None, AudioFormat.OGG),
        (None, "audio/x-m4a", AudioFormat.M4A),
        ("noext", "video/webm", AudioFormat.WEBM),
        ("trailing.", "audio/flac", AudioFormat.FLAC),
        (None, "application/octet-stream", None),
        (None, None, None),
    ],
)
def test_declared_format_uses_the_extension_then_the_type(
    filename: str | None, content_type: str | None, expected: AudioFormat | None
) -> None:
    assert declared_format(filename, content_type) is expected


@pytest.mark.parametrize(
    ("filename", "content_type", "phrase"),
    [
        ("song.aiff", None, "file: .aiff files are not accepted (expected mp3, wav, m4a, flac, ogg or webm)"),
        (None, "audio/aiff", "file: audio/aiff is not an accepted audio type"),
    ],
)
def test_declared_format_refuses_other_types(filename: str | None, content_type: str | None, phrase: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        declared_format(filename, content_type)

    assert caught.value.message.startswith(phrase)
    assert caught.value.param == "file"


def test_check_audio_accepts_matching_content() -> None:
    assert check_audio("a.wav", "audio/wav", WAV[:64], len(WAV)) is AudioFormat.WAV
    assert check_audio(None, None, WAV[:64], len(WAV)) is AudioFormat.WAV


@pytest.mark.parametrize(
    ("filename", "head", "size", "code", "message"),
    [
        ("a.wav", b"", 0, "invalid_request", "file: the file is empty"),
        ("a.wav", b"\x00" * 64, 64, "invalid_audio", "file: not a recognised audio format"),
        ("a.flac", WAV[:64], 64, "invalid_audio", "file: named or typed as flac but its content is wav"),
    ],
)
def test_check_audio_refuses(filename: str, head: bytes, size: int, code: str, message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_audio(filename, None, head, size)

    assert (caught.value.code, caught.value.param) == (code, "file")
    assert caught.value.message.startswith(message)


def test_header_duration_of_wav_and_flac() -> None:
    assert header_duration_s(AudioFormat.WAV, WAV[:4096], len(WAV)) == 1.0
    assert header_duration_s(AudioFormat.WAV, tone_wav(3)[:4096], len(tone_wav(3))) == 3.0
    assert header_duration_s(AudioFormat.FLAC, flac_header(2.5), 1000) == 2.5
    assert header_duration_s(AudioFormat.MP3, b"ID3", 3) is None


def test_header_duration_of_a_truncated_wav_counts_what_arrived() -> None:
    assert header_duration_s(AudioFormat.WAV, WAV[:4096], 44 + 16_000) == 0.5


def test_header_duration_skips_other_wav_chunks() -> None:
    # RIFF, a LIST chunk of odd length (padded), then fmt and data.
    fmt = WAV[12:36]
    data = WAV[36:]
    listing = b"LIST" + (3).to_bytes(4, "little") + b"abc\x00"
    wav = WAV[:12] + listing + fmt + data

    assert header_duration_s(AudioFormat.WAV, wav[:4096], len(wav)) == 1.0


@pytest.mark.parametrize(
    "head",
    [
        WAV[:36],  # no data chunk within the head
        WAV[:12] + b"data" + (100).to_bytes(4, "little"),  # data before fmt: no byte rate
        WAV[:40] + (0).to_bytes(4, "little"),  # an empty data chunk
    ],
    ids=["no-data", "no-fmt", "empty-data"],
)
def test_header_duration_of_an_unusable_wav_is_none(head: bytes) -> None:
    assert header_duration_s(AudioFormat.WAV, head, len(head) + 100) is None


@pytest.mark.parametrize(
    "head",
    [b"fLaC" + bytes(10), b"fLaC\x04" + bytes(60), flac_header(0)],
    ids=["short", "not-streaminfo", "no-samples"],
)
def test_header_duration_of_an_unusable_flac_is_none(head: bytes) -> None:
    assert header_duration_s(AudioFormat.FLAC, head, 1000) is None


# --- fields --------------------------------------------------------------------------------------


def test_parse_fields_reads_every_option_and_keeps_the_rest() -> None:
    fields = [
        ("model", " whisper-1 "),
        ("language", "en"),
        ("prompt", "  keep spacing "),
        ("response_format", "srt"),
        ("temperature", "0"),
        ("timestamp_granularities[]", "word"),
        ("timestamp_granularities[]", "segment"),
        ("stream", "false"),
    ]

    assert parse_transcription_fields(fields, Task.TRANSCRIBE) == TranscriptionRequest(
        task=Task.TRANSCRIBE,
        model="whisper-1",
        language="en",
        prompt="  keep spacing ",
        response_format=ResponseFormat.SRT,
        temperature=0.0,
        extra=(("timestamp_granularities[]", "word"), ("timestamp_granularities[]", "segment")),
    )


def test_parse_fields_defaults() -> None:
    request = parse_transcription_fields([("model", "m"), ("language", ""), ("response_format", "")], Task.TRANSLATE)

    assert request == TranscriptionRequest(task=Task.TRANSLATE, model="m")


@pytest.mark.parametrize(
    ("fields", "param", "phrase"),
    [
        ([], "model", "model: is required"),
        ([("model", "a"), ("model", "b")], "model", "model: given more than once"),
        ([("model", "m"), ("stream", "true")], "stream", "not offered"),
        ([("model", "m"), ("language", "x" * 33)], "language", "expected a language code"),
        ([("model", "m"), ("response_format", "json_schema")], "response_format", "is not one of"),
        ([("model", "m"), ("temperature", "nan")], "temperature", "from 0 to 1"),
        ([("model", "m"), ("temperature", "-0.1")], "temperature", "from 0 to 1"),
        ([("model", "m"), ("temperature", "warm")], "temperature", "from 0 to 1"),
    ],
)
def test_parse_fields_refuses(fields: list[tuple[str, str]], param: str, phrase: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_transcription_fields(fields, Task.TRANSCRIBE)

    assert caught.value.param == param
    assert phrase in caught.value.message


def test_parse_fields_translation_takes_no_language() -> None:
    with pytest.raises(InvalidRequestError, match="always into English"):
        parse_transcription_fields([("model", "m"), ("language", "de")], Task.TRANSLATE)


# --- transcript ----------------------------------------------------------------------------------


SEGMENTED = Transcript(
    text="One. Two --> three.",
    language="english",
    duration_s=3725.5,
    segments=(
        Segment(text=" One.", start_s=0.0, end_s=1.2345, extra={"id": 7, "seek": 0, "tokens": [1, 2]}),
        Segment(text=" Two -->\n\nthree.", start_s=3600.0, end_s=3725.5),
    ),
    words=(Word(text="One.", start_s=0.0, end_s=1.2345),),
    extra={"usage": {"type": "duration", "seconds": 3726}},
)


def test_finish_fills_the_language_and_duration() -> None:
    bare = Transcript(text="hi", segments=(Segment(text="hi", start_s=0.0, end_s=2.0),))

    assert finish_transcript(bare, Task.TRANSCRIBE, requested_language="en", duration_s=None) == Transcript(
        text="hi", language="en", duration_s=2.0, segments=bare.segments
    )
    assert finish_transcript(bare, Task.TRANSLATE, requested_language=None, duration_s=1.5).language == "english"
    assert finish_transcript(bare, Task.TRANSLATE, requested_language=None, duration_s=1.5).duration_s == 1.5
    assert finish_transcript(SEGMENTED, Task.TRANSCRIBE, requested_language="de", duration_s=9.0) is SEGMENTED


def test_render_json() -> None:
    body, media_type = render_transcript(SEGMENTED, ResponseFormat.JSON, Task.TRANSCRIBE)

    assert media_type == "application/json"
    assert json.loads(body) == {
        "text": "One. Two --> three.",
        "task": "transcribe",
        "language": "english",
        "duration": 3725.5,
        "usage": {"type": "duration", "seconds": 3726},
    }


def test_render_verbose_json() -> None:
    body, _ = render_transcript(SEGMENTED, ResponseFormat.VERBOSE_JSON, Task.TRANSLATE)

    assert json.loads(body) == {
        "text": "One. Two --> three.",
        "task": "translate",
        "language": "english",
        "duration": 3725.5,
        "segments": [
            {"id": 7, "start": 0.0, "end": 1.2345, "text": " One.", "seek": 0, "tokens": [1, 2]},
            {"id": 1, "start": 3600.0, "end": 3725.5, "text": " Two -->\n\nthree."},
        ],
        "words": [{"word": "One.", "start": 0.0, "end": 1.2345}],
        "usage": {"type": "duration", "seconds": 3726},
    }


def test_render_verbose_json_without_segments_or_words() -> None:
    body, _ = render_transcript(Transcript(text="hi"), ResponseFormat.VERBOSE_JSON, Task.TRANSCRIBE)

    assert json.loads(body) == {"text": "hi", "task": "transcribe", "language": None, "duration": None, "segments": []}


def test_render_text() -> None:
    assert render_transcript(SEGMENTED, ResponseFormat.TEXT, Task.TRANSCRIBE) == (
        b"One. Two --> three.\n",
        "text/plain; charset=utf-8",
    )


def test_render_srt_and_vtt_keep_each_cue_on_one_line() -> None:
    srt, srt_type = render_transcript(SEGMENTED, ResponseFormat.SRT, Task.TRANSCRIBE)
    vtt, vtt_type = render_transcript(SEGMENTED, ResponseFormat.VTT, Task.TRANSCRIBE)

    assert srt.decode() == (
        "1\n00:00:00,000 --> 00:00:01,234\nOne.\n\n2\n01:00:00,000 --> 01:02:05,500\nTwo -> three.\n\n"
    )
    assert vtt.decode() == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.234\nOne.\n\n01:00:00.000 --> 01:02:05.500\nTwo -> three.\n\n"
    )
    assert (srt_type, vtt_type) == ("text/plain; charset=utf-8", "text/vtt; charset=utf-8")


def test_render_subtitles_without_segments() -> None:
    timed = Transcript(text="Just this.", duration_s=4.0)
    untimed = Transcript(text="Just this.")
    silent = Transcript(text="  ", duration_s=4.0)

    assert render_transcript(timed, ResponseFormat.SRT, Task.TRANSCRIBE)[0] == (
        b"1\n00:00:00,000 --> 00:00:04,000\nJust this.\n\n"
    )
    assert render_transcript(untimed, ResponseFormat.VTT, Task.TRANSCRIBE)[0] == (
        b"WEBVTT\n\n00:00:00.000 --> 00:00:00.000\nJust this.\n\n"
    )
    assert render_transcript(silent, ResponseFormat.SRT, Task.TRANSCRIBE)[0] == b""
    assert render_transcript(silent, ResponseFormat.VTT, Task.TRANSCRIBE)[0] == b"WEBVTT\n\n"
