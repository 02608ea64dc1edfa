"""Config sections every command shares: model, data, trainer (the loop) and run (the folder).

They live at the package's top because every layer reads them (models/ for LoRA and dtypes, eval/ for its
model and data, train/ for all of it), and nothing below train/ may import train/. Each command's config (``SFTConfig``, later ``RewardConfig``, ``DPOConfig`` ...) composes these, so a key
means the same thing in every command. Field docs are the attribute docstrings (see ``alignkit.config``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from alignkit.config import ConfigError, check


@dataclass
class LoraConfig:
    r: int = 16
    """Rank of each adapter's update B @ A; trainable parameters grow linearly with it."""
    alpha: int = 32
    """Scale of the update: the adapter adds (alpha / r) * B @ A to each targeted weight."""
    dropout: float = 0.05
    """Dropout on the adapter's input during training (the frozen base path has none added)."""
    target_modules: str | list[str] = "all-linear"
    """Layers that get adapters: 'all-linear' (every linear layer but the output head) or names, e.g. [q_proj, v_proj]."""
    quantize: Literal["none", "4bit", "8bit"] = "none"
    """Load the frozen base in 4-bit NF4 (QLoRA) or 8-bit via bitsandbytes; needs a CUDA GPU and `pip install bitsandbytes`."""

    def validate(self, prefix: str) -> None:
        check(self.r > 0, f"{prefix}r", self.r, "a positive integer")
        check(self.alpha > 0, f"{prefix}alpha", self.alpha, "a positive integer")
        check(0 <= self.dropout < 1, f"{prefix}dropout", self.dropout, "a number in [0, 1)")
        check(
            bool(self.target_modules),
            f"{prefix}target_modules",
            self.target_modules,
            "'all-linear' or a non-empty list of module names",
        )


@dataclass
class ModelConfig:
    path: str = "toyworld://models/tiny"
    """Model to start from: a hub name, a local folder, or a toyworld:// path (built offline on first use)."""
    tokenizer: str | None = None
    """Tokenizer to use; defaults to the one saved with the model."""
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    """Dtype the weights are loaded in (mixed precision is trainer.mixed_precision); 'auto': the dtype the
    checkpoint's config.json names (torch_dtype), as released checkpoints ship."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about 30% more compute."""
    trust_remote_code: bool = False
    """Allow model code from the hub repository (only for models you trust); never on unless set."""
    chat_template: str | None = None
    """Replace the tokenizer's chat template: a .jinja file or the template text (e.g. TRL's
    trl/chat_templates/*_training.jinja for a template that renders history differently from prompts)."""
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    """Variables passed to the chat template on every render, e.g. {enable_thinking: false} for Qwen3.
    Saved with the trained model (chat_template_kwargs.json) and used again when loading it; {} here
    keeps what the checkpoint saved."""
    freeze_vision: bool = True
    """For a vision- or audio-language model: keep its vision (or audio) tower frozen and train the
    projector and the language model; false trains the tower too. No effect on a text model."""
    lora: LoraConfig | None = None
    """Train a LoRA adapter on the frozen model instead of every weight (null: full fine-tuning).
    Set any key to turn it on (model.lora.r=16), or model.lora={} for the defaults."""


@dataclass
class DatasetConfig:
    source: str = ""
    """A datasets hub name, a local jsonl/json/parquet/csv file or folder, or a toyworld:// path."""
    template: str = "trl"
    """How rows become records: a template name (see `alignkit data templates`)."""
    split: str = "train"
    """Which split to read. A single file is split 'train' only, unless its name says otherwise
    (test.jsonl is split 'test'): point eval at its own file or at a folder holding test.jsonl."""
    subset: str | None = None
    """The hub dataset's subset (its config name), e.g. alpaca-7b for PKU-Alignment/PKU-SafeRLHF."""
    options: dict[str, Any] = field(default_factory=dict)
    """Template options, e.g. {dimension: helpfulness} for intermt or align-anything-ti2t
    (`alignkit data templates` lists each template's options)."""
    column_map: dict[str, str] = field(default_factory=dict)
    """For template 'columns': record field -> column name in the data."""
    max_rows: int | None = None
    """Read at most this many records (null: all)."""

    def validate(self, prefix: str) -> None:
        from alignkit.data.templates import TemplateError, get_template

        check(bool(self.source), f"{prefix}source", self.source, "a dataset name, file or folder")
        # The template, its options and column map are checked with the config, before anything is loaded.
        check_template_name(self.template, f"{prefix}template")
        try:
            get_template(self.template, **self.options)
        except TemplateError as exc:
            check(False, f"{prefix}options", self.options, f"options template {self.template!r} has ({exc})")
        check(
            self.template != "columns" or bool(self.column_map),
            f"{prefix}column_map",
            self.column_map,
            "for template 'columns', record field -> column, e.g. {prompt: instruction, chosen: good, "
            "rejected: bad}",
        )
        check(self.subset != "", f"{prefix}subset", self.subset, "a subset name, or null for none")
        check(
            self.max_rows is None or self.max_rows > 0,
            f"{prefix}max_rows",
            self.max_rows,
            "a positive integer",
        )


