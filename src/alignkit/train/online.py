"""What every online RL trainer (PPO, Safe RLHF, GRPO, RLOO) shares: configs, prompts, rollouts, the
Lagrange multiplier, the mini-batch update and the run folder.

The batch vocabulary, one meaning per word, in every online trainer:

- **step**: one rollout followed by its updates. ``trainer.steps`` counts these.
- **rollout**: ``rollout.prompts_per_step`` prompts (across all processes; each process takes an equal
  share) times ``rollout.samples_per_prompt`` samples each: the *samples* of the step.
- **mini-batch**: ``trainer.mini_batch_size`` samples (across all processes) per optimizer step. A step
  takes ``trainer.update_epochs x samples / mini_batch_size`` optimizer steps.
- **micro-batch**: ``trainer.micro_batch_size`` samples per forward/backward on one process; a
  mini-batch is accumulated from micro-batches, normalised by the mini-batch's token count over all
  processes, so the gradient does not depend on the micro-batch size or the process count.

Why the rollout is re-read by a training forward: the generator's sampling runs in eval mode with a KV
cache; the log-probs PPO's ratio needs must come from the same computation as the update's forward,
or the ratio is not exactly 1 on the first mini-batch.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from alignkit.config import ConfigError, check
from alignkit.data.collate import pad_right
from alignkit.data.render import IGNORE_INDEX, render_prompt
from alignkit.generate.base import Generator, SamplingConfig
from alignkit.lean_state import load_state
from alignkit.losses.lagrangian import lagrange_update
from alignkit.losses.logprobs import label_mask
from alignkit.models.score_model import closing_token_id
from alignkit.runs import (
    MetricsLog,
    checkpoint_dirs,
    plot_metrics,
    read_metrics,
    release_run_lock,
    write_checkpoint,
    write_final_dir,
    write_json,
)
from alignkit.score.base import (
    AnswerOnly,
    Scorer,
    as_response,
    build_scorer,
    import_function,
    looks_like_function,
)
from alignkit.sections import DataConfig, DatasetConfig, RunConfig, check_optimisation
from alignkit.train.common import DataReport, read_records
from alignkit.train.engine import global_batch_indices, lr_lambda

# ----------------------------------------------------------------------------- configs


@dataclass
class RolloutConfig:
    prompts_per_step: int = 32
    """Prompts sampled per step, across all processes (each process takes an equal share)."""
    samples_per_prompt: int = 1
    """Responses sampled per prompt (the group size G of GRPO and RLOO; 1 is usual for PPO)."""
    max_new_tokens: int = 32
    """Longest response, in tokens."""
    temperature: float = 1.0
    """Sampling temperature (> 0). The trainers score log-probs (policy, old, reference) at the same
    temperature, so the ratio and the gradient are those of the distribution that sampled (as TRL does);
    top_p / top_k (off by default) reshape sampling further without that correction."""
    top_p: float = 1.0
    """Nucleus sampling cut-off (1.0: off)."""
    top_k: int = 0
    """Top-k sampling cut-off (0: off)."""
    generation_batch_size: int = 64
    """Rows per generate call on each process (memory knob only; results do not depend on it)."""
    missing_eos_penalty: float | None = None
    """Subtracted from the reward of responses cut at max_new_tokens (null: no penalty)."""
    backend: Literal["hf", "vllm"] = "hf"
    """Who samples: 'hf' (the live policy through transformers) or 'vllm' (a vLLM engine on the GPU,
    the policy's weights pushed into it before every rollout; needs `pip install 'alignkit[vllm]'`)."""
    vllm_gpu_memory_utilization: float = 0.3
    """Fraction of GPU memory the vLLM engine may take (the rest is the trainer's)."""

    def validate(self, prefix: str) -> None:
        for name in ("prompts_per_step", "samples_per_prompt", "generation_batch_size"):
            check(getattr(self, name) > 0, f"{prefix}{name}", getattr(self, name), "a positive integer")
        self.sampling().validate(prefix)
        check(
            self.temperature > 0,
            f"{prefix}temperature",
            self.temperature,
            "a number > 0 (RL learns from sampled responses; greedy rollouts give identical samples)",
        )
        check(
            0 < self.vllm_gpu_memory_utilization < 1,
            f"{prefix}vllm_gpu_memory_utilization",
            self.vllm_gpu_memory_utilization,
            "a number in (0, 1)",
        )

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            n=self.samples_per_prompt,
        )

    @property
    def samples_per_step(self) -> int:
        return self.prompts_per_step * self.samples_per_prompt


