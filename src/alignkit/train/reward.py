"""Reward model training (``alignkit train reward``): Bradley-Terry on pairwise preferences.

    L = -log sigma(s(x, y_w) - s(x, y_l)) + eta * (s_w^2 + s_l^2) / 2      (InstructGPT eq. 1)

``s`` is a bias-free linear head on the backbone's hidden state at the response's last labelled token
(``alignkit.models.score_model``). Records are ``Preference`` pairs, or PKU-SafeRLHF ``SafetyPreference``
pairs ranked by helpfulness (``better_response_id``), as Safe RLHF trains its reward model; the
safety ranking is the cost model's (``cost.py``). ``score_reg`` (eta) keeps scores near zero so they
stay on a usable scale as PPO rewards (0.001 in align-anything's rm.yaml; 0 = plain Bradley-Terry).

Logged: ``loss``, ``rewards/accuracy`` (fraction of pairs with ``s_w > s_l``), ``rewards/chosen``,
``rewards/rejected``, ``rewards/margin``, and the same under ``eval/`` for the held-out split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from alignkit.losses.reward import bradley_terry_loss
from alignkit.score.pairs import preference_pairs
from alignkit.sections import DataConfig, RunConfig
from alignkit.train.engine import LoopResult, LossOutput, summed_metrics
from alignkit.train.score_training import (
    ScoreLossFn,
    ScoreModelConfig,
    toyworld_safe_pref_data,
    train_score_model,
)


@dataclass
class RewardConfig(ScoreModelConfig):
    data: DataConfig = field(default_factory=toyworld_safe_pref_data)
    """Preference or SafetyPreference pairs (SafetyPreference is ranked by helpfulness)."""
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/reward"))
    """Where results go; the model is saved in <output_dir>/final."""


def reward_loss(score_reg: float) -> ScoreLossFn:
    """The Bradley-Terry loss summed over pairs, with the ``rewards/*`` metrics as sums (signs unused)."""

    def loss(chosen: torch.Tensor, rejected: torch.Tensor, signs: torch.Tensor) -> LossOutput:
        out = bradley_terry_loss(chosen, rejected, score_reg)
        return LossOutput(out.losses.sum(), summed_metrics(out.metrics(), chosen.shape[0]))

    return loss


def train(config: RewardConfig) -> LoopResult:
    """Train a reward model as configured: the same call ``alignkit train reward`` makes."""
    return train_score_model(
        config,
        kind="reward",
        to_pairs=preference_pairs,
        loss=reward_loss(config.score_reg),
        plot_groups={
            "accuracy": ["rewards/accuracy", "eval/rewards/accuracy"],
            "rewards": ["rewards/chosen", "rewards/rejected", "rewards/margin", "eval/rewards/margin"],
        },
    )
