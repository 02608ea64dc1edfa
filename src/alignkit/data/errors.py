"""Errors that point at the exact row and field a user has to fix.

Templates know the field and what they expected but not where the row lives; sources know the file
and row number but not the field. So a template raises :class:`RowError` (field, expected, got), and
the source turns it into a :class:`DataError` with the location, or, when the user asked to skip bad
rows, into a :class:`SkippedRow`. :class:`RowSkipped` is for rows a template leaves out on purpose
(an InterMT tie): they are always reported, never silently dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

_GOT_LIMIT = 60


def describe(value: Any) -> str:
    """A short, readable rendering of a bad value for an error message."""
    if isinstance(value, (dict, list, tuple)) and len(repr(value)) > _GOT_LIMIT:
        return f"a {type(value).__name__} of length {len(value)}"
    text = repr(value)
    return text if len(text) <= _GOT_LIMIT else text[: _GOT_LIMIT - 3] + "..."


class RowError(ValueError):
    """A row is malformed: ``field`` did not hold what the template ``expected``."""

    def __init__(self, field: str, expected: str, got: str) -> None:
        super().__init__(f"field '{field}': expected {expected}, got {got}")
        self.field = field
        self.expected = expected
        self.got = got


class MissingField(RowError):
    """The row has no ``field`` at all."""

    def __init__(self, field: str, expected: str) -> None:
        super().__init__(field, expected, "no such field")


class RowSkipped(Exception):
    """A well-formed row the template deliberately yields nothing for (e.g. a tie), with the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field '{field}': {reason}")
        self.field = field
        self.reason = reason


class DataError(ValueError):
    """A row (or a whole file) could not be read; the message names file, row, field and expectation.

    ``row`` is the 1-based line of a jsonl/csv file or the 1-based element of a json/parquet file;
    ``field`` is None when the row could not even be parsed.
    """

    def __init__(
        self, file: str, row: int | None, field: str | None, expected: str, got: str, line: bool = False
    ) -> None:
        where = file if row is None else f"{file} {'line' if line else 'row'} {row}"
        what = f"expected {expected}, got {got}"
        super().__init__(f"{where}: {what}" if field is None else f"{where}: field '{field}': {what}")
        self.file = file
        self.row = row
        self.field = field
        self.expected = expected
        self.got = got


class TemplateError(DataError):
    """The template itself cannot be built: an unknown name or option, a bad option value.

    It is a ``DataError`` so every entry point (``load_records``, ``alignkit data inspect``, a
    training run) reports it as one, but it has no file, row or field: only what to set instead.
    """

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)
        self.file = ""
        self.row = None
        self.field = None
        self.expected = ""
        self.got = ""


INVALID = "invalid"
"""``SkippedRow.kind`` of a malformed row left out because the user asked to skip invalid rows."""
EXCLUDED = "excluded"
"""``SkippedRow.kind`` of a well-formed row a template leaves out on purpose (a tie): always reported."""


@dataclass(frozen=True)
class SkippedRow:
    """A row left out of a :class:`LoadResult`, and why.

    ``reason`` is the kind of problem ("expected 0 or 1", "tie on 'helpfulness'"), shared by rows
    with the same fault so it can be counted; ``detail`` is this row's value ("got 2").
    """

    file: str
    row: int
    field: str | None
    reason: str
    detail: str = ""
    kind: str = INVALID
    """:data:`INVALID` (skipped under ``skip_invalid``) or :data:`EXCLUDED` (left out on purpose)."""

    def __str__(self) -> str:
        where = f"{self.file} row {self.row}"
        what = f"{self.reason}, {self.detail}" if self.detail else self.reason
        return f"{where}: {what}" if self.field is None else f"{where}: field '{self.field}': {what}"

    def summary_key(self) -> str:
        """What rows with the same fault share: the field and the reason."""
        return self.reason if self.field is None else f"field '{self.field}': {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