@dataclass
class ScorerConfig:
    path: str = ""
    """A reward/cost model folder (`final/` of `alignkit train reward|cost`) or a Python function
    'package.module:function' called as fn(prompt_text, response_text) -> float (a function that declares
    `reasoning` / `answer` parameters also gets the response split at its </think>)."""
    batched: bool = False
    """For a function: call it once per batch as fn(prompts, responses) -> list of floats."""
    batch_size: int = 32
    """Pairs scored per forward (models) or per call (batched functions)."""
    answer_only: bool = False
    """Score only the answer of a reasoning model's response (its <think>...</think> block removed)."""

    def validate(self, prefix: str) -> None:
        check(bool(self.path), f"{prefix}path", self.path, "a score model folder or 'module:function'")
        check(self.batch_size > 0, f"{prefix}batch_size", self.batch_size, "a positive integer")

    def check_source(self, key: str, kind: str | None) -> None:
        """Before any run folder: the function must import, the folder must hold a score model of ``kind``
        (None: either kind, as for a monitor)."""
        from alignkit.models.score_model import check_score_model

        if looks_like_function(self.path):
            try:
                import_function(self.path)
            except ValueError as err:
                raise ConfigError(f"{key}.path: {err}") from None
            return
        elsewhere = {
            "reward": "; a cost model belongs in cost.path",
            "cost": "; a reward model belongs in reward.path",
        }
        check_score_model(self.path, f"{key}.path", kind, elsewhere.get(kind or "", ""))

    def build(self, device: Any = None, max_length: int = 512) -> Scorer:
        scorer = build_scorer(
            self.path, batched=self.batched, batch_size=self.batch_size, device=device, max_length=max_length
        )
        return AnswerOnly(scorer) if self.answer_only else scorer


@dataclass
class OnlineTrainerConfig:
    steps: int = 100
    """Steps to run: each is one rollout plus update_epochs passes over it."""
    lr: float = 1e-5
    """Peak learning rate of the policy (AdamW)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW betas."""
    lr_scheduler: Literal["cosine", "linear", "constant"] = "constant"
    """Decay after warm-up, over all optimizer steps of the run."""
    warmup_ratio: float = 0.0
    """Fraction of optimizer steps spent warming up linearly."""
    update_epochs: int = 1
    """Passes over each rollout (PPO's epochs; >1 makes the clipped ratio matter)."""
    mini_batch_size: int = 32
    """Samples per optimizer step, across all processes; must divide the rollout's samples."""
    micro_batch_size: int = 8
    """Samples per forward/backward on one process (memory knob only)."""
    max_grad_norm: float | None = 1.0
    """Clip each model's gradient norm to this (null: no clipping)."""
    eval_every: int = 0
    """Score greedy answers to data.eval prompts every this many steps (0: only at the end)."""
    save_every: int = 0
    """Write a checkpoint every this many steps (0: only the final model)."""
    keep_checkpoints: int = 2
    """Periodic checkpoints to keep."""
    log_every: int = 1
    """Log metrics every this many steps."""
    seed: int = 0
    """Seed of prompt order and sampling: a step's rollout is a pure function of (seed, step, weights)."""
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    """Autocast precision of the updates."""

    grad_accum_steps = 1  # accumulation over micro-batches is done here, not by accelerate

    KEY_HINTS = {
        "max_steps": (
            "steps",
            "online trainers (ppo, safe-ppo, grpo) count rollouts with trainer.steps, each followed by its "
            "updates; trainer.max_steps is the offline trainers' (sft, reward, cost, dpo) optimizer step count",
        ),
        "epochs": ("steps", "online trainers run trainer.steps rollouts; they have no passes over a dataset"),
        "grad_accum_steps": (
            "mini_batch_size",
            "online trainers accumulate micro-batches of trainer.micro_batch_size into each optimizer step's "
            "trainer.mini_batch_size samples by themselves",
        ),
    }
    """Keys another command spells differently: unknown-key errors point at the key meant here."""

    def validate(self, prefix: str) -> None:
        check_optimisation(self, prefix)
        for name in ("steps", "update_epochs", "mini_batch_size", "micro_batch_size"):
            check(getattr(self, name) > 0, f"{prefix}{name}", getattr(self, name), "a positive integer")


