"""What an eval run shows a person: the printed summary and ``report.html``.

The report (self-contained, via ``eval/report.py``) holds the metrics with their 95% intervals, one
section per breakdown (a table and bars with interval whiskers), the failed samples, whatever the task
adds (``Task.report_sections``, e.g. a confusion matrix), and the first samples with their answers.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alignkit.eval.plots import plot_bars
from alignkit.eval.report import Figure, Section, Table, write_report
from alignkit.eval.results import interval

SHOWN_SAMPLES = 20
"""Samples listed at the end of report.html (all of them are in samples.jsonl)."""
TEXT_LIMIT = 160


def _arrow(higher: bool) -> str:
    return "↑" if higher else "↓"


def _ci_text(ci: tuple[float, float] | None) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "–"


def _clip(text: Any) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def format_summary(task: Any, results: Mapping[str, Any], out: Path) -> str:
    """The figures as a person reads them in a terminal, and where the files are."""
    name = task.name
    entry = results["results"][name]
    counts = results["n-samples"][name]
    failed = results["alignkit"]["failures"][name]["count"]
    lines = [
        f"{name} v{task.version}, model {results.get('model_name')}: {counts['effective']} samples scored"
        + (f", {failed} failed" if failed else "")
    ]
    width = max((len(m.name) for m in task.metrics), default=0)
    for metric in task.metrics:
        value, ci = interval(entry, metric.name)
        shown = "n/a" if value is None else f"{value:.4f}"
        lines.append(
            f"  {metric.name:<{width}}  {shown:>8}  95% CI {_ci_text(ci):<18} {_arrow(metric.higher_is_better)}"
        )
    report = f"; report: {out / 'report.html'}" if (out / "report.html").exists() else ""
    lines.append(f"results: {out / 'results.json'}; samples: {out / 'samples.jsonl'}{report}")
    return "\n".join(lines)


def metrics_table(task: Any, entry: Mapping[str, Any], counts: Mapping[str, int], title: str) -> Table:
    rows = []
    for metric in task.metrics:
        value, ci = interval(entry, metric.name)
        rows.append(
            [
                metric.name,
                value,
                _ci_text(ci),
                counts.get(metric.name, 0),
                _arrow(metric.higher_is_better),
                metric.doc,
            ]
        )
    return Table(
        title,
        ["metric", "value", "95% CI", "n", "better", "what it measures"],
        rows,
        note="Intervals: percentile bootstrap for bootstrap metrics, else value ± 1.96 standard errors.",
    )


def _breakdown_sections(task: Any, results: Mapping[str, Any], plots: Path) -> list[Section]:
    name = task.name
    subtasks = results["group_subtasks"].get(name, [])
    sections = []
    for key in task.breakdowns:
        subs = [s for s in subtasks if s.startswith(f"{name}/{key}=")]
        if not subs:
            continue
        values = [s.split("=", 1)[1] for s in subs]
        columns = [f"{m.name} {_arrow(m.higher_is_better)}" for m in task.metrics]
        rows = [
            [
                value,
                results["results"][sub]["sample_len"],
                *(interval(results["results"][sub], m.name)[0] for m in task.metrics),
            ]
            for value, sub in zip(values, subs, strict=True)
        ]
        table = Table(f"by {key}", [key, "samples", *columns], rows)
        panels = {}
        for metric in task.metrics:
            bars = {}
            for value, sub in zip(values, subs, strict=True):
                v, ci = interval(results["results"][sub], metric.name)
                if v is not None:
                    bars[value] = (v, ci)
            if bars:
                panels[f"{metric.name} {_arrow(metric.higher_is_better)}"] = bars
        figures = []
        if panels:
            path = plot_bars(plots / f"by_{key}.png", panels, title=f"{name} by {key} (whiskers: 95% CI)")
            figures.append(
                Figure(f"{name} by {key}", path, "Bars: the metric per value; whiskers: 95% interval.")
            )
        sections.append(Section(f"By {key}", tables=[table], figures=figures))
    return sections


def _samples_table(records: Sequence[Mapping[str, Any]]) -> Table:
    rows = []
    for r in records[:SHOWN_SAMPLES]:
        prompt = r["input"][-1]["content"] if r["input"] else ""
        outputs = "; ".join(f"{k}: {v}" for k, v in r["outputs"].items())
        scores = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in r["scores"].items()
            if v is not None
        )
        rows.append(
            [r["id"], _clip(prompt), _clip(outputs), _clip(scores or (r["error"] or {}).get("message", ""))]
        )
    return Table(
        f"first {len(rows)} of {len(records)} samples", ["id", "prompt", "outputs", "scores / error"], rows
    )


def write_run_report(
    out: Path, task: Any, results: Mapping[str, Any], records: Sequence[Mapping[str, Any]]
) -> Path:
    """``out/report.html`` for one run (figures drawn in a temp folder and embedded)."""
    name = task.name
    entry = results["results"][name]
    counts = results["alignkit"]["metric_counts"][name]
    failures = results["alignkit"]["failures"][name]
    plots = Path(tempfile.mkdtemp(prefix=".plots-", dir=out))
    try:
        bars = {f"{m.name} {_arrow(m.higher_is_better)}": interval(entry, m.name) for m in task.metrics}
        bars = {label: bar for label, bar in bars.items() if bar[0] is not None}
        figures = []
        if bars:
            path = plot_bars(plots / "overall.png", {"all samples": bars}, title=f"{name} (whiskers: 95% CI)")
            figures.append(Figure("All metrics", path))
        sections = [
            Section(
                "Results", task.doc(), tables=[metrics_table(task, entry, counts, "metrics")], figures=figures
            )
        ]
        sections += _breakdown_sections(task, results, plots)
        if failures["count"]:
            rows = [[f["id"], f["stage"], f"{f['type']}: {_clip(f['message'])}"] for f in failures["samples"]]
            text = (
                f"{failures['count']} samples failed and are left out of every metric. Rerun with "
                "run.resume=true to retry them; the answers already received come from the cache."
            )
            sections.append(
                Section("Failed samples", text, tables=[Table("failures", ["id", "stage", "error"], rows)])
            )
        sections += task.report_sections(records, plots)
        sections.append(
            Section("Samples", "Every sample is in samples.jsonl.", tables=[_samples_table(records)])
        )
        n = results["n-samples"][name]
        return write_report(
            out / "report.html",
            f"{name}: {results.get('model_name')}",
            sections,
            subtitle=f"task version {task.version}; {n['effective']} samples scored of {n['original']}",
            metadata={
                "model": str(results.get("model_name")),
                "config": str(out / "config.yaml"),
                "generations": str(results["config"].get("cache_dir")),
            },
        )
    finally:
        shutil.rmtree(plots, ignore_errors=True)
