"""Supervised fine-tuning: maximise the likelihood of the assistant turns of conversations.

    L = - sum_t m_t log pi(y_t | x, y_<t) / sum_t m_t,   m_t = 1 on assistant tokens

The mask comes from the tokenizer's chat template (``alignkit.data.render``): system and user turns and
the template's own scaffolding carry no loss, while the tokens that close an assistant turn do, so the
model learns to stop. The normaliser is the assistant-token count of the whole optimizer step, across
micro-batches and processes (``train/engine.py``), which is what makes accumulation exact.

With ``data.packing`` (the default) a micro-batch's conversations are packed into shared rows with
block-diagonal attention (``data/collate.collate_packed``), and the LM head runs only on the positions
that predict an assistant token (``models/forward.py``): the same loss, without computing padding or
prompt logits. The examples of each step, and so the data order and the normaliser, are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from alignkit.data.collate import collate_lm, collate_packed
from alignkit.data.processor import is_processor
from alignkit.data.render import render_conversation, shared_renders
from alignkit.losses.logprobs import label_mask
from alignkit.models.forward import packing_is_exact, scored_logps
from alignkit.models.loading import save_pretrained
from alignkit.models.lora import load_trainable_causal_lm, trainable_summary
from alignkit.sections import DataConfig, DatasetConfig, ModelConfig, RunConfig, TrainerConfig
from alignkit.train.common import (
    DataReport,
    load_run_renderer,
    load_run_tokenizer,
    make_accelerator,
    prepare_training,
    read_splits,
    require_records,
    start_offline_run,
)
from alignkit.train.engine import LoopData, LoopResult, LossOutput, TrainLoop


@dataclass
class SFTConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """The policy to fine-tune."""
    data: DataConfig = field(
        default_factory=lambda: DataConfig(train=DatasetConfig(source="toyworld://data/sft"))
    )
    """Conversations to learn from (records of type Conversation)."""
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(lr=2e-5))
    """The optimisation loop."""
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/sft"))
    """Where results go."""


def count_loss_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens that carry loss: labels shifted by one, since position t predicts token t + 1."""
    return int(label_mask(batch["labels"]).sum())


def sft_loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
    """Summed NLL of the batch's assistant tokens (padded or packed rows alike)."""
    logps, _ = scored_logps(model, batch)  # (N,): log pi of each loss token, LM head on those positions only
    # Normaliser 1: the loop divides the summed NLL by the token count of the whole optimizer step.
    return LossOutput(-logps.sum(), {})


def tokenize(records: list[Any], tokenizer: Any, max_length: int) -> tuple[list[Any], int]:
    with shared_renders():  # conversations that share a prompt or a history render it once
        examples = [render_conversation(tokenizer, r.messages, max_length) for r in records]
    return [e for e in examples if e.num_loss_tokens > 0], sum(e.truncated for e in examples)


def train(config: SFTConfig) -> LoopResult:
    """Run SFT as configured: the same call ``alignkit train sft`` makes."""
    from alignkit.data.records import Conversation

    accelerator = make_accelerator(config.trainer)
    tokenizer = load_run_tokenizer(config.model, config.data, config.run)
    renderer = load_run_renderer(config.model, tokenizer)  # the processor of a vision-language model
    multimodal = is_processor(renderer)
    report = DataReport()

    def conversations(records: list[Any], ds: DatasetConfig) -> tuple[list[Any], int, int]:
        require_records(records, Conversation, ds.source, ds.template)
        examples, truncated = tokenize(records, renderer, config.data.max_length)
        return examples, truncated, len(records) - len(examples)  # dropped: no assistant token left

    tokenized = read_splits(config.data, report, conversations, media=multimodal)
    run_dir = start_offline_run(
        len(tokenized["train"]), report, config.run, config, config.trainer, accelerator
    )

    model = load_trainable_causal_lm(config.model)  # LoRA / QLoRA / checkpointing as model.* asks
    accelerator.print(trainable_summary(model))
    model, optimizer = prepare_training(accelerator, model, config.trainer)

    pad_id = tokenizer.pad_token_id
    # Packed rows would need each example's pictures in row order; multimodal batches are padded.
    packed = config.data.packing and not multimodal and packing_is_exact(model)
    accelerator.print(
        f"data: {'packed rows' if packed else 'padded rows'} (data.packing={config.data.packing})"
    )
    collate = collate_packed if packed else collate_lm
    loop = TrainLoop(
        accelerator=accelerator,
        model=model,
        optimizer=optimizer,
        data=LoopData.of_splits(tokenized, lambda examples: collate(examples, pad_id), count_loss_tokens),
        loss_fn=sft_loss_sum,
        cfg=config.trainer,
        run=config.run,
        save_model=lambda m, path, sd: save_pretrained(m, renderer, path, sd),  # adapter only with LoRA
    )
    result = loop.run()
    accelerator.print(f"SFT done: {result.global_step} steps; model in {Path(run_dir) / 'final'}")
    return result
