"""alignkit's side of a run: the model sizes, the starting SFT policy, the shared config sections, and one
timed public ``train(config)`` call."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .measure import alignkit_step_log, cpu_clock_at_metrics_log, metered

REPO = Path(__file__).resolve().parent.parent.parent

MODEL_SIZES = ("toy", "4m")
"""``--model-size``: ``toy`` is the toy world's own policy (hidden 128, 2 layers, ~0.5M parameters);
``4m`` is a Llama of hidden 256, 4 layers, 4 heads, intermediate 768 over the same tokenizer (~3.8M)."""


def sized_model(size: str) -> str:
    """A model path for ``--model-size``: the toy world's tiny Llama, or the ~3.8M one (built once, offline,
    from ``LlamaConfig`` with random init, seed 0, into ``$ALIGNKIT_HOME/bench-models/llama-4m``)."""
    if size == "toy":
        return "toyworld://models/tiny"
    if size != "4m":
        raise ValueError(f"unknown model size {size!r}; expected one of {MODEL_SIZES}")
    from alignkit.models.loading import load_tokenizer
    from alignkit.toyworld import resolve
    from alignkit.toyworld.model import TinyModelSpec, build_tiny_model, save_model

    world_model = Path(resolve("toyworld://models/tiny"))
    out = Path(os.environ.get("ALIGNKIT_HOME", Path.home() / ".cache/alignkit")) / "bench-models/llama-4m"
    if not (out / "config.json").is_file():
        tokenizer = load_tokenizer(str(world_model))
        spec = TinyModelSpec(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=768)
        tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
        save_model(build_tiny_model(tokenizer, seed=0, spec=spec), tokenizer, tmp)
        tmp.rename(out)
    return str(out)


def parameter_count(path: str) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM

    from alignkit.models.loading import resolve_path

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(resolve_path(path)))
    return sum(p.numel() for p in model.parameters())


def train_sft_policy(args: Any, out_dir: Path) -> str:
    """A starting policy: the toy SFT recipe (``examples/toyworld/sft.yaml``) on ``--model-size``'s model,
    shortened to ``--sft-steps`` (preference training never starts from random init)."""
    from alignkit.config import load_config
    from alignkit.train.sft import SFTConfig, train

    config = load_config(
        SFTConfig,
        REPO / "examples/toyworld/sft.yaml",
        [
            f"model.path={sized_model(args.model_size)}",
            f"trainer.max_steps={args.sft_steps}",
            "trainer.eval_every=0",
            "trainer.save_every=0",
            f"run.output_dir={out_dir}",
            "run.overwrite=true",
            "run.tensorboard=false",
            "run.progress=false",
        ],
    )
    t0 = time.perf_counter()
    result = train(config)
    losses = [r["loss"] for r in result.history if "loss" in r]
    print(
        f"SFT policy: {args.sft_steps} steps in {time.perf_counter() - t0:.1f} s, final loss {losses[-1]:.4f}"
    )
    return str(out_dir / "final")


def policy_description(args: Any, model: str) -> str:
    """The report's ``policy``: the ``--model`` given, or what ``train_sft_policy`` trained."""
    if args.model:
        return model
    return f"{args.model_size} model, {args.sft_steps} SFT steps of examples/toyworld/sft.yaml"


def alignkit_trainer_section(args: Any, steps: int) -> dict[str, Any]:
    """alignkit's ``trainer`` section for a timed run: constant LR, no warm-up/eval/saves, log every step."""
    return {
        "lr": args.lr,
        "adam_betas": list(args.betas),
        "weight_decay": 0.0,
        "lr_scheduler": "constant",
        "warmup_ratio": 0.0,
        "max_steps": steps,
        "micro_batch_size": args.micro_batch,
        "grad_accum_steps": 1,
        "max_grad_norm": args.max_grad_norm,
        "eval_every": 0,
        "save_every": 0,
        "log_every": 1,
        "seed": args.seed,
        "mixed_precision": "no",
    }


def online_trainer_section(args: Any, steps: int, samples: int) -> dict[str, Any]:
    """``alignkit_trainer_section`` for an online trainer: ``steps`` rollouts, each taken in one optimizer
    step over its ``samples`` (one update epoch, one mini-batch of all of them)."""
    offline = alignkit_trainer_section(args, steps)
    del offline["max_steps"], offline["grad_accum_steps"]
    return {"steps": steps, **offline, "update_epochs": 1, "mini_batch_size": samples}


def fp32_model_section(model: str) -> dict[str, Any]:
    """fp32 weights without gradient checkpointing, as every timed run here loads its model."""
    return {"path": model, "dtype": "float32", "gradient_checkpointing": False}


def quiet_run_section(run_dir: Path) -> dict[str, Any]:
    """A run folder that is overwritten and prints and plots nothing per step."""
    return {"output_dir": str(run_dir), "overwrite": True, "tensorboard": False, "progress": False}


def alignkit_common_sections(args: Any, model: str, steps: int, run_dir: Path) -> dict[str, Any]:
    """The config sections every alignkit run here shares: fp32 model, data, trainer, quiet run folder."""
    return {
        "model": fp32_model_section(model),
        "data": {
            "train": {"source": args.data, "template": args.template, "split": args.split},
            "max_length": args.max_length,
            "packing": not args.no_packing,
        },
        "trainer": alignkit_trainer_section(args, steps),
        "run": quiet_run_section(run_dir),
    }


def run_alignkit_timed(train: Any, config: Any, steps: int) -> dict[str, Any]:
    """One public ``train(config)`` call under the memory meter; per-step wall/CPU clocks from its metrics."""
    with cpu_clock_at_metrics_log() as cpu_at_log, metered() as measured:
        result = train(config)
    steps_log = alignkit_step_log(result, steps)
    return {
        "step_end_s": [r["elapsed_s"] for r in steps_log],
        "step_end_cpu_s": cpu_at_log[:steps],
        "losses": [r["loss"] for r in steps_log],
        "units_logged": [r["units"] for r in steps_log],
        "first_step_metrics": {k: v for k, v in steps_log[0].items() if isinstance(v, float)},
        **measured,
    }


def step_batches(items: list[Any], args: Any, steps: int) -> Iterator[list[Any]]:
    """``items`` in alignkit's data order: step s's micro-batch, for s in 0..steps-1 (the order is a pure
    function of (seed, step), ``engine.global_batch_indices``, so TRL can be handed the same sequence)."""
    from alignkit.train.engine import global_batch_indices

    for step in range(steps):
        yield [items[i] for i in global_batch_indices(len(items), args.micro_batch, step, args.seed)]
