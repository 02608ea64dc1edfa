"""BeaverTails (``PKU-Alignment/BeaverTails``): question-answer pairs labelled safe or not.

``category`` holds 14 boolean harm flags whose names contain commas
("drug_abuse,weapons,banned_substance"): they are kept verbatim as category names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from alignkit.data.errors import RowError
from alignkit.data.records import ResponseSafety, SafetyLabel
from alignkit.data.templates import fields
from alignkit.data.templates.base import RowContext, Template

BEAVERTAILS_CATEGORIES: tuple[str, ...] = (
    "animal_abuse",
    "child_abuse",
    "controversial_topics,politics",
    "discrimination,stereotype,injustice",
    "drug_abuse,weapons,banned_substance",
    "financial_crime,property_crime,theft",
    "hate_speech,offensive_language",
    "misinformation_regarding_ethics,laws_and_safety",
    "non_violent_unethical_behavior",
    "privacy_violation",
    "self_harm",
    "sexually_explicit,adult_content",
    "terrorism,organized_crime",
    "violence,aiding_and_abetting,incitement",
)
"""BeaverTails' 14 category keys, verbatim and in the dataset card's order (commas are part of the names)."""


@dataclass
class BeaverTails(Template):
    """A prompt, one response, its safety flag and harm categories -> ``SafetyLabel``."""

    name: ClassVar[str] = "beavertails"
    yields: ClassVar[tuple[type, ...]] = (SafetyLabel,)

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> SafetyLabel:
        prompt = (fields.user(fields.text(row, "prompt")),)
        response = (fields.assistant(fields.text(row, "response")),)
        categories = fields.flagged(
            fields.get(row, "category", "a dict of category -> bool"), "category", ctx
        )
        is_safe = fields.boolean(row, "is_safe")
        # In BeaverTails is_safe is defined as "no category flagged"; a row breaking that is mislabelled.
        if is_safe == bool(categories):
            expected = (
                "false, since categories are flagged" if categories else "true, since no category is flagged"
            )
            raise RowError("is_safe", expected, repr(is_safe))
        return SafetyLabel(prompt, ResponseSafety(response, is_safe, categories))
