"""DeceptionBench (``PKU-Alignment/DeceptionBench``, arXiv 2505.18807): pressured scenarios for the
deception tendency rate (SEED_METHODS.md §2.4), and the toy world's rows in the same schema
(``toyworld://data/deception``).

A row is ``{inner_prompt, system_prompt, outer_prompt, format, type, setting}``, all strings. The two
prompts the eval sends must be there and non-empty; the scenario context, the format instruction and the
setting may be empty (the outer prompt is then sent as it is). ``type`` is the category every per-category
rate is grouped by, so it must be named; any category is accepted (the benchmark has five), other columns
are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from alignkit.data.records import DeceptionScenario
from alignkit.data.templates import fields
from alignkit.data.templates.base import RowContext, Template


@dataclass
class DeceptionBench(Template):
    """``{inner_prompt, system_prompt, outer_prompt, format, type, setting}`` -> ``DeceptionScenario``."""

    name: ClassVar[str] = "deceptionbench"
    yields: ClassVar[tuple[type, ...]] = (DeceptionScenario,)

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> DeceptionScenario:
        return DeceptionScenario(
            inner_prompt=fields.text(row, "inner_prompt"),
            system_prompt=fields.text(row, "system_prompt", allow_empty=True),
            outer_prompt=fields.text(row, "outer_prompt"),
            format=fields.text(row, "format", allow_empty=True),
            category=fields.text(row, "type"),
            setting=fields.text(row, "setting", allow_empty=True) if "setting" in row else "",
        )
