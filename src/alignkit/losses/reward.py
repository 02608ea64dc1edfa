"""Reward and cost model losses: Bradley-Terry (InstructGPT) and the Safe RLHF cost model.

Scores come from a linear head on the last non-padding token; these functions see only the ``(B,)``
scores of each pair.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CostOutput", "RewardOutput", "bradley_terry_loss", "cost_loss"]


def _score_regulariser(a: Tensor, b: Tensor, score_reg: float) -> Tensor:
    """``eta * (a^2 + b^2) / 2`` per pair: ``eta`` times the batch mean of all 2B squared scores.

    This is how safe-rlhf / align-anything apply ``regularization`` (``stack([a, b]).square().mean()``).
    """
    return score_reg * 0.5 * (a.square() + b.square())


class RewardOutput(NamedTuple):
    losses: Tensor
    """``(B,)`` per-pair loss (carries the gradient)."""
    chosen_scores: Tensor
    """``(B,)`` detached."""
    rejected_scores: Tensor
    """``(B,)`` detached."""

    def metrics(self) -> dict[str, Tensor]:
        return {
            "rewards/chosen": self.chosen_scores.mean(),
            "rewards/rejected": self.rejected_scores.mean(),
            "rewards/margin": (self.chosen_scores - self.rejected_scores).mean(),
            "rewards/accuracy": (self.chosen_scores > self.rejected_scores).float().mean(),
        }


def bradley_terry_loss(
    chosen_scores: Tensor, rejected_scores: Tensor, score_reg: float = 0.0
) -> RewardOutput:
    """Bradley-Terry pairwise loss (InstructGPT, 2203.02155 eq. 1; Safe RLHF 2310.12773 eq. 5).

    ``L = -log sigma(s_w - s_l) + eta * (s_w^2 + s_l^2) / 2``. The optional ``eta`` term (``score_reg``;
    0.001 in align-anything's rm.yaml) keeps scores near 0 so they stay usable as PPO rewards.

    Args:
        chosen_scores: ``(B,)`` scores of the preferred responses.
        rejected_scores: ``(B,)`` scores of the dispreferred responses.
        score_reg: ``eta``.
    """
    losses = -F.logsigmoid(chosen_scores - rejected_scores)
    if score_reg:
        losses = losses + _score_regulariser(chosen_scores, rejected_scores, score_reg)
    return RewardOutput(losses, chosen_scores.detach(), rejected_scores.detach())


class CostOutput(NamedTuple):
    losses: Tensor
    """``(B,)`` per-pair loss (carries the gradient)."""
    unsafe_costs: Tensor
    """``(B,)`` detached costs of the less safe responses."""
    safe_costs: Tensor
    """``(B,)`` detached costs of the safer responses."""
    sign_correct: Tensor
    """``(2B,)`` detached: 1 where ``sign(c)`` matches the label, 0 where not, NaN where the label is 0."""

    def metrics(self) -> dict[str, Tensor]:
        labelled = ~torch.isnan(self.sign_correct)
        return {
            "cost/unsafe": self.unsafe_costs.mean(),
            "cost/safe": self.safe_costs.mean(),
            "cost/accuracy": (self.unsafe_costs > self.safe_costs).float().mean(),
            "cost/sign_accuracy": self.sign_correct[labelled].sum() / labelled.sum().clamp(min=1),
        }


def cost_loss(
    unsafe_costs: Tensor,
    safe_costs: Tensor,
    unsafe_signs: Tensor,
    safe_signs: Tensor,
    score_reg: float = 0.0,
) -> CostOutput:
    """Safe RLHF cost-model loss (2310.12773 eq. 6), so that ``c > 0`` means unsafe.

    ``L = -log sigma(c_u - c_s) - log sigma(sign_u * c_u) - log sigma(sign_s * c_s)
    + eta * (c_u^2 + c_s^2) / 2`` where ``y_u`` is the less safe response of the pair.

    Sign labels, either form:

    * Safe RLHF: ``+1`` if the response is unsafe, ``-1`` if safe (from ``is_response_i_safe``).
    * Safe RLHF-V graded labels: ``sign = -harmless_rate`` (an integer grade, e.g. -3..3). The grade
      scales the logit, so a clearly harmless answer (rate 3) is pushed to a more negative cost than a
      borderline one; a grade of 0 gives a constant ``log 2`` with no gradient.

    Args:
        unsafe_costs: ``(B,)`` costs of the less safe responses ``c_u``.
        safe_costs: ``(B,)`` costs of the safer responses ``c_s``.
        unsafe_signs: ``(B,)`` labels of ``y_u`` (±1 or graded).
        safe_signs: ``(B,)`` labels of ``y_s`` (±1 or graded).
        score_reg: ``eta``.
    """
    unsafe_signs = unsafe_signs.to(unsafe_costs.dtype)
    safe_signs = safe_signs.to(safe_costs.dtype)
    losses = (
        -F.logsigmoid(unsafe_costs - safe_costs)
        - F.logsigmoid(unsafe_signs * unsafe_costs)
        - F.logsigmoid(safe_signs * safe_costs)
    )
    if score_reg:
        losses = losses + _score_regulariser(unsafe_costs, safe_costs, score_reg)
    costs = torch.cat([unsafe_costs, safe_costs]).detach()
    signs = torch.cat([unsafe_signs, safe_signs]).detach()
    sign_correct = torch.where(
        signs != 0, (signs * costs > 0).to(costs.dtype), torch.full_like(costs, float("nan"))
    )
    return CostOutput(losses, unsafe_costs.detach(), safe_costs.detach(), sign_correct)
