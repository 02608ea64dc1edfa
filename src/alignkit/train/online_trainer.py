"""The skeleton every online trainer shares: set-up, sampling and scoring a step, the step loop, eval.

A subclass (PPO, GRPO) builds and prepares its models in ``build`` and turns one step's samples into
updates in ``step``; everything else (run folder, prompts, scorers, the Lagrange multiplier, the
generator over the live policy, logging, checkpoints, final eval) is here, written once.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from alignkit.config import ConfigError
from alignkit.data.processor import is_processor
from alignkit.generate.hf import HFGenerator
from alignkit.losses.ppo import Aggregation
from alignkit.metric_keys import ONLINE_PLOT_GROUPS
from alignkit.models.forward import shared_prompt_is_exact
from alignkit.models.loading import save_pretrained
from alignkit.models.lora import load_trainable_causal_lm, trainable_summary
from alignkit.score.base import Scorer
from alignkit.train.common import (
    DataReport,
    load_run_renderer,
    load_run_tokenizer,
    make_accelerator,
    start_run,
)
from alignkit.train.cross_process import gather_floats, reduce_sum
from alignkit.train.engine import LoopResult
from alignkit.train.lagrange import LagrangeMultiplier
from alignkit.train.online_eval import evaluate_prompts
from alignkit.train.online_media import check_multimodal_online
from alignkit.train.prompts import read_prompts, sampling_seed, step_prompt_indices
from alignkit.train.recorder import RunRecorder, SavedModel
from alignkit.train.rollout import Rollout, build_rollout, score_rollout
from alignkit.train.timing import PhaseTimer
from alignkit.train.update import Trained, check_batch_sizes


def disable_dropout(model: torch.nn.Module) -> torch.nn.Module:
    """Set every dropout (LoRA's included) to 0: rollout log-probs are computed in eval mode, so with
    dropout on in the update PPO's ratio would be noise rather than exactly 1 at unchanged weights."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    for name in ("attention_dropout", "hidden_dropout", "dropout", "resid_pdrop", "attn_pdrop", "embd_pdrop"):
        if isinstance(getattr(getattr(model, "config", None), name, None), float):
            setattr(model.config, name, 0.0)
    return model


def refuse_sharded_engines(accelerator: Any) -> None:
    """Sampling reads the unwrapped policy's full weights, which ZeRO-3 / FSDP shard away; say so up front."""
    kind = str(accelerator.distributed_type)
    if kind.endswith(("DEEPSPEED", "FSDP")):
        raise ConfigError(
            f"online RL trainers run on one process or DDP (accelerate config ddp.yaml); {kind} is not "
            "supported yet (sampling needs the policy's full weights on every process)"
        )


def refuse_vllm_with_lora(config: Any) -> None:
    """vLLM samples from full weights pushed in every step; a LoRA policy has only adapters to push."""
    if config.rollout.backend == "vllm" and config.model.lora is not None:
        raise ConfigError(
            "rollout.backend=vllm pushes full weights into the engine each step; with model.lora "
            "use rollout.backend=hf (or train without LoRA)"
        )


PER_TOKEN_MEANS = {"policy/entropy"}
"""Step metrics averaged over response tokens; the others are means over samples."""

SCORER_KINDS = {"reward": "reward", "cost": "cost", "monitor": None}
"""Scorer section -> the kind of score model it takes (a monitor watches either kind)."""


def check_scorers_and_critics(config: Any, given: Mapping[str, Any] | None = None) -> None:
    """Every scorer and critic the config names must exist (and a score model be of the right kind)
    before the run folder is made: the models themselves load only after it. ``given``: scorers passed
    as objects, whose config paths are not read."""
    from alignkit.models.loading import check_model_source

    for name, kind in SCORER_KINDS.items():
        scorer = getattr(config, name, None)
        if scorer is not None and name not in (given or {}):
            scorer.check_source(name, kind)
    for name in ("critic", "cost_critic"):  # PPO's: a score model or causal LM to start a value head from
        section = getattr(config, name, None)
        if section is not None and section.path:
            check_model_source(section.path, f"{name}.path")


class OnlineTrainer(abc.ABC):
    """Set-up and loop of an online RL run; one instance per run."""

    algorithm = "online RL"
    plot_groups: dict[str, list[str]] = ONLINE_PLOT_GROUPS
    rollout_logprobs = False
    """Ask the generator for the sampled tokens' log-probs (``Rollout.token_logps``); a subclass sets it."""
    rollout_readout: Any = None
    """A readout of the hidden states the generator keeps per token (``Rollout.token_readouts``: PPO's
    shared value heads); a subclass sets it in ``build``."""

    def __init__(self, config: Any, *, scorers: Mapping[str, Scorer] | None = None) -> None:
        """``scorers``: Scorer objects used instead of the config's ``reward`` / ``cost`` / ``monitor``
        (for Python callers: a scorer that needs more than a ``module:function`` gets, such as the visual
        toy world's oracle, which reads each prompt's picture). The config section must still be set: it
        says which streams the run has."""
        self.config = config
        given = dict(scorers or {})
        unknown = sorted(set(given) - set(SCORER_KINDS))
        if unknown or any(getattr(config, name, None) is None for name in given):
            raise ConfigError(
                f"scorers= names {sorted(given)}: each must be one of {sorted(SCORER_KINDS)} whose config "
                "section is set"
            )
        cfg = config.trainer
        acc = self.accelerator = make_accelerator(cfg)
        # Every check before the run folder is made: batch shapes, engines, the run folder itself, the
        # model and its chat template, every scorer and critic named, and all the data.
        check_batch_sizes(config.rollout, cfg, acc.num_processes)
        refuse_sharded_engines(acc)
        refuse_vllm_with_lora(config)
        self.tokenizer = load_run_tokenizer(config.model, config.data, config.run)
        # a vision-language model renders prompts through its processor, pictures included
        self.renderer = load_run_renderer(config.model, self.tokenizer)
        self.multimodal = is_processor(self.renderer)
        check_multimodal_online(config, self.multimodal)
        check_scorers_and_critics(config, given)
        report = DataReport()
        self.prompts = read_prompts(config.data, report, media=self.multimodal)
        if len(self.prompts["train"]) < config.rollout.prompts_per_step:
            raise ConfigError(
                f"data.train has {len(self.prompts['train'])} prompts, fewer than "
                f"rollout.prompts_per_step={config.rollout.prompts_per_step}"
            )
        self.read_extra_data(report)
        self.run_dir = start_run(config.run, config, acc)
        report.publish(acc, self.run_dir)

        max_length = config.data.max_length
        built = {
            name: given[name] if name in given else getattr(config, name).build(acc.device, max_length)
            for name in SCORER_KINDS
            if getattr(config, name, None) is not None
        }
        self.reward_scorer = built["reward"]
        self.cost_scorer = built.get("cost")
        self.monitor_scorer = built.get("monitor")
        self.monitored: torch.Tensor | None = None
        self.multiplier = LagrangeMultiplier(config.lagrange) if self.cost_scorer is not None else None
        self.timer = PhaseTimer(acc.device)

        self.local_mini = cfg.mini_batch_size // acc.num_processes
        self.micro_per_mini = math.ceil(self.local_mini / cfg.micro_batch_size)
        self.updates_per_step = cfg.update_epochs * config.rollout.samples_per_step // cfg.mini_batch_size
        self.total_updates = cfg.steps * self.updates_per_step

        actor = disable_dropout(load_trainable_causal_lm(config.model))
        acc.print(trainable_summary(actor))
        self.trained, extra_saved = self.build(actor)
        self.actor = self.trained[0].model
        for item in self.trained:
            acc.register_for_checkpointing(item.scheduler)
        renderer = self.renderer  # a VLM's final/ holds its processor too
        saved = [
            SavedModel("", self.actor, lambda m, path, _: save_pretrained(m, renderer, path)),
            *extra_saved,
        ]
        self.recorder = RunRecorder(
            acc,
            config.run,
            cfg,
            total_steps=cfg.steps,
            online=True,
            saved=saved,
            plot_groups=self.plot_groups,
            global_batch=cfg.mini_batch_size,
        )
        if self.multiplier is not None and "lagrange" in self.recorder.extra_state:
            self.multiplier.load_state_dict(self.recorder.extra_state["lagrange"])
        self.generator = self._generator()

    def mini_batch_share(
        self, loss: torch.Tensor, batch: dict[str, torch.Tensor], aggregation: str
    ) -> torch.Tensor:
        """A micro-batch's part of the mini-batch loss. A token-mean loss already is one (its normaliser is
        the mini-batch's token count); a sequence mean over this micro-batch's rows is re-weighted to a mean
        over the mini-batch's rows, so micro-batching does not change the gradient."""
        if Aggregation(aggregation) is Aggregation.SEQUENCE_MEAN:
            # labels: one row per sample, whatever the layout of the ids
            return loss * batch["labels"].shape[0] / self.local_mini
        return loss

    def _generator(self) -> Any:
        """The live policy through transformers, or a vLLM engine whose weights ``sample`` keeps in sync."""
        config = self.config
        if config.rollout.backend == "vllm":
            from alignkit.generate.vllm_engine import VLLMGenerator

            return VLLMGenerator(
                config.model.path,
                dtype=config.model.dtype,
                gpu_memory_utilization=config.rollout.vllm_gpu_memory_utilization,
                seed=config.trainer.seed,
                tokenizer=config.model.tokenizer,
            )
        return HFGenerator(
            self.accelerator.unwrap_model(self.actor),
            self.tokenizer,
            batch_size=config.rollout.generation_batch_size,
            processor=self.renderer if self.multimodal else None,
            readout=self.rollout_readout,
        )

    # ----------------------------------------------------------------- for subclasses
    def read_extra_data(self, report: DataReport) -> None:
        """Read any data beyond the prompts (PPO's pretraining mix); none by default."""
        return None

    @abc.abstractmethod
    def build(self, actor: torch.nn.Module) -> tuple[list[Trained], list[SavedModel]]:
        """Load the other models, prepare everything; the policy's ``Trained`` comes first."""

    @abc.abstractmethod
    def step(self, step: int) -> dict[str, float]:
        """Sample, score and update for one step; returns the step's metrics."""

    # ----------------------------------------------------------------- shared parts of a step
    @property
    def safe(self) -> bool:
        return self.cost_scorer is not None

    def prompts_can_be_shared(self, actor: torch.nn.Module, reference: Any) -> bool:
        """Whether rollout rows may lay each prompt out once (``Rollout.rows(shared_prompt=True)``): the
        policy and a separately loaded reference provably keep responses apart under a shared-prompt mask
        (``models.forward.shared_prompt_is_exact``); else padded rows. A multimodal run keeps padded rows
        (a group's pictures would have to follow its block; and its text-only steps too, so one layout holds
        for the run). Call before ``accelerator.prepare``."""
        if self.multimodal:
            return False
        separate_reference = reference is not None and reference.kind == "frozen"
        return shared_prompt_is_exact(actor) and (
            not separate_reference or shared_prompt_is_exact(reference.model)
        )

    def sample(self, step: int) -> tuple[Rollout, torch.Tensor, torch.Tensor | None]:
        """This process's samples of ``step`` and their reward (and cost) scores.

        A monitor scorer's scores are kept aside in ``self.monitored`` for the step's metrics.
        """
        config, acc = self.config, self.accelerator
        if config.rollout.backend == "vllm":  # on-policy: the engine must sample from the current weights
            with self.timer("weight_sync"):
                self.generator.sync_weights(acc.unwrap_model(self.actor))
        indices = step_prompt_indices(
            len(self.prompts["train"]),
            config.rollout.prompts_per_step,
            step,
            config.trainer.seed,
            acc.num_processes,
            acc.process_index,
        )
        with self.timer("rollout"):
            rollout = build_rollout(
                self.generator,
                self.renderer,
                [self.prompts["train"][i] for i in indices],
                config.rollout.sampling(),
                sampling_seed(config.trainer.seed, step, acc.process_index),
                logprobs=self.rollout_logprobs,
            )
        with self.timer("scoring"):
            scores = score_rollout(self.reward_scorer, rollout, config.rollout.missing_eos_penalty)
            costs = score_rollout(self.cost_scorer, rollout) if self.cost_scorer is not None else None
            self.monitored = (
                score_rollout(self.monitor_scorer, rollout) if self.monitor_scorer is not None else None
            )
        return rollout, scores, costs

    def update_multiplier(self, step: int, costs: torch.Tensor) -> dict[str, float]:
        """Move lambda on this step's episode costs of all processes (before the policy update uses it)."""
        assert self.multiplier is not None
        return self.multiplier.update(step, gather_floats(self.accelerator, costs))

    def sample_metrics(
        self, rollout: Rollout, scores: torch.Tensor, costs: torch.Tensor | None, sums: dict[str, float]
    ) -> dict[str, float]:
        """Means over all processes' samples: score, cost, length, finished rate, plus ``sums`` / samples."""
        local = {
            "samples": float(len(rollout)),
            "tokens": float(rollout.mask.sum()),
            "reward/score": float(scores.sum()),
            "policy/response_length": float(rollout.mask.sum()),
            "policy/finished_rate": float(rollout.finished.sum()),
            **({"cost/score": float(costs.sum())} if costs is not None else {}),
            **({"monitor/score": float(self.monitored.sum())} if self.monitored is not None else {}),
            **sums,
        }
        keys = sorted(local)
        totals = dict(zip(keys, reduce_sum(self.accelerator, [local[k] for k in keys]).tolist(), strict=True))
        samples, tokens = totals.pop("samples"), max(totals.pop("tokens"), 1.0)
        per_token = {k for k in totals if k in PER_TOKEN_MEANS}
        return {k: v / (tokens if k in per_token else samples) for k, v in totals.items()}

    # ----------------------------------------------------------------- the loop
    def evaluate(self) -> dict[str, float]:
        if self.config.rollout.backend == "vllm":  # score the weights as they are now, after the updates
            self.generator.sync_weights(self.accelerator.unwrap_model(self.actor))
        scorers = {"reward": self.reward_scorer}
        if self.cost_scorer is not None:
            scorers["cost"] = self.cost_scorer
        if self.monitor_scorer is not None:
            scorers["monitor"] = self.monitor_scorer
        return evaluate_prompts(
            self.accelerator,
            self.generator,
            self.tokenizer,
            self.prompts.get("eval", []),
            scorers,
            self.config.rollout.max_new_tokens,
        )

    def constrained_name(self) -> str:
        return f"constrained {self.algorithm}"

    def extra_state(self) -> dict[str, Any]:
        return {"lagrange": self.multiplier.state_dict()} if self.multiplier is not None else {}

    def run(self) -> LoopResult:
        """Steps to the last, then ``final/``. Ctrl-C and a full disk end it with an error that says where
        the last checkpoint is (``run.save_on_interrupt`` saves one first, on a single process)."""
        rec, cfg = self.recorder, self.config.trainer
        with rec.session(self.config.run.save_on_interrupt) as stop:
            while rec.step < cfg.steps:
                with self.timer("step"):
                    record = self.step(rec.step)
                record["lr"] = self.trained[0].scheduler.get_last_lr()[0]
                rec.step += 1
                rec.global_step += self.updates_per_step
                if rec.step == cfg.steps or (cfg.eval_every and rec.step % cfg.eval_every == 0):
                    with self.timer("eval"):
                        record.update(self.evaluate())
                record.update(self.timer.pop())
                postfix = {
                    k: record[k] for k in ("reward/score", "policy/kl", "lagrange/lambda") if k in record
                }
                rec.log(record, postfix)
                rec.maybe_checkpoint(self.extra_state(), stop_requested=stop.requested)
                if stop.requested and rec.step < cfg.steps:
                    raise KeyboardInterrupt
            final_dir = rec.finish(self.extra_state())
        name = self.constrained_name() if self.safe else self.algorithm
        self.accelerator.print(f"{name} done: {rec.step} steps; policy in {Path(final_dir)}")
        return LoopResult(rec.global_step, rec.history(), final_dir)
