"""UltraFeedback binarized (``HuggingFaceH4/ultrafeedback_binarized``, splits ``train_prefs`` ...).

``chosen`` and ``rejected`` are whole conversations (user turn + assistant turn); the turns they
share become the prompt, so multi-turn variants of the format work unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

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
        return Preference(prompt, chosen_turns, rejected_turns)
