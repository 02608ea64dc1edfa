"""BeaverTails-V (``PKU-Alignment/BeaverTails-V``): image + question, two responses ranked twice.

Unlike PKU-SafeRLHF, ids are the strings '1'/'2' and safety flags are strings; both are converted
to the 0/1 ids and booleans of ``SafetyPreference``. The row's ``category`` names the harm of the
image-question pair, so it is attached to each response judged unsafe. Single-response configs
(``response``, ``is_response_safe``) yield a ``SafetyLabel``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from alignkit.data.records import ResponseSafety, SafetyLabel, SafetyPreference
from alignkit.data.templates import fields
from alignkit.data.templates.base import RowContext, Template
from alignkit.data.templates.pku_saferlhf import check_safer_is_safe


@dataclass
class BeaverTailsV(Template):
    """Image-question pairs ranked for helpfulness and safety -> ``SafetyPreference`` (or ``SafetyLabel``)."""

    name: ClassVar[str] = "beavertails-v"
    yields: ClassVar[tuple[type, ...]] = (SafetyPreference, SafetyLabel)

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> SafetyPreference | SafetyLabel:
        image = fields.image_part(fields.get(row, "image", "an image"), "image", ctx)
        prompt = (fields.user(fields.with_images((image,), fields.text(row, "question"))),)
        category = fields.text(row, "category")
        if "response" in row and "response_1" not in row:
            return SafetyLabel(prompt, self._response(row, "response", "is_response_safe", category))
        responses = (
            self._response(row, "response_1", "is_response_1_safe", category),
            self._response(row, "response_2", "is_response_2_safe", category),
        )
        fields.distinct(responses[1].messages, responses[0].messages, "response_2", "response_1")
        better_id = fields.integer(row, "more_helpful_response_id", (1, 2)) - 1
        safer_id = fields.integer(row, "safer_response_id", (1, 2)) - 1
        check_safer_is_safe(responses, safer_id, "safer_response_id")
        return SafetyPreference(prompt, responses, better_id, safer_id)

    @staticmethod
    def _response(row: Mapping[str, Any], key: str, safe_key: str, category: str) -> ResponseSafety:
        is_safe = fields.boolean(row, safe_key)
        messages = (fields.assistant(fields.text(row, key)),)
        return ResponseSafety(messages, is_safe, () if is_safe else (category,))
