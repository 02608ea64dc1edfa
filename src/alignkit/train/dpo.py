"""Direct preference optimisation and its family: DPO, IPO, SimPO, ORPO, KTO (``alignkit train dpo``).

The policy learns from preferences without a reward model: the losses (``alignkit.losses.dpo``, each
citing its paper) compare the policy's log-probs of a chosen and a rejected response, most of them
relative to a frozen reference ``pi_ref`` (the starting policy): ``rho(y) = log pi(y|x) - log pi_ref(y|x)``.

Design choices, and why:

- **One forward for both sides.** Chosen and rejected are padded to a common length and stacked
  (``alignkit.data.pair_examples.collate_pairs``), so the policy runs once per micro-batch: half the launches, and both
  sides see exactly the same weights and mode. With ``data.packing`` (the default) a pair is one row,
  prompt + chosen + rejected (``collate_shared_pairs``), so the prompt is computed once for both sides,
  by the policy and by a live reference; and the LM head runs only on response positions
  (``models/forward.py``). Same numbers (tested to 1e-5); models whose attention cannot take the 4D
  mask (sliding windows, flash attention, remote code) keep padded pairs.
- **The reference is a seam** (``train/reference.py``): a frozen copy of ``model.path`` (or
  ``ref_model_path``), the policy with its LoRA adapter disabled, or log-probs cached once before
  training (``reference: cached``; identical numbers, no reference forward per step and no reference
  weights in memory while training). Reference-free losses (SimPO, ORPO) load no reference at all.
- **Units are pairs** (examples for KTO): the loss function returns the sum of per-pair losses and the
  engine divides by the pairs of the whole optimizer step, so accumulation and processes are exact.
  Metrics are summed the same way, so ``rewards/accuracy`` is the fraction of the step's pairs ranked
  right. KTO is the exception: its reference point ``z`` and its chosen/rejected reward means are per
  micro-batch (their count-weighted average is logged), as in the paper's batch estimate.
- **Which label.** PKU-SafeRLHF ranks each pair twice; ``preference`` picks helpfulness (the
  ``better`` response is chosen) or safety (the ``safer`` one is).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from alignkit.config import check
from alignkit.data.pair_examples import (
    collate_pairs,
    collate_shared_pairs,
    collate_unpaired,
    count_examples,
    count_pairs,
    lm_inputs,
    tokenize_pairs,
    tokenize_unpaired,
)
from alignkit.data.processor import is_processor
from alignkit.losses.dpo import LOSS_NAMES, PreferenceBatch, PreferenceLoss
from alignkit.models.forward import response_logps, shared_prompt_is_exact
from alignkit.models.loading import check_model_source, save_pretrained
from alignkit.models.lora import load_trainable_causal_lm, model_quantize, trainable_summary
from alignkit.sections import DataConfig, DatasetConfig, ModelConfig, RunConfig, TrainerConfig
from alignkit.train.common import (
    DataReport,
    load_run_renderer,
    load_run_tokenizer,
    make_accelerator,
    prepare_training,
    read_splits,
    start_offline_run,
)
from alignkit.train.engine import LoopData, LoopResult, LossFn, LossOutput, TrainLoop, summed_metrics
from alignkit.train.reference import ReferenceModel, cache_reference_logps, reference_logps

LossName = Literal[LOSS_NAMES]  # type: ignore[valid-type]
"""``loss``'s allowed values, read off the ``PreferenceLoss`` registry."""


