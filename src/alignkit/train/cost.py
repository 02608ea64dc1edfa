"""Cost model training (``alignkit train cost``): the Safe RLHF cost model on PKU-SafeRLHF pairs.

    L = -log sigma(c(y_u) - c(y_s)) - log sigma(sign_u c(y_u)) - log sigma(sign_s c(y_s))
        + eta * (c_u^2 + c_s^2) / 2                                  (Safe RLHF, 2310.12773 eq. 6)

``y_u`` is the less safe response of a pair (``1 - safer_response_id``), ``y_s`` the safer one; the
sign labels come from ``is_response_i_safe`` (+1 unsafe, -1 safe). The pairwise term orders harm,
the sign terms anchor zero, so ``c > 0`` means unsafe and the PPO-Lagrangian constraint
``E[c] <= d`` has a meaning. When both responses are equally safe PKU-SafeRLHF still names a safer
one (an annotator's coin flip); we keep the pairwise term as the reference implementation does.

Logged: ``loss``, ``cost/accuracy`` (pairs with ``c_u > c_s``), ``cost/sign_accuracy`` (responses
whose cost sign matches ``is_safe``), ``cost/unsafe``, ``cost/safe``, and the same under ``eval/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from alignkit.losses.reward import cost_loss
from alignkit.score.pairs import safety_pairs
from alignkit.sections import DataConfig, RunConfig
from alignkit.train.engine import LoopResult, LossOutput, summed_metrics
from alignkit.train.score_training import (
    ScoreLossFn,
    ScoreModelConfig,
    toyworld_safe_pref_data,
    train_score_model,
)


@dataclass
class CostConfig(ScoreModelConfig):
    data: DataConfig = field(default_factory=toyworld_safe_pref_data)
    """SafetyPreference pairs with per-response safety labels (e.g. PKU-SafeRLHF, template pku-saferlhf)."""
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/cost"))
    """Where results go; the model is saved in <output_dir>/final."""


def cost_loss_sum(score_reg: float) -> ScoreLossFn:
    """The Safe RLHF cost loss summed over pairs, with the ``cost/*`` metrics as sums."""

    def loss(unsafe: torch.Tensor, safe: torch.Tensor, signs: torch.Tensor) -> LossOutput:
        half = unsafe.shape[0]
        out = cost_loss(unsafe, safe, signs[:half], signs[half:], score_reg)
        return LossOutput(out.losses.sum(), summed_metrics(out.metrics(), half))

    return loss


def train(config: CostConfig) -> LoopResult:
    """Train a cost model as configured: the same call ``alignkit train cost`` makes."""
    return train_score_model(
        config,
        kind="cost",
        to_pairs=safety_pairs,
        loss=cost_loss_sum(config.score_reg),
        plot_groups={
            "accuracy": [
                "cost/accuracy",
                "cost/sign_accuracy",
                "eval/cost/accuracy",
                "eval/cost/sign_accuracy",
            ],
            "costs": ["cost/unsafe", "cost/safe", "eval/cost/unsafe", "eval/cost/safe"],
        },
    )
