"""The token-level pieces of local sampling, pure functions over token lists and logits: which tokens end a
response, left padding, cutting at the first stop, the ``SamplingConfig`` logits filter, and the
inverse-CDF draw. ``generate/hf.py``'s KV-cache loop is built from them (kept apart so each is read and
tested on its own)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from alignkit.data.render import end_of_turn_ids
from alignkit.generate.base import SamplingConfig


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Tokens that end a response: the chat template's end-of-turn token and EOS (``end_of_turn_ids``),
    plus any the model's generation config lists (Llama 3.1's ``<|eom_id|>``, Gemma's ``<end_of_turn>``)."""
    ids = set(end_of_turn_ids(tokenizer)) if getattr(tokenizer, "chat_template", None) else set()
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if not ids:
        raise ValueError("the tokenizer has no eos_token and the model's generation_config names none")
    return sorted(ids)


def pad_left(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """``(B, T)`` long tensor, each row right-aligned (padding in front)."""
    width = max((len(r) for r in rows), default=0)
    return torch.tensor([[value] * (width - len(r)) + list(r) for r in rows], dtype=torch.long)


def cut_at_stop(tokens: Sequence[int], stops: set[int]) -> tuple[list[int], bool]:
    """The tokens up to and including the first stop token, and whether one was found."""
    for i, token in enumerate(tokens):
        if token in stops:
            return list(tokens[: i + 1]), True
    return list(tokens), False


def filter_logits(logits: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """Temperature, then top-k, then top-p, each as the ``transformers`` logits warper of that name does it."""
    if sampling.temperature != 1.0:
        logits = logits / sampling.temperature
    if sampling.top_k > 0:
        k = min(sampling.top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, sorted_index = torch.sort(logits, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= 1 - sampling.top_p
        remove[..., -1:] = False  # always keep the most likely token
        logits = logits.masked_fill(remove.scatter(-1, sorted_index, remove), float("-inf"))
    return logits


def sample_tokens(logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """``(B,)`` tokens drawn from ``softmax(logits)`` by inverse CDF, one uniform in [0, 1) per row."""
    cdf = logits.softmax(dim=-1).double().cumsum(dim=-1)
    targets = (uniforms.double() * cdf[:, -1]).unsqueeze(1)
    picked = torch.searchsorted(cdf, targets, right=True).squeeze(1)
    return picked.clamp_(max=logits.shape[-1] - 1)
