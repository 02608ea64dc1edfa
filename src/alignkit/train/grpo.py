"""GRPO (DeepSeekMath, 2402.03300), Dr. GRPO and RLOO: policy gradients with group baselines, no critic.

Each step samples ``rollout.samples_per_prompt`` (G) responses per prompt; any Scorer gives each a
sequence reward; the advantage of a sample is its reward against its own group's (``advantage``:
``grpo`` standardises within the group, ``dr_grpo`` only centres, ``rloo`` subtracts the mean of the
other G - 1). The groups are the samples of one prompt: ``HFGenerator`` returns them prompt-major and
a process always samples whole groups, so no group straddles processes.

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
from alignkit.losses.grpo import (
    GRPOAggregation,
    dr_grpo_advantages,
    grpo_advantages,
    grpo_loss,
    rloo_advantages,
)
from alignkit.losses.lagrangian import combined_advantages
from alignkit.losses.logprobs import entropy_from_logits, label_mask, token_logps
from alignkit.models.forward import labelled_token_logps, tempered
from alignkit.sections import DataConfig, ModelConfig, RunConfig
from alignkit.train.common import make_optimizer
from alignkit.train.engine import LoopResult
from alignkit.train.online import (
    LagrangeConfig,
    OnlineTrainerConfig,
    RolloutConfig,
    SavedModel,
    ScorerConfig,
    Trained,
    make_scheduler,
    per_token_forward,
    token_weighted,
    toyworld_prompts,
    update_on_rollout,
)
from alignkit.train.online_trainer import OnlineTrainer
from alignkit.train.reference import ReferencePolicy

ADVANTAGES = {"grpo": grpo_advantages, "dr_grpo": dr_grpo_advantages, "rloo": rloo_advantages}


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
    advantage: Literal["grpo", "dr_grpo", "rloo"] = "grpo"
    """Group baseline: grpo (standardised in the group), dr_grpo (centred only, and a constant loss normaliser
    mini_batch_size x max_new_tokens), rloo (leave-one-out mean)."""
    beta: float = 0.04
    """Weight of the k3 KL to the reference in the loss (0: no reference model is loaded)."""
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
            self.rollout.samples_per_prompt >= 2,
            f"{prefix}rollout.samples_per_prompt",
            self.rollout.samples_per_prompt,
            "at least 2 (a group needs others to compare with)",
        )
        check(self.beta >= 0, f"{prefix}beta", self.beta, "a number >= 0")
        check(self.clip_eps > 0, f"{prefix}clip_eps", self.clip_eps, "a positive number")


PLOT_GROUPS = {
    "reward": ["reward/score", "eval/reward"],
    "cost": ["cost/score", "eval/cost", "lagrange/episode_cost", "monitor/score", "eval/monitor"],
    "lambda": ["lagrange/lambda"],
    "kl": ["policy/kl"],
    "entropy": ["entropy"],
    "groups": ["reward/group_std", "reward/zero_std_groups"],
    "response_length": ["response_length"],
}


def train(config: GRPOConfig) -> LoopResult:
    """Run GRPO / Dr. GRPO / RLOO (constrained with a cost scorer): the call ``alignkit train grpo`` makes."""
    return GRPOTrainer(config).run()


class GRPOTrainer(OnlineTrainer):
    algorithm = "GRPO"
    plot_groups = PLOT_GROUPS

    def build(self, actor: torch.nn.Module) -> tuple[list[Trained], list[SavedModel]]:
        config, acc, cfg = self.config, self.accelerator, self.config.trainer
        self.algorithm = {"grpo": "GRPO", "dr_grpo": "Dr. GRPO", "rloo": "RLOO"}[config.advantage]
        self.reference = (
            ReferencePolicy(actor, config.model, acc.device, acc.autocast, config.rollout.temperature)
            if config.beta > 0
            else None
        )
        model, optimizer = acc.prepare(actor, make_optimizer(actor, cfg))
        scheduler = make_scheduler(optimizer, cfg, self.total_updates)
        return [Trained("policy", model, optimizer, scheduler, self._loss)], []

    def _loss(
        self, model: Any, batch: dict[str, torch.Tensor], normaliser: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        config = self.config
        logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
        ).logits
        logits = tempered(logits, config.rollout.temperature)  # the distribution that sampled
        logps = token_logps(logits, batch["labels"])
        mask = label_mask(batch["labels"])
        aggregation = GRPOAggregation(config.aggregation)
        if config.advantage == "dr_grpo":
            # Dr. GRPO's constant normaliser: every mini-batch divides by the same mini_batch_size x
            # max_new_tokens (per process, as DDP averages), so short answers are not up-weighted.
            normaliser = float(self.local_mini * config.rollout.max_new_tokens)
        out = grpo_loss(
            logps,
            batch["advantages"],
            mask,
            old_token_logps=batch.get("old_logps"),
            ref_token_logps=batch.get("ref_logps"),
            beta=config.beta,
            clip_eps=config.clip_eps,
            aggregation=aggregation,
            num_tokens=normaliser,
        )
        loss = self.mini_batch_share(out.loss, batch, aggregation)
        with torch.no_grad():
            # only the distributions that chose a response token (position t - 1 chose token t)
            chosen = logits.detach()[:, :-1][mask[:, 1:]].unsqueeze(0)  # (1, N, V)
            metrics = token_weighted({"policy/kl": out.kl, "policy/clipfrac": out.clipfrac}, mask)
            metrics["entropy"] = float(entropy_from_logits(chosen).sum())
        # this micro-batch's share of the mini-batch loss, times the normaliser: summed and divided by the
        # step's tokens it is the mini-batch loss (either aggregation) whatever the micro-batch size
        metrics["loss/policy"] = float(loss.detach()) * normaliser
        return loss, metrics

    def step(self, step: int) -> dict[str, float]:
        config, acc = self.config, self.accelerator
        cfg, device = config.trainer, acc.device
        group = config.rollout.samples_per_prompt
        rollout, scores, costs = self.sample(step)
        advantage_fn = ADVANTAGES[config.advantage]
        advantages = advantage_fn(scores, group)
        groups = scores.view(-1, group)
        record: dict[str, float] = {}
        if costs is not None:
            record.update(self.update_multiplier(step, costs))
            assert self.multiplier is not None
            advantages = combined_advantages(advantages, advantage_fn(costs, group), self.multiplier.value)
        tensors = {"advantages": advantages.unsqueeze(1).expand_as(rollout.labels).contiguous()}
        if self.updates_per_step > 1:  # later optimizer steps are off-policy: keep pi_old for the ratio
            self.actor.eval()
            tensors["old_logps"] = per_token_forward(
                lambda b: labelled_token_logps(
                    self.actor, b["input_ids"], b["attention_mask"], b["labels"], config.rollout.temperature
                ),
                rollout,
                cfg.micro_batch_size,
                device,
            )
        if self.reference is not None:
            tensors["ref_logps"] = per_token_forward(
                self.reference.token_logps, rollout, cfg.micro_batch_size, device
            )

        def rows(chunk: list[int]) -> dict[str, torch.Tensor]:
            batch = rollout.rows(chunk, device)
            width = batch["input_ids"].shape[1]
            batch.update({k: v[chunk, :width].to(device) for k, v in tensors.items()})
            return batch

        record.update(update_on_rollout(acc, self.trained, len(rollout), cfg, rows, step))
        sums = {
            "reward/group_std": float(groups.std(dim=1).sum()) * group,
            "reward/zero_std_groups": float((groups.std(dim=1) == 0).sum()) * group,
        }
        record.update(self.sample_metrics(rollout, scores, costs, sums))
        return record
