"""TRL's side of a run: the config keywords that hold the optimisation equal to alignkit's, the model and
optimizer alignkit would build, the loss recorder, the token-split checks, and quiet training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

TRL_RUN_CHECKS = ("reference_model_kept", "gradient_checkpointing", "bf16", "optimizer")
"""The fields ``trl_run_fields`` reports of every TRL run (each script copies them into its checks)."""


def trl_optimisation_args(args: Any, steps: int, out_dir: Path) -> dict[str, Any]:
    """The TRL config keywords every comparison shares: the same optimisation and bookkeeping as alignkit
    (micro-batch x 1 accumulation, constant LR, fp32 without checkpointing, log every step, no eval/saves)."""
    return {
        "output_dir": str(out_dir),
        "max_steps": steps,
        "per_device_train_batch_size": args.micro_batch,
        "gradient_accumulation_steps": 1,
        "learning_rate": args.lr,
        "adam_beta1": args.betas[0],
        "adam_beta2": args.betas[1],
        "weight_decay": 0.0,
        "max_grad_norm": args.max_grad_norm,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "bf16": False,
        "fp16": False,
        "activation_checkpointing": False,
        "logging_strategy": "steps",
        "logging_steps": 1,
        "eval_strategy": "no",
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "seed": args.seed,
        "use_cpu": not torch.cuda.is_available(),
    }


def trl_common_args(args: Any, steps: int, out_dir: Path) -> dict[str, Any]:
    """``trl_optimisation_args`` plus the sequence keywords of the offline comparisons (SFT, DPO)."""
    return trl_optimisation_args(args, steps, out_dir) | {
        "max_length": args.max_length,
        "padding_free": False,
    }


def adamw_as_alignkit(args: Any, model: torch.nn.Module) -> tuple[Any, Any]:
    """TRL's ``optimizers=``: the ``torch.optim.AdamW`` alignkit builds over the trainable parameters, or
    ``(None, None)`` (TRL's fused default) with ``--trl-default-optim``."""
    if args.trl_default_optim:
        return (None, None)
    params = [p for p in model.parameters() if p.requires_grad]
    return (torch.optim.AdamW(params, lr=args.lr, betas=tuple(args.betas), weight_decay=0.0), None)


def trl_model_and_optimizers(args: Any, path: str) -> tuple[Any, Any, tuple[Any, Any]]:
    """(tokenizer, fp32 model on the device, optimizers): the ``torch.optim.AdamW`` alignkit builds, unless
    ``--trl-default-optim``."""
    from transformers import AutoModelForCausalLM

    from alignkit.models.loading import load_tokenizer, resolve_path

    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(resolve_path(path), dtype=torch.float32)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    return tokenizer, model, adamw_as_alignkit(args, model)


def trl_optimizer_name(trainer: Any, default_optim: bool) -> str:
    opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    return type(opt).__name__ + ("(fused default)" if default_optim else "(as alignkit)")


def trl_run_fields(trainer: Any, args: Any) -> dict[str, Any]:
    """What every TRL run reports for the fairness checks (``TRL_RUN_CHECKS``)."""
    return {
        "reference_model_kept": trainer.ref_model is not None,
        "gradient_checkpointing": bool(trainer.args.gradient_checkpointing),
        "bf16": bool(trainer.args.bf16),
        "optimizer": trl_optimizer_name(trainer, args.trl_default_optim),
    }


def copy_trl_checks(checks: dict[str, Any], raw: dict[str, Any], keys: tuple[str, ...]) -> None:
    """The first run's value of each ``keys`` field, as ``checks["trl_<key>"]``."""
    for k in keys:
        checks.setdefault(f"trl_{k}", raw[k])


class StepLossRecorder:
    """Mixin for a TRL trainer: keeps each training micro-batch's loss (detached: no device sync) and the
    first training batch's inputs."""

    step_losses: list[torch.Tensor]
    first_batch: dict[str, torch.Tensor] | None = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001, ANN201
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # type: ignore[misc]
        if model.training:
            if self.first_batch is None:
                self.first_batch = {
                    k: v.detach().cpu() for k, v in inputs.items() if isinstance(v, torch.Tensor)
                }
            self.step_losses.append((loss[0] if return_outputs else loss).detach())
        return loss


def labelled_split(example: Any) -> tuple[list[int], list[int]]:
    """``(prompt_ids, completion_ids)``: the unlabelled prefix and the labelled (scored) tokens after it."""
    labelled = [i for i, t in enumerate(example.labels) if t != -100]
    start, end = labelled[0], labelled[-1] + 1
    assert labelled == list(range(start, end)), "alignkit's labelled tokens are not one contiguous span"
    return list(example.input_ids[:start]), list(example.input_ids[start:end])


def pair_split(example: Any) -> dict[str, list[int]]:
    """A ``PairExample`` as TRL's columns ``prompt_ids``, ``chosen_ids``, ``rejected_ids``."""
    prompt_c, chosen = labelled_split(example.chosen)
    prompt_r, rejected = labelled_split(example.rejected)
    assert prompt_c == prompt_r, "chosen and rejected do not share their prompt tokens"
    return {"prompt_ids": prompt_c, "chosen_ids": chosen, "rejected_ids": rejected}


def labels_differ(trl_batch: dict[str, torch.Tensor], examples: list[Any]) -> bool:
    """TRL's labels (input ids where ``completion_mask``) vs alignkit's ``collate_pairs`` labels, same width."""
    from alignkit.data.pair_examples import collate_pairs

    ours = collate_pairs(examples, pad_token_id=0)["labels"]
    theirs = trl_batch["input_ids"].masked_fill(trl_batch["completion_mask"] == 0, -100)
    width = max(ours.shape[1], theirs.shape[1])
    ours = torch.nn.functional.pad(ours, (0, width - ours.shape[1]), value=-100)
    theirs = torch.nn.functional.pad(theirs, (0, width - theirs.shape[1]), value=-100)
    return not torch.equal(ours, theirs)


def train_trl_quietly(trainer: Any) -> None:
    """Quiet a TRL trainer (no stdout printer) and train it."""
    from transformers import PrinterCallback

    trainer.step_losses = []
    trainer.remove_callback(PrinterCallback)
    trainer.train()


def train_trl_timed(
    trainer_cls: Any,
    args: Any,
    path: str,
    config: Any,
    rows: list[dict[str, Any]],
    callbacks: tuple[Any, ...] = (),
    **trainer_kwargs: Any,
) -> tuple[Any, dict[str, Any]]:
    """Load ``path`` (``trl_model_and_optimizers``), build ``trainer_cls`` on ``rows`` and train it quietly,
    all under the memory meter (model loading counts, as alignkit's call loads its model too):
    (the trained trainer, the raw run's ``step_end_s``, ``step_end_cpu_s``, ``wall_s`` and memory fields)."""
    from datasets import Dataset

    from .measure import metered, step_clock_callback

    clock = step_clock_callback()
    with metered() as measured:
        tokenizer, model, optimizers = trl_model_and_optimizers(args, path)
        trainer = trainer_cls(
            model=model,
            **trainer_kwargs,
            args=config,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            optimizers=optimizers,
            callbacks=[clock, *callbacks],
        )
        train_trl_quietly(trainer)
    return trainer, clock.fields() | measured
