"""Completions -> OpenAI response bodies: stop sequences, token counts, logprobs, usage, stream chunks.

Stop sequences are applied after generation (the Generator protocol samples to its own end of turn or
``max_tokens``): the text is cut before the first stop sequence, as OpenAI returns it, and when the
backend reports its tokens, the token count and the logprobs keep the tokens that produced the text up
to and including the stop sequence. A response that stopped by itself ends in its end-of-turn token; it
counts in ``usage`` (it was generated) but has no entry in ``logprobs.content`` (it carries no text).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alignkit.generate.base import Completion


@dataclass(frozen=True)
class Answer:
    """One choice, ready to send."""

    text: str
    finish_reason: str
    num_tokens: int
    """Completion tokens generated for it (``usage.completion_tokens`` adds these)."""
    tokens: tuple[str, ...] | None = None
    """The text tokens, one string each (None: the backend reported none)."""
    logprobs: tuple[float, ...] | None = None


def first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """Where the earliest stop sequence starts in ``text``, and which one (None: none occurs)."""
    found = [(text.find(s), s) for s in stops if s in text]
    return min(found, key=lambda f: f[0]) if found else None


def tokens_covering(ids: Sequence[int], tokenizer: Any, length: int) -> int:
    """The fewest leading tokens whose decoded text (stripped on the left, as responses are) holds
    ``length`` characters."""
    for k in range(1, len(ids) + 1):
        if len(tokenizer.decode(list(ids[:k]), skip_special_tokens=True).lstrip()) >= length:
            return k
    return len(ids)


def answer(completion: Completion, stops: Sequence[str], tokenizer: Any = None) -> Answer:
    """A Completion as a choice: cut at the first stop sequence; tokens and logprobs to match."""
    text, reason, lps = completion.text, completion.finish_reason, completion.logprobs
    stop = first_stop(text, stops)
    if completion.token_ids is None:  # no tokens from the backend: count the text's (0 without a tokenizer)
        counted = text if stop is None else text[: stop[0]] + stop[1]
        if stop is not None:
            text, reason = text[: stop[0]], "stop"
        num_tokens = len(tokenizer.encode(counted, add_special_tokens=False)) if tokenizer is not None else 0
        logprobs = tuple(lps) if lps is not None and stop is None else None
        return Answer(text, reason, num_tokens, None, logprobs)
    ids = list(completion.token_ids)
    # the end-of-turn token closes the response: generated, but no text of its own
    text_ids = ids[:-1] if reason == "stop" and ids else ids
    if stop is not None:
        at, sequence = stop
        text, reason = text[:at], "stop"
        if tokenizer is not None:
            ids = text_ids = text_ids[: tokens_covering(text_ids, tokenizer, at + len(sequence))]
    tokens = tuple(tokenizer.decode([i]) for i in text_ids) if tokenizer is not None else None
    logprobs = tuple(lps[: len(text_ids)]) if lps is not None else None
    return Answer(text, reason, len(ids), tokens, logprobs)


def chat_logprobs(a: Answer) -> dict[str, Any]:
    """A chat choice's ``logprobs`` object: ``{"content": [{"token", "logprob", "bytes", "top_logprobs"}]}``."""
    if a.logprobs is None:
        return {"content": None}
    tokens = a.tokens or tuple("" for _ in a.logprobs)
    return {
        "content": [
            {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8")), "top_logprobs": []}
            for t, lp in zip(tokens, a.logprobs, strict=True)
        ]
    }


def text_logprobs(a: Answer) -> dict[str, Any] | None:
    """A text completion's legacy ``logprobs`` object (tokens, token_logprobs, text_offset)."""
    if a.logprobs is None:
        return None
    tokens = a.tokens or tuple("" for _ in a.logprobs)
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return {
        "tokens": list(tokens),
        "token_logprobs": list(a.logprobs),
        "top_logprobs": None,
        "text_offset": offsets,
    }


def usage(prompt_tokens: int, answers: Sequence[Answer]) -> dict[str, int]:
    completion_tokens = sum(a.num_tokens for a in answers)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def chat_body(model: str, answers: Sequence[Answer], prompt_tokens: int, logprobs: bool) -> dict[str, Any]:
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": a.text},
                "logprobs": chat_logprobs(a) if logprobs else None,
                "finish_reason": a.finish_reason,
            }
            for i, a in enumerate(answers)
        ],
        "usage": usage(prompt_tokens, answers),
    }


def text_body(model: str, answers: Sequence[Answer], prompt_tokens: int, logprobs: bool) -> dict[str, Any]:
    return {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": i,
                "text": a.text,
                "logprobs": text_logprobs(a) if logprobs else None,
                "finish_reason": a.finish_reason,
            }
            for i, a in enumerate(answers)
        ],
        "usage": usage(prompt_tokens, answers),
    }


def chat_chunks(body: dict[str, Any], answers: Sequence[Answer], include_usage: bool) -> list[dict[str, Any]]:
    """A finished chat completion as the ``chat.completion.chunk`` events a stream sends: per choice a
    role delta, one delta per token (the whole text when the tokens are unknown), a finish delta; then
    the usage chunk (empty ``choices``) when asked for. The Generator protocol returns whole answers, so
    the chunks follow generation rather than accompany it."""
    head = {k: body[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}

    def chunk(
        index: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None
    ) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return {**head, "choices": [choice], **({"usage": None} if include_usage else {})}

    events = []
    for i, (a, choice) in enumerate(zip(answers, body["choices"], strict=True)):
        events.append(chunk(i, {"role": "assistant", "content": ""}))
        pieces = token_pieces(a)
        content = (choice["logprobs"] or {}).get("content")
        for k, piece in enumerate(pieces):
            entry = {"content": [content[k]]} if content and len(content) == len(pieces) else None
            events.append(chunk(i, {"content": piece}, logprobs=entry))
        events.append(chunk(i, {}, a.finish_reason))
    if include_usage:
        events.append({**head, "choices": [], "usage": body["usage"]})
    return events


def token_pieces(a: Answer) -> list[str]:
    """The text split at token boundaries, joining back to exactly ``a.text`` (responses are stripped on
    the left); the whole text as one piece when the tokens do not decode to it one by one."""
    if not a.tokens:
        return [a.text]
    pieces = list(a.tokens)
    for k, piece in enumerate(pieces):  # the leading whitespace the stripped text does not have
        pieces[k] = piece.lstrip()
        if pieces[k]:
            break
    return pieces if "".join(pieces) == a.text else [a.text]


def text_chunks(body: dict[str, Any], answers: Sequence[Answer], include_usage: bool) -> list[dict[str, Any]]:
    """A finished text completion as stream events: the text, then the finish, per choice; then usage."""
    head = {k: body[k] for k in ("id", "created", "model")} | {"object": "text_completion"}
    events = []
    for i, a in enumerate(answers):
        events.append(
            {**head, "choices": [{"index": i, "text": a.text, "logprobs": None, "finish_reason": None}]}
        )
        events.append(
            {
                **head,
                "choices": [{"index": i, "text": "", "logprobs": None, "finish_reason": a.finish_reason}],
            }
        )
    if include_usage:
        events.append({**head, "choices": [], "usage": body["usage"]})
    return events
