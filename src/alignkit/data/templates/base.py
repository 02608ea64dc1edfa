"""What every dataset template is: options in, one typed record per raw row out.

A template is a small dataclass whose fields are its options (``InterMT(dimension="helpfulness")``)
and whose :meth:`Template.parse` maps one raw row to one record. It raises ``RowError`` for a
malformed row and ``RowSkipped`` for a row it leaves out on purpose; the source adds file and row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from alignkit.data.records import Record

OPTION_HINT = "in a config as data.<train|eval>.options.<option>, or as --option <option>=<value> for `alignkit data inspect`"
"""Where a template option is set, for every error message that tells the user to set one."""


@dataclass(frozen=True)
class RowContext:
    """What a template may need to know about where a row came from.

    ``base_dir`` resolves relative image paths (the data file's folder; None for hub datasets).
    ``json_strings`` is set for CSV, whose cells are all text: list- and dict-valued fields arrive
    JSON-encoded and are decoded on demand.
    """

    file: str
    row: int
    base_dir: Path | None = None
    json_strings: bool = False


class Template(ABC):
    """Maps raw rows of one dataset family to records."""

    name: ClassVar[str]
    """The registry key, e.g. ``"pku-saferlhf"``."""
    yields: ClassVar[tuple[type, ...]]
    """The record types :meth:`parse` can return."""

    @abstractmethod
    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> Record:
        """One record for ``row``; raise ``RowError`` if it is malformed, ``RowSkipped`` to leave it out."""
