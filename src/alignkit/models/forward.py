"""Forward passes that turn a causal LM and a labelled batch into the quantities losses take.

One place for "run the model, score the labelled tokens", shared by SFT-style evaluation, DPO (policy
and reference) and preference evaluation, so the shift/mask convention cannot drift between trainers.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from alignkit.losses.logprobs import label_mask, sequence_logps, token_logps


class ResponseLogps(NamedTuple):
    logps: torch.Tensor
    """(B,) log pi(response | prompt): summed over the labelled (response) tokens."""
    num_tokens: torch.Tensor
    """(B,) how many tokens were summed (for length-normalised losses)."""


def response_logps(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> ResponseLogps:
    """Summed log-probs of each row's labelled tokens (``labels != -100``), in one forward."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, T, V)
    token = token_logps(logits, batch["labels"])  # (B, T)
    mask = label_mask(batch["labels"])  # (B, T)
    return ResponseLogps(sequence_logps(token, mask), mask.sum(dim=-1))


def labelled_token_logps(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """(B, T) log pi(token t | tokens < t) at each labelled position, 0 elsewhere (fp32).

    The per-token form of :func:`response_logps`, for losses that weigh tokens separately (PPO, GRPO).
    ``temperature`` scores under ``softmax(logits / temperature)``, the distribution RL samples from.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits  # (B, T, V)
    return token_logps(tempered(logits, temperature), labels)


def tempered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` (the same tensor when it is 1)."""
    return logits if temperature == 1.0 else logits / temperature
