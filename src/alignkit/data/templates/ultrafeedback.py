"""UltraFeedback binarized (``HuggingFaceH4/ultrafeedback_binarized``, splits ``train_prefs`` ...).

``chosen`` and ``rejected`` are whole conversations (user turn + assistant turn); the turns they
share become the prompt, so multi-turn variants of the format work unchanged. ``score_chosen`` and
``score_rejected`` (mean ratings, when present) must say chosen is better: equal ratings are a tie,
left out and reported like every tie, and a chosen rated below rejected is a mislabelled row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from alignkit.data.errors import RowError, RowSkipped
from alignkit.data.records import Preference
from alignkit.data.templates import fields
from alignkit.data.templates.base import RowContext, Template


@dataclass
class UltraFeedbackBinarized(Template):
    """``{prompt, chosen: [messages], rejected: [messages], ...}`` -> ``Preference``."""

    name: ClassVar[str] = "ultrafeedback-binarized"
    yields: ClassVar[tuple[type, ...]] = (Preference,)

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> Preference:
        fields.text(row, "prompt")  # present in every row; a row without it is not this dataset
        chosen = fields.messages(fields.get(row, "chosen", "a list of messages"), "chosen", ctx)
        rejected = fields.messages(fields.get(row, "rejected", "a list of messages"), "rejected", ctx)
        prompt, chosen_turns, rejected_turns = fields.split_pair(chosen, rejected, ("chosen", "rejected"))
        if "score_chosen" in row and "score_rejected" in row:
            chosen_score, rejected_score = (
                fields.number(row, "score_chosen"),
                fields.number(row, "score_rejected"),
            )
            if chosen_score == rejected_score:
                raise RowSkipped(
                    "score_chosen", "tie: score_chosen equals score_rejected, no preferred response"
                )
            if chosen_score < rejected_score:
                raise RowError(
                    "score_chosen",
                    "a score above score_rejected (chosen is the preferred response)",
                    f"{chosen_score:g} < {rejected_score:g}",
                )
        return Preference(prompt, chosen_turns, rejected_turns)
