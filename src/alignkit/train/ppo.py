"""PPO-RLHF (InstructGPT, 2203.02155) and, with a cost scorer, Safe RLHF's PPO-Lagrangian (2310.12773).

One step: sample responses to a batch of prompts (the live policy through ``HFGenerator``), score them
(reward, and cost for Safe RLHF), re-read them with the policy, the frozen reference and the critics,
build the KL-shaped per-token rewards (and costs), run GAE per stream, and take ``update_epochs`` passes
of clipped policy and value updates (formulas in ``alignkit.losses.ppo``; the batch vocabulary in
``alignkit.train.update``).

Safe RLHF (``cost`` set): a cost critic beside the reward critic; the multiplier lambda moves on the
mean episode cost of a window of recent episodes (``lagrange.*``); the actor's advantage is
``(A_r - lambda A_c) / (1 + lambda)``, combined *before* whitening, so lambda trades reward against
cost in their own units. ``alignkit train safe-ppo`` is this trainer with the cost scorer required.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from alignkit.config import check
from alignkit.losses.lagrangian import combined_advantages
from alignkit.losses.logprobs import label_mask
from alignkit.losses.ppo import (
    KLEstimator,
    explained_variance,
    kl_penalty,
    per_token_costs,
    per_token_rewards,
    ppo_policy_loss,
)
from alignkit.models.forward import labelled_token_logps_and_entropy
from alignkit.models.value_heads import attach_value_heads, read_values
from alignkit.score.config import ScorerConfig
from alignkit.sections import DataConfig, DatasetConfig, ModelConfig, OnlineTrainerConfig, RunConfig
from alignkit.train.common import DataReport, allow_unused_media_parameters, make_optimizer
from alignkit.train.critic import (
    CriticConfig,
    CriticEstimates,
    critic_inputs,
    critic_reads_shared_prompts,
    fused_critic_update,
    gae,
    load_separate_critics,
    save_value_heads,
    separate_critics,
    shared_value_loss,
)
from alignkit.train.cross_process import global_masked_mean, global_whiten
from alignkit.train.engine import LoopResult
from alignkit.train.lagrange import LagrangeConfig
from alignkit.train.online_trainer import OnlineTrainer
from alignkit.train.prompts import toyworld_prompts
from alignkit.train.ptx import ptx_batch, ptx_nll, read_ptx_examples
from alignkit.train.recorder import SavedModel
from alignkit.train.reference import ReferenceModel
from alignkit.train.rollout import (
    Rollout,
    RolloutConfig,
    per_token_forward,
    rollout_logps_are_exact,
    sampling_forward_is_exact,
)
from alignkit.train.update import Trained, make_scheduler, token_weighted, update_on_rollout


@dataclass
class PPOLossConfig:
    kl_coef: float = 0.02
    """beta: weight of the per-token KL penalty to the reference in the reward (and cost)."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k1"
    """KL estimator of the penalty (k1 = log pi_old - log pi_ref, as InstructGPT and safe-rlhf)."""
    gamma: float = 1.0
    """Discount."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_eps: float = 0.2
    """Policy ratio clip epsilon."""
    value_clip: float = 5.0
    """Value clip range around the rollout-time values."""
    score_clip: float = 50.0
    """Scores (reward and cost) are clipped to +- this before shaping."""
    whiten_advantages: bool = True
    """Normalise the actor's advantages over the rollout's tokens (all processes)."""
    ptx_coef: float = 0.0
    """Weight of the pretraining-mix NLL on `ptx` data added to the actor loss (0: off; safe-rlhf uses 16)."""
    aggregation: Literal["token_mean", "sequence_mean"] = "token_mean"
    """How the policy and value losses average tokens: token_mean (every response token of the mini-batch
    weighs the same: TRL, OpenRLHF) or sequence_mean (mean of each response's token mean: safe-rlhf)."""

    def validate(self, prefix: str) -> None:
        check(self.kl_coef >= 0, f"{prefix}kl_coef", self.kl_coef, "a number >= 0")
        check(0 <= self.gamma <= 1, f"{prefix}gamma", self.gamma, "a number in [0, 1]")
        check(0 <= self.gae_lambda <= 1, f"{prefix}gae_lambda", self.gae_lambda, "a number in [0, 1]")
        check(self.clip_eps > 0, f"{prefix}clip_eps", self.clip_eps, "a positive number")
        check(self.value_clip > 0, f"{prefix}value_clip", self.value_clip, "a positive number")
        check(self.ptx_coef >= 0, f"{prefix}ptx_coef", self.ptx_coef, "a number >= 0")
        check(self.score_clip > 0, f"{prefix}score_clip", self.score_clip, "a positive number")


@dataclass
class PPOConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """The policy (actor) to train, usually an SFT model; it is also the frozen reference."""
    reward: ScorerConfig = field(default_factory=ScorerConfig)
    """The reward scorer: a reward model folder or a 'module:function' rule."""
    cost: ScorerConfig | None = None
    """A cost scorer turns on Safe RLHF (PPO-Lagrangian): a cost model folder or a 'module:function' rule."""
    monitor: ScorerConfig | None = None
    """A scorer that is only watched, never optimised (logged as monitor/score and eval/monitor): e.g. the
    cost model during plain PPO, to see what an unconstrained run does to safety."""
    critic: CriticConfig = field(default_factory=CriticConfig)
    """The reward critic (value head)."""
    cost_critic: CriticConfig = field(default_factory=CriticConfig)
    """The cost critic (Safe RLHF only)."""
    data: DataConfig = field(default_factory=toyworld_prompts)
    """Prompts to roll out from (any template whose records have a prompt); data.eval: held-out prompts."""
    ptx: DatasetConfig | None = None
    """Conversations for the pretraining-mix loss (used when ppo.ptx_coef > 0)."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """How responses are sampled each step."""
    trainer: OnlineTrainerConfig = field(default_factory=OnlineTrainerConfig)
    """Steps, batch sizes and optimisation."""
    ppo: PPOLossConfig = field(default_factory=PPOLossConfig)
    """The PPO objective."""
    lagrange: LagrangeConfig = field(default_factory=LagrangeConfig)
    """The Lagrange multiplier of Safe RLHF (used when a cost scorer is set)."""
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/ppo"))
    """Where results go."""

    def validate(self, prefix: str) -> None:
        check(
            self.ppo.ptx_coef == 0 or self.ptx is not None,
            f"{prefix}ptx",
            self.ptx,
            "a dataset of conversations when ppo.ptx_coef > 0",
        )


def train(config: PPOConfig) -> LoopResult:
    """Run PPO (Safe RLHF when ``config.cost`` is set): the call ``alignkit train ppo|safe-ppo`` makes."""
    return PPOTrainer(config).run()


class PPOTrainer(OnlineTrainer):
    """Actor, reward critic (and cost critic), frozen reference; one rollout and its updates per step."""

    algorithm = "PPO"

    def constrained_name(self) -> str:
        return "Safe RLHF (PPO-Lagrangian)"

    def read_extra_data(self, report: DataReport) -> None:
        config = self.config
        self.ptx_examples: list[Any] = []
        if config.ptx is not None and config.ppo.ptx_coef > 0:
            self.ptx_examples = read_ptx_examples(config.ptx, config.data, self.tokenizer, report)

    def build(self, actor: torch.nn.Module) -> tuple[list[Trained], list[SavedModel]]:
        config, acc, cfg = self.config, self.accelerator, self.config.trainer
        self.rollout_logprobs = rollout_logps_are_exact(config.rollout, actor, acc.mixed_precision)
        self.reference = ReferenceModel.for_policy(
            actor, config.model, acc.device, autocast=acc.autocast, temperature=config.rollout.temperature
        )
        # one stream per scorer: '' the reward, 'cost_' the cost (Safe RLHF); each has a critic of its own
        # or a value head on the policy (critic.shared)
        streams = {"": (config.critic, config.reward, "reward")}
        if self.safe:
            streams["cost_"] = (config.cost_critic, config.cost, "cost")
        self.shared_streams = [prefix for prefix, (critic, _, _) in streams.items() if critic.shared]
        self.shared_coefs = [streams[prefix][0].loss_coef for prefix in self.shared_streams]
        separate = {prefix: stream for prefix, stream in streams.items() if prefix not in self.shared_streams}
        self.readout = None
        if self.shared_streams:
            heads = attach_value_heads(actor, [f"{prefix}value" for prefix in self.shared_streams])
            self.readout = lambda hidden: read_values(heads, hidden)
            if sampling_forward_is_exact(config.rollout, actor, acc.mixed_precision):
                self.rollout_readout = self.readout  # values read off the sampling loop
        # one optimizer step per rollout: a separate critic's update forward is its rollout forward
        self.fused_critics = self.updates_per_step == 1 and bool(separate)
        # every forward over the rollout lays each prompt out once, packed (Rollout.rows(shared_prompt=True)),
        # when the policy, the reference and every separate critic provably compute padded rows' numbers
        self.shared_prompt = self.prompts_can_be_shared(actor, self.reference)
        models = [actor, make_optimizer(actor, cfg)]
        models += load_separate_critics(separate, actor, config.model, self.renderer, cfg)
        # separate critics read shared-prompt rows too when each provably gives them padded rows' values
        self.critics_share = self.shared_prompt and all(critic_reads_shared_prompts(m) for m in models[2::2])
        allow_unused_media_parameters(acc, actor)  # a rollout micro-batch of text prompts skips the projector
        prepared = acc.prepare(*models)
        scheduler = make_scheduler(prepared[1], cfg, self.total_updates)
        trained = [Trained("policy", prepared[0], prepared[1], scheduler, self._actor_loss)]
        loss = (config.ppo.value_clip, config.ppo.aggregation, self.mini_batch_share)
        critics, saved = separate_critics(
            separate, prepared[2:], cfg, self.total_updates, loss, self.renderer
        )
        trained += critics
        if self.shared_streams:
            saved.append(SavedModel("critics", heads, lambda m, path, _: save_value_heads(m, path)))
        return trained, saved

    @property
    def shared_update(self) -> bool:
        """Whether the update's micro-batches lay each prompt out once: the actor and any separate critic
        trained on them (fused critics update on their own micro-batches) read that layout."""
        return self.shared_prompt and (self.fused_critics or self.critics_share)

    # ------------------------------------------------------------------ losses
    def _actor_loss(
        self, model: Any, batch: dict[str, torch.Tensor], normaliser: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        # at the temperature that sampled; the LM head only on response positions (and the shared
        # critics' value heads on the same hidden states)
        logps, entropy, values = labelled_token_logps_and_entropy(
            model, batch, self.config.rollout.temperature, readout=self.readout
        )
        assert entropy is not None
        mask = label_mask(batch["labels"])
        ppo = self.config.ppo
        out = ppo_policy_loss(
            logps,
            batch["old_token_logps"],
            batch["advantages"],
            mask,
            ppo.clip_eps,
            normaliser,
            ppo.aggregation,
        )
        metrics = token_weighted({"policy/approx_kl": out.approx_kl, "policy/clipfrac": out.clipfrac}, mask)
        metrics["policy/entropy"] = float(entropy.sum())
        loss = self.mini_batch_share(out.loss, batch, ppo.aggregation)
        metrics["policy/loss"] = float(loss.detach()) * normaliser
        if self.shared_streams:
            assert values is not None
            value, value_metrics = shared_value_loss(
                self.shared_streams,
                self.shared_coefs,
                values,
                batch,
                ppo.value_clip,
                ppo.aggregation,
                self.mini_batch_share,
                normaliser,
            )
            loss = loss + value
            metrics.update(value_metrics)
        if "ptx_input_ids" in batch:
            ptx = ptx_nll(model, batch)
            # The mini-batch's PTX term is the mean NLL over its PTX micro-batches (DDP averages processes).
            loss = loss + self.config.ppo.ptx_coef * ptx / self.micro_per_mini
            metrics["policy/ptx_loss"] = float(ptx.detach()) * float(mask.sum())
        return loss, metrics

    # ------------------------------------------------------------------ one step
    def _reread(self, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, T) log-probs of the sampled tokens under the policy that sampled them (pi_old) and the shared
        critics' (B, T, k) values: read off the sampling loop when it computed them exactly, else by one
        forward of the policy over the rollout."""
        logps, values = rollout.token_logps, rollout.token_readouts
        need_values = bool(self.shared_streams) and values is None
        if logps is not None and not need_values:
            return logps, values
        self.actor.eval()
        temperature = self.config.rollout.temperature
        readout = self.readout if need_values else None

        def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            out = labelled_token_logps_and_entropy(self.actor, batch, temperature, False, readout)
            return (
                out.logps.unsqueeze(-1)
                if readout is None
                else torch.cat([out.logps[..., None], out.readouts], -1)
            )

        with self.timer("old_logps"):
            both = per_token_forward(
                forward,
                rollout,
                self.config.trainer.micro_batch_size,
                self.accelerator.device,
                self.shared_prompt,
            )
        return (both[..., 0] if logps is None else logps), (both[..., 1:] if need_values else values)

    def _critic_estimates(
        self,
        step: int,
        rollout: Rollout,
        token_rewards: dict[str, torch.Tensor],
        shared_values: torch.Tensor | None,
    ) -> tuple[dict[str, CriticEstimates], dict[str, float]]:
        """Values, advantages and returns of each stream ('': reward, 'cost_': cost), and the metrics of
        the separate critics' updates when they already happened (fused: one optimizer step per rollout)."""
        acc, cfg, ppo = self.accelerator, self.config.trainer, self.config.ppo
        device, mask = acc.device, rollout.mask
        out: dict[str, CriticEstimates] = {}
        with self.timer("advantages"):
            for i, prefix in enumerate(self.shared_streams):
                assert shared_values is not None
                values = torch.where(mask, shared_values[..., i], 0.0)
                out[prefix] = gae(token_rewards[prefix], values, mask, ppo.gamma, ppo.gae_lambda)
        separate = [p for p in token_rewards if p not in self.shared_streams]
        critics = dict(zip(separate, self.trained[1:], strict=True))
        if not self.fused_critics:
            for prefix, item in critics.items():
                item.model.eval()
                with self.timer(f"{prefix}values"):
                    values = per_token_forward(
                        lambda b, m=item.model: m(**critic_inputs(b)),
                        rollout,
                        cfg.micro_batch_size,
                        device,
                        self.critics_share,
                    )
                with self.timer("advantages"):
                    out[prefix] = gae(token_rewards[prefix], values, mask, ppo.gamma, ppo.gae_lambda)
            return out, {}
        losses = {
            prefix: (ppo.value_clip, ppo.aggregation, self.mini_batch_share, ppo.gamma, ppo.gae_lambda)
            for prefix in critics
        }
        with self.timer("update"):
            buffers, record = fused_critic_update(
                acc, critics, losses, rollout, token_rewards, cfg, step, self.timer, self.critics_share
            )
        return {**out, **buffers}, record

    def step(self, step: int) -> dict[str, float]:
        config, acc = self.config, self.accelerator
        cfg, ppo = config.trainer, config.ppo
        rollout, scores, costs = self.sample(step)
        mask = rollout.mask

        old_logps, shared_values = self._reread(rollout)
        with self.timer("reference"):
            ref_logps = per_token_forward(
                self.reference.token_logps, rollout, cfg.micro_batch_size, acc.device, self.shared_prompt
            )
        with self.timer("advantages"):
            kl = kl_penalty(old_logps, ref_logps, KLEstimator(ppo.kl_estimator))
            kl = torch.where(mask, kl, torch.zeros_like(kl))
            token_rewards = {"": per_token_rewards(scores, kl, mask, ppo.kl_coef, ppo.score_clip)}
            if costs is not None:
                token_rewards["cost_"] = per_token_costs(costs, kl, mask, ppo.kl_coef, ppo.score_clip)
        estimates, record = self._critic_estimates(step, rollout, token_rewards, shared_values)
        reward = estimates[""]
        advantages = reward.advantages
        tensors = {"old_token_logps": old_logps, "values": reward.values, "returns": reward.returns}
        sums = {"policy/kl": float(kl.sum()), "reward/shaped": float(token_rewards[""].sum())}
        record["value/explained_variance"] = float(explained_variance(reward.values, reward.returns, mask))
        if costs is not None:
            cost = estimates["cost_"]
            tensors.update(cost_values=cost.values, cost_returns=cost.returns)
            # lambda first: this step's actor loss uses the updated multiplier (safe-rlhf's order).
            record.update(self.update_multiplier(step, costs))
            assert self.multiplier is not None
            with self.timer("advantages"):
                advantages = combined_advantages(advantages, cost.advantages, self.multiplier.value)
            sums["cost/shaped"] = float(token_rewards["cost_"].sum())
            record["cost_value/explained_variance"] = float(
                explained_variance(cost.values, cost.returns, mask)
            )
        if ppo.whiten_advantages:
            advantages = global_whiten(acc, advantages, mask)
        tensors["advantages"] = advantages
        record["value/mean"] = global_masked_mean(acc, reward.values, mask)
        updated = self.trained[:1] if self.fused_critics else self.trained
        with self.timer("update"):
            rows = self._rows(step, rollout, tensors)
            record.update(
                update_on_rollout(acc, updated, len(rollout), cfg, rows, step, self.timer, self.shared_update)
            )
        record.update(self.sample_metrics(rollout, scores, costs, sums))
        return record

    def _rows(self, step: int, rollout: Rollout, tensors: dict[str, torch.Tensor]) -> Any:
        """Micro-batch builder for the update: rollout rows, their per-token tensors, and a PTX batch."""
        acc, cfg = self.accelerator, self.config.trainer
        device = acc.device
        ptx_index = [step * self.updates_per_step * self.micro_per_mini]
        pad_id = self.tokenizer.pad_token_id

        def rows(chunk: list[int]) -> dict[str, torch.Tensor]:
            batch = rollout.rows(chunk, device, self.shared_update, tensors)
            if self.ptx_examples:
                position = ptx_index[0] * acc.num_processes + acc.process_index
                ptx_index[0] += 1
                ptx = ptx_batch(self.ptx_examples, cfg.micro_batch_size, position, cfg.seed + 1, pad_id)
                batch.update({k: v.to(device) for k, v in ptx.items()})
            return batch

        return rows
