"""The shared training loop: what every trainer needs, written once, on top of accelerate.

A trainer supplies examples, a collate function, a way to count the loss *units* of a batch (tokens for
SFT, pairs for reward models and DPO) and a loss function returning the *sum* of the per-unit losses.
The loop does the rest: data order and sharding, gradient accumulation, clipping, schedule, periodic
eval, atomic checkpoints with exact resume, logging (metrics.jsonl, TensorBoard, progress bar) and plots.

Design choices, and why:

- **Normalise by the units of the whole optimizer step.** The loss of one step is
  ``sum of unit losses over every micro-batch on every process / number of units in all of them``.
  The unit count is gathered before the first backward of the step, so 4x2 accumulation, 8x1, and two
  processes of 4 all compute the same gradient (averaging per micro-batch would weight a short
  micro-batch's tokens more than a long one's).
- **Data order is a pure function of (seed, step).** Each epoch is a seeded permutation cut into global
  batches, and each process takes fixed slices of the global batch. Resuming at step k therefore needs
  no sampler state, and any process count sees the same global batches.
- **Checkpoints are atomic.** They are written into ``.tmp-step-N`` and renamed once complete, so a
  ``kill -9`` mid-save leaves no checkpoint that looks whole. Resume restores model, optimizer,
  scheduler and RNG state (accelerate's ``save_state``, the weights read back from the checkpoint's HF
  layout rather than stored twice: ``lean_state.py``) and cuts ``metrics.jsonl`` back to that step.
- **Faults stop the run in words.** Ctrl-C and a full disk end the loop with ``RunInterrupted`` /
  ``DiskFullError`` naming the last complete checkpoint and how to resume (the CLI exits 1, no
  traceback); with ``run.save_on_interrupt`` a single-process run first finishes the step in flight and
  saves it. The run folder's lock is released however the loop ends.
- **One backend-agnostic path.** DDP, FSDP and DeepSpeed are accelerate's; the loop only calls
  ``accelerator.backward``/``accumulate``. DeepSpeed steps its optimizer inside ``backward`` and clips
  from its own config, which ``configure_deepspeed`` fills from ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from alignkit.metric_keys import OFFLINE_PLOT_GROUPS
from alignkit.sections import RunConfig, TrainerConfig
from alignkit.train.recorder import RunRecorder, SavedModel
from alignkit.train.timing import PhaseTimer


class LossOutput(NamedTuple):
    """What a trainer's loss function returns for one micro-batch."""

    loss_sum: torch.Tensor
    """Scalar: the sum of per-unit losses (the loop divides by the step's unit count)."""
    metric_sums: Mapping[str, torch.Tensor]
    """Per-unit metrics summed over the micro-batch (logged as means over the step's units)."""


Batch = dict[str, torch.Tensor]
LossFn = Callable[[torch.nn.Module, Batch], LossOutput]


def summed_metrics(metric_means: Mapping[str, torch.Tensor], units: int) -> dict[str, torch.Tensor]:
    """A loss's metrics, reported as means over a micro-batch's ``units``, as the sums ``LossOutput`` carries."""
    return {k: v.detach() * units for k, v in metric_means.items()}


@dataclass
class LoopData:
    """The examples and how to batch them; examples are opaque to the loop."""

    train: Sequence[Any]
    collate: Callable[[Sequence[Any]], Batch]
    count_units: Callable[[Batch], int]
    eval: Sequence[Any] = ()

    @classmethod
    def of_splits(
        cls,
        examples: Mapping[str, Sequence[Any]],
        collate: Callable[[Sequence[Any]], Batch],
        count_units: Callable[[Batch], int],
    ) -> LoopData:
        """``examples["train"]``, and ``examples["eval"]`` when read (``common.read_splits``)."""
        return cls(examples["train"], collate, count_units, examples.get("eval", ()))


@dataclass
class LoopResult:
    global_step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    final_dir: Path | None = None


def steps_per_epoch(num_examples: int, global_batch: int) -> int:
    """Whole global batches per epoch; the remainder is dropped so every step sees the same batch size."""
    return num_examples // global_batch


def global_batch_indices(num_examples: int, global_batch: int, step: int, seed: int) -> list[int]:
    """Example indices of optimizer step ``step`` (0-based): a pure function of its arguments."""
    per_epoch = steps_per_epoch(num_examples, global_batch)
    epoch, pos = divmod(step, per_epoch)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(num_examples, generator=gen)
    return perm[pos * global_batch : (pos + 1) * global_batch].tolist()


