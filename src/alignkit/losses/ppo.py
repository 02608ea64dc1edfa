"""PPO for RLHF: GAE, clipped policy and value losses, KL estimators, per-token rewards.

Sources: Schulman et al. 2017 (1707.06347) for the clipped objectives; Schulman et al. 2015
(1506.02438) for GAE; InstructGPT (2203.02155) and Safe RLHF (2310.12773) for the KL-shaped
per-token reward. All ``(B, T)`` tensors cover response positions; ``mask`` is True on real response
tokens and may be right-padded (or have a masked prefix), but must be contiguous within a row.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

import torch
from torch import Tensor

from alignkit.losses.logprobs import masked_mean

__all__ = [
    "Aggregation",
    "GAEOutput",
    "KLEstimator",
    "PolicyLossOutput",
    "ValueLossOutput",
    "aggregate",
    "clipped_surrogate",
    "explained_variance",
    "gae",
    "kl_penalty",
    "per_token_costs",
    "per_token_rewards",
    "ppo_policy_loss",
    "ppo_value_loss",
]


class GAEOutput(NamedTuple):
    advantages: Tensor
    """``(B, T)``, 0 at masked positions."""
    returns: Tensor
    """``(B, T)`` value targets ``A_t + V_t``, 0 at masked positions."""


@torch.no_grad()
def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95) -> GAEOutput:
    """Generalised advantage estimation (1506.02438 eq. 16), one backward sweep over time.

    ``delta_t = r_t + gamma V_{t+1} - V_t`` and ``A_t = delta_t + gamma lam A_{t+1}``, where anything after
    a row's last valid token counts as 0 (the episode ends there: ``V = 0`` and ``A = 0`` beyond it, so
    right padding never leaks into the real tokens). Rewards and values at masked positions are ignored.
    The loop runs over T and is vectorised over the batch. Computed without gradient.

    Args:
        rewards, values, mask: ``(B, T)``.
        gamma: discount (1.0 in RLHF). lam: GAE lambda (0.95).
    """
    mask = mask.bool()
    rewards = torch.where(mask, rewards, torch.zeros_like(rewards))
    values = torch.where(mask, values, torch.zeros_like(values))
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])  # (B,)
    next_advantage = torch.zeros_like(rewards[:, 0])  # (B,)
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantage = torch.where(mask[:, t], delta + gamma * lam * next_advantage, torch.zeros_like(delta))
        advantages[:, t] = advantage
        next_value, next_advantage = values[:, t], advantage
    returns = torch.where(mask, advantages + values, torch.zeros_like(values))
    return GAEOutput(advantages, returns)


def clipped_surrogate(ratio: Tensor, advantages: Tensor, clip_eps: float) -> tuple[Tensor, Tensor]:
    """Per-token clipped surrogate loss ``-min(q A, clip(q, 1 - eps, 1 + eps) A)`` (1707.06347 eq. 7).

    Returns ``(losses, clipped)``, both shaped like ``ratio``; ``clipped`` (detached bool) marks tokens
    where the clipped term was the one taken (the gradient there is 0).
    """
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_eps, 1 + clip_eps)
    return torch.maximum(unclipped, clipped), (clipped > unclipped).detach()


class Aggregation(str, Enum):
    """How per-token losses become one number (PPO's policy and value losses, GRPO's loss)."""

    TOKEN_MEAN = "token_mean"
    """Sum over all valid tokens of the batch / ``num_tokens`` (default: their count). Every token weighs
    the same, so long answers are not diluted (DAPO, 2503.14476; TRL, OpenRLHF); with a constant
    ``num_tokens`` (e.g. ``B * max_completion_length``) this is Dr. GRPO's aggregation."""
    SEQUENCE_MEAN = "sequence_mean"
    """Mean over sequences of each sequence's token mean: safe-rlhf's ``masked_mean`` for PPO, and the
    GRPO paper's eq. 3. A token of a short answer weighs more than one of a long answer."""


def aggregate(
    token_losses: Tensor,
    mask: Tensor,
    aggregation: Aggregation | str = Aggregation.TOKEN_MEAN,
    num_tokens: float | Tensor | None = None,
) -> Tensor:
    """Scalar loss from ``(B, T)`` per-token losses; ``num_tokens`` is the token-mean normaliser only."""
    mask = mask.bool()
    token_losses = torch.where(mask, token_losses, torch.zeros_like(token_losses))
    if Aggregation(aggregation) is Aggregation.SEQUENCE_MEAN:
        return masked_mean(token_losses, mask, dim=1).mean()
    return token_losses.sum() / _normaliser(mask, num_tokens, token_losses)


