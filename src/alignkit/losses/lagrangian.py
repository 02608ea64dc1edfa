"""Safe RLHF's Lagrange multiplier (2310.12773 sec. 3.3, eqs. 9-10) as pure functions.

The constrained problem ``max_pi J_R(pi) s.t. J_C(pi) <= d`` becomes ``min_pi max_{lambda >= 0}
-J_R + lambda (J_C - d)``. ``lambda = exp(log_lambda)`` stays positive; ``log_lambda`` takes a gradient
ascent step on ``lambda (J_C - threshold)``, so lambda grows while the policy is, on average, unsafe.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from torch import Tensor

__all__ = ["LagrangeUpdate", "combined_advantages", "lagrange_update"]


class LagrangeUpdate(NamedTuple):
    log_lambda: float
    """The updated ``ln lambda`` (keep this in the trainer state)."""
    lambda_: float
    """``exp(log_lambda)``: the multiplier to use in this step's actor loss."""


def lagrange_update(
    log_lambda: float,
    episode_cost: float,
    threshold: float = 0.0,
    lr: float = 0.1,
    lambda_max: float | None = 5.0,
) -> LagrangeUpdate:
    """One SGD step on ``L(log_lambda) = -(J_C - threshold) * exp(log_lambda)``.

    ``dL / d log_lambda = -lambda (J_C - threshold)``, so the step is
    ``ln lambda <- ln lambda + lr * lambda * (J_C - threshold)``, then ``ln lambda <= ln lambda_max``.

    Args:
        log_lambda: current ``ln lambda`` (safe-rlhf starts at ``ln 1.0``).
        episode_cost: ``J_C``, the mean cost over the recent episodes (window, averaged across ranks).
        threshold: ``-d``; 0 means "on average safe" since cost < 0 is safe.
        lr: multiplier learning rate (0.1). lambda_max: upper clamp (5.0); None for no clamp.
    """
    new_log_lambda = log_lambda + lr * math.exp(log_lambda) * (episode_cost - threshold)
    if lambda_max is not None:
        new_log_lambda = min(new_log_lambda, math.log(lambda_max))
    return LagrangeUpdate(new_log_lambda, math.exp(new_log_lambda))


def combined_advantages(
    reward_advantages: Tensor, cost_advantages: Tensor, lambda_: float | Tensor
) -> Tensor:
    """Safe RLHF actor advantage ``(A_R - lambda A_C) / (1 + lambda)``, any matching shapes, e.g. ``(B, T)``.

    Dividing by ``1 + lambda`` keeps the advantage's scale (and so the effective step size) bounded as
    lambda grows.
    """
    return (reward_advantages - lambda_ * cost_advantages) / (1 + lambda_)
