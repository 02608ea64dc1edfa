"""Padding (or packing) tokenized examples into batches.

Right padding for training: with a causal mask, real tokens never attend to the padding that follows
them, so a sequence's logits do not depend on how long its batch-mates are (the accumulation and
multi-process invariants rely on this).

Packing (:func:`collate_packed`, TRL's ``padding_free``) lays several examples end to end in one row
instead, with ``position_ids`` restarting at 0 for each and no ``attention_mask``: transformers reads the
restarts as example boundaries and masks attention block-diagonally, so every token sees exactly what it
would see alone, and the padding a micro-batch computes on shrinks to the tail of each row. The rows of
a micro-batch are at most as long as its longest example (first-fit, longest first), so attention never
spans more than the padded batch's width. Packing only rearranges a micro-batch's own examples:
which examples a step sees, and the loss tokens it is normalised by, do not change.
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


def pack_rows(lengths: Sequence[int]) -> list[list[int]]:
    """Example indices per row: first-fit by decreasing length into rows as long as the longest example.

    Deterministic (ties keep input order), so a micro-batch always packs the same way.
    """
    capacity = max(lengths)
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def collate_packed(examples: Sequence[TokenizedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """input_ids, position_ids and labels ``(R, T)``: the examples packed into ``R <= B`` rows.

    Each example's positions restart at 0; its first token gets no label (unpacked, column 0 has no
    prediction either), so the previous example's last token never predicts it. Row tails are padding
    with positions counting on from 0 (a block of their own) and no labels.
    """
    ids, positions, labels = [], [], []
    for row in pack_rows([len(e.input_ids) for e in examples]):
        ids.append([t for i in row for t in examples[i].input_ids])
        positions.append([p for i in row for p in range(len(examples[i].input_ids))])
        labels.append([t for i in row for t in (IGNORE_INDEX, *examples[i].labels[1:])])
    width = max(len(r) for r in ids)
    tails = [list(range(width - len(r))) for r in positions]
    return {
        "input_ids": pad_right(ids, pad_token_id),
        "position_ids": torch.tensor([r + tail for r, tail in zip(positions, tails, strict=True)]),
        "labels": pad_right(labels, IGNORE_INDEX),
    }
