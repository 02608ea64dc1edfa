"""A self-contained HTML report: headings, prose, tables and figures in one portable file.

Evaluation commands and the demo end with numbers a person has to read: a table of metrics per policy, a
curve of reward, cost and the Lagrange multiplier over training. :func:`write_report` puts them into a
single ``.html`` file with the PNGs embedded as base64, so the report can be mailed, attached to an issue or
opened from an archived run folder without the files next to it. Standard library only (no template
engine): every piece of text goes through :func:`html.escape`, so a prompt or a metric name containing
``<script>`` shows up as text and never runs.

:func:`line_plot` draws the curves with the same look as :func:`alignkit.runs.plot_metrics`.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MISSING = "\u2013"
"""Shown for a nan (or None) cell: an en dash reads as "no value" where ``nan`` reads as a bug."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; line-height: 1.5; color: #222;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; }
.subtitle { color: #555; margin-top: 0; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.1rem 1rem; font-size: 0.85rem;
          color: #444; background: #f6f6f6; padding: 0.6rem 1rem; border-radius: 4px; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; font-family: ui-monospace, monospace; word-break: break-all; }
nav.toc { font-size: 0.95rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #bbb; padding: 0.25rem 0.6rem; }
th { background: #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.note { font-size: 0.85rem; color: #555; margin-top: 0.2rem; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.85rem; color: #555; }
"""


ARROWS = {"↑": "higher", "↓": "lower"}
"""A column title ending in one of these says which way is better; :func:`highlight_by_arrows` reads it."""


@dataclass
class Table:
    """A titled table. ``highlight`` maps a column to ``"higher"`` or ``"lower"``: the best cell(s) of that
    column are bolded so the winner is visible without reading every number. Rows listed in ``unranked``
    (a reference point such as an untrained model) are shown but never compete for bold."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""
    highlight: dict[str, str] = field(default_factory=dict)
    unranked: set[int] = field(default_factory=set)


def highlight_by_arrows(columns: Sequence[str]) -> dict[str, str]:
    """``Table.highlight`` for every column whose title ends in ↑ (higher is better) or ↓ (lower is)."""
    return {c: ARROWS[c.rstrip()[-1]] for c in columns if c.rstrip()[-1:] in ARROWS}


@dataclass
class Figure:
    """A PNG on disk; embedded in the report, so the file may be deleted afterwards."""

    title: str
    path: Path
    caption: str = ""


@dataclass
class Section:
    """One heading of the report; ``text`` is plain text, paragraphs separated by blank lines."""

    heading: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _format_cell(value: Any) -> str:
    """Floats to 3 decimals so columns line up and noise digits do not suggest false precision."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _best_rows(table: Table, column: str, direction: str) -> set[int]:
    """Row indices holding the best number of ``column``; ties all win; missing cells, non-numbers and
    ``unranked`` rows never do."""
    if direction not in ("higher", "lower"):
        raise ValueError(
            f"table {table.title!r}: highlight for {column!r} must be 'higher' or 'lower', got {direction!r}"
        )
    if column not in table.columns:
        raise ValueError(
            f"table {table.title!r}: highlight names unknown column {column!r} (columns: {table.columns})"
        )
    j = table.columns.index(column)
    values = {
        i: row[j]
        for i, row in enumerate(table.rows)
        if i not in table.unranked
        and isinstance(row[j], (int, float))
        and not isinstance(row[j], bool)
        and not _is_missing(row[j])
    }
    if not values:
        return set()
    best = max(values.values()) if direction == "higher" else min(values.values())
    return {i for i, v in values.items() if v == best}


def _render_table(table: Table) -> str:
    for i, row in enumerate(table.rows):
        if len(row) != len(table.columns):
            raise ValueError(
                f"table {table.title!r}: row {i} has {len(row)} cells for {len(table.columns)} columns"
            )
    bold = {table.columns.index(c): _best_rows(table, c, d) for c, d in table.highlight.items()}
    out = [f"<h3>{_esc(table.title)}</h3>", "<table>", "<thead><tr>"]
    out += [f"<th>{_esc(c)}</th>" for c in table.columns]
    out.append("</tr></thead>\n<tbody>")
    for i, row in enumerate(table.rows):
        cells = []
        for j, value in enumerate(row):
            text = _esc(_format_cell(value))
            if i in bold.get(j, ()):
                text = f"<strong>{text}</strong>"
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if table.note:
        out.append(f'<p class="note">{_esc(table.note)}</p>')
    return "\n".join(out)


def _render_figure(figure: Figure) -> str:
    path = Path(figure.path)
    if not path.is_file():
        raise FileNotFoundError(f"figure {figure.title!r}: PNG file {str(path)!r} does not exist")
    data = path.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError(f"figure {figure.title!r}: {str(path)!r} is not a PNG file")
    b64 = base64.b64encode(data).decode("ascii")
    out = [
        "<figure>",
        f'<img alt="{_esc(figure.title)}" src="data:image/png;base64,{b64}">',
        f"<figcaption><strong>{_esc(figure.title)}</strong>",
    ]
    if figure.caption:
        out.append(f" {_esc(figure.caption)}")
    out.append("</figcaption>\n</figure>")
    return "\n".join(out)


def _paragraphs(text: str) -> list[str]:
    return [f"<p>{_esc(p.strip())}</p>" for p in re.split(r"\n\s*\n", text) if p.strip()]


def render_report(
    title: str, sections: Sequence[Section], *, subtitle: str = "", metadata: Mapping[str, str] | None = None
) -> str:
    """The report as one HTML string; :func:`write_report` is the usual entry point."""
    anchors = [f"section-{i}" for i in range(1, len(sections) + 1)]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    if subtitle:
        out.append(f'<p class="subtitle">{_esc(subtitle)}</p>')
    if metadata:
        out.append('<dl class="meta">')
        out += [f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in metadata.items()]
        out.append("</dl>")
    if sections:
        out.append('<nav class="toc"><h2>Contents</h2><ol>')
        out += [
            f'<li><a href="#{a}">{_esc(s.heading)}</a></li>' for a, s in zip(anchors, sections, strict=True)
        ]
        out.append("</ol></nav>")
    for anchor, section in zip(anchors, sections, strict=True):
        out.append(f'<section id="{anchor}">')
        out.append(f"<h2>{_esc(section.heading)}</h2>")
        out += _paragraphs(section.text)
        out += [_render_table(t) for t in section.tables]
        out += [_render_figure(f) for f in section.figures]
        out.append("</section>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def write_report(
    path: Path,
    title: str,
    sections: Sequence[Section],
    *,
    subtitle: str = "",
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write the report to ``path`` and return it.

    The whole page is rendered before anything touches disk, and then written to a temp file in the same
    folder and renamed over ``path``: a missing figure or a crash never leaves half a report, nor
    clobbers the previous one.
    """
    path = Path(path)
    page = render_report(title, sections, subtitle=subtitle, metadata=metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        # mkstemp creates the file private (0600); a report is for sharing, so give it the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def line_plot(
    path: Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    hline: float | None = None,
    hline_label: str = "",
) -> Path:
    """Draw named ``(xs, ys)`` curves into a PNG and return its path.

    For training curves such as reward, cost and the Lagrange multiplier; ``hline`` marks a constant such as
    the cost limit, so "is the constraint met" is read off the picture. Styling follows
    :func:`alignkit.runs.plot_metrics` so report figures and run-folder plots look alike. matplotlib is
    imported here, with the Agg backend, so importing this module stays cheap and works headless.
    """
    import matplotlib.pyplot as plt

    fig = draw_line_plot(
        series, title=title, xlabel=xlabel, ylabel=ylabel, hline=hline, hline_label=hline_label
    )
    try:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


TITLE_WIDTH = 58
"""Characters per title line: a longer title is wrapped, as the figure is only 6 inches wide."""


def draw_line_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    hline: float | None = None,
    hline_label: str = "",
) -> Any:
    """The matplotlib figure :func:`line_plot` saves (the caller closes it).

    Everything stays inside the figure, so the PNG fits the report's column as drawn: a long title is
    wrapped, and the legend sits below the axes (inside them it would cover the curves), with
    constrained layout making room for both.
    """
    if not series:
        raise ValueError(f"line_plot {title!r}: no series to draw")
    for name, (xs, ys) in series.items():
        if len(xs) != len(ys):
            raise ValueError(
                f"line_plot {title!r}: series {name!r} has {len(xs)} x values and {len(ys)} y values"
            )
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100, layout="constrained")
    for name, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), label=name, marker="o" if len(xs) < 20 else None, markersize=3)
    if hline is not None:
        ax.axhline(hline, color="black", linestyle="--", linewidth=1, label=hline_label or None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("\n".join(textwrap.wrap(title, TITLE_WIDTH)))
    ax.grid(alpha=0.3)
    entries = len(ax.get_legend_handles_labels()[1])
    fig.legend(loc="outside lower center", ncols=min(2, entries), fontsize="small", frameon=False)
    return fig