def rank_micro_batches(
    indices: Sequence[int], micro: int, accum: int, world: int, rank: int
) -> list[list[int]]:
    """This process's micro-batches of a global batch: micro-batch i of rank r is chunk ``i * world + r``."""
    return [list(indices[(i * world + rank) * micro : (i * world + rank + 1) * micro]) for i in range(accum)]


def lr_lambda(kind: str, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak LR at a step: linear warm-up, then cosine / linear decay to 0, or constant."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if kind == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def configure_deepspeed(accelerator: Any, cfg: TrainerConfig) -> None:
    """Fill DeepSpeed's batch and clipping keys from our config (we pass no dataloader it could read)."""
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None:
        return
    ds = plugin.deepspeed_config
    ds["train_micro_batch_size_per_gpu"] = cfg.micro_batch_size
    ds["gradient_accumulation_steps"] = cfg.grad_accum_steps
    ds["train_batch_size"] = cfg.micro_batch_size * cfg.grad_accum_steps * accelerator.num_processes
    ds["gradient_clipping"] = cfg.max_grad_norm or 0.0


class TrainLoop:
    """Runs optimizer steps of one model; see the module docstring for the choices it makes."""

    def __init__(
        self,
        *,
        accelerator: Any,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        data: LoopData,
        loss_fn: LossFn,
        cfg: TrainerConfig,
        run: RunConfig,
        save_model: Callable[[torch.nn.Module, Path, Mapping[str, Any] | None], None],
        plot_groups: Mapping[str, list[str]] | None = None,
        extra_eval: Callable[[torch.nn.Module], Mapping[str, float]] | None = None,
    ) -> None:
        self.accelerator = accelerator
        self.model = model
        self.optimizer = optimizer
        self.data = data
        self.loss_fn = loss_fn
        self.cfg = cfg
        self.run_dir = Path(run.output_dir)  # made by ``common.start_run``
        self.extra_eval = extra_eval
        self.save_on_interrupt = run.save_on_interrupt
        self.world = accelerator.num_processes
        self.rank = accelerator.process_index
        self.global_batch = cfg.micro_batch_size * cfg.grad_accum_steps * self.world
        per_epoch = steps_per_epoch(len(data.train), self.global_batch)
        if per_epoch == 0:
            raise ValueError(
                f"{len(data.train)} training examples are fewer than one global batch of {self.global_batch} "
                "(trainer.micro_batch_size x trainer.grad_accum_steps x processes): lower the batch or add data"
            )
        self.total_steps = cfg.max_steps or cfg.epochs * per_epoch
        self.steps_per_epoch = per_epoch
        warmup = int(cfg.warmup_ratio * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(cfg.lr_scheduler, self.total_steps, warmup)
        )
        accelerator.register_for_checkpointing(self.scheduler)
        self.recorder = RunRecorder(
            accelerator,
            run,
            cfg,
            total_steps=self.total_steps,
            online=False,
            saved=[SavedModel("", model, save_model, gather=True)],
            plot_groups={**OFFLINE_PLOT_GROUPS, **(plot_groups or {})},
            global_batch=self.global_batch,
        )
        self.timer = PhaseTimer(accelerator.device)

    @property
    def global_step(self) -> int:
        return self.recorder.global_step

    # ----------------------------------------------------------------- steps
    def _micro_batches(self, step: int) -> list[Batch]:
        indices = global_batch_indices(len(self.data.train), self.global_batch, step, self.cfg.seed)
        chunks = rank_micro_batches(
            indices, self.cfg.micro_batch_size, self.cfg.grad_accum_steps, self.world, self.rank
        )
        device = self.accelerator.device
        return [
            {k: v.to(device) for k, v in self.data.collate([self.data.train[i] for i in chunk]).items()}
            for chunk in chunks
        ]

    def _reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        values = values.to(self.accelerator.device, torch.float64)
        return self.accelerator.reduce(values, reduction="sum") if self.world > 1 else values

    def train_step(self, step: int) -> dict[str, float]:
        """One optimizer step: the unit count first, then backward on every micro-batch, then the update."""
        self.model.train()
        with self.timer("data"):
            batches = self._micro_batches(step)
        local_units = sum(self.data.count_units(b) for b in batches)
        units = self._reduce_sum(torch.tensor([float(local_units)])).item()
        if units == 0:
            raise ValueError(f"step {step}: the global batch has no loss units (e.g. every label masked)")
        # accelerator.backward divides by grad_accum_steps (DeepSpeed does the same inside its engine) and
        # DDP averages over processes; scaling by both makes the step's gradient sum/units exactly.
        scale = self.world * self.cfg.grad_accum_steps / units
        loss_total = torch.zeros((), dtype=torch.float64)
        metric_totals: dict[str, float] = {}
        with self.timer("forward_backward"):
            for batch in batches:
                with self.accelerator.accumulate(self.model), self.accelerator.autocast():
                    out = self.loss_fn(self.model, batch)
                    self.accelerator.backward(out.loss_sum * scale)
                loss_total += out.loss_sum.detach().double().cpu()
                for k, v in out.metric_sums.items():
                    metric_totals[k] = metric_totals.get(k, 0.0) + float(v)
        with self.timer("optimizer"):
            grad_norm = self._clip_and_step()
        keys = sorted(metric_totals)
        sums = self._reduce_sum(torch.tensor([loss_total.item(), *(metric_totals[k] for k in keys)])).tolist()
        record = {"loss": sums[0] / units, **{k: s / units for k, s in zip(keys, sums[1:], strict=True)}}
        record.update({"lr": self.scheduler.get_last_lr()[0], "units": units})
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        return record

    def _clip_and_step(self) -> float | None:
        acc = self.accelerator
        grad_norm = None
        if getattr(acc, "deepspeed_engine_wrapped", None) is not None:
            norm = acc.deepspeed_engine_wrapped.get_global_grad_norm()
            grad_norm = None if norm is None else float(norm)
        else:
            params = [p for p in self.model.parameters() if p.requires_grad]
            max_norm = self.cfg.max_grad_norm if self.cfg.max_grad_norm is not None else float("inf")
            grad_norm = float(acc.clip_grad_norm_(params, max_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Loss and metrics on the eval set, sharded across processes and summed exactly."""
        out: dict[str, float] = {}
        if self.data.eval:
            self.model.eval()
            mine = list(range(self.rank, len(self.data.eval), self.world))
            loss_sum, units, metric_totals = 0.0, 0.0, {}
            for start in range(0, len(mine), self.cfg.micro_batch_size):
                chunk = [self.data.eval[i] for i in mine[start : start + self.cfg.micro_batch_size]]
                batch = {k: v.to(self.accelerator.device) for k, v in self.data.collate(chunk).items()}
                with self.accelerator.autocast():
                    res = self.loss_fn(self.model, batch)
                loss_sum += float(res.loss_sum)
                units += self.data.count_units(batch)
                for k, v in res.metric_sums.items():
                    metric_totals[k] = metric_totals.get(k, 0.0) + float(v)
            keys = sorted(metric_totals)
            sums = self._reduce_sum(
                torch.tensor([loss_sum, units, *(metric_totals[k] for k in keys)])
            ).tolist()
            total_units = max(sums[1], 1.0)
            out["eval/loss"] = sums[0] / total_units
            out.update({f"eval/{k}": s / total_units for k, s in zip(keys, sums[2:], strict=True)})
        if self.extra_eval is not None:
            self.model.eval()
            out.update(self.extra_eval(self.accelerator.unwrap_model(self.model)))
        return out

    # ------------------------------------------------------------------- run
    def save_checkpoint(self) -> Path:
        return self.recorder.save_checkpoint()

    def run(self) -> LoopResult:
        """Train to the last step, then write ``final/`` and the plots. Ctrl-C and a full disk end it with
        an error that says where the last checkpoint is; the folder's lock is released in every case."""
        rec = self.recorder
        with rec.session(self.save_on_interrupt) as stop:
            while rec.step < self.total_steps:
                with self.timer("step"):
                    record = self.train_step(rec.step)
                rec.step += 1
                rec.global_step += 1
                record["epoch"] = rec.step / self.steps_per_epoch
                last = rec.step == self.total_steps
                if self.cfg.eval_every and rec.step % self.cfg.eval_every == 0 and not last:
                    with self.timer("eval"):
                        record.update(self.evaluate())
                record.update(self.timer.pop())
                rec.log(record, {"loss": record["loss"]})
                rec.maybe_checkpoint(stop_requested=stop.requested)
                if stop.requested and not last:
                    raise KeyboardInterrupt
            final_eval = self.evaluate()
            if final_eval:
                rec.write(final_eval)
            final_dir = rec.finish()
        return LoopResult(rec.global_step, rec.history(), final_dir)
