"""Aligner corrections (``aligner/aligner-20K``) and Stream Aligner (``htlou/stream-aligner``).

Aligner learns to rewrite a whole answer; Stream Aligner rewrites the last sentence given the
already-corrected ``prefix``. Both are ``Correction`` records; the prefix is empty for Aligner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from alignkit.data.records import Correction
from alignkit.data.templates import fields
from alignkit.data.templates.base import RowContext, Template


@dataclass
class Aligner(Template):
    """``{question, answer, correction}`` -> ``Correction``."""

    name: ClassVar[str] = "aligner"
    yields: ClassVar[tuple[type, ...]] = (Correction,)

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> Correction:
        return Correction(
            question=fields.text(row, "question"),
            answer=fields.text(row, "answer"),
            correction=fields.text(row, "correction"),
        )


@dataclass
class StreamAligner(Template):
    """``{question, prefix, last, correction}`` -> ``Correction`` with ``answer = last``."""

    name: ClassVar[str] = "stream-aligner"
    yields: ClassVar[tuple[type, ...]] = (Correction,)

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> Correction:
        return Correction(
            question=fields.text(row, "question"),
            answer=fields.text(row, "last"),
            correction=fields.text(row, "correction"),
            prefix=fields.text(row, "prefix", allow_empty=True),
        )
