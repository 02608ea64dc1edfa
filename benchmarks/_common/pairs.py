"""The preference comparisons' workload: the pairs both trainers see, in alignkit's step order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .alignkit_side import step_batches
from .trl_side import pair_split


@dataclass
class PairWorkload:
    """The pairs both trainers see, in alignkit's step order (step s holds rows s*B .. s*B+B-1)."""

    conversations: list[dict[str, Any]]
    """TRL's conversational form of each row: ``prompt``, ``chosen``, ``rejected`` (and what else TRL reads)."""
    split: list[dict[str, list[int]]]
    """alignkit's tokens of each row as TRL columns: ``prompt_ids``, ``chosen_ids``, ``rejected_ids``."""
    examples: list[Any]
    """alignkit's ``PairExample`` of each row (for the collate checks)."""
    loss_tokens: list[int] = field(default_factory=list)
    """Per step: tokens scored (chosen + rejected response tokens)."""
    padded_tokens: list[int] = field(default_factory=list)
    """Per step: 2B x longest row (padded pairs: what TRL computes on)."""
    num_pairs: int = 0
    dropped: int = 0
    truncated: int = 0

    def report(self, steps: int) -> dict[str, int]:
        """The report's ``data``: pairs read, and the tokens of the timed steps 2..N."""
        return {
            "pairs": self.num_pairs,
            "truncated": self.truncated,
            "dropped": self.dropped,
            "scored_tokens_timed": sum(self.loss_tokens[1:steps]),
            "padded_tokens_timed": sum(self.padded_tokens[1:steps]),
        }


def read_pairs(args: Any, tokenizer: Any, media: bool = False) -> tuple[list[tuple[Any, Any]], int, int]:
    """``--data``'s preference pairs read and tokenized exactly as ``alignkit.train.dpo.train`` does:
    ((Preference, PairExample) of each kept pair, rows truncated, rows read)."""
    from alignkit.data.pair_examples import to_preference, tokenize_pairs
    from alignkit.sections import DataConfig, DatasetConfig
    from alignkit.train.common import DataReport, read_records

    ds = DatasetConfig(source=args.data, template=args.template, split=args.split)
    data = DataConfig(train=ds, max_length=args.max_length)
    records = read_records(ds, data, DataReport(), "train", **({"media": True} if media else {}))
    kept: list[tuple[Any, Any]] = []
    truncated = 0
    for record in records:
        pair_examples, t, _ = tokenize_pairs([record], tokenizer, args.max_length, args.preference)
        truncated += t
        if pair_examples:
            kept.append((to_preference(record, args.preference), pair_examples[0]))
    return kept, truncated, len(records)


W = TypeVar("W", bound=PairWorkload)


def build_pair_workload(
    cls: type[W],
    args: Any,
    tokenizer: Any,
    steps: int,
    conversation: Callable[[Any], dict[str, Any]],
    media: bool = False,
    per_step: Callable[[W, list[tuple[Any, Any]]], None] | None = None,
) -> W:
    """``read_pairs`` laid out in alignkit's step order for ``steps`` steps: each row's TRL
    ``conversation(preference)``, token split and ``PairExample``, and each step's token counts
    (``per_step(work, batch)`` adds a script's own)."""
    kept, truncated, n_read = read_pairs(args, tokenizer, media)
    work = cls([], [], [], num_pairs=len(kept), dropped=n_read - len(kept), truncated=truncated)
    for batch in step_batches(kept, args, steps):
        for pref, ex in batch:
            work.conversations.append(conversation(pref))
            work.split.append(pair_split(ex))
            work.examples.append(ex)
        rows = [e for _, ex in batch for e in (ex.chosen, ex.rejected)]
        work.loss_tokens.append(sum(e.num_loss_tokens for e in rows))
        work.padded_tokens.append(len(rows) * max(len(e.input_ids) for e in rows))
        if per_step is not None:
            per_step(work, batch)
    return work
