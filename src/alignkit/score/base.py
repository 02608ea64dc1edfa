"""The Scorer protocol: (prompt, response) pairs in, one number per pair out.

Backends: a trained reward or cost model (``ScoreModelScorer``) and any Python function named by a
``module:function`` path (``FunctionScorer``: rule rewards, the toy world's oracles). PPO, GRPO,
best-of-n and evaluation take any Scorer. Prompts are conversations (``Message`` records or
``{"role", "content"}`` dicts); a response is the assistant message(s) that continue its prompt.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from alignkit.data.reasoning import split_reasoning
from alignkit.data.render import chat_dicts


@runtime_checkable
class Scorer(Protocol):
    def score(self, prompts: Sequence[Sequence[Any]], responses: Sequence[Sequence[Any]]) -> torch.Tensor:
        """``(N,)`` float32 scores on the CPU, one per (prompt, response) pair, computed in batches."""
        ...


def prompt_images(messages: Sequence[Any]) -> list[str]:
    """The image paths (or URLs) of a conversation's user messages, in order; [] for a text prompt."""
    paths = []
    for message in chat_dicts(messages):
        content = message["content"]
        if message["role"] != "user" or isinstance(content, str):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image":
                path = part.get("path") or part.get("url") or part.get("image")
                if isinstance(path, str):
                    paths.append(path)
    return paths


def message_text(messages: Sequence[Any], role: str | None = None) -> str:
    """The text of the last message (of ``role``, when given); multimodal parts contribute their text."""
    dicts = [m for m in chat_dicts(messages) if role is None or m["role"] == role]
    if not dicts:
        return ""
    content = dicts[-1]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if isinstance(part, dict) and part.get("text"))


def as_response(text: str) -> list[dict[str, str]]:
    """A generated text as the one-message response Scorers take."""
    return [{"role": "assistant", "content": text}]


def import_function(path: str) -> Callable[..., Any]:
    """``"package.module:function"`` (or ``package.module.function``) -> the function, with clear errors."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"scorer function {path!r}: write it as 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"scorer function {path!r}: cannot import module {module_name!r} ({err})") from err
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"scorer function {path!r}: module {module_name!r} has no function {attr!r}")
    return fn


class FunctionScorer:
    """A Python function as a Scorer: rule-based rewards, oracles, regex checks.

    The function gets plain text: the prompt's last user message and the response's last assistant
    message. ``batched=False`` calls ``fn(prompt, response) -> float`` per pair; ``batched=True`` calls
    ``fn(prompts, responses) -> list[float]`` once per batch (e.g. to call a model or a service).
    A function that declares a ``reasoning`` and/or ``answer`` parameter also gets the response split by
    ``split_reasoning`` (``<think>`` block and answer; lists when batched): a correctness rule reads the
    answer, a chain-of-thought monitor the reasoning. One that declares ``images`` also gets the prompt's
    picture paths (``prompt_images``; a list per pair), so a rule named by a config string can judge an
    answer about a picture (``alignkit.toyworld.visual_scoring:correct``).
    """

    def __init__(self, fn: Callable[..., Any], *, batched: bool = False, batch_size: int = 256) -> None:
        self.fn = fn
        self.batched = batched
        self.batch_size = batch_size
        self.name = getattr(fn, "__qualname__", repr(fn))
        self.split_parts = [p for p in ("reasoning", "answer") if p in _parameters(fn)]
        self.wants_images = "images" in _parameters(fn)

    def _split(self, prompts: Sequence[Sequence[Any]], responses: Sequence[str]) -> dict[str, Any]:
        parts = [split_reasoning(r) for r in responses]
        by_name = {"reasoning": [p[0] for p in parts], "answer": [p[1] for p in parts]}
        extra = {name: by_name[name] for name in self.split_parts}
        if self.wants_images:
            extra["images"] = [prompt_images(p) for p in prompts]
        return extra

    @classmethod
    def from_path(cls, path: str, *, batched: bool = False, batch_size: int = 256) -> FunctionScorer:
        return cls(import_function(path), batched=batched, batch_size=batch_size)

    def score(self, prompts: Sequence[Sequence[Any]], responses: Sequence[Sequence[Any]]) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        prompt_texts = [message_text(p, "user") for p in prompts]
        response_texts = [message_text(r, "assistant") for r in responses]
        scores: list[float] = []
        for start in range(0, len(prompt_texts), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            split = self._split(prompts[chunk], response_texts[chunk])
            if self.batched:
                out = list(self.fn(prompt_texts[chunk], response_texts[chunk], **split))
                if len(out) != len(prompt_texts[chunk]):
                    raise ValueError(
                        f"scorer {self.name} returned {len(out)} scores for {len(prompt_texts[chunk])} pairs"
                    )
            else:
                out = [
                    self.fn(p, r, **{k: v[i] for k, v in split.items()})
                    for i, (p, r) in enumerate(zip(prompt_texts[chunk], response_texts[chunk], strict=True))
                ]
            scores += [self._number(value) for value in out]
        return torch.tensor(scores, dtype=torch.float32)

    def _number(self, value: Any) -> float:
        try:
            return float(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"scorer {self.name} returned {value!r}; it must return a number") from err


def _parameters(fn: Callable[..., Any]) -> set[str]:
    import inspect

    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        return set()


class AnswerOnly:
    """Scores the answer alone: each response's ``<think>`` block is removed before the wrapped Scorer sees
    it. For reward models and rules trained or written on final answers, scoring a reasoning model."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    def score(self, prompts: Sequence[Sequence[Any]], responses: Sequence[Sequence[Any]]) -> torch.Tensor:
        answers = [as_response(split_reasoning(message_text(r, "assistant"))[1]) for r in responses]
        return self.scorer.score(prompts, answers)

    def __getattr__(self, name: str) -> Any:  # kind, convention ... of the wrapped scorer
        return getattr(self.scorer, name)


def looks_like_function(path: str) -> bool:
    """``module:function`` names a function; anything that exists on disk or has no colon is a model."""
    return ":" in path and not Path(path).exists() and "://" not in path


def build_scorer(
    path: str,
    *,
    batched: bool = False,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    max_length: int = 512,
) -> Scorer:
    """A Scorer from a config string: a ``module:function`` path or a saved reward/cost model folder."""
    if looks_like_function(path):
        return FunctionScorer.from_path(path, batched=batched, batch_size=max(batch_size, 1))
    from alignkit.models.loading import resolve_path
    from alignkit.score.score_model import ScoreModelScorer

    return ScoreModelScorer(resolve_path(path), device=device, batch_size=batch_size, max_length=max_length)
