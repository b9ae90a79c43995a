"""Images through ``POST /v1/chat/completions``: an image model answers with a normal ``chat.completion``.

The prompt is the last user message's text. The content is Markdown ``[![prompt](url)](url)`` (what
clients of the seed extract with a regex), or, with ``X-Polyroute-Image-Format: url|b64_json``, a list
holding one OpenAI ``image_url`` content part. A stream is one content chunk, a finish chunk and ``[DONE]``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from typing import Any, Final

import orjson
from starlette.types import Scope, Send

from polyroute.api.attempts import Attempts, Try
from polyroute.api.image_maker import ImageMaker
from polyroute.api.outcome import Outcome
from polyroute.api.pipeline import JSON_HEADERS, SSE_HEADERS, ResponseHeaders
from polyroute.api.responses import send_bytes
from polyroute.api.services import Services
from polyroute.routing.config import ModelType
from polyroute.routing.planner import Plan
from polyroute.wire import images as wire

_HEADER: Final = wire.IMAGE_FORMAT_HEADER.encode()


class ChatImages:
    """Answers one chat completion whose model draws images."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._maker = ImageMaker(services)
        self._headers = ResponseHeaders()

    async def serve(self, scope: Scope, send: Send, payload: dict[str, Any], plan: Plan, outcome: Outcome) -> None:
        """Draw the image through the plan's image deployments (with fallback) and answer in chat's shape.

        Raises:
            InvalidRequestError: a bad header value, ``n`` other than 1, a JSON ``response_format``, no prompt.
            UpstreamError, NoDeploymentAvailableError: as for any chat request.
        """
        form = wire.parse_chat_image_form(_header(scope))
        request = wire.parse_chat_request(payload)
        want = wire.ImageFormat.B64_JSON if form is wire.ChatImageForm.B64_JSON else wire.ImageFormat.URL
        table = self.services.routing.current
        kept = tuple(d for d in plan.deployments if table.model_type(d) is ModelType.IMAGE)
        options = payload.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True

        async def attempt(candidate: Try, hedged_send: Send | None) -> None:
            deployment = candidate.deployment
            drawing = await self._maker.draw(deployment, candidate.credential, request, want)
            outcome.set_usage(drawing.usage)
            outcome.upstream_model = drawing.upstream_model
            answer = wire.ChatImageAnswer(
                completion_id="chatcmpl-" + secrets.token_hex(12),
                created=int(time.time()),
                model=deployment.model,
                content=wire.chat_content(request.prompt, drawing.images[0], form),
                usage=drawing.usage,
            )
            usage_headers = outcome.usage_headers(self.services.prices)
            if outcome.is_stream:
                outcome.mark_first_byte()
                body = wire.render_chat_stream(answer, include_usage=include_usage)
                headers = [*self._headers(deployment, SSE_HEADERS), *usage_headers]
            else:
                body = orjson.dumps(wire.render_chat_completion(answer))
                headers = [*self._headers(deployment, JSON_HEADERS), *usage_headers]
            await send_bytes(hedged_send or send, 200, body, headers)

        await Attempts(self.services, scope, send, outcome, replace(plan, deployments=kept), attempt).run()


def _header(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == _HEADER:
            return str(value.decode("latin-1").strip().lower())
    return None
