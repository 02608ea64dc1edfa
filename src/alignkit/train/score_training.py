"""What reward and cost model training share: pairs of scored sequences, one forward, the run itself.

A trainer (``reward.py``, ``cost.py``) says only how a record becomes a ``PairSpec`` and which loss to
apply to the two ``(B,)`` score vectors; reading data, tokenising, batching and the loop live here.

- **One forward per micro-batch.** The B first and B second responses of a micro-batch are stacked
  into one ``(2B, T)`` batch (firsts, then seconds), which halves the Python/kernel overhead and lets
  both sides see identical padding and dropout state.
- **The loss unit is a pair.** ``count_pairs`` tells the engine so, and the loss returns the *sum* over
  pairs, so accumulation and multiple processes average over the optimizer step's pairs exactly.
- **Each row ends at its scored token** (see ``alignkit.models.score_model``); a pair whose prompt
  leaves no token of the response's last turn within ``data.max_length`` is dropped and counted in the
  data report (a multi-turn response cut inside its shared history would otherwise be scored there).
- **A vision-language model** (``model.path`` saved with a processor) renders the pairs through its
  processor, so records with pictures are read (``read_records(media=True)``), each row of a batch
  carries its prompt's pictures (firsts, then seconds, as the ids) and ``final/`` holds the processor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from alignkit.config import check
from alignkit.data.processor import is_processor
from alignkit.data.render import TokenizedExample, shared_renders
from alignkit.models.score_model import (
    ScoreKind,
    collate_scores,
    media_inputs,
    new_score_model,
    score_example,
    sequence_scores,
)
from alignkit.score.pairs import PairSpec
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
from alignkit.train.engine import LoopData, LoopResult, LossOutput, TrainLoop


def toyworld_safe_pref(split: str) -> DatasetConfig:
    """The toy world's PKU-SafeRLHF-schema pairs: the default data of both score-model trainers."""
    return DatasetConfig(source="toyworld://data/safe_pref", template="pku-saferlhf", split=split)


def toyworld_safe_pref_data() -> DataConfig:
    """The score trainers' default data: the toy world's PKU-SafeRLHF-schema train and test pairs."""
    return DataConfig(train=toyworld_safe_pref("train"), eval=toyworld_safe_pref("test"))


@dataclass
class ScoreModelConfig:
    """The keys of a pairwise score model's training; ``RewardConfig`` and ``CostConfig`` say what their
    pairs rank and where their runs go."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """Backbone to start from: a causal LM (usually the SFT policy) or an earlier score model."""
    data: DataConfig = field(default_factory=toyworld_safe_pref_data)
    """Pairs of responses to one prompt."""
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(lr=2e-5))
    """The optimisation loop (one unit = one pair)."""
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/score"))
    """Where results go; the model is saved in <output_dir>/final."""
    score_reg: float = 0.0
    """eta: weight of the regulariser eta * (s_1^2 + s_2^2) / 2 on a pair's two scores, which keeps them near
    zero (align-anything uses 0.001; 0: off)."""

    def validate(self, prefix: str) -> None:
        check(self.score_reg >= 0, f"{prefix}score_reg", self.score_reg, "a number >= 0")


def stale_default_eval(data: DataConfig) -> str | None:
    """A warning when ``data.train`` was changed but ``data.eval`` is still the score trainers' default.

    ``alignkit train reward data.train.source=X`` keeps ``data.eval`` at the toy world's PKU-SafeRLHF test
    pairs, so ``eval/rewards/accuracy`` would measure the model on another dataset (a VLM reward model
    trained on InterMT pairs scores 0.44-0.50 there, read as "held-out accuracy"). None when the eval
    split is the user's own, absent, or the default goes with the default train split."""
    default_train, default_eval = toyworld_safe_pref("train"), toyworld_safe_pref("test")
    if data.eval is None or data.eval != default_eval or data.train.source == default_train.source:
        return None  # the default source with fewer rows (max_rows) still goes with its own test split
    return (
        f"warning: data.eval is still the default ({default_eval.source}, split {default_eval.split}) while "
        f"data.train is {data.train.source}: the eval/ metrics measure another dataset. Set data.eval.source "
        "(and its template, options and split) to your held-out data, or data.eval=null"
    )


@dataclass(frozen=True)
class ScoredPair:
    """A tokenized ``PairSpec``: both rows cut after their scored token."""

    first: TokenizedExample
    second: TokenizedExample
    first_sign: int = 0
    second_sign: int = 0


def tokenize_pairs(
    specs: Sequence[PairSpec], tokenizer: Any, max_length: int
) -> tuple[list[ScoredPair], int, int]:
    """(pairs, how many had a row truncated, how many were dropped because no token of
    a response's last turn fit).
    ``tokenizer``: the run's tokenizer, or a VLM's processor (the rows then carry their pictures)."""
    pairs, truncated, dropped = [], 0, 0
    with shared_renders():  # both rows render their prompt: once
        for spec in specs:
            first = score_example(tokenizer, spec.prompt, spec.first, max_length)
            second = score_example(tokenizer, spec.prompt, spec.second, max_length)
            if first is None or second is None:
                dropped += 1
                continue
            truncated += first.truncated or second.truncated
            pairs.append(ScoredPair(first, second, spec.first_sign, spec.second_sign))
    return pairs, truncated, dropped


