"""The update half of an online step: mini-batch optimizer steps over the rollout.

The batch vocabulary, one meaning per word, in every online trainer:

- **step**: one rollout followed by its updates. ``trainer.steps`` counts these.
- **rollout**: ``rollout.prompts_per_step`` prompts (across all processes; each process takes an equal
  share) times ``rollout.samples_per_prompt`` samples each: the *samples* of the step.
- **mini-batch**: ``trainer.mini_batch_size`` samples (across all processes) per optimizer step. A step
  takes ``trainer.update_epochs x samples / mini_batch_size`` optimizer steps.
- **micro-batch**: ``trainer.micro_batch_size`` samples per forward/backward on one process; a
  mini-batch is accumulated from micro-batches, normalised by the mini-batch's token count over all
  processes, so the gradient does not depend on the micro-batch size or the process count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from alignkit.config import ConfigError
from alignkit.losses.logprobs import label_mask
from alignkit.sections import OnlineTrainerConfig
from alignkit.train.cross_process import reduce_sum
from alignkit.train.engine import lr_lambda
from alignkit.train.prompts import SEED_MODULUS, sampling_seed
from alignkit.train.rollout import RolloutConfig, micro_batches


def check_batch_sizes(rollout: RolloutConfig, trainer: OnlineTrainerConfig, world: int) -> None:
    """The rollout must split evenly into processes and mini-batches; say which keys to change if not."""
    samples = rollout.samples_per_step
    problems = []
    if rollout.prompts_per_step % world:
        problems.append(
            f"rollout.prompts_per_step={rollout.prompts_per_step} is not divisible by {world} processes"
        )
    if samples % trainer.mini_batch_size:
        problems.append(
            f"the rollout's {samples} samples (prompts_per_step x samples_per_prompt) do not split into "
            f"mini-batches of trainer.mini_batch_size={trainer.mini_batch_size}"
        )
    if trainer.mini_batch_size % world:
        problems.append(
            f"trainer.mini_batch_size={trainer.mini_batch_size} is not divisible by {world} processes"
        )
    if problems:
        raise ConfigError("; ".join(problems))


@dataclass
class Trained:
    """One model the step updates: a prepared model, its optimizer and schedule, and its loss."""

    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: Callable[
        [torch.nn.Module, dict[str, torch.Tensor], float], tuple[torch.Tensor, dict[str, float]]
    ]
    """(model, micro-batch, normaliser) -> (loss to backward, metric sums over the micro-batch's tokens)."""


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: OnlineTrainerConfig, total_updates: int) -> Any:
    warmup = int(cfg.warmup_ratio * total_updates)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.lr_scheduler, total_updates, warmup))


def optimizer_step(
    accelerator: Any,
    trained: Trained,
    micro: Sequence[dict[str, torch.Tensor]],
    max_grad_norm: float | None,
) -> dict[str, float]:
    """One optimizer step of ``trained`` on a mini-batch given as this process's micro-batches.

    Every loss is normalised by the mini-batch's response tokens on all processes (times the process
    count, which DDP's gradient average divides back out), so the step's gradient is the token mean over
    the whole mini-batch whatever the micro-batch size. Returns metric sums over this process's tokens.
    """
    tokens = reduce_sum(accelerator, [float(sum(label_mask(b["labels"]).sum() for b in micro))]).item()
    normaliser = max(tokens, 1.0) / accelerator.num_processes
    model = trained.model
    model.train()
    sums: dict[str, float] = {}
    for i, batch in enumerate(micro):
        sync = i == len(micro) - 1
        context = (
            accelerator.no_sync(model)
            if not sync and accelerator.num_processes > 1
            else contextlib.nullcontext()
        )
        with context, accelerator.autocast():
            loss, metrics = trained.loss_fn(model, batch, normaliser)
            accelerator.backward(loss)
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    if max_grad_norm is not None:
        params = [p for p in model.parameters() if p.requires_grad]
        sums[f"{trained.name}/grad_norm"] = float(accelerator.clip_grad_norm_(params, max_grad_norm))
    trained.optimizer.step()
    trained.scheduler.step()
    trained.optimizer.zero_grad(set_to_none=True)
    return sums


def update_on_rollout(
    accelerator: Any,
    trained: Sequence[Trained],
    num_samples: int,
    cfg: OnlineTrainerConfig,
    rows: Callable[[list[int]], dict[str, torch.Tensor]],
    step: int,
    timer: Callable[[str], AbstractContextManager[Any]] | None = None,
    keep_prompts_together: bool = False,
) -> dict[str, float]:
    """``update_epochs`` shuffled passes of mini-batch optimizer steps over this process's samples.

    ``keep_prompts_together``: each mini-batch's samples in rollout order (prompt-major), so the samples
    of one prompt share micro-batches and shared-prompt rows compute that prompt once for them. Which
    samples a mini-batch holds does not change, and its gradient does not depend on how it is cut into
    micro-batches.

    Returns token-weighted means over everything seen (grad norms: mean over optimizer steps).
    """
    local_mini = cfg.mini_batch_size // accelerator.num_processes
    sums: dict[str, float] = {"tokens": 0.0}
    norms: dict[str, list[float]] = {}
    for epoch in range(cfg.update_epochs):
        generator = torch.Generator().manual_seed(
            (sampling_seed(cfg.seed, step, 0) * 31 + epoch) % SEED_MODULUS
        )
        order = torch.randperm(num_samples, generator=generator).tolist()
        for start in range(0, num_samples, local_mini):
            mini = order[start : start + local_mini]
            if keep_prompts_together:
                mini = sorted(mini)
            micro = [rows(chunk) for chunk in micro_batches(mini, cfg.micro_batch_size)]
            sums["tokens"] += float(sum(label_mask(b["labels"]).sum() for b in micro))
            for item in trained:
                with timer(f"update_{item.name}") if timer is not None else contextlib.nullcontext():
                    metrics = optimizer_step(accelerator, item, micro, cfg.max_grad_norm)
                for k, v in metrics.items():
                    if k.endswith("grad_norm"):
                        norms.setdefault(k, []).append(v)
                    else:
                        sums[k] = sums.get(k, 0.0) + v
    keys = sorted(sums)
    totals = dict(zip(keys, reduce_sum(accelerator, [sums[k] for k in keys]).tolist(), strict=True))
    tokens = max(totals.pop("tokens"), 1.0)
    out = {k: t / tokens for k, t in totals.items()}
    out.update({k: sum(v) / len(v) for k, v in norms.items()})
    return out


def token_weighted(metrics: Mapping[str, torch.Tensor], mask: torch.Tensor) -> dict[str, float]:
    """Token means -> sums over the micro-batch's tokens (so they can be added across micro-batches)."""
    tokens = float(mask.sum())
    return {k: float(v) * tokens for k, v in metrics.items()}
