"""The OpenAI-compatible routes: models, chat and text completions, moderations, health.

A request is read and checked here (model name, message roles, prompt length against the context
window), handed to the model's ``Batcher``, and its completions turned into OpenAI's bodies by
``responses``. A text completion's prompt is sent as one user turn: alignkit's Generators are chat
models and render every prompt with the model's chat template.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from alignkit.generate.base import SamplingConfig
from alignkit.serve import responses
from alignkit.serve.errors import APIError, logger, parse_body
from alignkit.serve.images import image_block
from alignkit.serve.schemas import ChatCompletionRequest, ChatMessage, CompletionRequest, ModerationRequest

open_routes = APIRouter()
"""Routes without authentication."""
v1 = APIRouter()
"""The OpenAI API: ``create_app`` puts bearer authentication in front of every route."""


def served(request: Request, name: str) -> Any:
    model = request.app.state.model
    if name != model.name:
        raise APIError(
            404,
            f"The model `{name}` does not exist. This server serves `{model.name}` (GET /v1/models).",
            param="model",
            code="model_not_found",
        )
    return model


def chat_messages(messages: Sequence[ChatMessage], accepts_images: bool = False) -> list[dict[str, Any]]:
    """OpenAI messages -> alignkit chat dicts: ``developer`` is the system turn; text parts joined, or,
    for a vision-language model, kept as blocks beside its pictures (``images.image_block``)."""
    out = []
    for i, message in enumerate(messages):
        content: Any = message.content
        if isinstance(content, list):
            kinds = {part.get("type") for part in content}
            if kinds - {"text", "image_url"}:
                raise APIError(
                    400,
                    f"messages[{i}].content: only text and image_url parts are supported, got {sorted(map(str, kinds))}",
                    param=f"messages[{i}].content",
                )
            if "image_url" in kinds:
                content = [
                    image_block(part, f"messages[{i}].content[{j}]", accepts_images)
                    if part.get("type") == "image_url"
                    else {"type": "text", "text": str(part.get("text", ""))}
                    for j, part in enumerate(content)
                ]
            else:
                content = "".join(str(part.get("text", "")) for part in content)
        out.append({"role": "system" if message.role == "developer" else message.role, "content": content})
    if out[-1]["role"] == "assistant":
        raise APIError(400, "messages: the last message must not be the assistant's", param="messages")
    return out


def prompt_tokens(model: Any, conversation: list[dict[str, Any]]) -> int:
    """How many tokens the rendered prompt takes, a picture's tokens included (0 without a tokenizer); a
    conversation the chat template refuses is a 400."""
    if model.tokenizer is None:
        return 0
    from alignkit.data.render import ChatTemplateError, render_prompt_inputs

    try:
        return len(render_prompt_inputs(model.renderer or model.tokenizer, conversation)[0])
    except (ChatTemplateError, ValueError) as error:
        raise APIError(400, f"messages: {error}", param="messages") from error


def completion_budget(model: Any, used: int, asked: int | None, default: int) -> int:
    """``max_tokens`` for the call: what was asked for, if the context holds it with the prompt
    (else a 400 ``context_length_exceeded``); unasked, the default capped by what the context leaves."""
    limit = model.max_model_len
    if limit and (used >= limit or (asked is not None and used + asked > limit)):
        wanted = used + (asked or 1)
        raise APIError(
            400,
            f"This model's maximum context length is {limit} tokens. However, you requested {wanted} tokens "
            f"({used} in the messages, {asked or 1} in the completion). Please reduce the length of the "
            "messages or completion.",
            param="messages",
            code="context_length_exceeded",
        )
    if asked is not None:
        return asked
    return min(default, limit - used) if limit else default


async def complete(
    request: Request, body: Any, prompts: list[list[dict[str, Any]]], logprobs: bool
) -> tuple[Any, list[responses.Answer], int]:
    """Generate for ``prompts`` through the batcher: (model, answers, prompt tokens)."""
    model = served(request, body.model)
    state = request.app.state
    counts = [prompt_tokens(model, p) for p in prompts]
    budget = min(
        completion_budget(model, used, body.completion_limit, state.default_max_tokens) for used in counts
    )
    sampling = SamplingConfig(max_new_tokens=budget, temperature=body.temperature, top_p=body.top_p, n=body.n)
    try:
        completions = await state.batcher.generate(prompts, sampling, logprobs=logprobs, seed=body.seed)
    except Exception as error:  # answered as a 500 here, so the connection stays usable
        logger.exception("generation failed")
        raise APIError(500, f"generation failed: {type(error).__name__}: {error}") from error
    answers = [responses.answer(c, body.stops, model.tokenizer) for c in completions]
    return model, answers, sum(counts)


def event_stream(events: list[dict[str, Any]]) -> StreamingResponse:
    async def sse() -> AsyncIterator[str]:
        for event in events:
            yield f"data: {json.dumps(event)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@open_routes.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@v1.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": [model_card(request.app.state.model)]}


@v1.get("/v1/models/{name:path}")
async def retrieve_model(request: Request, name: str) -> dict[str, Any]:
    return model_card(served(request, name))


def model_card(model: Any) -> dict[str, Any]:
    card = {"id": model.name, "object": "model", "created": model.created, "owned_by": "alignkit"}
    return card | ({"max_model_len": model.max_model_len} if model.max_model_len else {})


@v1.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Any:
    body: ChatCompletionRequest = await parse_body(
        request, ChatCompletionRequest, request.app.state.max_body_bytes
    )
    conversation = chat_messages(body.messages, served(request, body.model).accepts_images)
    model, answers, used = await complete(request, body, [conversation], body.logprobs)
    result = responses.chat_body(model.name, answers, used, body.logprobs)
    if body.stream:
        return event_stream(responses.chat_chunks(result, answers, body.include_usage))
    return result


@v1.post("/v1/completions")
async def completions(request: Request) -> Any:
    body: CompletionRequest = await parse_body(request, CompletionRequest, request.app.state.max_body_bytes)
    prompts = [[{"role": "user", "content": text}] for text in body.prompts]
    logprobs = body.logprobs is not None
    model, answers, used = await complete(request, body, prompts, logprobs)
    result = responses.text_body(model.name, answers, used, logprobs)
    if body.stream:
        return event_stream(responses.text_chunks(result, answers, body.include_usage))
    return result


@v1.post("/v1/moderations")
async def moderations(request: Request) -> dict[str, Any]:
    state = request.app.state
    if state.moderator is None:
        raise APIError(
            404, "this server has no moderator (serve config key 'moderator')", code="not_configured"
        )
    body: ModerationRequest = await parse_body(request, ModerationRequest, state.max_body_bytes)
    prompts = [[{"role": "user", "content": text}] for text in body.inputs]
    try:
        verdicts = await run_in_threadpool(state.moderator.moderate, prompts)
    except Exception as error:
        logger.exception("moderation failed")
        raise APIError(500, f"moderation failed: {type(error).__name__}: {error}") from error
    categories = list(getattr(state.moderator, "categories", None) or state.moderation_categories)
    return {
        "id": responses.new_id("modr"),
        "model": body.model or state.moderator_name,
        "created": int(time.time()),
        "results": [moderation_result(v, categories) for v in verdicts],
    }


def moderation_result(verdict: Any, categories: Sequence[str]) -> dict[str, Any]:
    """A ``SafetyVerdict`` in OpenAI's result shape (flagged, categories, category_scores), plus the
    verdict's ``severity`` (1-3) and whether it could be read at all (``undecided``)."""
    names = list(categories) + [c for c in verdict.categories if c not in categories]
    score = verdict.score if verdict.score is not None else 1.0
    return {
        "flagged": bool(verdict.flagged),
        "categories": {c: c in verdict.categories for c in names},
        "category_scores": {c: (score if c in verdict.categories else 0.0) for c in names},
        "severity": verdict.severity,
        "undecided": verdict.flagged is None,
    }
