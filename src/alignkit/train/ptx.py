"""PPO's pretraining mix (InstructGPT's PPO-ptx, safe-rlhf's ``ptx_coef``): an SFT loss on ``ptx``
conversations added to the actor's loss, so RL does not wear away what supervised training taught.

Its examples are read once (:func:`read_ptx_examples`), each update micro-batch carries a batch of them
under ``ptx_*`` keys (:func:`ptx_batch`, the same seeded global order as offline training, so every
process takes its own share and a resumed run picks the same batches), and :func:`ptx_nll` is the term.
"""

from __future__ import annotations

from typing import Any

import torch

from alignkit.data.collate import collate_lm
from alignkit.data.render import TokenizedExample, render_conversation
from alignkit.losses.logprobs import label_mask
from alignkit.losses.sft import sft_loss
from alignkit.models.forward import labelled_token_logps
from alignkit.train.common import DataReport, read_records
from alignkit.train.engine import global_batch_indices


def read_ptx_examples(dataset: Any, data: Any, tokenizer: Any, report: DataReport) -> list[TokenizedExample]:
    """The ``ptx`` conversations rendered for training; those truncated before any assistant token are
    counted as dropped in the data report, never silently gone."""
    records = read_records(dataset, data, report, "ptx")
    rendered = (render_conversation(tokenizer, r.messages, data.max_length) for r in records)
    examples = [e for e in rendered if e.num_loss_tokens > 0]
    report.drop("ptx", len(records) - len(examples))
    return examples


def ptx_batch(
    examples: list[TokenizedExample], size: int, position: int, seed: int, pad_token_id: int
) -> dict[str, torch.Tensor]:
    """The ``position``-th batch of ``size`` examples of the seeded global order, under ``ptx_*`` keys."""
    picked = global_batch_indices(len(examples), min(size, len(examples)), position, seed)
    batch = collate_lm([examples[i] for i in picked], pad_token_id)
    return {f"ptx_{k}": v for k, v in batch.items()}


def ptx_nll(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The token-mean NLL of a micro-batch's ``ptx_*`` examples under ``model``."""
    logps = labelled_token_logps(
        model, batch["ptx_input_ids"], batch["ptx_attention_mask"], batch["ptx_labels"]
    )
    return sft_loss(logps, label_mask(batch["ptx_labels"])).loss
