"""The data layer: typed records, dataset templates, sources, and dataset inspection.

``load_records(source, template, split)`` is the one entry point trainers use; see
docs/architecture.md for the contract and :mod:`alignkit.data.templates` for the template names.
"""

from alignkit.data.errors import DataError, SkippedRow
from alignkit.data.inspect import InspectReport, inspect_dataset, record_to_dict, render_record
from alignkit.data.records import (
    RECORD_TYPES,
    ContentPart,
    Conversation,
    Correction,
    DeceptionScenario,
    Message,
    PlainText,
    Preference,
    Prompt,
    Record,
    ResponseSafety,
    RowRef,
    SafetyLabel,
    SafetyPreference,
    UnpairedPreference,
)
from alignkit.data.sources import LoadResult, load_records
from alignkit.data.templates import TEMPLATES, Template, get_template

__all__ = [
    "RECORD_TYPES",
    "TEMPLATES",
    "ContentPart",
    "Conversation",
    "Correction",
    "DataError",
    "DeceptionScenario",
    "InspectReport",
    "LoadResult",
    "Message",
    "PlainText",
    "Preference",
    "Prompt",
    "Record",
    "ResponseSafety",
    "RowRef",
    "SafetyLabel",
    "SafetyPreference",
    "SkippedRow",
    "Template",
    "UnpairedPreference",
    "get_template",
    "inspect_dataset",
    "load_records",
    "record_to_dict",
    "render_record",
]
