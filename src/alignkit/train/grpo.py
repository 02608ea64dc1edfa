"""Critic-free policy gradients: GRPO (DeepSeekMath, 2402.03300), Dr. GRPO, RLOO and REINFORCE++.

Each step samples ``rollout.samples_per_prompt`` (G) responses per prompt; any Scorer gives each a
sequence reward; the advantage comes from the estimator named by ``advantage``, one entry of the registry
in ``alignkit.losses.advantages`` (``grpo`` standardises within the group, ``dr_grpo`` only centres,
``rloo`` subtracts the mean of the other G - 1, ``reinforce_pp`` whitens the KL-shaped return over the
whole rollout). What an estimator needs (groups, KL in the reward instead of the loss, whitening, a
constant loss normaliser) is declared in its entry and honoured here. The groups are the samples of one
prompt: ``HFGenerator`` returns them prompt-major and a process always samples whole groups, so no group
straddles processes.

Constrained GRPO (ours; no peer has it): with a ``cost`` scorer, costs get the same group advantage and
the policy follows ``(A_r - lambda A_c) / (1 + lambda)`` with Safe RLHF's multiplier (``lagrange.*``).

Cost per step: one generation, one reference forward when ``beta > 0``, one forward for the old
log-probs only when the rollout takes more than one optimizer step (otherwise the update is exactly
on-policy and ``pi_old = pi`` detached), and one forward/backward per sample per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from alignkit.config import check
from alignkit.losses.advantages import ESTIMATORS, AdvantageInputs, CriticFreeEstimator
from alignkit.losses.grpo import GRPOAggregation, grpo_loss
from alignkit.losses.lagrangian import combined_advantages
from alignkit.losses.logprobs import label_mask
from alignkit.losses.ppo import KLEstimator, kl_penalty, per_token_costs, per_token_rewards
from alignkit.models.forward import labelled_token_logps_and_entropy
from alignkit.score.config import ScorerConfig
from alignkit.sections import DataConfig, ModelConfig, OnlineTrainerConfig, RunConfig
from alignkit.train.common import allow_unused_media_parameters, make_optimizer
from alignkit.train.cross_process import global_masked_mean, global_whiten
from alignkit.train.engine import LoopResult
from alignkit.train.lagrange import LagrangeConfig
from alignkit.train.online_trainer import OnlineTrainer
from alignkit.train.prompts import toyworld_prompts
from alignkit.train.recorder import SavedModel
from alignkit.train.reference import ReferenceModel
from alignkit.train.rollout import RolloutConfig, per_token_forward
from alignkit.train.update import Trained, make_scheduler, token_weighted, update_on_rollout


@dataclass
class GRPOConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """The policy to train (usually an SFT model); also the frozen reference when beta > 0."""
    reward: ScorerConfig = field(default_factory=ScorerConfig)
    """The reward: a 'module:function' rule (e.g. alignkit.toyworld.oracle:helpfulness) or a reward model."""
    cost: ScorerConfig | None = None
    """A cost scorer makes it constrained GRPO with Safe RLHF's Lagrange multiplier (lagrange.*)."""
    monitor: ScorerConfig | None = None
    """A scorer that is only watched, never optimised (logged as monitor/score and eval/monitor): e.g. the
    cost model, to see what an unconstrained run does to safety."""
    advantage: CriticFreeEstimator = "grpo"
    """Advantage estimator (``alignkit.losses.advantages``): grpo (standardised in the group), dr_grpo
    (centred only, and a constant loss normaliser mini_batch_size x max_new_tokens), rloo (leave-one-out
    mean), reinforce_pp (REINFORCE++: the KL-shaped return whitened over the rollout, no group needed)."""
    beta: float = 0.04
    """KL weight (0: no reference model is loaded): of the k3 KL in the loss, or, for estimators that put
    the KL in the reward (reinforce_pp), of the k1 KL subtracted from each token's reward."""
    clip_eps: float = 0.2
    """Ratio clip epsilon (matters only when a rollout takes several optimizer steps)."""
    aggregation: Literal["token_mean", "sequence_mean"] = "token_mean"
    """token_mean: every token of the mini-batch weighs the same (DAPO); sequence_mean: the paper's eq. 3."""
    data: DataConfig = field(default_factory=toyworld_prompts)
    """Prompts to roll out from; data.eval: held-out prompts scored at eval time."""
    rollout: RolloutConfig = field(default_factory=lambda: RolloutConfig(samples_per_prompt=8))
    """How responses are sampled each step (samples_per_prompt is the group size G >= 2)."""
    trainer: OnlineTrainerConfig = field(default_factory=OnlineTrainerConfig)
    """Steps, batch sizes and optimisation."""
    lagrange: LagrangeConfig = field(default_factory=LagrangeConfig)
    """The Lagrange multiplier (used when a cost scorer is set)."""
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/grpo"))
    """Where results go."""

    def validate(self, prefix: str) -> None:
        check(
            self.rollout.samples_per_prompt >= 2 or not ESTIMATORS[self.advantage].needs_groups,
            f"{prefix}rollout.samples_per_prompt",
            self.rollout.samples_per_prompt,
            f"at least 2 (advantage={self.advantage} compares a sample with the others of its group)",
        )
        check(self.beta >= 0, f"{prefix}beta", self.beta, "a number >= 0")
        check(self.clip_eps > 0, f"{prefix}clip_eps", self.clip_eps, "a positive number")


def train(config: GRPOConfig) -> LoopResult:
    """Run GRPO / Dr. GRPO / RLOO / REINFORCE++ (constrained with a cost scorer): the call ``alignkit train grpo`` makes."""
    return GRPOTrainer(config).run()


