"""POST /v1/images/generations through OpenAI-compatible, Pollinations and Gemini fakes, with the official SDK."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import openai
import pytest

from tests.fakes import Reply, error_body
from tests.gateway_fixtures import ADMIN_KEY, UPSTREAM_KEY, RunningGateway, start_gateway
from tests.image_fakes import (
    CREATED,
    GEMINI_KEY,
    PNG,
    PNG_B64,
    POLLINATIONS_KEY,
    REVISED,
    FakeImageApis,
    gemini_answer,
    gpt_image_answer,
    image_gateway,
    image_routing,
    reset_for_test,
)

DRAWER = "gemini-2.5-flash-image"
PROMPT = "a cat on a windowsill / watercolour (50% off) & more"


@pytest.fixture(scope="module")
def apis() -> Iterator[FakeImageApis]:
    fake = FakeImageApis().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(apis: FakeImageApis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = image_gateway(apis, tmp_path_factory.mktemp("images"))
    yield running
    running.stop()


@pytest.fixture
def fake(apis: FakeImageApis, gateway: RunningGateway) -> FakeImageApis:
    return reset_for_test(apis, gateway)


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=15) as sdk:
        yield sdk


@pytest.fixture
def raw(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15) as http:
        yield http


def test_openai_upstream_gets_the_body_and_its_answer_comes_back(client: openai.OpenAI, fake: FakeImageApis) -> None:
    answer = client.images.with_raw_response.generate(
        model="oai/dall-e-3",
        prompt=PROMPT,
        n=2,
        size="1792x1024",
        quality="hd",
        style="vivid",
        response_format="url",
        user="user-1234",
    )
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-model"]) == ("oai", "dall-e-3")
    assert answer.headers["x-polyroute-fallback"] == "false"
    images = answer.parse()
    assert images.created == CREATED
    assert [(image.url, image.revised_prompt, image.b64_json) for image in images.data or []] == [
        (f"{fake.root}/files/image-{i}.png", REVISED, None) for i in range(2)
    ]
    (call,) = fake.calls_to("oai")
    assert (call.method, call.path) == ("POST", "/v1/images/generations")
    assert call.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert call.json() == {
        "model": "dall-e-3",
        "prompt": PROMPT,
        "n": 2,
        "size": "1792x1024",
        "quality": "hd",
        "style": "vivid",
        "response_format": "url",
        "user": "user-1234",
    }
    assert fake.files_served == 0


def test_b64_json_asked_of_an_upstream_that_answers_urls_fetches_the_image(
    client: openai.OpenAI, fake: FakeImageApis
) -> None:
    fake.push("oai", Reply(json_body={"created": CREATED, "data": [{"url": f"{fake.root}/files/a.png"}]}))
    images = client.images.generate(model="dall-e-3", prompt="a cat", response_format="b64_json")
    (image,) = images.data or []
    assert base64.b64decode(image.b64_json or "") == PNG
    assert (image.url, image.revised_prompt) == (None, None)
    assert fake.files_served == 1


def test_url_asked_of_a_gpt_image_model_is_a_data_url_and_usage_is_kept(
    client: openai.OpenAI, raw: httpx.Client, fake: FakeImageApis
) -> None:
    fake.push("oai", Reply(json_body=gpt_image_answer()))
    answer = client.images.with_raw_response.generate(model="gpt-image-1", prompt="a cat", response_format="url")
    images = answer.parse()
    (image,) = images.data or []
    assert image.url == f"data:image/png;base64,{PNG_B64}"
    assert image.b64_json is None
    # The upstream's other fields come back as it sent them.
    assert (images.created, images.background, images.output_format) == (CREATED, "opaque", "png")
    assert (images.quality, images.size) == ("low", "1024x1024")
    assert images.usage is not None and (images.usage.input_tokens, images.usage.output_tokens) == (12, 272)
    assert (answer.headers["x-polyroute-tokens-in"], answer.headers["x-polyroute-tokens-out"]) == ("12", "272")
    row = _log_row(raw, answer.headers["x-request-id"], "gpt-image-1")
    assert (row["endpoint"], row["provider"], row["status"]) == ("/v1/images/generations", "oai", 200)
    assert (row["prompt_tokens"], row["completion_tokens"], row["upstream_model"]) == (12, 272, "gpt-image-1")


def test_answer_in_the_asked_form_is_passed_on_byte_for_byte(raw: httpx.Client, fake: FakeImageApis) -> None:
    sent = b'{"created":1713833628,"data":[{"b64_json":"' + PNG_B64.encode() + b'"}],"extra":{"kept":true}}'
    fake.push("oai", Reply(raw_body=sent))
    answer = raw.post("/v1/images/generations", json={"model": "gpt-image-1", "prompt": "a cat"})
    assert answer.status_code == 200
    assert answer.content == sent


def test_pollinations_url_names_the_image_without_the_key(client: openai.OpenAI, fake: FakeImageApis) -> None:
    answer = client.images.with_raw_response.generate(model="painter", prompt=PROMPT, size="512x768")
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-model"]) == ("polli", "flux")
    (image,) = answer.parse().data or []
    (call,) = fake.calls_to("polli")
    assert call.method == "GET"
    assert unquote(call.path) == f"/image/{PROMPT}"
    assert call.path.startswith("/image/a%20cat%20on%20a%20windowsill%20%2F%20")
    seed = call.query.pop("seed")
    assert seed.isdigit()
    assert call.query == {"width": "512", "height": "768", "model": "flux", "nologo": "true"}
    assert call.headers["Authorization"] == f"Bearer {POLLINATIONS_KEY}"
    assert image.url is not None and POLLINATIONS_KEY not in image.url
    url = urlsplit(image.url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{fake.url('polli')}{call.path}"
    assert parse_qsl(url.query) == [
        ("width", "512"),
        ("height", "768"),
        ("seed", seed),
        ("model", "flux"),
        ("nologo", "true"),
    ]
    assert image.b64_json is None


def test_pollinations_b64_json_draws_each_image_with_its_own_seed(
    client: openai.OpenAI, raw: httpx.Client, fake: FakeImageApis
) -> None:
    answer = client.images.with_raw_response.generate(
        model="polli/flux", prompt="a cat", n=3, response_format="b64_json", quality="hd", user="u1"
    )
    images = answer.parse()
    assert [base64.b64decode(image.b64_json or "") for image in images.data or []] == [PNG] * 3
    calls = fake.calls_to("polli")
    assert len(calls) == 3
    assert len({call.query["seed"] for call in calls}) == 3
    assert all("width" not in call.query for call in calls)  # no size: the model's own
    assert abs(images.created - time.time()) < 60
    row = _log_row(raw, answer.headers["x-request-id"], "polli/flux")
    assert (row["dropped_fields"], row["prompt_tokens"], row["upstream_model"]) == ("quality,user", None, "flux")


def test_gemini_url_is_a_data_url_and_the_request_asks_for_images(client: openai.OpenAI, fake: FakeImageApis) -> None:
    answer = client.images.with_raw_response.generate(model="gemini-2.5-flash-image", prompt="a cat", size="1792x1024")
    (image,) = answer.parse().data or []
    assert image.url == f"data:image/png;base64,{PNG_B64}"
    assert answer.headers["x-polyroute-provider"] == "gem"
    assert (answer.headers["x-polyroute-tokens-in"], answer.headers["x-polyroute-tokens-out"]) == ("7", "1290")
    (call,) = fake.calls_to("gem")
    assert call.path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert call.headers["x-goog-api-key"] == GEMINI_KEY
    assert "Authorization" not in call.headers
    assert call.json() == {
        "contents": [{"role": "user", "parts": [{"text": "a cat"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "16:9"}},
    }


def test_gemini_b64_json_n_calls(client: openai.OpenAI, fake: FakeImageApis) -> None:
    other = base64.b64encode(b"\x89PNG\r\n\x1a\nsecond").decode()
    uncounted = {**gemini_answer(data=other), "usageMetadata": None}
    fake.push("gem", Reply(json_body=gemini_answer()), Reply(json_body=uncounted), Reply(json_body=gemini_answer()))
    answer = client.images.with_raw_response.generate(
        model="gem/gemini-2.5-flash-image", prompt="a cat", n=3, response_format="b64_json"
    )
    images = answer.parse()
    assert sorted(image.b64_json or "" for image in images.data or []) == sorted([PNG_B64, PNG_B64, other])
    assert (answer.headers["x-polyroute-tokens-in"], answer.headers["x-polyroute-tokens-out"]) == ("14", "2580")
    assert len(fake.calls_to("gem")) == 3
    assert all("imageConfig" not in call.json()["generationConfig"] for call in fake.calls_to("gem"))


def test_gemini_answer_without_an_image_is_an_empty_answer(raw: httpx.Client, fake: FakeImageApis) -> None:
    fake.push("gem", Reply(json_body=gemini_answer(with_image=False, text="I can't draw that.")))
    answer = raw.post("/v1/providers/gem/images/generations", json={"model": "gemini-2.5-flash-image", "prompt": "x"})
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "empty_answer"
    assert "gem answered with no image" in answer.json()["error"]["message"]


def test_failing_provider_falls_back_to_the_same_model_elsewhere(client: openai.OpenAI, fake: FakeImageApis) -> None:
    fake.push("oai", Reply(status=500, json_body=error_body("The server had an error", type_="server_error")))
    answer = client.images.with_raw_response.generate(model="dall-e-3", prompt="a cat")
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-model"]) == ("oai2", "dall-e-3")
    assert (answer.headers["x-polyroute-attempts"], answer.headers["x-polyroute-fallback"]) == ("2", "true")
    assert (answer.parse().data or [])[0].url == f"{fake.root}/files/image-0.png"
    assert (len(fake.calls_to("oai")), len(fake.calls_to("oai2"))) == (1, 1)


def test_failing_pollinations_falls_back_to_gemini(client: openai.OpenAI, fake: FakeImageApis) -> None:
    fake.push("polli", Reply(status=502, raw_body=b"<html>Bad Gateway</html>", content_type="text/html"))
    answer = client.images.with_raw_response.generate(model="painter", prompt="a cat", response_format="b64_json")
    assert (answer.headers["x-polyroute-provider"], answer.headers["x-polyroute-model"]) == ("gem", DRAWER)
    assert answer.headers["x-polyroute-fallback"] == "true"
    assert (answer.parse().data or [])[0].b64_json == PNG_B64


def test_pollinations_answer_that_is_not_an_image_moves_on(raw: httpx.Client, fake: FakeImageApis) -> None:
    fake.push("polli", Reply(json_body={"error": "queue full"}))
    answer = raw.post("/v1/images/generations", json={"model": "painter", "prompt": "a cat"})
    assert answer.status_code == 200
    assert answer.headers["x-polyroute-provider"] == "gem"


def test_pinned_provider_is_the_only_one_tried(raw: httpx.Client, fake: FakeImageApis) -> None:
    fake.push("oai2", Reply(status=503, json_body=error_body("overloaded", type_="server_error")))
    answer = raw.post("/v1/providers/oai2/images/generations", json={"model": "dall-e-3", "prompt": "a cat"})
    assert answer.status_code == 502
    assert fake.calls_to("oai") == []
    ok = raw.post("/v1/providers/oai2/images/generations", json={"model": "dall-e-3", "prompt": "a cat"})
    assert (ok.status_code, ok.headers["x-polyroute-provider"]) == (200, "oai2")


def test_upstream_refusal_is_returned_at_once(raw: httpx.Client, fake: FakeImageApis) -> None:
    refusal = error_body("Your request was rejected by the safety system.", code="content_policy_violation")
    fake.push("oai", Reply(status=400, json_body=refusal))
    answer = raw.post("/v1/images/generations", json={"model": "dall-e-3", "prompt": "something"})
    assert answer.status_code == 400
    assert "safety system" in answer.json()["error"]["message"]
    assert fake.calls_to("oai2") == []


def test_text_model_is_sent_to_chat(client: openai.OpenAI, fake: FakeImageApis) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="oai/gpt-4o", prompt="a cat")
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("wrong_endpoint", "model")
    assert "POST /v1/chat/completions" in error["message"]
    assert fake.calls == []


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"size": "big"}, "size"),
        ({"size": "1024x0"}, "size"),
        ({"size": "9000x1024"}, "size"),
        ({"size": 1024}, "size"),
        ({"n": 0}, "n"),
        ({"n": 11}, "n"),
        ({"n": "2"}, "n"),
        ({"n": True}, "n"),
        ({"response_format": "png"}, "response_format"),
        ({"response_format": ["url"]}, "response_format"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"model": ""}, "model"),
        ({"quality": 1}, "quality"),
        ({"stream": True}, "stream"),
    ],
)
def test_bad_fields_are_a_400_naming_them(
    raw: httpx.Client, fake: FakeImageApis, change: dict[str, Any], param: str
) -> None:
    answer = raw.post("/v1/images/generations", json={"model": "dall-e-3", "prompt": "a cat", **change})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert error["message"].startswith(f"{param}: ")
    assert fake.calls == []


def test_unknown_model_is_a_404(client: openai.OpenAI, fake: FakeImageApis) -> None:
    with pytest.raises(openai.NotFoundError):
        client.images.generate(model="midjourney-v9", prompt="a cat")


def test_get_lists_the_image_models_only(raw: httpx.Client) -> None:
    answer = raw.get("/v1/images/generations")
    assert answer.status_code == 200
    listed = {entry["id"]: entry for entry in answer.json()["data"]}
    assert set(listed) == {
        "oai/dall-e-3",
        "oai/gpt-image-1",
        "oai2/dall-e-3",
        "polli/flux",
        "gem/gemini-2.5-flash-image",
        "anth/claude-canvas",
        "painter",
    }
    assert all(entry["type"] == "image" and entry["object"] == "model" for entry in listed.values())
    assert (listed["painter"]["alias_for"], listed["gem/gemini-2.5-flash-image"]["owned_by"]) == ("polli/flux", "gem")


def test_listing_and_generation_need_a_key(gateway: RunningGateway) -> None:
    with httpx.Client(base_url=gateway.url) as anonymous:
        assert anonymous.get("/v1/images/generations").status_code == 401
        assert anonymous.post("/v1/images/generations", json={"model": "dall-e-3", "prompt": "x"}).status_code == 401


def test_image_url_at_a_private_address_is_not_fetched_by_default(
    apis: FakeImageApis, tmp_path_factory: pytest.TempPathFactory
) -> None:
    apis.reset()
    apis.push("oai", Reply(json_body={"created": CREATED, "data": [{"url": f"{apis.root}/files/a.png"}]}))
    strict = start_gateway(image_routing(apis), tmp_path_factory.mktemp("images-strict"))
    try:
        sdk = openai.OpenAI(base_url=strict.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=15)
        with sdk, pytest.raises(openai.APIStatusError) as caught:
            sdk.images.generate(model="oai/gpt-image-1", prompt="a cat", response_format="b64_json")
    finally:
        strict.stop()
    error = caught.value.body
    assert caught.value.status_code == 502
    assert isinstance(error, dict)
    assert "oai gave an image URL the gateway could not read" in error["message"]
    assert "127.0.0.1" in error["message"]
    assert apis.files_served == 0


def _log_row(raw: httpx.Client, request_id: str, model: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = raw.get("/api/usage/logs", params={"model": model}).json()["data"]
        found = [row for row in rows if row["id"] == request_id]
        if found:
            return dict(found[0])
        time.sleep(0.05)
    raise AssertionError(f"no request-log row for {request_id}")


def test_one_failed_call_of_several_fails_the_attempt(raw: httpx.Client, fake: FakeImageApis) -> None:
    failure = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    fake.push("gem", Reply(json_body=gemini_answer()), Reply(status=503, json_body=failure))
    body = {"model": "gemini-2.5-flash-image", "prompt": "a cat", "n": 2}
    answer = raw.post("/v1/providers/gem/images/generations", json=body)
    assert answer.status_code == 502
    assert "overloaded" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("provider", "model", "reply", "code", "message"),
    [
        (
            "oai",
            "gpt-image-1",
            Reply(json_body={"created": 1, "data": []}),
            "empty_answer",
            "oai answered with no image",
        ),
        ("oai", "gpt-image-1", Reply(json_body={"data": "x"}), "upstream_protocol_error", "oai the answer has no data"),
        ("oai", "gpt-image-1", Reply(raw_body=b"<html>"), "upstream_protocol_error", "not a JSON object"),
        ("polli", "flux", Reply(raw_body=b"", content_type="image/png"), "empty_answer", "polli sent an empty image"),
        ("gem", DRAWER, Reply(json_body={"promptFeedback": {}}), "upstream_protocol_error", "has no candidates"),
    ],
    ids=["no-images", "bad-data", "not-json", "empty-image", "no-candidates"],
)
def test_unusable_answers_are_upstream_errors(
    raw: httpx.Client, fake: FakeImageApis, provider: str, model: str, reply: Reply, code: str, message: str
) -> None:
    fake.push(provider, reply)
    answer = raw.post(f"/v1/providers/{provider}/images/generations", json={"model": model, "prompt": "a cat"})
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == code
    assert message in error["message"]


def test_provider_without_an_image_api(raw: httpx.Client, fake: FakeImageApis) -> None:
    answer = raw.post("/v1/images/generations", json={"model": "anth/claude-canvas", "prompt": "a cat"})
    assert answer.status_code == 502
    assert answer.json()["error"]["message"] == "anth has no image API (media_api: none)"
    assert fake.calls == []


def test_data_url_answer_is_decoded_for_b64_json(client: openai.OpenAI, fake: FakeImageApis) -> None:
    data_url = f"data:image/png;base64,{PNG_B64}"
    fake.push("oai", Reply(json_body={"created": CREATED, "data": [{"url": data_url}, {"b64_json": PNG_B64}]}))
    images = client.images.generate(model="gpt-image-1", prompt="a cat", response_format="b64_json")
    assert [image.b64_json for image in images.data or []] == [PNG_B64, PNG_B64]
    assert fake.files_served == 0
