"""Moderation classifier training (``alignkit train moderation``): harm categories + severity per response.

    L = sum_c BCE(sigmoid(z_c), y_c) + w * CE(softmax(s), severity)      (losses/moderation.py)

Beaver-Dam (BeaverTails) is a sequence classifier with one sigmoid per harm category; PKU-SafeRLHF labels
each response with its categories *and* a severity, learnt here by a second, 4-way head on the same
pooled token (``models/moderation_model.py``). Data: every response of a PKU-SafeRLHF pair (template
``pku-saferlhf``: two examples per row) or of a BeaverTails row (``beavertails``: one; no severity there,
so its severity term is left out and only the categories train). ``categories`` picks the label set; a
labelled category outside it is an error naming the row, not a silent drop.

On a vision-language model (``model.path`` saved with a processor) the rows render through the processor,
so BeaverTails-V-shaped rows (template ``beavertails-v``: image + question + answer) train a classifier
that judges the picture with the text; the vision tower stays frozen under ``model.freeze_vision``.

Logged: ``loss``, ``moderation/category_accuracy``, ``moderation/flag_accuracy``,
``moderation/severity_accuracy`` (rows without a severity count as misses) and the same under ``eval/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from alignkit.config import ConfigError, check
from alignkit.data.processor import is_processor
from alignkit.data.records import ResponseSafety, SafetyLabel, SafetyPreference
from alignkit.data.render import TokenizedExample
from alignkit.losses.moderation import moderation_loss
from alignkit.models.lora import freeze_media_towers
from alignkit.models.moderation_model import SEVERITY_LEVELS, new_moderation_model
from alignkit.models.score_model import collate_scores, media_inputs, score_example
from alignkit.score.moderation import BEAVERTAILS_CATEGORIES, PKU_SAFERLHF_CATEGORIES
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
from alignkit.train.engine import LoopData, LoopResult, LossOutput, TrainLoop, summed_metrics
from alignkit.train.score_training import save_score_model, toyworld_safe_pref_data

CATEGORY_SETS: dict[str, tuple[str, ...]] = {
    "pku-saferlhf": PKU_SAFERLHF_CATEGORIES,
    "beavertails": BEAVERTAILS_CATEGORIES,
}
NO_SEVERITY = -100
"""Severity label of a row that has none (cross-entropy's ignore index)."""


@dataclass
class ModerationConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """Backbone to start from: a causal LM (e.g. the SFT policy)."""
    data: DataConfig = field(default_factory=toyworld_safe_pref_data)
    """Safety-labelled responses: PKU-SafeRLHF pairs (template pku-saferlhf) or BeaverTails rows (beavertails)."""
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(lr=2e-5))
    """The optimisation loop (one unit = one response)."""
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/moderation"))
    """Where results go; the classifier is saved in <output_dir>/final."""
    categories: str = "pku-saferlhf"
    """The label set: pku-saferlhf (19 categories) or beavertails (14)."""
    severity_weight: float = 1.0
    """w: weight of the severity cross-entropy against the category BCE."""
    threshold: float = 0.4
    """Saved with the model: a response is flagged when a category probability exceeds it (Beaver-Dam: 0.4)."""
    balance_categories: bool = True
    """Weight each category's positive term by sqrt(negatives / positives) in the training data, so a category
    that few responses serve is not learnt as "never" (on the toy world under 1% of responses are positive)."""

    def validate(self, prefix: str) -> None:
        check(
            self.categories in CATEGORY_SETS,
            f"{prefix}categories",
            self.categories,
            " or ".join(CATEGORY_SETS),
        )
        check(self.severity_weight >= 0, f"{prefix}severity_weight", self.severity_weight, "a number >= 0")
        check(0 < self.threshold < 1, f"{prefix}threshold", self.threshold, "a probability in (0, 1)")


@dataclass(frozen=True)
class LabelledResponse:
    example: TokenizedExample
    categories: tuple[float, ...]
    severity: int


def labelled_responses(
    records: Sequence[Any], categories: Sequence[str], source: str
) -> list[tuple[Any, ResponseSafety]]:
    """(prompt, response) of every response: both of a SafetyPreference, the one of a SafetyLabel."""
    out: list[tuple[Any, ResponseSafety]] = []
    known = set(categories)
    for i, record in enumerate(records):
        if isinstance(record, SafetyPreference):
            items = [(record.prompt, r) for r in record.responses]
        elif isinstance(record, SafetyLabel):
            items = [(record.prompt, record.response)]
        else:
            raise ConfigError(
                f"{source} gives {type(record).__name__} records, but moderation training needs per-response "
                "safety labels: use template pku-saferlhf, pku-saferlhf-qa or beavertails"
            )
        for prompt, response in items:
            unknown = sorted(set(response.harm_categories) - known)
            if unknown:
                where = f" ({record.origin})" if record.origin else f" (record {i})"
                raise ConfigError(
                    f"{source}{where}: harm categories {unknown} are not in the label set; set categories: "
                    f"{' or '.join(CATEGORY_SETS)} to match the data"
                )
            out.append((prompt, response))
    return out