def _normaliser(mask: Tensor, num_tokens: float | Tensor | None, like: Tensor) -> Tensor:
    count = mask.sum() if num_tokens is None else num_tokens
    return torch.as_tensor(count, dtype=like.dtype, device=like.device).detach().clamp(min=1)


class PolicyLossOutput(NamedTuple):
    loss: Tensor
    """Scalar: token-mean clipped surrogate (carries the gradient)."""
    approx_kl: Tensor
    """Detached ``mean(½ (log q)^2)`` (k2 estimator of KL(pi_old || pi))."""
    approx_kl_k3: Tensor
    """Detached ``mean((q - 1) - log q)`` (k3, unbiased)."""
    clipfrac: Tensor
    """Detached fraction of valid tokens where the clipped term was taken."""

    def metrics(self) -> dict[str, Tensor]:
        return {
            "policy/loss": self.loss.detach(),
            "policy/approx_kl": self.approx_kl,
            "policy/approx_kl_k3": self.approx_kl_k3,
            "policy/clipfrac": self.clipfrac,
        }


def ppo_policy_loss(
    policy_token_logps: Tensor,
    old_token_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 0.2,
    num_tokens: float | Tensor | None = None,
    aggregation: Aggregation | str = Aggregation.TOKEN_MEAN,
) -> PolicyLossOutput:
    """PPO clipped policy loss, ``L = -sum_valid min(q A, clip(q, 1 ± eps) A) / N``, ``q = pi / pi_old``.

    That is the token mean (TRL, OpenRLHF); ``aggregation='sequence_mean'`` averages each sequence's
    token mean instead, as safe-rlhf does (:class:`Aggregation`).

    Args:
        policy_token_logps: ``(B, T)`` current policy log-probs (gradient flows here only).
        old_token_logps: ``(B, T)`` log-probs of the policy that sampled the rollout (detached here).
        advantages: ``(B, T)`` (or ``(B, 1)`` to broadcast), detached here.
        mask: ``(B, T)``.
        clip_eps: ``eps`` (0.2).
        num_tokens: normaliser ``N``; ``None`` = valid tokens in this batch. Pass the accumulated batch's
            count to make micro-batching exact (see :func:`sft_loss`).
    """
    mask = mask.bool()
    log_ratio = policy_token_logps - old_token_logps.detach()
    ratio = torch.exp(log_ratio)
    losses, clipped = clipped_surrogate(ratio, advantages.detach().expand_as(ratio), clip_eps)
    loss = aggregate(losses, mask, aggregation, num_tokens)
    log_ratio, ratio = log_ratio.detach(), ratio.detach()
    return PolicyLossOutput(
        loss=loss,
        approx_kl=masked_mean(0.5 * log_ratio.square(), mask),
        approx_kl_k3=masked_mean((ratio - 1) - log_ratio, mask),
        clipfrac=masked_mean(clipped.to(losses.dtype), mask),
    )


class ValueLossOutput(NamedTuple):
    loss: Tensor
    """Scalar: ``½`` token-mean of the clipped squared error (carries the gradient)."""
    clipfrac: Tensor
    """Detached fraction of valid tokens where the clipped error was the larger one."""

    def metrics(self) -> dict[str, Tensor]:
        return {"value/loss": self.loss.detach(), "value/clipfrac": self.clipfrac}


def ppo_value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    clip_range: float = 5.0,
    num_tokens: float | Tensor | None = None,
    aggregation: Aggregation | str = Aggregation.TOKEN_MEAN,
) -> ValueLossOutput:
    """Clipped value loss, ``L = ½ sum_valid max((V - R)^2, (clip(V, V_old ± eps_v) - R)^2) / N``.

    Args:
        values: ``(B, T)`` current critic values (gradient flows here only).
        old_values: ``(B, T)`` values at rollout time. returns: ``(B, T)`` GAE returns. Both detached.
        mask: ``(B, T)``. clip_range: ``eps_v`` (5.0). num_tokens, aggregation: as in :func:`ppo_policy_loss`.
    """
    mask = mask.bool()
    old_values, returns = old_values.detach(), returns.detach()
    clipped_values = old_values + (values - old_values).clamp(-clip_range, clip_range)
    unclipped_error = (values - returns).square()
    clipped_error = (clipped_values - returns).square()
    losses = 0.5 * torch.maximum(unclipped_error, clipped_error)
    loss = aggregate(losses, mask, aggregation, num_tokens)
    clipfrac = masked_mean((clipped_error > unclipped_error).to(losses.dtype).detach(), mask)
    return ValueLossOutput(loss, clipfrac)


