"""Padding (or packing) tokenized examples into batches.

Right padding for training: with a causal mask, real tokens never attend to the padding that follows
them, so a sequence's logits do not depend on how long its batch-mates are (the accumulation and
multi-process invariants rely on this).

Packing (:func:`collate_packed`, TRL's ``padding_free``) lays several examples end to end in one row
instead, with ``position_ids`` restarting at 0 for each and no ``attention_mask``: transformers reads the
restarts as example boundaries and masks attention block-diagonally, so every token sees exactly what it
would see alone, and the padding a micro-batch computes on shrinks to the tail of each row. Rows are
a few times the micro-batch's longest example (``ROW_LENGTH``, ``ROW_TOKENS``), balanced longest first. Packing only
rearranges a micro-batch's own examples: which examples a step sees, and the loss tokens it is
normalised by, do not change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from alignkit.data.processor import collate_media
from alignkit.data.render import IGNORE_INDEX, TokenizedExample


def pad_right(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """(B, T) tensor of rows padded on the right to the longest one."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def collate_lm(examples: Sequence[TokenizedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and labels (IGNORE_INDEX on padding and non-loss tokens), all (B, T),
    plus the examples' media tensors (``pixel_values``...) concatenated, when they have any."""
    input_ids = pad_right([e.input_ids for e in examples], pad_token_id)
    attention_mask = pad_right([[1] * len(e.input_ids) for e in examples], 0)
    labels = pad_right([e.labels for e in examples], IGNORE_INDEX)
    media = collate_media([e.media for e in examples])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, **media}


def scored_length(labels: Sequence[int]) -> int:
    """Tokens up to and including the last labelled one: what follows it feeds no scored prediction (a
    causal model's earlier positions never see it), e.g. the newline a chat template writes after an
    end-of-turn token. An example without labels keeps its length."""
    for t in range(len(labels) - 1, -1, -1):
        if labels[t] != IGNORE_INDEX:
            return t + 1
    return len(labels)


def pack_rows(lengths: Sequence[int], num_rows: int) -> list[list[int]]:
    """Example indices per row: longest first, each into the row holding the fewest tokens so far (ties:
    the first such row), which keeps the rows' lengths close. Deterministic, so a micro-batch always packs
    the same way."""
    rows: list[list[int]] = [[] for _ in range(num_rows)]
    fill = [0] * num_rows
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        r = min(range(num_rows), key=lambda r: fill[r])
        rows[r].append(i)
        fill[r] += lengths[i]
    return [row for row in rows if row]


ROW_LENGTH = 3.0
"""Packed rows aim at this many times the micro-batch's longest example, ..."""
ROW_TOKENS = 1024
"""... but at no more tokens than this, unless one example is longer. Long enough that little padding is
left and the rows are few (per-row overheads), short enough that attention, quadratic in the row, stays
a small part of the cost (a packed row computes attention across its examples that the block-diagonal mask
then discards). Measured on the 3.8M benchmark Llama (CPU, examples of 20-36 tokens, 32 per micro-batch):
rows of 1x / 3x / 12x / 25x the longest example took 1.0 / 0.68 / 0.77 / 0.94 of the padded batch's forward
+ backward time; the whole SFT step against TRL (benchmarks/sft_vs_trl.py --model-size 4m, quiet host,
2026-11-30): rows of 2x / 3x / 4x gave 1.37x / 1.62-1.70x / 1.37-1.44x TRL's throughput."""
MIN_SAVING = 0.1
"""Pack a micro-batch only when that removes at least this fraction of the tokens padded rows compute."""


def packed_rows(lengths: Sequence[int], row_length: float, row_tokens: int) -> list[list[int]] | None:
    """:func:`pack_rows` into rows of about ``row_length`` x the longest (at most ``row_tokens`` unless one
    is longer); None when that would not save ``MIN_SAVING`` of the padded rows' tokens."""
    longest = max(lengths)
    capacity = max(longest, min(row_length * longest, row_tokens))
    rows = pack_rows(lengths, max(1, math.ceil(sum(lengths) / capacity)))
    width = max(sum(lengths[i] for i in row) for row in rows)
    return None if len(rows) * width > (1 - MIN_SAVING) * len(lengths) * longest else rows


