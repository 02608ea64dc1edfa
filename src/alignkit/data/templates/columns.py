"""A dataset in no known schema, read through a column map given in config.

``column_map={"prompt": "instruction", "chosen": "good", "rejected": "bad"}`` names, for each record
field, the column that holds it. The source renames the columns before this template sees the row
(and names the user's column in errors), so the template only decides the record type from which
fields were mapped: question/answer/correction (+prefix) -> ``Correction``; anything else is read
as the matching TRL shape (see :mod:`alignkit.data.templates.trl`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from alignkit.data.records import Correction, Record
from alignkit.data.templates import fields
from alignkit.data.templates.base import RowContext, Template
from alignkit.data.templates.trl import Trl

CORRECTION_FIELDS = ("question", "answer", "correction")


@dataclass
class Columns(Template):
    """Rows renamed by ``column_map`` -> the record type their mapped fields describe."""

    name: ClassVar[str] = "columns"
    yields: ClassVar[tuple[type, ...]] = (Correction, *Trl.yields)

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> Record:
        if all(key in row for key in CORRECTION_FIELDS):
            return Correction(
                question=fields.text(row, "question"),
                answer=fields.text(row, "answer"),
                correction=fields.text(row, "correction"),
                prefix=fields.text(row, "prefix", allow_empty=True) if "prefix" in row else "",
            )
        return Trl().parse(row, ctx)
