"""Where rows come from: local files and folders, or the Hugging Face hub, with exact row numbers.

Local files are read with plain readers (json, csv, pyarrow) rather than ``datasets.load_dataset``,
because an error must name the 1-based line of the file the user can open, and ``datasets`` loses
it. Row numbers: jsonl and csv use the file's line (csv counts the header as line 1), json and
parquet the 1-based position of the row. Hub datasets go through ``datasets.load_dataset`` and are
numbered by position in the split. jsonl, json and csv files may be gzip-compressed (``.jsonl.gz``).

Nothing is read by guesswork: an empty file is an error (a run on no data is a mistake, not a
result), and a single file is read as split ``train`` only, unless its name says it holds the split
asked for, so ``split=test`` never quietly hands back the training rows.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignkit.data.errors import EXCLUDED, DataError, RowError, RowSkipped, SkippedRow, TemplateError
from alignkit.data.records import Record, RowRef
from alignkit.data.templates import Template, get_template
from alignkit.data.templates.base import RowContext
from alignkit.data.templates.columns import Columns

FORMATS: tuple[str, ...] = (".jsonl", ".json", ".parquet", ".csv")
GZIP = ".gz"
SUFFIXES: tuple[str, ...] = (*FORMATS, *(f + GZIP for f in FORMATS if f != ".parquet"))
"""Data file names alignkit reads: the four formats, and jsonl/json/csv gzip-compressed."""
_SUFFIX_LIST = ", ".join(SUFFIXES)
_FIELD_HEAD = re.compile(r"^[^.\[]+")


@dataclass
class LoadResult:
    """The records of a dataset split, and every row that did not become one (with why)."""

    records: list[Record]
    skipped: list[SkippedRow] = field(default_factory=list)
    rows_read: int = 0
    """Rows seen in the source, kept or skipped."""

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def counts(self) -> dict[str, int]:
        """Records per record type, e.g. ``{"Preference": 120}``."""
        return dict(Counter(type(record).__name__ for record in self.records))

    def skip_summary(self) -> dict[str, int]:
        """Skipped rows per reason ("field 'x': expected ..."), most frequent first."""
        return dict(Counter(row.summary_key() for row in self.skipped).most_common())

    def format_skipped(self, examples: int = 3) -> str:
        """Readable account of what was skipped: counts per reason and a few example rows each."""
        if not self.skipped:
            return f"skipped 0 of {self.rows_read} rows"
        lines = [f"skipped {len(self.skipped)} of {self.rows_read} rows:"]
        for key, count in self.skip_summary().items():
            lines.append(f"  {count:>6}  {key}")
            shown = [row for row in self.skipped if row.summary_key() == key][:examples]
            lines.extend(f"          e.g. {row}" for row in shown)
        return "\n".join(lines)


def load_records(
    source: str | Path,
    template: str | Template,
    split: str = "train",
    skip_invalid: bool = False,
    column_map: Mapping[str, str] | None = None,
    *,
    subset: str | None = None,
    **template_options: Any,
) -> LoadResult:
    """Read ``split`` of ``source`` through ``template`` into typed records.

    ``source``: a .jsonl/.json/.parquet/.csv file, a folder holding files for ``split``
    (``train.jsonl``, ``train-00000-of-00002.parquet``, ``train/*.jsonl``), or a hub dataset name
    (``subset`` is its config, e.g. ``alpaca-7b``). ``column_map`` maps the field names the template
    reads to the columns that hold them (``{"prompt": "instruction"}``); it is what the ``columns``
    template is driven by. A malformed row raises :class:`DataError`; with ``skip_invalid`` it is
    recorded in ``LoadResult.skipped`` instead. Rows a template leaves out on purpose (ties) are
    always recorded there.
    """
    parser = get_template(template, **template_options)
    column_map = dict(column_map or {})
    if isinstance(parser, Columns) and not column_map:
        raise TemplateError(
            "template 'columns' needs a column map naming, for each record field, the column that holds "
            "it: in a config data.<train|eval>.column_map: {prompt: instruction, chosen: good, rejected: "
            "bad}; with `alignkit data inspect`: --column prompt=instruction --column chosen=good ..."
        )

    result = LoadResult(records=[])
    for ctx, raw in iter_rows(source, split, subset):
        result.rows_read += 1
        try:
            if isinstance(raw, RowError):
                raise raw
            row = _renamed(raw, column_map, only_mapped=isinstance(parser, Columns))
            record = parser.parse(row, ctx)
        except RowSkipped as skip:
            field_name = _user_field(skip.field, column_map)
            result.skipped.append(SkippedRow(ctx.file, ctx.row, field_name, skip.reason, kind=EXCLUDED))
            continue
        except RowError as error:
            # A row that is not even a JSON object has no field: report it against the line.
            field_name = None if error.field == "" else _user_field(error.field, column_map)
            if not skip_invalid:
                raise DataError(
                    ctx.file, ctx.row, field_name, error.expected, error.got, line=field_name is None
                ) from None
            result.skipped.append(
                SkippedRow(ctx.file, ctx.row, field_name, f"expected {error.expected}", f"got {error.got}")
            )
            continue
        result.records.append(_with_origin(record, RowRef(ctx.file, ctx.row)))
    return result


def _with_origin(record: Record, origin: RowRef) -> Record:
    return dataclasses.replace(record, origin=origin)


def _renamed(row: Mapping[str, Any], column_map: Mapping[str, str], only_mapped: bool) -> Mapping[str, Any]:
    """The row as the template expects to see it: ``column_map`` target names over the raw columns."""
    if not column_map:
        return row
    renamed = {} if only_mapped else dict(row)
    for target, column in column_map.items():
        renamed.pop(target, None)
        if column in row:
            renamed[target] = row[column]
    return renamed


def _user_field(field_name: str, column_map: Mapping[str, str]) -> str:
    """Name the user's column in errors: ``chosen[1].role`` -> ``good[1].role`` if chosen <- good."""
    match = _FIELD_HEAD.match(field_name)
    if match and match.group(0) in column_map:
        return column_map[match.group(0)] + field_name[match.end() :]
    return field_name


def iter_rows(source: str | Path, split: str, subset: str | None = None) -> Iterator[tuple[RowContext, Any]]:
    """``(context, raw row)`` for every row of ``split``; an unparsable line comes as a ``RowError``."""
    path = Path(source).expanduser()
    if path.exists():
        files = [_single_file(path, split)] if path.is_file() else split_files(path, split)
        for file in files:
            yield from _read_file(file)
        return
    if isinstance(source, Path) or _looks_local(str(source)):
        raise DataError(str(source), None, None, "an existing file or folder", "nothing at that path")
    yield from _read_hub(str(source), split, subset)


def _looks_local(source: str) -> bool:
    """A hub name is ``name`` or ``owner/name``; anything else that does not exist is a missing path."""
    return source.endswith(SUFFIXES) or source.startswith((".", "/", "~")) or source.count("/") > 1


def data_suffix(name: str) -> str | None:
    """The data suffix a file name ends with (``.jsonl.gz`` before ``.gz``), or None."""
    return next((suffix for suffix in sorted(SUFFIXES, key=len, reverse=True) if name.endswith(suffix)), None)


def _stem(name: str) -> str:
    suffix = data_suffix(name)
    return name[: -len(suffix)] if suffix else name


def _names_split(name: str, split: str) -> bool:
    """``test.jsonl``, ``test-00000-of-00002.parquet``: a file name that says it holds ``split``."""
    stem = _stem(name)
    return stem == split or stem.startswith(f"{split}-")


def _single_file(path: Path, split: str) -> Path:
    """A file given directly is the ``train`` split, or the split its name says it holds; never another.

    Reading ``split=test`` from a file that has no test split would silently evaluate on training
    rows, so it is refused with the ways to name a real test split.
    """
    if split == "train" or _names_split(path.name, split):
        return path
    raise DataError(
        str(path),
        None,
        None,
        f"a source holding split '{split}'",
        f"a single file with no split in its name, which is read as split 'train' only. Point the source at "
        f"the file that holds the {split} rows, at a folder holding {split}.jsonl (or {split}-*.parquet), or "
        f"name this file {split}.jsonl; to hold out part of one file, split it into two files first",
    )


def split_files(folder: Path, split: str) -> list[Path]:
    """The data files of ``split`` in ``folder`` (searched recursively, hidden entries ignored).

    A file belongs to ``split`` when its name is ``<split>.<ext>`` or ``<split>-*.<ext>`` (sharded, as
    the hub writes them) or it lies in a ``<split>/`` folder. ``train_prefs-*`` thus does not belong
    to ``train``. A folder with a single data file and no split in its name serves as ``train``.
    """
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.name.endswith(SUFFIXES)
        and not any(s.startswith(".") for s in p.relative_to(folder).parts)
    )

    def belongs(p: Path) -> bool:
        return _names_split(p.name, split) or split in p.relative_to(folder).parts[:-1]

    chosen = [p for p in files if belongs(p)]
    if not chosen and split == "train" and len(files) == 1:
        chosen = files
    if not chosen:
        found = ", ".join(str(p.relative_to(folder)) for p in files[:10]) or f"no {_SUFFIX_LIST} files"
        raise DataError(
            str(folder),
            None,
            None,
            f"data files for split '{split}' (e.g. {split}.jsonl or {split}-*.parquet)",
            found,
        )
    return chosen


def _read_file(path: Path) -> Iterator[tuple[RowContext, Any]]:
    """Every row of one data file; a file with no rows, or bytes that are not its format, is an error."""
    name = str(path)
    suffix = data_suffix(path.name)
    readers = {".jsonl": _jsonl_rows, ".json": _json_rows, ".csv": _csv_rows, ".parquet": _parquet_rows}
    if suffix is None:
        raise DataError(name, None, None, f"a data file ({_SUFFIX_LIST})", repr(path.suffix))
    fmt = suffix.removesuffix(GZIP)
    rows = readers[fmt](path)
    count = 0
    try:
        for number, row in rows:
            count += 1
            yield RowContext(name, number, path.parent, json_strings=fmt == ".csv"), row
    except UnicodeDecodeError as error:
        raise DataError(
            name, None, None, "UTF-8 text", f"bytes that are not UTF-8 ({error.reason} at byte {error.start})"
        ) from None
    except (gzip.BadGzipFile, EOFError) as error:
        raise DataError(name, None, None, "a gzip-compressed file", f"{error}") from None
    if count == 0:
        raise DataError(
            name, None, None, "at least one row", "an empty file (no rows); remove it or fill it with data"
        )


def _open_text(path: Path) -> Any:
    """The file as UTF-8 text, decompressed when its name ends in ``.gz``."""
    if path.name.endswith(GZIP):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _object(value: Any) -> Any:
    """A parsed row must be a JSON object; anything else is an unparsable row (field "")."""
    if isinstance(value, dict):
        return value
    return RowError("", "a JSON object", f"a JSON {type(value).__name__}")


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, _object(json.loads(line))
            except json.JSONDecodeError as error:
                yield (
                    number,
                    RowError("", "a JSON object", f"invalid JSON ({error.msg} at column {error.colno})"),
                )


def _json_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """A JSON array of objects; a .json file that is really JSON lines (as ``to_json`` writes) too."""
    with _open_text(path) as handle:
        text = handle.read()
    if not text.strip():
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            yield from _jsonl_rows(path)
            return
        raise DataError(
            str(path), error.lineno, None, "valid JSON", f"{error.msg} at column {error.colno}", line=True
        ) from None
    if isinstance(data, dict):
        yield 1, data
        return
    if not isinstance(data, list):
        raise DataError(
            str(path), None, None, "a JSON array of objects or JSON lines", f"a JSON {type(data).__name__}"
        )
    for number, item in enumerate(data, start=1):
        yield number, _object(item)


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        start = 2  # line 1 is the header
        try:
            for row in reader:
                yield start, {key: value for key, value in row.items() if key is not None}
                start = reader.line_num + 1
        except csv.Error as error:
            raise DataError(str(path), reader.line_num, None, "valid CSV", str(error), line=True) from None


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
    except (pa.ArrowException, OSError) as error:
        raise DataError(str(path), None, None, "a parquet file", f"unreadable bytes ({error})") from None
    number = 0
    for batch in batches:
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _read_hub(name: str, split: str, subset: str | None) -> Iterator[tuple[RowContext, Any]]:
    """A hub dataset through ``datasets`` (needs network or a cache); rows numbered from 1.

    Anything ``datasets`` raises while finding the dataset, its subset or its split (no network, a
    typo, a gated repository, an unknown split) is a ``DataError`` naming what was asked for.
    """
    import datasets

    label = f"{name}[{split}]" if subset is None else f"{name}/{subset}[{split}]"
    try:
        dataset = datasets.load_dataset(name, subset, split=split)
    except Exception as error:  # noqa: BLE001 - datasets raises many types; each is the user's to fix
        asked = f"hub dataset {name!r}" + (f" (subset {subset!r})" if subset else "") + f", split {split!r}"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(
            label,
            None,
            None,
            f"a local file or folder, or a {asked} that can be loaded (check the name, the subset: "
            "data.<train|eval>.subset or --subset, the split, and network access or the HF cache)",
            f"{type(error).__name__}: {reason}",
        ) from None
    if len(dataset) == 0:
        raise DataError(label, None, None, "at least one row", "an empty split")
    for number, row in enumerate(dataset, start=1):
        yield RowContext(label, number), row