def collate_packed(
    examples: Sequence[TokenizedExample],
    pad_token_id: int,
    row_length: float = ROW_LENGTH,
    row_tokens: int = ROW_TOKENS,
) -> dict[str, torch.Tensor]:
    """input_ids, position_ids and labels ``(R, T)``: the examples packed into ``R <= B`` rows.

    Each example's positions restart at 0; its first token gets no label (unpacked, column 0 has no
    prediction either), so the previous example's last token never predicts it. Tokens after an
    example's last labelled one are left out (:func:`scored_length`): they change no scored log-prob. Row tails are padding
    with positions counting on from 0 (a block of their own) and no labels. A micro-batch that packing
    would barely shorten (``MIN_SAVING``) is padded as usual (``collate_lm``): the same loss either way.
    """
    keep = [scored_length(e.labels) for e in examples]
    examples = [TokenizedExample(e.input_ids[:k], e.labels[:k]) for e, k in zip(examples, keep, strict=True)]
    lengths = [len(e.input_ids) for e in examples]
    rows = packed_rows(lengths, row_length, row_tokens)
    if rows is None:
        return collate_lm(examples, pad_token_id)
    width = max(sum(lengths[i] for i in row) for row in rows)
    ids, positions, labels = [], [], []
    for row in rows:
        ids.append([t for i in row for t in examples[i].input_ids])
        positions.append(
            [p for i in row for p in range(lengths[i])] + list(range(width - sum(lengths[i] for i in row)))
        )
        labels.append([t for i in row for t in (IGNORE_INDEX, *examples[i].labels[1:])])
    return {
        "input_ids": pad_right(ids, pad_token_id),
        "position_ids": torch.tensor(positions),
        "labels": pad_right(labels, IGNORE_INDEX),
    }


def collate_shared_prefix(
    blocks: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]],
    pad_token_id: int,
    row_length: float = ROW_LENGTH,
    row_tokens: int = ROW_TOKENS,
) -> tuple[dict[str, torch.Tensor], list[list[list[int]]]]:
    """Blocks ``prefix + suffix_1 + ... + suffix_k`` packed into rows ``(R, T)``, so a prefix that k
    sequences ``prefix + suffix_j`` start with is computed once for all of them (a DPO pair's prompt, a
    GRPO group's prompt).

    ``position_ids`` restart at 0 for each block and at the prefix's end for each suffix, so each token
    has the position it has in its own sequence. Every segment (a prefix, a suffix) gets its own
    ``segment_ids`` value, -1 on padding, and ``prompt_segment_ids`` names the block's prefix segment: a
    token sees its own segment and its block's prefix (``models/forward.shared_prompt_mask``), exactly what
    it sees in its own sequence. Blocks go into rows as :func:`collate_packed` packs examples (one block
    per row when packing would barely save anything).

    Returns the layout and, for block i and sequence j, the flat position (``row * T + column``) of each
    of the tokens of ``prefix + suffix_j``.
    """
    lengths = [len(prefix) + sum(len(s) for s in suffixes) for prefix, suffixes in blocks]
    rows = packed_rows(lengths, row_length, row_tokens) or [[i] for i in range(len(blocks))]
    width = max(sum(lengths[i] for i in row) for row in rows)
    ids: list[int] = []  # all rows, flat, padded to ``width`` (one tensor per key at the end)
    positions: list[int] = []
    segments: list[int] = []
    prompt_segments: list[int] = []
    where: list[list[list[int]]] = [[] for _ in blocks]
    segment = 0
    for r, row in enumerate(rows):
        for i in row:
            prefix, suffixes = blocks[i]
            p, prompt_segment, start = len(prefix), segment, len(ids)
            ids += prefix
            positions += range(p)
            segments += [prompt_segment] * p
            prefix_at = list(range(start, start + p))
            for suffix in suffixes:
                segment += 1
                at, n = len(ids), len(suffix)
                ids += suffix
                positions += range(p, p + n)
                segments += [segment] * n
                where[i].append(prefix_at + list(range(at, at + n)))
            prompt_segments += [prompt_segment] * lengths[i]
            segment += 1
        tail = (r + 1) * width - len(ids)
        ids += [pad_token_id] * tail
        positions += [0] * tail
        segments += [-1] * tail
        prompt_segments += [-1] * tail

    def as_rows(values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long).view(len(rows), width)

    layout = {
        "input_ids": as_rows(ids),
        "position_ids": as_rows(positions),
        "segment_ids": as_rows(segments),
        "prompt_segment_ids": as_rows(prompt_segments),
    }
    return layout, where