@dataclass
class LagrangeConfig:
    """Safe RLHF's multiplier (2310.12773 sec. 3.3); defaults of safe-rlhf's ppo-lag script."""

    threshold: float = 0.0
    """Cost limit on the mean episode cost J_C: lambda grows while J_C is above it (0: safe on average)."""
    lambda_init: float = 1.0
    """Initial lambda (> 0; it is optimised as log lambda so it stays positive)."""
    lambda_lr: float = 0.1
    """Learning rate of log lambda."""
    lambda_max: float | None = 5.0
    """Upper bound on lambda (null: none)."""
    delay_steps: int = 0
    """Steps before lambda starts to move."""
    window: int = 128
    """J_C is the mean cost of the last this many episodes (over all processes)."""

    def validate(self, prefix: str) -> None:
        check(self.lambda_init > 0, f"{prefix}lambda_init", self.lambda_init, "a positive number")
        check(self.lambda_lr >= 0, f"{prefix}lambda_lr", self.lambda_lr, "a number >= 0")
        check(
            self.lambda_max is None or self.lambda_max >= self.lambda_init,
            f"{prefix}lambda_max",
            self.lambda_max,
            "null or a number >= lambda_init",
        )
        check(self.delay_steps >= 0, f"{prefix}delay_steps", self.delay_steps, "an integer >= 0")
        check(self.window > 0, f"{prefix}window", self.window, "a positive integer")


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


# ----------------------------------------------------------------------------- prompts


def toyworld_prompts() -> DataConfig:
    """The toy world's RL prompts: train split to roll out from, held-out split for eval."""
    return DataConfig(
        train=DatasetConfig(source="toyworld://data/prompts", template="trl-prompt"),
        eval=DatasetConfig(source="toyworld://data/prompts", template="trl-prompt", split="test"),
    )


def prompt_messages(record: Any) -> list[Any]:
    """The conversation a policy answers, from any record that has one."""
    from alignkit.data.records import Conversation, Prompt

    if isinstance(record, Prompt):
        return list(record.messages)
    if isinstance(record, Conversation):
        messages = list(record.messages)
        while messages and messages[-1].role == "assistant":
            messages.pop()
        return messages
    prompt = getattr(record, "prompt", None)
    if prompt is None:
        raise ConfigError(
            f"{type(record).__name__} records carry no prompt to roll out from; choose a template whose "
            "records have one (e.g. trl-prompt, pku-saferlhf)"
        )
    return list(prompt)


def read_prompts(data: DataConfig, report: DataReport) -> dict[str, list[list[Any]]]:
    """Prompts of data.train (and data.eval), from any template whose records have a prompt."""
    splits = {"train": data.train, **({"eval": data.eval} if data.eval else {})}
    out = {}
    for name, ds in splits.items():
        records = read_records(ds, data, report, name)
        out[name] = [m for m in (prompt_messages(r) for r in records) if m]
        report.drop(name, len(records) - len(out[name]), "the record has an empty prompt to roll out from")
    return out


def step_prompt_indices(
    num_prompts: int, prompts_per_step: int, step: int, seed: int, world: int, rank: int
) -> list[int]:
    """This process's prompts of a step: a seeded permutation per pass over the prompts, cut in equal shares."""
    if num_prompts < prompts_per_step:
        raise ValueError(
            f"{num_prompts} training prompts are fewer than rollout.prompts_per_step={prompts_per_step}"
        )
    indices = global_batch_indices(num_prompts, prompts_per_step, step, seed)
    share = prompts_per_step // world
    return indices[rank * share : (rank + 1) * share]


SEED_MODULUS = 2**61 - 1
"""Derived seeds are reduced below this so ``torch.manual_seed`` accepts them."""


def sampling_seed(seed: int, step: int, rank: int) -> int:
    """Seed of one process's sampling at one step: resuming at step k samples what the first run did."""
    return ((seed * 1_000_003 + step) * 1_009 + rank) % SEED_MODULUS


# ----------------------------------------------------------------------------- rollouts


