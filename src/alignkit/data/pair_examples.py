"""Preference records -> DPO-family examples and batches.

Two example shapes, one per kind of loss:

- :class:`PairExample` (DPO, IPO, SimPO, ORPO): a prompt's chosen and rejected responses. A batch of B
  pairs is one ``(2B, T)`` tensor, chosen rows first, so the policy scores both sides in a single
  forward (half the kernel launches of two forwards, and both sides see the same weights and mode).
  :func:`collate_shared_pairs` lays a pair out as *one* row instead, ``prompt + chosen + rejected``,
  so the prompt (their common prefix) is computed once; a 4D mask built from ``segment_ids`` and
  ``prompt_segment_ids`` (``models/forward.py``) keeps the rejected tokens from seeing the chosen ones, and the rejected
  positions continue from the prompt's end, so every token sees exactly what it sees in its own row.
- :class:`UnpairedExample` (KTO): one response judged desirable or not, plus a *mismatched* sequence,
  its prompt followed by another prompt's response, from which KTO estimates ``KL(pi || pi_ref)``.
  The mismatched partner is fixed once when the data is prepared (as TRL does), so the reference
  log-probs of every sequence an example needs can be cached before training.

Each example can also carry its reference log-probs (``ref_logps``), computed once by
:func:`alignkit.train.reference.cache_reference_logps`; the collate functions pass them on as
``ref_logps`` / ``kl_ref_logps`` and the loss then needs no reference forward at all.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

from alignkit.config import ConfigError
from alignkit.data.collate import ROW_TOKENS, collate_lm, collate_shared_prefix, scored_length
from alignkit.data.processor import MEDIA_KEYS
from alignkit.data.records import Preference, SafetyPreference, UnpairedPreference
from alignkit.data.render import IGNORE_INDEX, TokenizedExample, render_response, shared_renders

PreferenceLabel = Literal["helpfulness", "safety"]
LAYOUT_KEYS = (
    "input_ids",
    "attention_mask",
    "position_ids",
    "labels",
    "segment_ids",
    "prompt_segment_ids",
    "score_index",
    "score_target",
    "score_seq",
    "score_counts",
    *MEDIA_KEYS,
)
"""The keys of a batch that say what the model runs on and what it scores (pictures included: a
multimodal batch's ``pixel_values`` are in row order, chosen rows' then rejected rows')."""


@dataclass(frozen=True)
class PairExample:
    chosen: TokenizedExample
    rejected: TokenizedExample
    ref_logps: tuple[float, float] | None = None
    """Cached ``(log pi_ref(chosen), log pi_ref(rejected))``; None: the reference runs live."""

    def sequences(self) -> tuple[TokenizedExample, ...]:
        """The sequences whose reference log-probs this example needs, in ``ref_logps`` order."""
        return (self.chosen, self.rejected)

    def with_ref_logps(self, values: Sequence[float]) -> PairExample:
        return replace(self, ref_logps=(values[0], values[1]))


@dataclass(frozen=True)
class UnpairedExample:
    completion: TokenizedExample
    desirable: bool
    kl: TokenizedExample
    """This example's prompt followed by another prompt's response (KTO's KL estimate)."""
    ref_logps: tuple[float, float] | None = None
    """Cached ``(log pi_ref(completion), log pi_ref(kl))``; None: the reference runs live."""

    def sequences(self) -> tuple[TokenizedExample, ...]:
        return (self.completion, self.kl)

    def with_ref_logps(self, values: Sequence[float]) -> UnpairedExample:
        return replace(self, ref_logps=(values[0], values[1]))


def to_preference(record: Any, label: PreferenceLabel) -> Preference:
    """A ``Preference``; PKU-SafeRLHF records are ranked by ``label`` (helpfulness or safety)."""
    if isinstance(record, SafetyPreference):
        return record.helpfulness_preference() if label == "helpfulness" else record.safety_preference()
    if isinstance(record, Preference):
        return record
    raise ConfigError(
        f"paired preference losses need Preference or SafetyPreference records, got {type(record).__name__}; "
        "use loss=kto for unpaired data, or a template that yields pairs (e.g. pku-saferlhf, hh-rlhf)"
    )


def to_unpaired(records: Sequence[Any], label: PreferenceLabel) -> list[UnpairedPreference]:
    """KTO's view of the data: a pair gives a desirable (chosen) and an undesirable (rejected) example."""
    out: list[UnpairedPreference] = []
    for record in records:
        if isinstance(record, UnpairedPreference):
            out.append(record)
            continue
        pair = to_preference(record, label)
        out.append(UnpairedPreference(pair.prompt, pair.chosen, True, pair.origin))
        out.append(UnpairedPreference(pair.prompt, pair.rejected, False, pair.origin))
    return out


def tokenize_pairs(
    records: Sequence[Any], tokenizer: Any, max_length: int, label: PreferenceLabel
) -> tuple[list[PairExample], int, int]:
    """(pair examples, how many kept pairs were truncated, how many pairs were dropped).

    A pair with a response cut away entirely (the prompt fills ``max_length``) has nothing to compare,
    so it is dropped, and counted apart from truncation so the data report can say why.
    """
    examples, truncated, dropped = [], 0, 0
    with shared_renders():  # both sides render their prompt: once
        for record in records:
            pair = to_preference(record, label)
            chosen = render_response(tokenizer, pair.prompt, pair.chosen, max_length)
            rejected = render_response(tokenizer, pair.prompt, pair.rejected, max_length)
            if chosen.num_loss_tokens == 0 or rejected.num_loss_tokens == 0:
                dropped += 1
                continue
            truncated += chosen.truncated or rejected.truncated
            examples.append(PairExample(chosen, rejected))
    return examples, truncated, dropped


def mismatched_partners(prompts: Sequence[str], seed: int) -> list[int]:
    """For each example, another example with a *different* prompt, chosen by a seeded shuffle.

    Neighbours in a shuffled order are partners; a neighbour that shares the prompt (a pair's two
    responses do) is skipped, since ``(x, y)`` with ``y`` written for ``x`` would not be mismatched.
    """
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    partners = [0] * len(order)
    for pos, i in enumerate(order):
        for step in range(1, len(order)):
            j = order[(pos + step) % len(order)]
            if prompts[j] != prompts[i]:
                partners[i] = j
                break
        else:
            raise ConfigError("KTO needs at least two different prompts to estimate its KL reference point")
    return partners


def tokenize_unpaired(
    records: Sequence[Any], tokenizer: Any, max_length: int, label: PreferenceLabel, seed: int
) -> tuple[list[UnpairedExample], int, int]:
    """(KTO examples with their mismatched KL sequences, how many kept were truncated, how many dropped
    because their completion or KL sequence has no token left within ``max_length``)."""
    unpaired = to_unpaired(records, label)
    keys = [repr([m.to_chat_dict() for m in u.prompt]) for u in unpaired]
    partners = mismatched_partners(keys, seed)
    examples, truncated, dropped = [], 0, 0
    with shared_renders():  # a completion and its KL sequence render their prompt: once
        for u, j in zip(unpaired, partners, strict=True):
            completion = render_response(tokenizer, u.prompt, u.completion, max_length)
            kl = render_response(tokenizer, u.prompt, unpaired[j].completion, max_length)
            if completion.num_loss_tokens == 0 or kl.num_loss_tokens == 0:
                dropped += 1
                continue
            truncated += completion.truncated
            examples.append(UnpairedExample(completion, u.desirable, kl))
    return examples, truncated, dropped


def _ref_column(examples: Sequence[PairExample | UnpairedExample], index: int) -> torch.Tensor:
    return torch.tensor([e.ref_logps[index] for e in examples], dtype=torch.float32)  # type: ignore[index]


def collate_pairs(examples: Sequence[PairExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """``input_ids``/``attention_mask``/``labels`` ``(2B, T)``: rows ``[0, B)`` chosen, ``[B, 2B)`` rejected.

    Both sides are padded to one common length so they can share one forward; ``ref_logps`` ``(2B,)``
    in the same row order when the examples carry cached reference log-probs.
    """
    batch = collate_lm([e.chosen for e in examples] + [e.rejected for e in examples], pad_token_id)
    if examples and all(e.ref_logps is not None for e in examples):
        batch["ref_logps"] = torch.cat([_ref_column(examples, 0), _ref_column(examples, 1)])
    return batch


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token sequences (the part both responses share)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


PAIR_ROW_LENGTH = 4.0
"""Shared-prompt pair rows aim at this many times the longest pair (at most ``collate.ROW_TOKENS``): the
length the DPO benchmarks were measured with (SFT's rows are shorter: ``collate.ROW_LENGTH``)."""


def collate_shared_pairs(
    examples: Sequence[PairExample],
    pad_token_id: int,
    row_length: float = PAIR_ROW_LENGTH,
    row_tokens: int = ROW_TOKENS,
) -> dict[str, torch.Tensor]:
    """Each pair as one block, ``shared prefix + rest of chosen + rest of rejected``, blocks packed into rows
    ``(R, T)`` (``collate.collate_shared_prefix``: a token sees its own part and its pair's prefix), and
    what to score: ``score_index`` (flat position of the hidden state that predicts the token),
    ``score_target`` and ``score_seq`` (chosen of pair i is sequence i, rejected is ``B + i``:
    ``collate_pairs``' row order), and ``score_counts`` ``(2B,)``, whose length says how many pairs the
    batch holds. A token shared by both sides is scored for each side that labels it; tokens after a
    side's last labelled one are left out. ``ref_logps`` as ``collate_pairs``.
    """
    b = len(examples)
    blocks = []
    sides_of = []
    for e in examples:
        # Tokens after a side's last labelled one change none of its scored log-probs: left out.
        sides = [
            TokenizedExample(s.input_ids[:k], s.labels[:k])
            for s in (e.chosen, e.rejected)
            for k in [scored_length(s.labels)]
        ]
        chosen, rejected = sides[0].input_ids, sides[1].input_ids
        p = shared_prefix(chosen, rejected)
        blocks.append((chosen[:p], [chosen[p:], rejected[p:]]))
        sides_of.append(sides)
    layout, where = collate_shared_prefix(blocks, pad_token_id, row_length, row_tokens)
    index, target, seqs = [], [], []
    counts = [0] * (2 * b)
    for i, sides in enumerate(sides_of):
        for j, (seq, side) in enumerate(((i, sides[0]), (b + i, sides[1]))):
            for t in range(1, len(side.input_ids)):
                if side.labels[t] != IGNORE_INDEX:
                    index.append(where[i][j][t - 1])
                    target.append(side.labels[t])
                    seqs.append(seq)
                    counts[seq] += 1
    batch = {
        **layout,
        "score_index": torch.tensor(index, dtype=torch.long),
        "score_target": torch.tensor(target, dtype=torch.long),
        "score_seq": torch.tensor(seqs, dtype=torch.long),
        "score_counts": torch.tensor(counts),
    }
    if examples and all(e.ref_logps is not None for e in examples):
        batch["ref_logps"] = torch.cat([_ref_column(examples, 0), _ref_column(examples, 1)])
    return batch


def collate_unpaired(examples: Sequence[UnpairedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """The completions ``(N, T)``, ``desirable`` ``(N,)`` and the KL sequences as ``kl_*`` ``(N, T')``."""
    batch = collate_lm([e.completion for e in examples], pad_token_id)
    kl = collate_lm([e.kl for e in examples], pad_token_id)
    batch.update({f"kl_{k}": v for k, v in kl.items()})
    batch["desirable"] = torch.tensor([e.desirable for e in examples], dtype=torch.bool)
    if examples and all(e.ref_logps is not None for e in examples):
        batch["ref_logps"] = _ref_column(examples, 0)
        batch["kl_ref_logps"] = _ref_column(examples, 1)
    return batch


def lm_inputs(batch: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """What the model runs on and what it scores (``input_ids``, ``attention_mask``, ``labels``, or a
    shared-prompt layout's keys, as ``models.forward`` reads them); ``prefix="kl_"``: the KL sequences."""
    return {k: batch[f"{prefix}{k}"] for k in LAYOUT_KEYS if f"{prefix}{k}" in batch}


def count_pairs(batch: dict[str, torch.Tensor]) -> int:
    """Loss units of a paired batch: pairs (half its sequences)."""
    if "score_counts" in batch:
        return batch["score_counts"].shape[0] // 2
    return batch["input_ids"].shape[0] // 2


def count_examples(batch: dict[str, torch.Tensor]) -> int:
    """Loss units of a KTO batch: examples."""
    return batch["desirable"].shape[0]
