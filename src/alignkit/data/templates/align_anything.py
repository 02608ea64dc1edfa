"""Align-Anything text-image-to-text preferences (``PKU-Alignment/align-anything``).

A row asks a ``question`` about an ``image`` and ranks ``response_1``/``response_2``:
``overall_response`` (1|2) overall, plus ``<dim>_rate_{1,2}`` ratings per dimension. The pair is
oriented by ``dimension`` ("overall" by default; any rated dimension compares the two ratings, ties
are skipped and reported). Every dimension's verdict is kept in ``Preference.labels`` (1 = chosen
better, 2 = rejected better, 0 = tie). Language-feedback rows (with ``refinement``) yield the
refinement as chosen and the original ``response`` as rejected (Align-Anything LLF, arXiv 2412.15838).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from alignkit.data.errors import MissingField
from alignkit.data.records import Preference
from alignkit.data.templates import fields
from alignkit.data.templates.base import OPTION_HINT, RowContext, Template

_RATE_1 = "_rate_1"


@dataclass
class AlignAnythingTI2T(Template):
    """Image + question with two rated responses (or a response and its refinement) -> ``Preference``."""

    name: ClassVar[str] = "align-anything-ti2t"
    yields: ClassVar[tuple[type, ...]] = (Preference,)
    dimension: str = "overall"
    """Which verdict picks chosen: "overall" (``overall_response``) or a rated dimension's name."""

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> Preference:
        image = fields.image_part(fields.get(row, "image", "an image"), "image", ctx)
        prompt = (fields.user(fields.with_images((image,), fields.text(row, "question"))),)
        if "refinement" in row:
            refined = (fields.assistant(fields.text(row, "refinement")),)
            original = (fields.assistant(fields.text(row, "response")),)
            fields.distinct(refined, original, "refinement", "response")
            return Preference(prompt, refined, original)

        responses = {k: (fields.assistant(fields.text(row, f"response_{k}")),) for k in (1, 2)}
        fields.distinct(responses[2], responses[1], "response_2", "response_1")
        labels = self._labels(row)
        field = "overall_response" if self.dimension == "overall" else f"{self.dimension}_rate_1"
        if self.dimension not in labels:
            raise MissingField(
                field,
                f"the verdict for dimension '{self.dimension}' (choose a rated dimension of this row with "
                f"template option dimension, set {OPTION_HINT})",
            )
        winner = fields.pick_winner(labels, self.dimension, field)
        return Preference(
            prompt, responses[winner], responses[3 - winner], fields.orient_labels(labels, winner)
        )

    @staticmethod
    def _labels(row: Mapping[str, Any]) -> dict[str, int]:
        """Per-dimension verdicts in response_1/response_2 terms: 1 or 2 wins, 0 tie."""
        labels = {}
        if "overall_response" in row:
            labels["overall"] = fields.integer(row, "overall_response", (1, 2))
        for key in row:
            if key.endswith(_RATE_1) and f"{key[: -len(_RATE_1)]}_rate_2" in row:
                dim = key[: -len(_RATE_1)]
                rate_1 = fields.integer(row, key)
                rate_2 = fields.integer(row, f"{dim}_rate_2")
                labels[dim] = 1 if rate_1 > rate_2 else 2 if rate_2 > rate_1 else 0
        return labels
