"""Group-relative policy optimisation: GRPO, Dr. GRPO and RLOO advantages, and the GRPO loss.

A *group* is the G responses sampled for the same prompt. Sequence rewards come either as ``(P, G)``
(one row per prompt) or flat ``(P * G,)`` ordered by prompt, i.e. samples ``[g * G, (g + 1) * G)``
belong to prompt ``g`` (the order ``repeat_interleave`` gives). Advantages come back in the input's shape.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from alignkit.losses.logprobs import masked_mean
from alignkit.losses.ppo import Aggregation, KLEstimator, aggregate, clipped_surrogate, kl_penalty

__all__ = [
    "GRPOAggregation",
    "GRPOLossOutput",
    "dr_grpo_advantages",
    "grpo_advantages",
    "grpo_loss",
    "rloo_advantages",
]


def _grouped(rewards: Tensor, group_size: int | None) -> Tensor:
    """View rewards as ``(P, G)``; needs ``group_size`` for flat input and ``G >= 2``."""
    if rewards.dim() == 2:
        groups = rewards
    elif rewards.dim() == 1 and group_size is not None:
        if rewards.numel() % group_size:
            raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
        groups = rewards.view(-1, group_size)
    else:
        raise ValueError("pass rewards as (P, G), or flat (P * G,) together with group_size")
    if groups.shape[1] < 2:
        raise ValueError(
            f"group-relative advantages need at least 2 samples per prompt, got {groups.shape[1]}"
        )
    return groups


def grpo_advantages(rewards: Tensor, group_size: int | None = None, eps: float = 1e-4) -> Tensor:
    """GRPO outcome advantages (DeepSeekMath, 2402.03300 sec. 4.1.2).

    ``A_i = (R_i - mean_g R) / (std_g R + eps)``, with the unbiased (``G - 1``) standard deviation as
    ``torch.std`` and the reference implementations compute it. A group whose rewards are all equal
    gets ``A = 0``. Shapes: ``(P, G)`` or ``(P * G,)`` in, same shape out (detached).
    """
    groups = _grouped(rewards.detach(), group_size)
    advantages = (groups - groups.mean(dim=1, keepdim=True)) / (groups.std(dim=1, keepdim=True) + eps)
    return advantages.view_as(rewards)


def dr_grpo_advantages(rewards: Tensor, group_size: int | None = None) -> Tensor:
    """Dr. GRPO advantages (Liu et al. 2025, 2503.20783): ``A_i = R_i - mean_g R``, no std division.

    Dividing by the group std up-weights prompts that are nearly always right or wrong; Dr. GRPO drops it
    (and aggregates with a constant normaliser: :func:`grpo_loss` with a fixed ``num_tokens``).
    """
    groups = _grouped(rewards.detach(), group_size)
    return (groups - groups.mean(dim=1, keepdim=True)).view_as(rewards)


def rloo_advantages(rewards: Tensor, group_size: int | None = None) -> Tensor:
    """RLOO advantages (Ahmadian et al. 2024, 2402.14740 eq. 5): ``A_i = R_i - mean_{j != i} R_j``.

    The baseline of each sample is the mean of the *other* G - 1 samples of its prompt, so it is
    independent of the sample itself. Equals ``G / (G - 1) * (R_i - mean_g R)``.
    """
    groups = _grouped(rewards.detach(), group_size)
    size = groups.shape[1]
    leave_one_out = (groups.sum(dim=1, keepdim=True) - groups) / (size - 1)
    return (groups - leave_one_out).view_as(rewards)


GRPOAggregation = Aggregation
"""How :func:`grpo_loss` turns per-token losses into one number (the same choice PPO offers)."""


class GRPOLossOutput(NamedTuple):
    loss: Tensor
    """Scalar (carries the gradient)."""
    kl: Tensor
    """Detached token-mean of the k3 KL to the reference (0 when ``beta = 0`` and no reference given)."""
    clipfrac: Tensor
    """Detached fraction of valid tokens where the clipped term was taken."""

    def metrics(self) -> dict[str, Tensor]:
        return {"policy/loss": self.loss.detach(), "policy/kl": self.kl, "policy/clipfrac": self.clipfrac}


def grpo_loss(
    policy_token_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    old_token_logps: Tensor | None = None,
    ref_token_logps: Tensor | None = None,
    beta: float = 0.04,
    clip_eps: float = 0.2,
    aggregation: GRPOAggregation | str = GRPOAggregation.TOKEN_MEAN,
    num_tokens: float | Tensor | None = None,
) -> GRPOLossOutput:
    """GRPO per-token loss (2402.03300 eq. 3): ``-min(q A, clip(q, 1 ± eps) A) + beta k3(pi || pi_ref)``.

    ``q = pi / pi_old``; ``k3 = pi_ref / pi - log(pi_ref / pi) - 1`` (unbiased, >= 0, eq. 4). With
    ``old_token_logps=None`` the step is on-policy: ``pi_old = pi`` detached, so ``q = 1`` and the
    gradient is the plain policy gradient ``-A grad log pi``.

    Args:
        policy_token_logps: ``(B, T)`` (gradient flows here only).
        advantages: ``(B,)`` sequence advantages broadcast over tokens, or ``(B, T)``.
        mask: ``(B, T)`` valid response tokens.
        old_token_logps, ref_token_logps: ``(B, T)`` or None (reference needed when ``beta != 0``).
        beta: KL coefficient (0.04 in TRL; 0 drops the reference model).
        clip_eps: ``eps``.
        aggregation: see :class:`GRPOAggregation`.
        num_tokens: the token-mean normaliser (``TOKEN_MEAN`` only); ``None`` = valid tokens here.
    """
    mask = mask.bool()
    if old_token_logps is None:
        old_token_logps = policy_token_logps
    ratio = torch.exp(policy_token_logps - old_token_logps.detach())
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)  # (B, 1)
    token_losses, clipped = clipped_surrogate(ratio, advantages.detach().expand_as(ratio), clip_eps)
    kl = torch.zeros_like(token_losses)
    if ref_token_logps is not None:
        kl = kl_penalty(policy_token_logps, ref_token_logps.detach(), KLEstimator.K3)
    elif beta != 0:
        raise ValueError("grpo_loss with beta != 0 needs ref_token_logps")
    token_losses = token_losses + beta * kl
    loss = aggregate(token_losses, mask, aggregation, num_tokens)
    return GRPOLossOutput(
        loss=loss,
        kl=masked_mean(kl.detach(), mask),
        clipfrac=masked_mean(clipped.to(token_losses.dtype), mask),
    )
