"""Supervised fine-tuning: token-level negative log-likelihood on assistant tokens."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from alignkit.losses.logprobs import sequence_logps

__all__ = ["SFTOutput", "sft_loss"]


class SFTOutput(NamedTuple):
    loss: Tensor
    """Scalar: summed NLL of this micro-batch divided by ``num_tokens`` (carries the gradient)."""
    nll: Tensor
    """``(B,)`` summed NLL of each example (carries the gradient)."""
    num_tokens: Tensor
    """Scalar, detached: the normaliser that was used."""

    def metrics(self) -> dict[str, Tensor]:
        return {"loss/sft": self.loss.detach(), "sft/num_tokens": self.num_tokens}


def sft_loss(policy_token_logps: Tensor, mask: Tensor, num_tokens: float | Tensor | None = None) -> SFTOutput:
    """Token-level NLL, ``L = -sum_t m_t log pi(y_t | x, y_<t) / N``.

    Why an explicit normaliser ``N``: with gradient accumulation the optimizer sees the sum of the
    micro-batch losses. If each micro-batch divided by its *own* token count, a micro-batch with few
    tokens would weigh as much as one with many, and 4 micro-batches of 2 would not equal 1 batch of 8.
    Passing ``N`` = the token count of the *whole accumulated batch* (summed across micro-batches and,
    under data parallelism, ranks) makes the summed micro-batch losses exactly the loss of the big batch.
    ``None`` uses this micro-batch's own count (right when there is no accumulation).

    Args:
        policy_token_logps: ``(B, T)`` per-token log-probs of the targets (:func:`token_logps`).
        mask: ``(B, T)`` True on tokens that carry loss (assistant tokens).
        num_tokens: the normaliser ``N``; clamped to at least 1 so an all-masked batch gives 0.
    """
    nll = -sequence_logps(policy_token_logps, mask)  # (B,)
    if num_tokens is None:
        num_tokens = mask.sum()
    normaliser = torch.as_tensor(num_tokens, dtype=nll.dtype, device=nll.device).detach().clamp(min=1)
    return SFTOutput(loss=nll.sum() / normaliser, nll=nll, num_tokens=normaliser)
