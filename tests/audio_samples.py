"""Audio made in the test (a WAV tone written with the standard library, the start of a FLAC file) and sample
answers of the transcription APIs, shaped as each provider's API reference shows them."""

from __future__ import annotations

import wave
from io import BytesIO
from math import pi, sin
from typing import Any, Final

TRANSCRIPT_ID: Final = "6c3b6b5e-5d6f-4c3a-9a7e-2f1b8d4c0e91"
UPLOAD_URL: Final = "https://cdn.assemblyai.com/upload/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def tone_wav(seconds: int = 1, *, rate: int = 16_000, hz: int = 440) -> bytes:
    """A mono 16-bit WAV of a sine tone (whole seconds), written with the standard library."""
    second = bytearray()
    for n in range(rate):
        second += int(12_000 * sin(2 * pi * hz * n / rate)).to_bytes(2, "little", signed=True)
    frames = bytes(second) * seconds
    out = BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(frames)
    return out.getvalue()


def flac_header(seconds: float, *, rate: int = 44_100) -> bytes:
    """The start of a FLAC file: ``fLaC`` and a STREAMINFO block (the last metadata block) with the sample count."""
    samples = int(seconds * rate)
    info = bytearray(34)
    info[0:2] = (4096).to_bytes(2, "big")
    info[2:4] = (4096).to_bytes(2, "big")
    # 20 bits sample rate, 3 bits channels-1 (1: stereo), 5 bits bits-per-sample-1 (15), 36 bits samples.
    packed = (rate << 44) | (1 << 41) | (15 << 36) | samples
    info[10:18] = packed.to_bytes(8, "big")
    return b"fLaC" + bytes([0x80, 0, 0, 34]) + bytes(info) + bytes(64)


OPENAI_VERBOSE: Final[dict[str, Any]] = {
    "task": "transcribe",
    "language": "english",
    "duration": 1.0,
    "text": "A steady tone. Nothing else.",
    "segments": [
        {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": 0.52,
            "text": " A steady tone.",
            "tokens": [50364, 316, 13211, 8027, 13, 50390],
            "temperature": 0.0,
            "avg_logprob": -0.31,
            "compression_ratio": 0.82,
            "no_speech_prob": 0.12,
        },
        {
            "id": 1,
            "seek": 0,
            "start": 0.52,
            "end": 1.0,
            "text": " Nothing else.",
            "tokens": [50390, 6693, 1646, 13, 50414],
            "temperature": 0.0,
            "avg_logprob": -0.44,
            "compression_ratio": 0.82,
            "no_speech_prob": 0.2,
        },
    ],
    "usage": {"type": "duration", "seconds": 1},
}

DEEPGRAM_ANSWER: Final[dict[str, Any]] = {
    "metadata": {
        "transaction_key": "deprecated",
        "request_id": "a847f427-4ad5-4d67-9b95-db801e58251c",
        "sha256": "154e291ecfa8be6ab8343560bcc109008fa7853eb5372533e8efdefc9b504c33",
        "created": "2025-05-01T12:00:00.000Z",
        "duration": 1.0,
        "channels": 1,
        "models": ["2187e11a-3532-4498-b076-81fa530bdd49"],
        "model_info": {
            "2187e11a-3532-4498-b076-81fa530bdd49": {
                "name": "general-nova-3",
                "version": "2024-12-20.0",
                "arch": "nova-3",
            }
        },
    },
    "results": {
        "channels": [
            {
                "alternatives": [
                    {
                        "transcript": "Hello there. How are you?",
                        "confidence": 0.99,
                        "words": [
                            {
                                "word": "hello",
                                "start": 0.08,
                                "end": 0.24,
                                "confidence": 0.99,
                                "punctuated_word": "Hello",
                            },
                            {
                                "word": "there",
                                "start": 0.24,
                                "end": 0.4,
                                "confidence": 0.98,
                                "punctuated_word": "there.",
                            },
                            {"word": "how", "start": 0.56, "end": 0.64, "confidence": 0.99, "punctuated_word": "How"},
                            {"word": "are", "start": 0.64, "end": 0.72, "confidence": 0.99, "punctuated_word": "are"},
                            {"word": "you", "start": 0.72, "end": 0.96, "confidence": 0.97, "punctuated_word": "you?"},
                        ],
                    }
                ],
                "detected_language": "en",
                "language_confidence": 0.97,
            }
        ]
    },
}

ASSEMBLYAI_COMPLETED: Final[dict[str, Any]] = {
    "id": TRANSCRIPT_ID,
    "audio_url": UPLOAD_URL,
    "status": "completed",
    "language_code": "en_us",
    "speech_model": "best",
    "text": "Good morning. Welcome back.",
    "words": [
        {"text": "Good", "start": 120, "end": 300, "confidence": 0.99, "speaker": None},
        {"text": "morning.", "start": 300, "end": 650, "confidence": 0.98, "speaker": None},
        {"text": "Welcome", "start": 700, "end": 880, "confidence": 0.97, "speaker": None},
        {"text": "back.", "start": 880, "end": 990, "confidence": 0.99, "speaker": None},
    ],
    "confidence": 0.98,
    "audio_duration": 1,
    "error": None,
}
