"""Figures for eval reports: bars with 95% interval whiskers, and confusion matrices.

Any task can use them in its ``report_sections``; the runner draws the per-breakdown bars itself.
matplotlib is imported inside the drawing functions (Agg backend), so importing this module is free and
works headless; ``cross_tab`` and ``confusion_matrix`` are pure and tested by hand.
"""

from __future__ import annotations

import textwrap
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

Interval = tuple[float, float] | None
"""A 95% interval around a bar, or None for no whisker."""


def _labels(values: Sequence[Hashable], labels: Sequence[Hashable] | None, what: str) -> list[Hashable]:
    seen = set(values)
    if labels is None:
        return sorted(seen, key=str)
    missing = seen - set(labels)
    if missing:  # it would silently vanish from the matrix
        raise ValueError(
            f"{what} {sorted(map(str, missing))} are not among the matrix's labels {list(labels)}"
        )
    return list(labels)


def cross_tab(
    rows: Sequence[Hashable],
    columns: Sequence[Hashable],
    row_labels: Sequence[Hashable] | None = None,
    column_labels: Sequence[Hashable] | None = None,
) -> tuple[list[Hashable], list[Hashable], list[list[int]]]:
    """``(row_labels, column_labels, counts)``: ``counts[i][j]`` items whose row value is ``row_labels[i]``
    and column value ``column_labels[j]``. Labels default to the values seen, sorted by their text; a value
    outside given labels is an error."""
    if len(rows) != len(columns):
        raise ValueError(f"{len(rows)} row values but {len(columns)} column values")
    row_labels = _labels(rows, row_labels, "row values")
    column_labels = _labels(columns, column_labels, "column values")
    row_index = {label: i for i, label in enumerate(row_labels)}
    column_index = {label: j for j, label in enumerate(column_labels)}
    counts = [[0] * len(column_labels) for _ in row_labels]
    for r, c in zip(rows, columns, strict=True):
        counts[row_index[r]][column_index[c]] += 1
    return row_labels, column_labels, counts


def confusion_matrix(
    truth: Sequence[Hashable], predicted: Sequence[Hashable], labels: Sequence[Hashable] | None = None
) -> tuple[list[Hashable], list[list[int]]]:
    """``(labels, counts)`` with ``counts[i][j]`` = items whose truth is ``labels[i]`` and prediction
    ``labels[j]`` (one label set for both; default: every value seen, sorted by its text)."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predictions")
    labels = _labels([*truth, *predicted], labels, "labels")
    _, _, counts = cross_tab(truth, predicted, labels, labels)
    return labels, counts


def plot_confusion_matrix(
    path: Path,
    counts: Sequence[Sequence[int]],
    row_labels: Sequence[Hashable],
    column_labels: Sequence[Hashable] | None = None,
    *,
    title: str,
    xlabel: str = "predicted",
    ylabel: str = "true",
) -> Path:
    """A count matrix (``confusion_matrix``, ``cross_tab``) as a heat map with the counts written in; rows
    and columns may differ (e.g. prompt family against kind of answer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column_labels = list(row_labels if column_labels is None else column_labels)
    fig, ax = plt.subplots(
        figsize=(max(4.0, 0.9 * len(column_labels) + 2), max(3.0, 0.5 * len(row_labels) + 1.5)),
        dpi=100,
        layout="constrained",
    )
    image = ax.imshow([list(row) for row in counts], cmap="Blues")
    peak = max((max(row) for row in counts if row), default=0)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            color = "white" if peak and value > peak / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=color, fontsize=9)
    ax.set_xticks(range(len(column_labels)), [str(c) for c in column_labels], rotation=30, ha="right")
    ax.set_yticks(range(len(row_labels)), [str(r) for r in row_labels])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("\n".join(textwrap.wrap(title, 40)))
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)


def plot_bars(
    path: Path,
    panels: Mapping[str, Mapping[str, tuple[float, Interval]]],
    *,
    title: str,
    columns: int | None = None,
) -> Path:
    """One small bar chart per panel (a metric), one bar per group (a category or a run), each with its
    95% interval as a whisker. ``panels``: panel title -> group -> (value, interval or None). ``columns``
    of panels: by default 3, fewer when there are many groups (so the figure stays a page wide)."""
    if not panels:
        raise ValueError(f"plot_bars {title!r}: nothing to draw")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = max(len(bars) for bars in panels.values())
    if columns is None:
        columns = 3 if groups <= 5 else 2 if groups <= 9 else 1
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    width = min(12.0, max(6.0, columns * max(2.2, 0.45 * groups + 1)))
    fig, axes = plt.subplots(
        rows, columns, figsize=(width, 2.9 * rows + 0.6), dpi=100, squeeze=False, layout="constrained"
    )
    for ax, (panel, bars) in zip(axes.flat, panels.items(), strict=False):
        names = list(bars)
        values = [bars[n][0] for n in names]
        low = [v - bars[n][1][0] if bars[n][1] else 0.0 for n, v in zip(names, values, strict=True)]
        high = [bars[n][1][1] - v if bars[n][1] else 0.0 for n, v in zip(names, values, strict=True)]
        ax.bar(range(len(names)), values, yerr=[low, high], capsize=3, color="#4c72b0", alpha=0.85)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_title("\n".join(textwrap.wrap(panel, 30)), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("\n".join(textwrap.wrap(title, int(width * 10))), fontsize=10)
    return _save(fig, path)


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")  # type: ignore[attr-defined]
    finally:
        plt.close(fig)  # type: ignore[arg-type]
    return path
