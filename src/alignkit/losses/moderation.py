"""The moderation classifier's loss: multi-label harm categories plus a severity level.

    L = sum_c BCE(sigmoid(z_c), y_c)  +  w * CE(softmax(s), severity)

Beaver-Dam (BeaverTails) scores each harm category with its own sigmoid, since a response may serve
several; PKU-SafeRLHF adds a severity (0 safe, 1 minor, 2 moderate, 3 severe), learnt here as a 4-way
softmax head on the same pooled token. ``w`` (``severity_weight``) balances the two heads. The category
terms are summed, not averaged: each category is positive in few responses (on the toy world under 1%),
and a mean over C would shrink their gradient C-fold against the severity head's.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ModerationOutput", "moderation_loss"]


class ModerationOutput(NamedTuple):
    losses: Tensor
    """``(B,)`` per-example loss (carries the gradient)."""
    category_correct: Tensor
    """``(B,)`` detached: fraction of the C category decisions (p > 0.5) that match the labels."""
    flag_correct: Tensor
    """``(B,)`` detached: whether "any category p > 0.5" matches "any category labelled"."""
    severity_correct: Tensor
    """``(B,)`` detached: whether the most likely severity is the labelled one."""

    def metrics(self) -> dict[str, Tensor]:
        return {
            "moderation/category_accuracy": self.category_correct.mean(),
            "moderation/flag_accuracy": self.flag_correct.mean(),
            "moderation/severity_accuracy": self.severity_correct.mean(),
        }


def moderation_loss(
    category_logits: Tensor,
    severity_logits: Tensor,
    category_labels: Tensor,
    severity_labels: Tensor,
    severity_weight: float = 1.0,
    pos_weight: Tensor | None = None,
) -> ModerationOutput:
    """Per-example moderation loss.

    Args:
        category_logits: ``(B, C)`` one logit per harm category.
        severity_logits: ``(B, S)`` one logit per severity level (S = 4: safe, minor, moderate, severe).
        category_labels: ``(B, C)`` 1.0 where the example serves the category, else 0.0.
        severity_labels: ``(B,)`` long, the labelled level in ``[0, S)``.
        severity_weight: ``w`` above.
        pos_weight: ``(C,)`` weight of each category's positive term (``-p_c y_c log sigma(z_c)``), e.g.
            negatives / positives in the training data, so rare categories are not learnt as "never".
    """
    labels = category_labels.to(category_logits.dtype)
    bce = F.binary_cross_entropy_with_logits(
        category_logits, labels, reduction="none", pos_weight=pos_weight
    ).sum(dim=-1)  # (B,)
    ce = F.cross_entropy(
        severity_logits, severity_labels, reduction="none", ignore_index=-100
    )  # (B,); -100: none
    with torch.no_grad():
        predicted = category_logits > 0  # sigmoid > 0.5
        category_correct = (predicted == labels.bool()).float().mean(dim=-1)
        flag_correct = (predicted.any(dim=-1) == labels.bool().any(dim=-1)).float()
        severity_correct = (severity_logits.argmax(dim=-1) == severity_labels).float()
    return ModerationOutput(bce + severity_weight * ce, category_correct, flag_correct, severity_correct)
