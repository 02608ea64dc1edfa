"""Records -> ordered response pairs for score models, shared by training (``train/reward|cost``) and
evaluation (``eval/preference``), so that what "chosen" or "less safe" means cannot drift between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alignkit.config import ConfigError
from alignkit.data.records import Preference, SafetyPreference


@dataclass(frozen=True)
class PairSpec:
    """Two responses to one prompt, ordered as the loss wants them (chosen first, or less safe first)."""

    prompt: Sequence[Any]
    first: Sequence[Any]
    second: Sequence[Any]
    first_sign: int = 0
    """Safe RLHF sign label of ``first`` (+1 unsafe, -1 safe); 0 when the loss uses none."""
    second_sign: int = 0


def preference_pairs(records: Sequence[Any], source: str) -> list[PairSpec]:
    """(prompt, chosen, rejected) of each record; a SafetyPreference gives its helpfulness ranking."""
    pairs = []
    for record in records:
        if isinstance(record, SafetyPreference):
            record = record.helpfulness_preference()
        if not isinstance(record, Preference):
            raise ConfigError(
                f"{source} gives {type(record).__name__} records, but a reward model needs Preference or "
                "SafetyPreference pairs. Choose a pairwise template (e.g. pku-saferlhf, hh-rlhf)."
            )
        pairs.append(PairSpec(record.prompt, record.chosen, record.rejected))
    return pairs


def sign_label(is_safe: bool) -> int:
    """Safe RLHF's sign label: +1 for an unsafe response, -1 for a safe one."""
    return -1 if is_safe else 1


def safety_pairs(records: Sequence[Any], source: str) -> list[PairSpec]:
    """(prompt, less safe, safer) with their sign labels, from SafetyPreference records."""
    pairs = []
    for record in records:
        if not isinstance(record, SafetyPreference):
            raise ConfigError(
                f"{source} gives {type(record).__name__} records, but a cost model needs SafetyPreference "
                "pairs with per-response safety labels. Choose a template such as pku-saferlhf."
            )
        safe = record.responses[record.safer_id]
        unsafe = record.responses[1 - record.safer_id]
        pairs.append(
            PairSpec(
                record.prompt,
                unsafe.messages,
                safe.messages,
                sign_label(unsafe.is_safe),
                sign_label(safe.is_safe),
            )
        )
    return pairs
