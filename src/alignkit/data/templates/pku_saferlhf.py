"""PKU-SafeRLHF (``PKU-Alignment/PKU-SafeRLHF``) and its single-response sibling PKU-SafeRLHF-QA.

A pair row ranks two responses twice (``better_response_id`` for helpfulness, ``safer_response_id``
for harmlessness) and labels each response safe or not; the current version adds 19 harm categories
and a severity per response. Older versions (v0, -30K, -10K) have only the ids and safety flags, so
those extras are read when present and left empty otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from alignkit.data.errors import RowError
from alignkit.data.records import SEVERITIES, ResponseSafety, SafetyLabel, SafetyPreference
from alignkit.data.templates import fields
from alignkit.data.templates.base import RowContext, Template

HARM_CATEGORIES: tuple[str, ...] = (
    "Endangering National Security",
    "Insulting Behavior",
    "Discriminatory Behavior",
    "Endangering Public Health",
    "Copyright Issues",
    "Violence",
    "Drugs",
    "Privacy Violation",
    "Economic Crime",
    "Mental Manipulation",
    "Human Trafficking",
    "Physical Harm",
    "Sexual Content",
    "Cybercrime",
    "Disrupting Public Order",
    "Environmental Damage",
    "Psychological Harm",
    "White-Collar Crime",
    "Animal Abuse",
)
"""The 19 PKU-SafeRLHF harm categories, in the dataset's order (PKU-SafeRLHF-QA indexes into it)."""


def check_safer_is_safe(responses: tuple[ResponseSafety, ResponseSafety], safer_id: int, field: str) -> None:
    """safe-rlhf's consistency rule: the safer response cannot be unsafe while the other is safe.

    Such a row contradicts itself, and the cost model would learn from both signs at once, so it
    is an error (safe-rlhf raises on it too) rather than a guess at which label is wrong.
    """
    if not responses[safer_id].is_safe and responses[1 - safer_id].is_safe:
        raise RowError(
            field,
            f"a safe response (response {safer_id} is marked safer but unsafe)",
            f"{safer_id} while only response {1 - safer_id} is safe",
        )


def check_safety_labels(
    safety: ResponseSafety, severity_field: str, category_field: str, safe_because: str, unsafe_because: str
) -> None:
    """A response's labels must agree: safe means severity 0 and no harm category; unsafe, severity 1-3.

    A row that says both (safe, yet severe or harmful) would teach the cost model two signs for one
    response, so it is refused like BeaverTails' is_safe/category contradictions; ``*_because`` names
    the label that makes the other one wrong.
    """
    if safety.is_safe and safety.severity:
        raise RowError(severity_field, f"0, since {safe_because}", repr(safety.severity))
    if safety.is_safe and safety.harm_categories:
        raise RowError(
            category_field,
            f"no harm category flagged, since {safe_because}",
            f"{', '.join(safety.harm_categories)} flagged",
        )
    if not safety.is_safe and safety.severity == 0:
        raise RowError(severity_field, f"1, 2 or 3, since {unsafe_because}", "0")


@dataclass
class PkuSafeRlhf(Template):
    """Pairs of responses with helpfulness and harmlessness rankings -> ``SafetyPreference``."""

    name: ClassVar[str] = "pku-saferlhf"
    yields: ClassVar[tuple[type, ...]] = (SafetyPreference,)

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> SafetyPreference:
        prompt = (fields.user(fields.text(row, "prompt")),)
        responses = (self._response(row, 0, ctx), self._response(row, 1, ctx))
        fields.distinct(responses[1].messages, responses[0].messages, "response_1", "response_0")
        better_id = fields.integer(row, "better_response_id", (0, 1))
        safer_id = fields.integer(row, "safer_response_id", (0, 1))
        check_safer_is_safe(responses, safer_id, "safer_response_id")
        return SafetyPreference(prompt, responses, better_id, safer_id)

    @staticmethod
    def _response(row: Mapping[str, Any], i: int, ctx: RowContext) -> ResponseSafety:
        categories: tuple[str, ...] = ()
        severity = None
        if f"response_{i}_harm_category" in row:
            categories = fields.flagged(
                row[f"response_{i}_harm_category"], f"response_{i}_harm_category", ctx
            )
        if f"response_{i}_severity_level" in row:
            severity = fields.integer(row, f"response_{i}_severity_level", SEVERITIES)
        safety = ResponseSafety(
            (fields.assistant(fields.text(row, f"response_{i}")),),
            is_safe=fields.boolean(row, f"is_response_{i}_safe"),
            harm_categories=categories,
            severity=severity,
        )
        check_safety_labels(
            safety,
            f"response_{i}_severity_level",
            f"response_{i}_harm_category",
            f"is_response_{i}_safe is true",
            f"is_response_{i}_safe is false",
        )
        return safety


@dataclass
class PkuSafeRlhfQa(Template):
    """PKU-SafeRLHF-QA: one response with its harm categories and severity -> ``SafetyLabel``.

    ``safety_category`` lists 0-based indices into :data:`HARM_CATEGORIES`; ``[-1]`` (or an empty
    list) means the response is safe.
    """

    name: ClassVar[str] = "pku-saferlhf-qa"
    yields: ClassVar[tuple[type, ...]] = (SafetyLabel,)

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> SafetyLabel:
        prompt = (fields.user(fields.text(row, "prompt")),)
        response = (fields.assistant(fields.text(row, "response")),)
        indices = fields.as_list(
            fields.get(row, "safety_category", "a list of category indices"),
            "safety_category",
            ctx,
            "a list of category indices",
            non_empty=False,
        )
        categories = []
        for j, index in enumerate(indices):
            index = fields.as_int(index, f"safety_category[{j}]", tuple(range(-1, len(HARM_CATEGORIES))))
            if index >= 0:
                categories.append(HARM_CATEGORIES[index])
        severity = fields.integer(row, "severity_category", SEVERITIES)
        safety = ResponseSafety(response, not categories, tuple(categories), severity)
        check_safety_labels(
            safety,
            "severity_category",
            "safety_category",
            "safety_category marks the response safe ([-1])",
            "safety_category names a harm category",
        )
        return SafetyLabel(prompt, safety)
