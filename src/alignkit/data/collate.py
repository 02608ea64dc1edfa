"""Padding tokenized examples into batches.

Right padding for training: with a causal mask, real tokens never attend to the padding that follows
them, so a sequence's logits do not depend on how long its batch-mates are (the accumulation and
multi-process invariants rely on this).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from alignkit.data.render import IGNORE_INDEX, TokenizedExample


def pad_right(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """(B, T) tensor of rows padded on the right to the longest one."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def collate_lm(examples: Sequence[TokenizedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and labels (IGNORE_INDEX on padding and non-loss tokens), all (B, T)."""
    input_ids = pad_right([e.input_ids for e in examples], pad_token_id)
    attention_mask = pad_right([[1] * len(e.input_ids) for e in examples], 0)
    labels = pad_right([e.labels for e in examples], IGNORE_INDEX)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