def tokenize(
    items: Sequence[tuple[Any, ResponseSafety]], categories: Sequence[str], tokenizer: Any, max_length: int
) -> tuple[list[LabelledResponse], int, int]:
    """Examples, how many were truncated, how many were dropped (no response token within max_length)."""
    examples, truncated, dropped = [], 0, 0
    for prompt, response in items:
        example = score_example(tokenizer, prompt, response.messages, max_length)
        if example is None:
            dropped += 1
            continue
        truncated += example.truncated
        flags = tuple(float(c in response.harm_categories) for c in categories)
        severity = (
            response.severity if response.severity is not None else (0 if response.is_safe else NO_SEVERITY)
        )
        examples.append(LabelledResponse(example, flags, severity))
    return examples, truncated, dropped


def category_pos_weight(examples: Sequence[LabelledResponse], cap: float = 100.0) -> torch.Tensor:
    """``(C,)`` sqrt(negatives / positives) per category (1 for a category with no positive: nothing to weigh).

    The square root: the full ratio (about 150 on the toy world) buys recall with so many false positives
    that the per-category F1 halves; its square root keeps both."""
    labels = torch.tensor([e.categories for e in examples], dtype=torch.float32)  # (N, C)
    positives = labels.sum(dim=0)
    weight = ((labels.shape[0] - positives) / positives.clamp(min=1)).sqrt()
    return torch.where(positives > 0, weight.clamp(max=cap), torch.ones_like(weight))


def collate(batch: Sequence[LabelledResponse], pad_token_id: int) -> dict[str, torch.Tensor]:
    out = collate_scores([b.example for b in batch], pad_token_id)
    out["category_labels"] = torch.tensor([b.categories for b in batch], dtype=torch.float32)  # (B, C)
    out["severity_labels"] = torch.tensor([b.severity for b in batch], dtype=torch.long)  # (B,)
    return out


def train(config: ModerationConfig) -> LoopResult:
    """Train a moderation classifier as configured: the same call ``alignkit train moderation`` makes."""
    categories = CATEGORY_SETS[config.categories]
    accelerator = make_accelerator(config.trainer)
    tokenizer = load_run_tokenizer(config.model, config.data, config.run)
    renderer = load_run_renderer(config.model, tokenizer)  # the processor of a vision-language model
    report = DataReport()

    def responses(records: list[Any], ds: DatasetConfig) -> tuple[list[LabelledResponse], int, int]:
        items = labelled_responses(records, categories, f"{ds.source} (template {ds.template})")
        return tokenize(items, categories, renderer, config.data.max_length)

    tokenized = read_splits(config.data, report, responses, media=is_processor(renderer))
    run_dir = start_offline_run(
        len(tokenized["train"]), report, config.run, config, config.trainer, accelerator
    )

    model = new_moderation_model(
        config.model.path, renderer, categories, threshold=config.threshold, dtype=config.model.dtype
    )
    if config.model.freeze_vision:
        freeze_media_towers(model)  # a VLM's vision tower keeps its features (no-op for a text model)
    pad_id = model.config.pad_token_id
    model, optimizer = prepare_training(accelerator, model, config.trainer)
    c = len(categories)
    pos_weight = category_pos_weight(tokenized["train"]) if config.balance_categories else None

    def loss_fn(m: torch.nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        logits = m(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            use_cache=False,
            **media_inputs(batch, m),
        ).logits
        assert logits.shape[-1] == c + SEVERITY_LEVELS  # (B, C + 4)
        out = moderation_loss(
            logits[:, :c],
            logits[:, c:],
            batch["category_labels"],
            batch["severity_labels"],
            config.severity_weight,
            None if pos_weight is None else pos_weight.to(logits.device),
        )
        n = logits.shape[0]
        return LossOutput(out.losses.sum(), summed_metrics(out.metrics(), n))

    loop = TrainLoop(
        accelerator=accelerator,
        model=model,
        optimizer=optimizer,
        data=LoopData.of_splits(
            tokenized, lambda batch: collate(batch, pad_id), lambda batch: int(batch["input_ids"].shape[0])
        ),
        loss_fn=loss_fn,
        cfg=config.trainer,
        run=config.run,
        save_model=lambda m, path, sd: save_score_model(m, renderer, path, sd),
        plot_groups={
            "accuracy": [
                "moderation/flag_accuracy",
                "moderation/severity_accuracy",
                "eval/moderation/flag_accuracy",
                "eval/moderation/severity_accuracy",
            ],
        },
    )
    result = loop.run()
    accelerator.print(
        f"moderation classifier done: {result.global_step} steps; model in {Path(run_dir) / 'final'}"
    )
    return result