def check_template_name(name: str, key: str) -> None:
    """An unknown template is a config error, found when the config is read (before any run folder)."""
    from alignkit.data import TEMPLATES

    if name not in TEMPLATES:
        close = difflib.get_close_matches(name, list(TEMPLATES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise ConfigError(
            f"{key}={name!r} is not a dataset template{hint} Templates: {', '.join(sorted(TEMPLATES))} "
            "(`alignkit data templates` lists them; `alignkit data inspect SOURCE --template NAME` tries one)"
        )


@dataclass
class DataConfig:
    train: DatasetConfig = field(default_factory=DatasetConfig)
    """Training data."""
    eval: DatasetConfig | None = None
    """Held-out data for periodic evaluation (null: no eval)."""
    skip_invalid: bool = False
    """Skip malformed rows (counted and reported in the run folder) instead of stopping at the first one."""
    max_length: int = 512
    """Longest tokenized example; longer ones are truncated (the count is reported)."""
    reasoning_loss: bool = True
    """Whether <think>...</think> reasoning in assistant turns carries loss (false: only the answer and the
    end-of-turn token do; needs <think> and </think> to be single tokens, as in Qwen3 / DeepSeek-R1)."""
    packing: bool = True
    """Compute no padding where the model allows it, with the same losses: SFT packs a micro-batch's
    conversations into shared rows with block-diagonal attention (TRL's padding_free), and the paired
    preference losses (DPO, IPO, SimPO, ORPO) run each prompt once for both responses. Models whose
    attention cannot keep packed examples apart (remote code, and for DPO sliding-window or flash
    attention) fall back to padded rows. false: always pad."""

    def splits(self) -> dict[str, DatasetConfig]:
        """The sections a run reads, by split name: train, and eval when set."""
        return {"train": self.train, **({"eval": self.eval} if self.eval else {})}

    def validate(self, prefix: str) -> None:
        check(self.max_length > 0, f"{prefix}max_length", self.max_length, "a positive integer")


@dataclass
class OptimisationConfig:
    """The ``trainer.*`` keys every loop has, offline and online: optimiser, schedule, clipping, precision,
    cadence and seed. ``TrainerConfig`` (offline) and ``OnlineTrainerConfig`` add what their loop counts."""

    lr: float = 2e-5
    """Peak learning rate (AdamW)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW betas."""
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    """Decay after warm-up, over all optimizer steps of the run."""
    warmup_ratio: float = 0.03
    """Fraction of optimizer steps spent warming up linearly from 0."""
    micro_batch_size: int = 8
    """Examples (samples) per forward/backward on each process: a memory knob, results do not depend on it."""
    max_grad_norm: float | None = 1.0
    """Clip each trained model's global gradient norm to this (null: no clipping)."""
    eval_every: int = 0
    """Evaluate every this many steps (0: only at the end)."""
    save_every: int = 0
    """Write a checkpoint every this many steps (0: only the final model)."""
    keep_checkpoints: int = 2
    """How many periodic checkpoints to keep (the final model is always kept)."""
    log_every: int = 1
    """Log metrics every this many steps."""
    seed: int = 0
    """Seed of data order, sampling and any randomness in the loop."""
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    """Autocast precision (bf16 needs a GPU or a recent CPU)."""

    def validate(self, prefix: str) -> None:
        check_optimisation(self, prefix)
        check(
            self.micro_batch_size > 0,
            f"{prefix}micro_batch_size",
            self.micro_batch_size,
            "a positive integer",
        )


@dataclass
class TrainerConfig(OptimisationConfig):
    """The offline loop (SFT, reward, cost, DPO): a step is one optimizer step."""

    epochs: int = 1
    """Passes over the training data (ignored when max_steps is set)."""
    max_steps: int | None = None
    """Optimizer steps to take; overrides epochs."""
    grad_accum_steps: int = 1
    """Micro-batches accumulated per optimizer step. Global batch = micro_batch_size x grad_accum_steps x processes."""

    KEY_HINTS = {
        "steps": (
            "max_steps",
            "offline trainers (sft, reward, cost, dpo) count optimizer steps with trainer.max_steps or "
            "trainer.epochs; trainer.steps is the online trainers' (ppo, safe-ppo, grpo) count of rollouts",
        )
    }
    """Keys another command spells differently: unknown-key errors point at the key meant here."""

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        check(self.epochs > 0, f"{prefix}epochs", self.epochs, "a positive integer")
        check(
            self.max_steps is None or self.max_steps > 0,
            f"{prefix}max_steps",
            self.max_steps,
            "a positive integer",
        )
        check(
            self.grad_accum_steps > 0,
            f"{prefix}grad_accum_steps",
            self.grad_accum_steps,
            "a positive integer",
        )


@dataclass
class OnlineTrainerConfig(OptimisationConfig):
    """The online loop (PPO, Safe RLHF, GRPO, ...): a step is one rollout and its optimizer steps."""

    steps: int = 100
    """Steps to run: each is one rollout plus update_epochs passes over it."""
    lr: float = 1e-5
    """Peak learning rate of the policy (AdamW)."""
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
        super().validate(prefix)
        for name in ("steps", "update_epochs", "mini_batch_size"):
            check(getattr(self, name) > 0, f"{prefix}{name}", getattr(self, name), "a positive integer")


SEED_LIMIT = 2**31
"""Seeds must lie in [0, SEED_LIMIT): what every RNG the loops seed (torch, numpy, random) accepts."""


def check_optimisation(cfg: Any, prefix: str) -> None:
    """The optimiser, clipping, schedule, logging and seed keys every loop config has (offline and online)."""
    check(cfg.lr > 0, f"{prefix}lr", cfg.lr, "a positive number")
    check(cfg.weight_decay >= 0, f"{prefix}weight_decay", cfg.weight_decay, "a number >= 0")
    check(
        len(cfg.adam_betas) == 2 and all(0 <= beta < 1 for beta in cfg.adam_betas),
        f"{prefix}adam_betas",
        cfg.adam_betas,
        "two numbers in [0, 1), e.g. [0.9, 0.999]",
    )
    check(0 <= cfg.seed < SEED_LIMIT, f"{prefix}seed", cfg.seed, "an integer in [0, 2**31)")
    check(0 <= cfg.warmup_ratio < 1, f"{prefix}warmup_ratio", cfg.warmup_ratio, "a number in [0, 1)")
    check(
        cfg.max_grad_norm is None or cfg.max_grad_norm > 0,
        f"{prefix}max_grad_norm",
        cfg.max_grad_norm,
        "a positive number or null",
    )
    for name in ("eval_every", "save_every"):
        check(getattr(cfg, name) >= 0, f"{prefix}{name}", getattr(cfg, name), "an integer >= 0")
    for name in ("log_every", "keep_checkpoints"):
        check(getattr(cfg, name) > 0, f"{prefix}{name}", getattr(cfg, name), "a positive integer")


@dataclass
class OutputConfig:
    """Where a command writes its folder: the ``run.*`` keys every command has (eval has only these)."""

    output_dir: str = "runs/run"
    """The run folder: config, metrics, checkpoints, plots. Never overwritten unless overwrite=true."""
    overwrite: bool = False
    """Delete an existing run folder of the same name and start over."""

    def validate(self, prefix: str) -> None:
        check(bool(self.output_dir), f"{prefix}output_dir", self.output_dir, "a folder path")
        check_output_dir(self.output_dir, f"{prefix}output_dir")


def check_output_dir(path: str, key: str) -> None:
    """A run folder must be (or become) a folder: neither it nor a parent may be an existing file."""
    folder = Path(path).expanduser()
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = (
                    "is a file" if candidate == folder else f"is inside {str(candidate)!r}, which is a file"
                )
                raise ConfigError(
                    f"{key}={path!r} {where}; a run folder must be a folder: choose another path"
                )
            return


@dataclass
class RunConfig(OutputConfig):
    resume: bool = False
    """Continue the run in output_dir from its latest complete checkpoint."""
    save_on_interrupt: bool = False
    """On Ctrl-C, finish the step in flight and save a checkpoint before stopping (single-process runs;
    off by default, as in TRL: Ctrl-C stops at once and the last periodic checkpoint is where to resume)."""
    tensorboard: bool = True
    """Also write TensorBoard event files (metrics.jsonl and PNG plots are always written)."""
    progress: bool = True
    """Show a progress bar."""

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        check(
            not (self.overwrite and self.resume),
            f"{prefix}resume",
            self.resume,
            "not both resume and overwrite",
        )
