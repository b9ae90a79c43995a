"""wire/images.py: OpenAI images requests and answers, Pollinations URLs, Gemini image output, images in chat."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from polyroute.core.messages import Usage
from polyroute.errors import InvalidRequestError
from polyroute.wire import images as wire
from polyroute.wire.images import ChatImageForm, GeneratedImage, ImageFormat

PNG_HEAD = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR").decode()


def fails(param: str, call: Any, *args: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        call(*args)
    assert caught.value.param == param
    assert caught.value.message.startswith(f"{param}: ")
    return caught.value


# --- requests ---------------------------------------------------------------------------------------


def test_parse_request_reads_every_field_and_keeps_the_body() -> None:
    body: dict[str, Any] = {
        "model": "dall-e-3",
        "prompt": "a cat",
        "n": 2,
        "size": "1792x1024",
        "quality": "hd",
        "style": "natural",
        "response_format": "b64_json",
        "user": "u1",
        "stream": False,
        "background": "transparent",
    }
    request = wire.parse_request(body)
    assert request == wire.ImageRequest(
        model="dall-e-3",
        prompt="a cat",
        n=2,
        width=1792,
        height=1024,
        response_format=ImageFormat.B64_JSON,
        body=body,
    )


def test_parse_request_defaults() -> None:
    request = wire.parse_request({"model": "flux", "prompt": "x", "n": None, "size": "auto", "response_format": None})
    assert (request.n, request.width, request.height, request.response_format) == (1, None, None, None)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"model": None}, "model"),
        ({"model": ""}, "model"),
        ({"model": "flux\n"}, "model"),
        ({"prompt": None}, "prompt"),
        ({"prompt": " \n"}, "prompt"),
        ({"prompt": 3}, "prompt"),
        ({"n": 0}, "n"),
        ({"n": 11}, "n"),
        ({"n": 1.5}, "n"),
        ({"n": False}, "n"),
        ({"quality": 2}, "quality"),
        ({"style": ["vivid"]}, "style"),
        ({"user": {}}, "user"),
        ({"stream": True}, "stream"),
        ({"stream": "no"}, "stream"),
        ({"size": 512}, "size"),
        ({"response_format": "jpeg"}, "response_format"),
    ],
)
def test_parse_request_refuses_bad_fields(change: dict[str, Any], param: str) -> None:
    fails(param, wire.parse_request, {"model": "flux", "prompt": "x", **change})


@pytest.mark.parametrize(
    ("size", "expected"),
    [(None, (None, None)), ("auto", (None, None)), ("1024x1536", (1024, 1536)), ("1x8192", (1, 8192))],
)
def test_parse_size(size: str | None, expected: tuple[int | None, int | None]) -> None:
    assert wire.parse_size(size) == expected


@pytest.mark.parametrize("size", ["1024", "1024X1024", "1024x1024 ", "-1x5", "0x10", "10x8193", "123456x1", "axb"])
def test_parse_size_refuses(size: str) -> None:
    fails("size", wire.parse_size, size)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("url", ImageFormat.URL), ("b64_json", ImageFormat.B64_JSON)]
)
def test_parse_image_format(value: str | None, expected: ImageFormat | None) -> None:
    assert wire.parse_image_format(value) is expected


@pytest.mark.parametrize("value", ["URL", "b64", 1, ["url"], {"type": "url"}])
def test_parse_image_format_refuses(value: Any) -> None:
    fails("response_format", wire.parse_image_format, value)


def test_dropped_fields_are_those_only_openai_carries() -> None:
    body = {"model": "m", "prompt": "p", "n": 1, "size": "auto", "response_format": "url", "stream": False}
    assert wire.dropped_fields(wire.parse_request(body)) == []
    extra = {**body, "user": "u", "quality": "hd", "style": "vivid", "background": "auto"}
    assert wire.dropped_fields(wire.parse_request(extra)) == ["background", "quality", "style", "user"]


def test_generated_image_has() -> None:
    by_url, by_data = GeneratedImage(url="https://x"), GeneratedImage(data="AAAA")
    assert (by_url.has(ImageFormat.URL), by_url.has(ImageFormat.B64_JSON)) == (True, False)
    assert (by_data.has(ImageFormat.URL), by_data.has(ImageFormat.B64_JSON)) == (False, True)


# --- OpenAI-compatible ------------------------------------------------------------------------------


def test_render_openai_request_replaces_only_the_model() -> None:
    request = wire.parse_request({"model": "oai/dall-e-3", "prompt": "x", "extra": [1]})
    assert wire.render_openai_request(request, "dall-e-3") == {"model": "dall-e-3", "prompt": "x", "extra": [1]}
    assert request.body["model"] == "oai/dall-e-3"


def test_parse_openai_response_reads_urls_and_base64() -> None:
    answer: dict[str, Any] = {
        "created": 1,
        "data": [
            {"url": "https://img/1.png", "revised_prompt": "better"},
            {"b64_json": "AAAA", "revised_prompt": None},
            {"url": "https://img/2.png", "b64_json": "BBBB"},
        ],
        "output_format": "webp",
    }
    assert wire.parse_openai_response(answer) == [
        GeneratedImage(url="https://img/1.png", revised_prompt="better"),
        GeneratedImage(data="AAAA", media_type="image/webp"),
        GeneratedImage(url="https://img/2.png", data="BBBB", media_type="image/webp"),
    ]
    assert wire.parse_openai_response({"data": [{"b64_json": "AAAA"}], "output_format": ""}) == [
        GeneratedImage(data="AAAA")
    ]


@pytest.mark.parametrize(
    "answer",
    [{}, {"data": None}, {"data": {"url": "x"}}, {"data": ["x"]}, {"data": [{"url": 3}]}, {"data": [{}]}],
)
def test_parse_openai_response_refuses(answer: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        wire.parse_openai_response(answer)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({}, None),
        ({"usage": None}, None),
        ({"usage": {"total_tokens": 3}}, None),
        ({"usage": {"input_tokens": True, "output_tokens": "2"}}, None),
        ({"usage": {"input_tokens": 12, "output_tokens": 272}}, Usage(input_tokens=12, output_tokens=272)),
        ({"usage": {"output_tokens": 5}}, Usage(output_tokens=5)),
    ],
)
def test_parse_openai_usage(answer: dict[str, Any], expected: Usage | None) -> None:
    assert wire.parse_openai_usage(answer) == expected


# --- Pollinations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "root"),
    [
        ("https://gen.pollinations.ai/v1", "https://gen.pollinations.ai"),
        ("https://gen.pollinations.ai/v1/", "https://gen.pollinations.ai"),
        ("https://gen.pollinations.ai", "https://gen.pollinations.ai"),
        ("http://user:secret@127.0.0.1:8080/proxy/v1?key=sk_123#x", "http://127.0.0.1:8080/proxy"),
        ("http://[::1]:9000/v1", "http://[::1]:9000"),
    ],
)
def test_pollinations_root_drops_v1_and_credentials(base_url: str, root: str) -> None:
    assert wire.pollinations_root(base_url) == root


def test_pollinations_url_quotes_the_whole_prompt() -> None:
    url = wire.pollinations_url(
        "https://gen.pollinations.ai", "a cat / dog? 100% ü", model="flux", seed=42, width=512, height=768
    )
    assert url == (
        "https://gen.pollinations.ai/image/a%20cat%20%2F%20dog%3F%20100%25%20%C3%BC"
        "?width=512&height=768&seed=42&model=flux&nologo=true"
    )
    no_size = wire.pollinations_url("https://p", "x", model="turbo", seed=0, width=None, height=None)
    assert no_size == "https://p/image/x?seed=0&model=turbo&nologo=true"


# --- Gemini -----------------------------------------------------------------------------------------


def test_gemini_path() -> None:
    assert wire.gemini_path("models/gemini-2.5-flash-image") == "/v1beta/models/gemini-2.5-flash-image:generateContent"


@pytest.mark.parametrize(
    ("width", "height", "ratio"),
    [
        (1024, 1024, "1:1"),
        (1792, 1024, "16:9"),
        (1024, 1792, "9:16"),
        (1536, 1024, "3:2"),
        (2560, 1080, "21:9"),
        (1, 8192, "9:16"),
    ],
)
def test_aspect_ratio_is_the_nearest_supported(width: int, height: int, ratio: str) -> None:
    assert wire.aspect_ratio(width, height) == ratio


def test_render_gemini_request() -> None:
    plain = wire.render_gemini_request(wire.parse_request({"model": "g", "prompt": "a cat"}))
    assert plain == {
        "contents": [{"role": "user", "parts": [{"text": "a cat"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
    }
    sized = wire.render_gemini_request(wire.parse_request({"model": "g", "prompt": "a cat", "size": "1024x1536"}))
    assert sized["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "2:3"}}


def test_parse_gemini_response_keeps_images_only() -> None:
    parts = [
        {"text": "Here you go"},
        "junk",
        {"inlineData": "junk"},
        {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
        {"inline_data": {"mime_type": "image/jpeg", "data": "BBBB"}},
        {"inlineData": {"mimeType": "text/plain", "data": "CCCC"}},
        {"inlineData": {"mimeType": "image/png", "data": ""}},
        {"inlineData": {"mimeType": None, "data": "DDDD"}},
    ]
    answer: dict[str, Any] = {"candidates": [{"content": {"parts": parts}}, {"content": {"parts": []}}]}
    assert wire.parse_gemini_response(answer) == [
        GeneratedImage(data="AAAA", media_type="image/png"),
        GeneratedImage(data="BBBB", media_type="image/jpeg"),
    ]


@pytest.mark.parametrize(
    "answer",
    [
        {"candidates": []},
        {"candidates": ["x"]},
        {"candidates": [{"finishReason": "SAFETY"}]},
        {"candidates": [{"content": {"role": "model"}}]},
        {"candidates": [{"content": {"parts": "x"}}]},
    ],
)
def test_parse_gemini_response_without_images(answer: dict[str, Any]) -> None:
    assert wire.parse_gemini_response(answer) == []


def test_parse_gemini_response_refuses_an_answer_without_candidates() -> None:
    with pytest.raises(ValueError):
        wire.parse_gemini_response({"promptFeedback": {"blockReason": "SAFETY"}})


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({}, None),
        ({"usageMetadata": {}}, None),
        (
            {"usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 1290}},
            Usage(input_tokens=7, output_tokens=1290),
        ),
    ],
)
def test_parse_gemini_usage(answer: dict[str, Any], expected: Usage | None) -> None:
    assert wire.parse_gemini_usage(answer) == expected


# --- answers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (PNG_HEAD, "image/png"),
        (base64.b64encode(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01").decode(), "image/jpeg"),
        (base64.b64encode(b"GIF89a\x01\x00\x01\x00").decode(), "image/gif"),
        (base64.b64encode(b"RIFF\x00\x00\x00\x00WEBPVP8 ").decode(), "image/webp"),
        (base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode(), "image/png"),
        ("not base64!", "image/png"),
    ],
)
def test_sniff_media_type(data: str, media_type: str) -> None:
    assert wire.sniff_media_type(data) == media_type


def test_data_url() -> None:
    assert wire.data_url(GeneratedImage(data="AAAA", media_type="image/webp")) == "data:image/webp;base64,AAAA"
    assert wire.data_url(GeneratedImage(data=PNG_HEAD)) == f"data:image/png;base64,{PNG_HEAD}"
    with pytest.raises(ValueError):
        wire.data_url(GeneratedImage(url="https://x"))


def test_parse_data_url() -> None:
    url = "data:image/jpeg;base64,/9j/4AAQ"
    assert wire.parse_data_url(url) == GeneratedImage(url=url, data="/9j/4AAQ", media_type="image/jpeg")
    assert wire.parse_data_url("https://x/y.png") is None
    assert wire.parse_data_url("data:text/plain;base64,AAAA") is None


def test_render_response_in_each_form() -> None:
    images = [
        GeneratedImage(url="https://img/1.png", revised_prompt="better"),
        GeneratedImage(data="AAAA", media_type="image/png"),
    ]
    assert wire.render_response(5, images, ImageFormat.URL) == {
        "created": 5,
        "data": [{"url": "https://img/1.png", "revised_prompt": "better"}, {"url": "data:image/png;base64,AAAA"}],
    }
    base: dict[str, Any] = {"created": 1, "data": [], "usage": {"input_tokens": 1}}
    assert wire.render_response(5, images[1:], ImageFormat.B64_JSON, base=base) == {
        "created": 5,
        "data": [{"b64_json": "AAAA"}],
        "usage": {"input_tokens": 1},
    }
    with pytest.raises(ValueError):
        wire.render_response(5, images[:1], ImageFormat.B64_JSON)


# --- chat ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "form"),
    [(None, ChatImageForm.MARKDOWN), ("url", ChatImageForm.URL), ("b64_json", ChatImageForm.B64_JSON)],
)
def test_parse_chat_image_form(value: str | None, form: ChatImageForm) -> None:
    assert wire.parse_chat_image_form(value) is form


@pytest.mark.parametrize("value", ["markdown", "", "URL"])
def test_parse_chat_image_form_refuses(value: str) -> None:
    fails("X-Polyroute-Image-Format", wire.parse_chat_image_form, value)


def test_parse_chat_request() -> None:
    payload: dict[str, Any] = {
        "model": "flux",
        "messages": [{"role": "user", "content": "a fox"}],
        "n": 1,
        "response_format": {"type": "text"},
        "user": "u1",
        "temperature": 0.7,
    }
    assert wire.parse_chat_request(payload) == wire.ImageRequest(
        model="flux", prompt="a fox", body={"model": "flux", "prompt": "a fox", "n": 1, "user": "u1"}
    )
    plain = wire.parse_chat_request({"model": "flux", "messages": [{"role": "user", "content": "a fox"}]})
    assert plain.body == {"model": "flux", "prompt": "a fox", "n": 1}


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"n": 2}, "n"),
        ({"n": "1"}, "n"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": "json"}, "response_format"),
        ({"user": 1}, "user"),
        ({"messages": []}, "messages"),
        ({"messages": None}, "messages"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
        ({"messages": [{"role": "user", "content": None}]}, "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}, "messages"),
    ],
)
def test_parse_chat_request_refuses(change: dict[str, Any], param: str) -> None:
    fails(param, wire.parse_chat_request, {"model": "flux", "messages": [{"role": "user", "content": "x"}], **change})


def test_chat_prompt_is_the_last_user_texts() -> None:
    messages = [
        {"role": "user", "content": "first"},
        "junk",
        {
            "role": "user",
            "content": [{"type": "text", "text": "a"}, "junk", {"type": "image_url"}, {"type": "text", "text": "b"}],
        },
        {"role": "assistant", "content": "answer"},
    ]
    assert wire.chat_prompt(messages) == "a\nb"


def test_markdown_image_escapes_the_prompt_and_the_url() -> None:
    markdown = wire.markdown_image(" a [red]\\cat\n\twith (hat) ", "https://x/a b(1).png")
    assert markdown == r"[![a \[red\]\\cat with (hat)](https://x/a%20b%281%29.png)](https://x/a%20b%281%29.png)"


def test_chat_content_in_each_form() -> None:
    by_url = GeneratedImage(url="https://x/1.png", data="AAAA", media_type="image/png")
    by_data = GeneratedImage(data="AAAA", media_type="image/png")
    data_url = "data:image/png;base64,AAAA"
    assert wire.chat_content("p", by_url, ChatImageForm.MARKDOWN) == "[![p](https://x/1.png)](https://x/1.png)"
    assert wire.chat_content("p", by_data, ChatImageForm.MARKDOWN) == f"[![p]({data_url})]({data_url})"
    part = {"type": "image_url", "image_url": {"url": "https://x/1.png"}}
    assert wire.chat_content("p", by_url, ChatImageForm.URL) == [part]
    assert wire.chat_content("p", by_data, ChatImageForm.URL) == [{"type": "image_url", "image_url": {"url": data_url}}]
    assert wire.chat_content("p", by_url, ChatImageForm.B64_JSON) == [
        {"type": "image_url", "image_url": {"url": data_url}}
    ]


def test_render_chat_completion() -> None:
    answer = wire.ChatImageAnswer(completion_id="chatcmpl-1", created=9, model="flux", content="md")
    assert wire.render_chat_completion(answer) == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 9,
        "model": "flux",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "md", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
    }
    counted = wire.ChatImageAnswer(
        completion_id="c", created=9, model="g", content=[], usage=Usage(input_tokens=7, output_tokens=1290)
    )
    assert wire.render_chat_completion(counted)["usage"] == {
        "prompt_tokens": 7,
        "completion_tokens": 1290,
        "total_tokens": 1297,
    }


def _events(stream: bytes) -> list[Any]:
    assert stream.endswith(b"data: [DONE]\n\n")
    frames = stream.split(b"\n\n")[:-2]
    assert all(frame.startswith(b"data: ") for frame in frames)
    return [orjson.loads(frame[len(b"data: ") :]) for frame in frames]


def test_render_chat_stream() -> None:
    answer = wire.ChatImageAnswer(completion_id="c", created=9, model="flux", content="md")
    head = {"id": "c", "object": "chat.completion.chunk", "created": 9, "model": "flux"}
    expected = [
        {
            **head,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": "md"}, "logprobs": None, "finish_reason": None}
            ],
        },
        {**head, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]},
    ]
    assert _events(wire.render_chat_stream(answer, include_usage=False)) == expected
    assert _events(wire.render_chat_stream(answer, include_usage=True)) == expected  # nothing reported, nothing sent
    counted = wire.ChatImageAnswer(
        completion_id="c", created=9, model="flux", content="md", usage=Usage(input_tokens=3)
    )
    usage = {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}
    assert _events(wire.render_chat_stream(counted, include_usage=True)) == [
        *expected,
        {**head, "choices": [], "usage": usage},
    ]
    assert _events(wire.render_chat_stream(counted, include_usage=False)) == expected
