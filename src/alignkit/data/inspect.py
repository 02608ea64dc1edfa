"""``alignkit data inspect``: read a whole dataset through a template and say what came out.

Users point alignkit at data in a format they half know; before a training run they need to see
how many records of which type the template produced, which rows it refused and why, and what a
record actually looks like once read. This module builds that report; the CLI prints ``format()``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignkit.data.errors import SkippedRow
from alignkit.data.media import media_summary
from alignkit.data.records import ContentPart, Message, Record, ResponseSafety
from alignkit.data.sources import LoadResult, load_records
from alignkit.data.templates import Template, get_template

_TEXT_LIMIT = 300


@dataclass
class InspectReport:
    """What a template made of a dataset split: counts, refusals, and one sample record."""

    source: str
    template: str
    split: str
    rows_read: int
    counts: dict[str, int]
    skipped: list[SkippedRow] = field(default_factory=list)
    sample: Record | None = None
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per modality (image, audio, video): parts, distinct files, and image sizes (``media_summary``)."""

    def skip_summary(self) -> dict[str, int]:
        return LoadResult([], self.skipped, self.rows_read).skip_summary()

    def format(self) -> str:
        """A human-readable report (what ``alignkit data inspect`` prints)."""
        lines = [
            f"source:   {self.source}",
            f"template: {self.template}",
            f"split:    {self.split}",
            f"rows:     {self.rows_read}",
            "records:",
        ]
        lines.extend(f"  {count:>6}  {kind}" for kind, count in sorted(self.counts.items()))
        if not self.counts:
            lines.append("       0")
        for kind, entry in sorted(self.media.items()):
            sizes = ", ".join(f"{size} x{n}" for size, n in sorted(entry.get("sizes", {}).items()))
            lines.append(
                f"{kind}s:   {entry['parts']} in records, {entry['distinct']} distinct"
                + (f"; sizes {sizes}" if sizes else "")
            )
        lines.append(LoadResult([], self.skipped, self.rows_read).format_skipped())
        if self.sample is not None:
            lines += ["", "sample record:", render_record(self.sample, indent="  ")]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form of the report (embedded media shown as byte counts)."""
        return {
            "source": self.source,
            "template": self.template,
            "split": self.split,
            "rows_read": self.rows_read,
            "counts": dict(self.counts),
            "skipped": [row.to_dict() for row in self.skipped],
            "skip_summary": self.skip_summary(),
            "media": self.media,
            "sample": None if self.sample is None else record_to_dict(self.sample),
        }


def inspect_dataset(
    source: str | Path,
    template: str | Template,
    split: str = "train",
    column_map: Mapping[str, str] | None = None,
    *,
    skip_invalid: bool = True,
    subset: str | None = None,
    **template_options: Any,
) -> InspectReport:
    """Validate every row of ``split`` and report on it.

    Bad rows are collected in the report by default, so one run shows every problem; with
    ``skip_invalid=False`` the first one raises ``DataError`` instead.
    """
    parser = get_template(template, **template_options)
    result = load_records(
        source, parser, split, skip_invalid=skip_invalid, column_map=column_map, subset=subset
    )
    return InspectReport(
        source=str(source),
        template=parser.name,
        split=split,
        rows_read=result.rows_read,
        counts=result.counts(),
        skipped=result.skipped,
        sample=result.records[0] if result.records else None,
        media=media_summary(result.records),
    )


def _short(text: str) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."


def _render_message(message: Message) -> str:
    if isinstance(message.content, str):
        return f"{message.role}: {_short(message.content)}"
    parts = []
    for part in message.content:
        if part.type == "text":
            parts.append(_short(part.text or ""))
        else:
            where = part.path if part.path is not None else f"{len(part.data or b'')} bytes"
            parts.append(f"[{part.type}: {where}]")
    return f"{message.role}: {' '.join(parts)}"


def _render_safety(safety: ResponseSafety) -> str:
    categories = ", ".join(safety.harm_categories) or "none"
    severity = "" if safety.severity is None else f", severity {safety.severity}"
    return f"{'safe' if safety.is_safe else 'unsafe'}, harm categories: {categories}{severity}"


def render_record(record: Record, indent: str = "") -> str:
    """A record as indented text: its type and origin, then one block per field."""
    origin = f"  ({record.origin})" if record.origin is not None else ""
    lines = [f"{indent}{type(record).__name__}{origin}"]
    pad = indent + "  "
    for spec in dataclasses.fields(record):
        value = getattr(record, spec.name)
        if spec.name == "origin" or (isinstance(value, Mapping) and not value):
            continue
        if isinstance(value, tuple) and value and isinstance(value[0], Message):
            lines.append(f"{pad}{spec.name}:")
            lines.extend(f"{pad}  {_render_message(m)}" for m in value)
        elif isinstance(value, ResponseSafety):
            lines.append(f"{pad}{spec.name} ({_render_safety(value)}):")
            lines.extend(f"{pad}  {_render_message(m)}" for m in value.messages)
        elif isinstance(value, tuple) and value and isinstance(value[0], ResponseSafety):
            for i, safety in enumerate(value):
                lines.append(f"{pad}{spec.name}[{i}] ({_render_safety(safety)}):")
                lines.extend(f"{pad}  {_render_message(m)}" for m in safety.messages)
        elif isinstance(value, Mapping):
            lines.append(f"{pad}{spec.name}: " + ", ".join(f"{k}={v}" for k, v in value.items()))
        elif isinstance(value, str):
            lines.append(f"{pad}{spec.name}: {_short(value)}")
        else:
            lines.append(f"{pad}{spec.name}: {value}")
    return "\n".join(lines)


def record_to_dict(value: Any) -> Any:
    """Records as plain JSON data: ``{"type": "Preference", ...}``; embedded bytes become a length."""
    if isinstance(value, ContentPart):
        data = {"type": value.type, "text": value.text, "path": value.path}
        if value.data is not None:
            data["bytes"] = len(value.data)
        return {k: v for k, v in data.items() if v is not None}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {"type": type(value).__name__} if not isinstance(value, Message) else {}
        for spec in dataclasses.fields(value):
            data[spec.name] = record_to_dict(getattr(value, spec.name))
        return data
    if isinstance(value, Mapping):
        return {str(k): record_to_dict(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [record_to_dict(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value
