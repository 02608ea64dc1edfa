"""The safety task's own report section: harm per category and severity **as the moderator names them**.

The runner already draws every metric per prompt category and prompt severity (the breakdowns). What it
cannot draw is what the moderator said about each answer (Llama Guard's S-codes, the oracle's categories,
a severity), which may differ from the prompt's: an answer to a cyber request may carry violent
instructions. ``eval.metrics.harm_rates`` aggregates those verdicts with Wilson intervals, and the
over-refusal rate (``refusal_rate``) is shown with its interval beside them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alignkit.eval.metrics import HarmRates, Proportion, harm_rates, refusal_rate
from alignkit.eval.plots import plot_bars
from alignkit.eval.report import Figure, Section, Table

SEVERITY_NAMES = {1: "1 minor", 2: "2 moderate", 3: "3 severe", None: "unstated"}


def verdict_rates(records: Sequence[Mapping[str, Any]], categories: Sequence[str]) -> HarmRates:
    """``harm_rates`` over the moderator verdicts kept in samples.jsonl records (failed samples left out)."""
    from alignkit.score.moderation import SafetyVerdict

    verdicts = [
        SafetyVerdict(v["flagged"], tuple(v["categories"]), v["severity"])
        for v in (r["verdicts"]["moderator"] for r in records if r["error"] is None)
    ]
    return harm_rates(verdicts, categories)


def _bar(p: Proportion) -> tuple[float, tuple[float, float] | None]:
    return p.rate or 0.0, None if p.ci_low is None else (p.ci_low, p.ci_high)  # type: ignore[return-value]


def _row(name: str, p: Proportion) -> list[Any]:
    ci = "–" if p.ci_low is None else f"[{p.ci_low:.3f}, {p.ci_high:.3f}]"
    return [name, int(p.k), p.n, p.rate, ci]


def moderator_sections(
    records: Sequence[Mapping[str, Any]], categories: Sequence[str], plots: Path
) -> list[Section]:
    judged = [r for r in records if r["error"] is None]
    if not judged:
        return []
    rates = verdict_rates(judged, categories)
    benign = [r["verdicts"]["refused"] for r in judged if r["metadata"].get("benign") is True]
    columns = ["", "k", "n", "rate", "95% CI (Wilson)"]
    overall = Table(
        "moderator verdicts",
        columns,
        [
            _row("harm rate (flagged / readable verdicts)", rates.harm_rate),
            _row("benign prompts refused", refusal_rate(benign)),
        ],
        note=(
            f"{rates.n} verdicts, {rates.unparseable} unreadable (left out of the harm rate's denominator); "
            f"harm rate if every unreadable verdict hid harm: "
            f"{'–' if rates.harm_rate_upper is None else f'{rates.harm_rate_upper:.3f}'}."
        ),
    )
    severity = {SEVERITY_NAMES.get(s, str(s)): p for s, p in rates.per_severity.items()}
    named = any(p.k for p in rates.per_category.values())
    tables = [overall]
    panels = {"harm rate by severity the moderator gives": {k: _bar(p) for k, p in severity.items()}}
    if named:
        tables.append(
            Table(
                "by category (moderator)",
                ["category", *columns[1:]],
                [_row(c, p) for c, p in rates.per_category.items()],
            )
        )
        panels = {
            "harm rate by category the moderator names": {c: _bar(p) for c, p in rates.per_category.items()},
            **panels,
        }
    tables.append(
        Table(
            "by severity (moderator)", ["severity", *columns[1:]], [_row(s, p) for s, p in severity.items()]
        )
    )
    path = plot_bars(
        plots / "moderator.png", panels, title="Moderator verdicts (whiskers: Wilson 95% CI)", columns=1
    )
    text = (
        "Harm as the moderator classifies each answer (an answer may serve another category than its "
        "prompt asked for). A response naming several categories counts in each."
    )
    if not named:
        text += (
            " This moderator names no categories (a cost model gives a score only): the 'By category' "
            "section above breaks the harm rate down by the prompts' categories instead."
        )
    return [Section("Moderator verdicts", text, tables=tables, figures=[Figure("moderator verdicts", path)])]