@dataclass
class DPOConfig:
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path=""))
    """The policy to train (required): an SFT model such as runs/toyworld-sft/final (see
    examples/toyworld/dpo.yaml), never a random-init one; it is also the reference unless ref_model_path."""
    ref_model_path: str | None = None
    """Reference model pi_ref; null: a frozen copy of model.path (with LoRA: the base, adapter disabled)."""
    data: DataConfig = field(
        default_factory=lambda: DataConfig(
            train=DatasetConfig(source="toyworld://data/safe_pref", template="pku-saferlhf")
        )
    )
    """Preferences: Preference / SafetyPreference records (KTO also reads UnpairedPreference)."""
    loss: LossName = "dpo"
    """Which preference loss (alignkit.losses.dpo): dpo, ipo, simpo, orpo (reference-free) or kto (unpaired)."""
    beta: float | None = None
    """The loss's beta; null: its own default (dpo/ipo/kto 0.1, simpo 2.5, orpo's lambda 0.1)."""
    label_smoothing: float = 0.0
    """cDPO: assumed probability that a label is flipped, in [0, 0.5) (loss=dpo only)."""
    simpo_gamma: float = 1.4
    """SimPO's target reward margin gamma (absolute, not gamma/beta)."""
    kto_desirable_weight: float = 1.0
    """KTO's lambda_D: weight of desirable examples."""
    kto_undesirable_weight: float = 1.0
    """KTO's lambda_U: weight of undesirable examples."""
    preference: Literal["helpfulness", "safety"] = "helpfulness"
    """For PKU-SafeRLHF records: rank pairs by helpfulness (better = chosen) or by safety (safer = chosen)."""
    reference: Literal["live", "cached"] = "live"
    """live: run pi_ref every step; cached: compute its log-probs once before training (same numbers)."""
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(lr=5e-7))
    """The optimisation loop."""
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/dpo"))
    """Where results go."""

    def validate(self, prefix: str) -> None:
        check(
            bool(self.model.path),
            f"{prefix}model.path",
            self.model.path,
            "the supervised policy DPO starts from, e.g. model.path=runs/toyworld-sft/final after "
            "`alignkit train sft` (DPO only reshapes what its starting policy already says, and that policy "
            "is also its reference, so a random-init model learns nothing useful)",
        )
        check(self.beta is None or self.beta > 0, f"{prefix}beta", self.beta, "a positive number or null")
        check(
            0 <= self.label_smoothing < 0.5,
            f"{prefix}label_smoothing",
            self.label_smoothing,
            "a number in [0, 0.5)",
        )
        check(
            self.label_smoothing == 0 or self.loss == "dpo",
            f"{prefix}label_smoothing",
            self.label_smoothing,
            f"0 with loss={self.loss} (label smoothing is cDPO's, only for loss=dpo)",
        )
        for name in ("kto_desirable_weight", "kto_undesirable_weight"):
            check(getattr(self, name) > 0, f"{prefix}{name}", getattr(self, name), "a positive number")


def loss_options(config: DPOConfig) -> dict[str, float]:
    """The keyword options the configured loss function takes (its signature decides, not a branch)."""
    offered = {
        "beta": config.beta,
        "label_smoothing": config.label_smoothing,
        "gamma": config.simpo_gamma,
        "desirable_weight": config.kto_desirable_weight,
        "undesirable_weight": config.kto_undesirable_weight,
    }
    accepted = inspect.signature(PreferenceLoss(config.loss).value.fn).parameters
    return {k: v for k, v in offered.items() if k in accepted and v is not None}


def _loss_output(
    loss: PreferenceLoss, pref: PreferenceBatch, options: dict[str, float], units: int
) -> LossOutput:
    """The loss summed over the micro-batch's units, its metrics as sums (as the engine expects), and the
    policy's log-probs of the chosen and rejected responses."""
    out = loss(pref, **options)
    metrics = summed_metrics(out.metrics(), units)
    metrics["logps/chosen"] = pref.policy_chosen_logps.detach().sum()
    metrics["logps/rejected"] = pref.policy_rejected_logps.detach().sum()
    return LossOutput(out.losses.sum(), metrics)