@dataclass
class Rollout:
    """The samples of one step on this process, as right-padded training rows (prompt + response).

    Right padding puts every row's tokens at positions 0..len-1, the positions sampling used, so a
    training forward reproduces the sampling distribution exactly.
    """

    prompts: list[list[Any]]
    """The prompt of each sample (repeated for the samples of one prompt)."""
    texts: list[str]
    """Each response's text (without the end-of-turn token)."""
    input_ids: torch.Tensor
    """(B, T) prompt + response ids, right-padded."""
    attention_mask: torch.Tensor
    """(B, T)."""
    labels: torch.Tensor
    """(B, T): the response tokens (what the policy chose), -100 on prompt and padding."""
    finished: torch.Tensor
    """(B,) bool: the response ended its turn (not cut at max_new_tokens)."""

    @property
    def mask(self) -> torch.Tensor:
        """(B, T) bool: positions of response tokens (the actions)."""
        return label_mask(self.labels)

    def __len__(self) -> int:
        return len(self.texts)

    def rows(self, index: Sequence[int] | torch.Tensor, device: Any) -> dict[str, torch.Tensor]:
        """The tensors of some samples, on ``device``, trimmed to their longest row."""
        index = torch.as_tensor(index, dtype=torch.long)
        attention = self.attention_mask[index]
        width = int(attention.sum(dim=1).max())
        return {
            "input_ids": self.input_ids[index, :width].to(device),
            "attention_mask": attention[:, :width].to(device),
            "labels": self.labels[index, :width].to(device),
        }


def build_rollout(
    generator: Generator,
    tokenizer: Any,
    prompts: Sequence[Sequence[Any]],
    sampling: SamplingConfig,
    seed: int,
) -> Rollout:
    """Sample ``sampling.n`` responses per prompt and lay them out as training rows."""
    completions = generator.generate(prompts, sampling, seed=seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompt_ids = [render_prompt(tokenizer, p) for p in prompts]
    closing = closing_token_id(tokenizer)
    sequences, labels, sample_prompts = [], [], []
    for completion in completions:
        ids = prompt_ids[completion.prompt_index]
        if completion.token_ids is None:
            raise ValueError(
                "the generator returned text without token ids; online RL needs the sampled tokens "
                "(give OpenAIGenerator a tokenizer, or sample with rollout.backend=hf|vllm)"
            )
        response = list(completion.token_ids)
        if not response:
            response = [closing]  # an empty answer still ends its turn, with the template's own token
        sequences.append(ids + response)
        labels.append([IGNORE_INDEX] * len(ids) + response)
        sample_prompts.append(list(prompts[completion.prompt_index]))
    return Rollout(
        prompts=sample_prompts,
        texts=[c.text for c in completions],
        input_ids=pad_right(sequences, pad_id),
        attention_mask=pad_right([[1] * len(s) for s in sequences], 0),
        labels=pad_right(labels, IGNORE_INDEX),
        finished=torch.tensor([c.finish_reason == "stop" for c in completions]),
    )


def score_rollout(scorer: Scorer, rollout: Rollout, missing_eos_penalty: float | None = None) -> torch.Tensor:
    """(B,) scores of the rollout's responses; ``missing_eos_penalty`` is subtracted from cut ones."""
    scores = scorer.score(rollout.prompts, [as_response(t) for t in rollout.texts]).float()
    if missing_eos_penalty is not None:
        scores = scores - missing_eos_penalty * (~rollout.finished).float()
    return scores


def micro_batches(indices: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(indices), size):
        yield list(indices[start : start + size])


@torch.no_grad()
def per_token_forward(
    fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], rollout: Rollout, micro: int, device: Any
) -> torch.Tensor:
    """Outputs of ``fn`` over the whole rollout, run ``micro`` rows at a time, gathered on the CPU.

    ``fn`` maps a batch to ``(b, t)`` or ``(b, t, k)``; the result is ``(B, T)`` or ``(B, T, k)``.
    """
    out: torch.Tensor | None = None
    for chunk in micro_batches(range(len(rollout)), micro):
        values = fn(rollout.rows(chunk, device)).float().cpu()
        if out is None:
            out = torch.zeros((len(rollout), rollout.input_ids.shape[1], *values.shape[2:]))
        out[chunk, : values.shape[1]] = values
    assert out is not None
    return out


# ----------------------------------------------------------------------------- statistics across processes