class GRPOTrainer(OnlineTrainer):
    algorithm = "GRPO"

    def build(self, actor: torch.nn.Module) -> tuple[list[Trained], list[SavedModel]]:
        config, acc, cfg = self.config, self.accelerator, self.config.trainer
        self.estimator = ESTIMATORS[config.advantage]
        self.algorithm = self.estimator.display_name
        self.reference = (
            ReferenceModel.for_policy(
                actor, config.model, acc.device, autocast=acc.autocast, temperature=config.rollout.temperature
            )
            if config.beta > 0
            else None
        )
        # a group's G samples share their prompt: computed once per micro-batch when the model provably
        # keeps the responses apart (reference forward and update alike)
        self.shared_prompt = self.prompts_can_be_shared(actor, self.reference)
        allow_unused_media_parameters(acc, actor)  # a rollout micro-batch of text prompts skips the projector
        model, optimizer = acc.prepare(actor, make_optimizer(actor, cfg))
        scheduler = make_scheduler(optimizer, cfg, self.total_updates)
        return [Trained("policy", model, optimizer, scheduler, self._loss)], []

    def _loss(
        self, model: Any, batch: dict[str, torch.Tensor], normaliser: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        config = self.config
        # at the temperature that sampled; the LM head only on response positions
        logps, entropy, _ = labelled_token_logps_and_entropy(model, batch, config.rollout.temperature)
        mask = label_mask(batch["labels"])
        aggregation = GRPOAggregation(config.aggregation)
        if self.estimator.constant_loss_normaliser:
            # Dr. GRPO's constant normaliser: every mini-batch divides by the same mini_batch_size x
            # max_new_tokens (per process, as DDP averages), so short answers are not up-weighted.
            normaliser = float(self.local_mini * config.rollout.max_new_tokens)
        out = grpo_loss(
            logps,
            batch["advantages"],
            mask,
            old_token_logps=batch.get("old_token_logps"),
            ref_token_logps=batch.get("ref_token_logps"),
            beta=0.0 if self.estimator.kl_in_reward else config.beta,
            clip_eps=config.clip_eps,
            aggregation=aggregation,
            num_tokens=normaliser,
        )
        loss = self.mini_batch_share(out.loss, batch, aggregation)
        metrics = token_weighted({"policy/kl": out.kl, "policy/clipfrac": out.clipfrac}, mask)
        assert entropy is not None
        metrics["policy/entropy"] = float(entropy.sum())
        # this micro-batch's share of the mini-batch loss, times the normaliser: summed and divided by the
        # step's tokens it is the mini-batch loss (either aggregation) whatever the micro-batch size
        metrics["policy/loss"] = float(loss.detach()) * normaliser
        return loss, metrics

    def step(self, step: int) -> dict[str, float]:
        config, acc = self.config, self.accelerator
        cfg, device = config.trainer, acc.device
        group, estimator = config.rollout.samples_per_prompt, self.estimator
        rollout, scores, costs = self.sample(step)
        mask = rollout.mask
        record: dict[str, float] = {}
        tensors: dict[str, torch.Tensor] = {}
        # pi_old per token: for the ratio when the rollout takes several optimizer steps (later ones are
        # off-policy), and for the KL in the reward; otherwise the update is on-policy, pi_old = pi detached
        if self.updates_per_step > 1 or (estimator.kl_in_reward and self.reference is not None):
            self.actor.eval()
            with self.timer("old_logps"):
                old_logps = per_token_forward(
                    lambda b: (
                        labelled_token_logps_and_entropy(
                            self.actor, b, config.rollout.temperature, entropy=False
                        ).logps
                    ),
                    rollout,
                    cfg.micro_batch_size,
                    device,
                    self.shared_prompt,
                )
            if self.updates_per_step > 1:
                tensors["old_token_logps"] = old_logps
        if self.reference is not None:
            with self.timer("reference"):
                tensors["ref_token_logps"] = per_token_forward(
                    self.reference.token_logps, rollout, cfg.micro_batch_size, device, self.shared_prompt
                )
        kl = torch.zeros(mask.shape)
        if estimator.kl_in_reward and self.reference is not None:
            kl = torch.where(mask, kl_penalty(old_logps, tensors.pop("ref_token_logps"), KLEstimator.K1), kl)
            reward_kl = global_masked_mean(acc, kl, mask)  # logged after the update's (zero) loss KL
        beta = config.beta if estimator.kl_in_reward else 0.0
        no_clip = float("inf")
        advantages = estimator(
            AdvantageInputs(scores, per_token_rewards(scores, kl, mask, beta, no_clip), mask, group)
        ).advantages
        if costs is not None:
            record.update(self.update_multiplier(step, costs))
            assert self.multiplier is not None
            cost_advantages = estimator(
                AdvantageInputs(costs, per_token_costs(costs, kl, mask, beta, no_clip), mask, group)
            ).advantages
            advantages = combined_advantages(advantages, cost_advantages, self.multiplier.value)
        if estimator.whiten:
            advantages = global_whiten(acc, advantages, mask)
        tensors["advantages"] = advantages

        def rows(chunk: list[int]) -> dict[str, torch.Tensor]:
            return rollout.rows(chunk, device, self.shared_prompt, tensors)

        with self.timer("update"):
            record.update(
                update_on_rollout(
                    acc, self.trained, len(rollout), cfg, rows, step, self.timer, self.shared_prompt
                )
            )
        if estimator.kl_in_reward and self.reference is not None:
            record["policy/kl"] = reward_kl
        sums = {}
        if group > 1:
            groups = scores.view(-1, group)
            sums = {
                "reward/group_std": float(groups.std(dim=1).sum()) * group,
                "reward/zero_std_groups": float((groups.std(dim=1) == 0).sum()) * group,
            }
        record.update(self.sample_metrics(rollout, scores, costs, sums))
        return record