def collate_pairs(pairs: Sequence[ScoredPair], pad_token_id: int) -> dict[str, torch.Tensor]:
    """``input_ids``/``attention_mask`` (2B, T): rows 0..B-1 are the firsts, B..2B-1 the seconds;
    ``signs`` (2B,) in the same order; media tensors (``pixel_values``) in the rows' order too."""
    batch = collate_scores([p.first for p in pairs] + [p.second for p in pairs], pad_token_id)
    batch["signs"] = torch.tensor([p.first_sign for p in pairs] + [p.second_sign for p in pairs])
    return batch


def count_pairs(batch: Mapping[str, torch.Tensor]) -> int:
    return batch["input_ids"].shape[0] // 2


def pair_scores(
    model: torch.nn.Module, batch: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) scores of the firsts and (B,) of the seconds, from one forward over all 2B rows."""
    # float32 for the loss: under bf16 autocast the head's output is bf16, too coarse for log-sigmoid margins.
    scores = sequence_scores(model, batch["input_ids"], batch["attention_mask"], **media_inputs(batch, model))
    scores = scores.float()  # (2B,)
    half = scores.shape[0] // 2
    return scores[:half], scores[half:]


ScoreLossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], LossOutput]
"""(first scores (B,), second scores (B,), signs (2B,)) -> summed loss and metric sums."""


def save_score_model(model: torch.nn.Module, tokenizer: Any, out_dir: Path, state_dict: Any = None) -> None:
    """Save a score model so it reloads as one: a LoRA model is saved merged (base + adapter + head).

    Scorers load score models with ``AutoModelForSequenceClassification`` and read what the score means
    from its config, which an adapter folder does not carry; merging a copy keeps the model being trained
    untouched. (Costs one extra copy of the weights in CPU memory while saving.) ``tokenizer`` may be a
    VLM's processor, which saves its tokenizer and image processor beside the model.
    """
    import copy

    from alignkit.models.loading import save_pretrained
    from alignkit.models.lora import is_lora

    if is_lora(model):
        merged = copy.deepcopy(model).merge_and_unload()
        save_pretrained(merged, tokenizer, out_dir)
    else:
        save_pretrained(model, tokenizer, out_dir, state_dict)


def train_score_model(
    config: ScoreModelConfig,
    *,
    kind: ScoreKind,
    to_pairs: Callable[[Sequence[Any], str], list[PairSpec]],
    loss: ScoreLossFn,
    plot_groups: Mapping[str, list[str]],
) -> LoopResult:
    """Train a ``kind`` score model; ``to_pairs(records, source)`` validates and orders the records."""
    from alignkit.models.lora import model_quantize, prepare_trainable_model

    model, data, trainer, run = config.model, config.data, config.trainer, config.run
    accelerator = make_accelerator(trainer)
    stale = stale_default_eval(data)
    if stale:
        accelerator.print(stale)
    tokenizer = load_run_tokenizer(model, data, run)
    renderer = load_run_renderer(model, tokenizer)  # the processor of a vision-language model
    multimodal = is_processor(renderer)

    report = DataReport()

    def scored_pairs(records: list[Any], ds: DatasetConfig) -> tuple[list[ScoredPair], int, int]:
        specs = to_pairs(records, f"{ds.source} (template {ds.template})")
        return tokenize_pairs(specs, renderer, data.max_length)

    tokenized = read_splits(data, report, scored_pairs, media=multimodal)
    run_dir = start_offline_run(len(tokenized["train"]), report, run, config, trainer, accelerator)
    score_model = new_score_model(
        model.path,
        renderer,
        kind,
        dtype=model.dtype,
        trust_remote_code=model.trust_remote_code,
        quantize=model_quantize(model),
    )
    pad_id = score_model.config.pad_token_id

    # Activation checkpointing and LoRA/QLoRA exactly as every trainer does them (models/lora.py).
    score_model = prepare_trainable_model(score_model, model)
    score_model, optimizer = prepare_training(accelerator, score_model, trainer)

    def loss_fn(m: torch.nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        first, second = pair_scores(m, batch)
        return loss(first, second, batch["signs"])

    loop = TrainLoop(
        accelerator=accelerator,
        model=score_model,
        optimizer=optimizer,
        data=LoopData.of_splits(tokenized, lambda pairs: collate_pairs(pairs, pad_id), count_pairs),
        loss_fn=loss_fn,
        cfg=trainer,
        run=run,
        save_model=lambda m, path, sd: save_score_model(m, renderer, path, sd),
        plot_groups=plot_groups,
    )
    result = loop.run()
    accelerator.print(f"{kind} model done: {result.global_step} steps; model in {Path(run_dir) / 'final'}")
    return result