def reduce_sum(accelerator: Any, values: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Element-wise sum over processes (float64, on the CPU)."""
    tensor = torch.as_tensor(values, dtype=torch.float64).to(accelerator.device)
    if accelerator.num_processes > 1:
        tensor = accelerator.reduce(tensor, reduction="sum")
    return tensor.cpu()


def global_masked_mean(accelerator: Any, values: torch.Tensor, mask: torch.Tensor) -> float:
    mask = mask.bool()
    total, count = reduce_sum(accelerator, [float(values[mask].sum()), float(mask.sum())]).tolist()
    return total / max(count, 1.0)


def global_whiten(
    accelerator: Any, values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """``masked_whiten`` with the mean and (population) variance of the valid tokens of *all* processes."""
    mask = mask.bool()
    mean = global_masked_mean(accelerator, values, mask)
    var = global_masked_mean(accelerator, (values - mean).square(), mask)
    whitened = (values - mean) / math.sqrt(var + eps)
    return torch.where(mask, whitened, torch.zeros_like(whitened))


def gather_floats(accelerator: Any, values: torch.Tensor) -> list[float]:
    """Every process's values, in rank order (equal counts per process)."""
    values = values.float().to(accelerator.device)
    if accelerator.num_processes > 1:
        values = accelerator.gather(values)
    return values.cpu().tolist()


# ----------------------------------------------------------------------------- the Lagrange multiplier


class LagrangeMultiplier:
    """lambda = exp(log lambda), moved by :func:`lagrange_update` on a window of recent episode costs."""

    def __init__(self, cfg: LagrangeConfig) -> None:
        self.cfg = cfg
        self.log_lambda = math.log(cfg.lambda_init)
        self.window: deque[float] = deque(maxlen=cfg.window)

    @property
    def value(self) -> float:
        return math.exp(self.log_lambda)

    def update(self, step: int, episode_costs: Sequence[float]) -> dict[str, float]:
        """Add this step's episode costs (all processes) and, after the delay, take one step on log lambda."""
        self.window.extend(episode_costs)
        episode_cost = sum(self.window) / len(self.window)
        if step >= self.cfg.delay_steps:
            self.log_lambda = lagrange_update(
                self.log_lambda, episode_cost, self.cfg.threshold, self.cfg.lambda_lr, self.cfg.lambda_max
            ).log_lambda
        return {"lagrange/lambda": self.value, "lagrange/episode_cost": episode_cost}

    def state_dict(self) -> dict[str, Any]:
        return {"log_lambda": self.log_lambda, "window": list(self.window)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.log_lambda = float(state["log_lambda"])
        self.window = deque(state["window"], maxlen=self.cfg.window)


# ----------------------------------------------------------------------------- optimisation


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
) -> dict[str, float]:
    """``update_epochs`` shuffled passes of mini-batch optimizer steps over this process's samples.

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
            micro = [rows(chunk) for chunk in micro_batches(mini, cfg.micro_batch_size)]
            sums["tokens"] += float(sum(label_mask(b["labels"]).sum() for b in micro))
            for item in trained:
                for k, v in optimizer_step(accelerator, item, micro, cfg.max_grad_norm).items():
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


# ----------------------------------------------------------------------------- the run folder


@dataclass
class SavedModel:
    """A model written into every checkpoint and the final folder; ``folder`` '' is the folder itself."""

    folder: str
    model: torch.nn.Module
    save: Callable[[torch.nn.Module, Path], None]


class OnlineRun:
    """Run-folder duties of an online trainer: metrics, progress, checkpoints with exact resume, plots.

    A checkpoint holds every trained model (HF layout), accelerate's state (optimizers, schedules, RNG)
    and ``trainer_state.json`` (the step and anything else the trainer keeps, e.g. lambda). Rollouts are
    seeded by (seed, step, rank), so a resumed run samples exactly what the first run would have.
    """

    def __init__(
        self,
        accelerator: Any,
        run_dir: Path,
        trainer: OnlineTrainerConfig,
        run: RunConfig,
        saved: Sequence[SavedModel],
        plot_groups: Mapping[str, list[str]],
    ) -> None:
        self.accelerator = accelerator
        self.run_dir = run_dir
        self.cfg = trainer
        self.run = run
        self.saved = list(saved)
        self.plot_groups = plot_groups
        self.step = 0
        self.extra_state: dict[str, Any] = {}
        if run.resume:
            self.step, self.extra_state = self._restore()
        self.metrics = MetricsLog(run_dir / "metrics.jsonl", resume_step=self.step if run.resume else None)
        self.writer = None
        if run.tensorboard and accelerator.is_main_process:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.bar = None
        if run.progress and accelerator.is_main_process:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=trainer.steps, initial=self.step, desc="rollouts", dynamic_ncols=True)
        self.start = time.perf_counter()

    def _restore(self) -> tuple[int, dict[str, Any]]:
        import json

        found = checkpoint_dirs(self.run_dir)
        if not found:
            self.accelerator.print(f"resume: no complete checkpoint in {self.run_dir}, starting from step 0")
            return 0, {}
        latest = found[-1]
        load_state(self.accelerator, latest)
        state = json.loads((latest / "trainer_state.json").read_text())
        self.accelerator.print(f"resume: continuing from {latest} (step {state['global_step']})")
        return int(state["global_step"]), state.get("extra", {})

    def log(self, record: dict[str, Any], postfix: Mapping[str, float] | None = None) -> None:
        """Record a finished step (``self.step`` already counts it)."""
        last = self.step == self.cfg.steps
        if self.accelerator.is_main_process:
            if self.step % self.cfg.log_every == 0 or last or any(k.startswith("eval/") for k in record):
                record = {"step": self.step, **record, "elapsed_s": time.perf_counter() - self.start}
                self.metrics.write(record)
                if self.writer is not None:
                    for k, v in record.items():
                        if k != "step" and isinstance(v, (int, float)):
                            self.writer.add_scalar(k, v, self.step)
            if self.bar is not None:
                self.bar.update(1)
                if postfix:
                    self.bar.set_postfix({k: f"{v:.3f}" for k, v in postfix.items()})

    def _write_models(self, folder: Path, extra: Mapping[str, Any]) -> None:
        for item in self.saved:
            target = folder / item.folder if item.folder else folder
            target.mkdir(parents=True, exist_ok=True)
            item.save(self.accelerator.unwrap_model(item.model), target)
        write_json(
            folder / "trainer_state.json",
            {
                "global_step": self.step,
                "total_steps": self.cfg.steps,
                "num_processes": self.accelerator.num_processes,
                "distributed_type": str(self.accelerator.distributed_type),
                "extra": dict(extra),
            },
        )

    def save_checkpoint(self, extra: Mapping[str, Any]) -> Path:
        return write_checkpoint(
            self.accelerator,
            self.run_dir,
            self.step,
            self.cfg.keep_checkpoints,
            lambda folder, _: self._write_models(folder, extra),
            weights_in=[(item.model, item.folder) for item in self.saved],
        )

    def maybe_checkpoint(self, extra: Mapping[str, Any], *, stop_requested: bool = False) -> None:
        """The periodic checkpoint, or one because Ctrl-C asked to save and stop (never after the last
        step, which writes ``final/`` instead)."""
        periodic = self.cfg.save_every and self.step % self.cfg.save_every == 0
        if (periodic or stop_requested) and self.step < self.cfg.steps:
            self.save_checkpoint(extra)

    def close(self) -> None:
        """Progress bar, TensorBoard and the folder's lock: released however the run ended."""
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
        if self.accelerator.is_main_process:
            release_run_lock(self.run_dir)

    def finish(self, extra: Mapping[str, Any]) -> Path:
        """Write ``final/`` atomically and the plots; returns the final folder."""
        acc = self.accelerator
        final_dir = self.run_dir / "final"
        if acc.is_main_process:
            write_final_dir(self.run_dir, lambda folder: self._write_models(folder, extra))
            plot_metrics(read_metrics(self.metrics.path), self.run_dir / "plots", self.plot_groups)
        acc.wait_for_everyone()
        return final_dir


def evaluate_prompts(
    accelerator: Any,
    generator: Generator,
    tokenizer: Any,
    prompts: Sequence[Sequence[Any]],
    scorers: Mapping[str, Scorer],
    max_new_tokens: int,
) -> dict[str, float]:
    """Mean scores of greedy answers to held-out prompts (sharded over processes): ``eval/<name>``."""
    if not prompts:
        return {}
    mine = list(prompts)[accelerator.process_index :: accelerator.num_processes]
    completions = generator.generate(mine, SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0))
    texts = [as_response(c.text) for c in completions]
    names = sorted(scorers)
    sums = [float(scorers[n].score(mine, texts).sum()) if mine else 0.0 for n in names]
    lengths = float(sum(len(c.token_ids or ()) for c in completions))
    totals = reduce_sum(accelerator, [*sums, lengths, float(len(mine))]).tolist()
    count = max(totals[-1], 1.0)
    out = {f"eval/{n}": t / count for n, t in zip(names, totals, strict=False)}
    out["eval/response_length"] = totals[-2] / count
    return out


def token_weighted(metrics: Mapping[str, torch.Tensor], mask: torch.Tensor) -> dict[str, float]:
    """Token means -> sums over the micro-batch's tokens (so they can be added across micro-batches)."""
    tokens = float(mask.sum())
    return {k: float(v) * tokens for k, v in metrics.items()}