def paired_loss_fn(
    loss: PreferenceLoss, options: dict[str, float], reference: ReferenceModel | None
) -> LossFn:
    """Loss of a batch from ``collate_pairs`` / ``collate_shared_pairs``: one policy forward over chosen and
    rejected together."""

    def loss_fn(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        b = count_pairs(batch)
        policy = response_logps(model, lm_inputs(batch))  # (2B,): [0, B) chosen, [B, 2B) rejected
        ref = reference_logps(batch, reference) if loss.needs_reference else None  # (2B,)
        pref = PreferenceBatch(
            policy_chosen_logps=policy.logps[:b],
            policy_rejected_logps=policy.logps[b:],
            ref_chosen_logps=None if ref is None else ref[:b],
            ref_rejected_logps=None if ref is None else ref[b:],
            chosen_num_tokens=policy.num_tokens[:b],
            rejected_num_tokens=policy.num_tokens[b:],
        )
        return _loss_output(loss, pref, options, b)

    return loss_fn


def kto_loss_fn(loss: PreferenceLoss, options: dict[str, float], reference: ReferenceModel | None) -> LossFn:
    """Loss of a batch from ``collate_unpaired``. The KL sequences only feed the detached ``z``, so the
    policy scores them without a graph (no activations kept for a backward that would add nothing)."""

    def loss_fn(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        n = count_examples(batch)
        desirable = batch["desirable"]  # (N,)
        policy = response_logps(model, lm_inputs(batch)).logps  # (N,)
        with torch.no_grad():
            policy_kl = response_logps(model, lm_inputs(batch, "kl_")).logps  # (N,)
        ref = reference_logps(batch, reference)
        ref_kl = reference_logps(batch, reference, "kl_")
        pref = PreferenceBatch(
            policy_chosen_logps=policy[desirable],
            policy_rejected_logps=policy[~desirable],
            ref_chosen_logps=ref[desirable],
            ref_rejected_logps=ref[~desirable],
            policy_kl_logps=policy_kl,
            ref_kl_logps=ref_kl,
        )
        return _loss_output(loss, pref, options, n)

    return loss_fn


def load_reference(config: DPOConfig, policy: torch.nn.Module, device: torch.device) -> ReferenceModel | None:
    """``pi_ref`` for this run (None for reference-free losses); see ``train/reference.py`` for the kinds.

    With LoRA and no ``ref_model_path`` the reference is the policy's own frozen base (adapter off).
    """
    if not PreferenceLoss(config.loss).needs_reference:
        return None
    return ReferenceModel.for_policy(
        policy, config.model, device, path=config.ref_model_path, quantize=model_quantize(config.model)
    )


def train(config: DPOConfig) -> LoopResult:
    """Run the configured preference optimisation: the same call ``alignkit train dpo`` makes."""
    loss = PreferenceLoss(config.loss)
    accelerator = make_accelerator(config.trainer)
    tokenizer = load_run_tokenizer(config.model, config.data, config.run)
    renderer = load_run_renderer(config.model, tokenizer)  # the processor of a vision-language model
    multimodal = is_processor(renderer)
    if config.ref_model_path is not None and loss.needs_reference:
        check_model_source(config.ref_model_path, "ref_model_path")
    pad_id = tokenizer.pad_token_id

    # 1. Data: records -> pair examples (or KTO's unpaired examples with their mismatched KL sequences).
    report = DataReport()

    def to_examples(records: list[Any], ds: DatasetConfig) -> tuple[list[Any], int, int]:
        if loss.paired:
            return tokenize_pairs(records, renderer, config.data.max_length, config.preference)
        return tokenize_unpaired(
            records, renderer, config.data.max_length, config.preference, config.trainer.seed
        )

    examples = read_splits(config.data, report, to_examples, media=multimodal)
    run_dir = start_offline_run(
        len(examples["train"]), report, config.run, config, config.trainer, accelerator
    )

    # 2. Models: the policy is prepared for training; the reference never is (see train/reference.py).
    model = load_trainable_causal_lm(config.model)  # LoRA / QLoRA / checkpointing as model.* asks
    accelerator.print(trainable_summary(model))
    model, optimizer = prepare_training(accelerator, model, config.trainer)
    reference = load_reference(config, accelerator.unwrap_model(model), accelerator.device)

    # 3. Cached reference: score every sequence once, then drop the reference model from memory.
    if reference is not None and config.reference == "cached":
        for name in examples:
            examples[name] = cache_reference_logps(
                reference,
                examples[name],
                pad_token_id=pad_id,
                batch_size=config.trainer.micro_batch_size,
                device=accelerator.device,
                autocast=accelerator.autocast,
            )
        reference = None

    collate = collate_pairs if loss.paired else collate_unpaired
    ref_model = reference.model if reference is not None and reference.kind == "frozen" else None
    if (
        loss.paired
        and config.data.packing
        and not multimodal  # a shared-prompt row would need its pair's pictures once: not built yet
        and shared_prompt_is_exact(model)
        and (ref_model is None or shared_prompt_is_exact(ref_model))
    ):
        collate = collate_shared_pairs
    if loss.paired:
        layout = "one row per pair, shared prompt" if collate is collate_shared_pairs else "padded pairs"
        accelerator.print(f"data: {layout} (data.packing={config.data.packing})")
    make_loss = paired_loss_fn if loss.paired else kto_loss_fn
    loop = TrainLoop(
        accelerator=accelerator,
        model=model,
        optimizer=optimizer,
        data=LoopData.of_splits(
            examples, lambda batch: collate(batch, pad_id), count_pairs if loss.paired else count_examples
        ),
        loss_fn=make_loss(loss, loss_options(config), reference),
        cfg=config.trainer,
        run=config.run,
        save_model=lambda m, path, sd: save_pretrained(m, renderer, path, sd),
        plot_groups={
            "rewards": ["rewards/chosen", "rewards/rejected", "rewards/margin"],
            "accuracy": ["rewards/accuracy", "eval/rewards/accuracy"],
            "logps": ["logps/chosen", "logps/rejected"],
        },
    )
    result = loop.run()
    accelerator.print(f"{config.loss} done: {result.global_step} steps; model in {Path(run_dir) / 'final'}")
    return result