class KLEstimator(str, Enum):
    """Schulman's estimators of KL(pi || pi_ref) from samples of pi (http://joschu.net/blog/kl-approx.html)."""

    K1 = "k1"
    """``log pi - log pi_ref``: unbiased, high variance, can be negative."""
    K2 = "k2"
    """``½ (log pi - log pi_ref)^2``: biased, low variance, >= 0."""
    K3 = "k3"
    """``exp(-(log pi - log pi_ref)) - 1 + (log pi - log pi_ref)``: unbiased, low variance, >= 0."""


def kl_penalty(
    policy_token_logps: Tensor, ref_token_logps: Tensor, estimator: KLEstimator | str = KLEstimator.K1
) -> Tensor:
    """Per-token KL estimate, ``(B, T)`` -> ``(B, T)``; mask it yourself. ``estimator``: k1, k2 or k3."""
    k1 = policy_token_logps - ref_token_logps
    estimator = KLEstimator(estimator)
    if estimator is KLEstimator.K1:
        return k1
    if estimator is KLEstimator.K2:
        return 0.5 * k1.square()
    return torch.exp(-k1) - 1 + k1


def _last_token(mask: Tensor) -> Tensor:
    """``(B, T)`` bool, True only at each row's last valid position (none for an empty row)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(dim=1).values  # (B,)
    return positions == last.unsqueeze(1)


def per_token_rewards(
    score: Tensor, kl: Tensor, mask: Tensor, beta: float = 0.02, clip: float = 50.0
) -> Tensor:
    """KL-shaped per-token reward (InstructGPT eq. 2): ``r_t = -beta kl_t + 1[t = last] clip(s, ±clip)``.

    The sequence score goes on each row's *true* last response token (the last True in ``mask``), not
    the last padded column. Only the score is clipped to ``±clip`` before it is added (safe-rlhf clips
    the whole shaped per-token reward instead; with scores inside ``±clip`` and small KL they agree).

    Args:
        score: ``(B,)`` reward-model score of each response.
        kl: ``(B, T)`` per-token ``log pi_old - log pi_ref`` (or another :func:`kl_penalty` estimate).
        mask: ``(B, T)``. beta: KL coefficient. clip: score clip.

    Returns:
        ``(B, T)`` rewards, 0 at masked positions.
    """
    mask = mask.bool()
    score = score.clamp(-clip, clip).unsqueeze(1).to(kl.dtype)  # (B, 1)
    rewards = -beta * kl + torch.where(_last_token(mask), score, torch.zeros_like(kl))
    return torch.where(mask, rewards, torch.zeros_like(rewards)).detach()


def per_token_costs(cost: Tensor, kl: Tensor, mask: Tensor, beta: float = 0.01, clip: float = 50.0) -> Tensor:
    """Safe RLHF per-token cost: ``c_t = +beta kl_t + 1[t = last] clip(C, ±clip)``, ``(B, T)``.

    The KL enters with the opposite sign to :func:`per_token_rewards`, since a cost is minimised.
    """
    return per_token_rewards(cost, -kl, mask, beta=beta, clip=clip)


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """``1 - Var[R - V] / Var[R]`` over valid tokens (detached scalar); NaN when ``Var[R] = 0``.

    1 is a perfect critic, 0 no better than a constant, negative worse than a constant.
    """
    mask = mask.bool()
    values, returns = values.detach(), returns.detach()

    def var(x: Tensor) -> Tensor:
        return masked_mean((x - masked_mean(x, mask)).square(), mask)

    var_returns = var(returns)
    if var_returns == 0:
        return torch.full_like(var_returns, float("nan"))
    return 1 - var(returns - values) / var_returns
