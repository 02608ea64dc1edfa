"""``alignkit eval compare RUN_A RUN_B ...``: runs of one task side by side, each against the first.

Each run's value and 95% interval come from its results.json. The comparison with the first run (the
baseline) is *paired*: samples are matched by id (samples.jsonl), only samples scored in both runs count,
and for each metric the difference ``metric(run) - metric(baseline)`` gets a paired bootstrap interval
and a paired permutation p-value (``eval/stats.paired_test``). Pairing removes the spread due to which
prompts are hard, so it detects smaller differences than comparing two unpaired intervals. The test
runs on the metric's own aggregate (the task's ``Metric.aggregate``, from the registry), so corpus-level
metrics are compared correctly too. No correction for testing many metrics is applied: with 10 metrics,
one ``p < 0.05`` is expected by chance.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alignkit.config import ConfigError
from alignkit.eval.results import interval, read_run, task_of
from alignkit.eval.stats import mean, paired_test
from alignkit.eval.task import Metric

SIGNIFICANCE = 0.05
"""p-values below this are marked significant (``*``)."""


def _metrics(task_name: str, higher: Mapping[str, bool]) -> list[Metric]:
    """The task's metrics with their aggregates (a task no longer registered: means, from results.json)."""
    from alignkit.eval.tasks import TASKS, get_task

    if task_name in TASKS:
        return list(get_task(task_name).metrics)
    return [Metric(name, bool(h), "", mean, "stderr") for name, h in higher.items()]


def _labels(n: int) -> list[str]:
    return [chr(ord("A") + i) if i < 26 else f"R{i}" for i in range(n)]


def compare_runs(run_dirs: Sequence[str | Path], *, iters: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The comparison (see the module docstring) as a JSON-ready dict."""
    if len(run_dirs) < 2:
        raise ConfigError(f"eval compare needs at least two run folders, got {len(run_dirs)}")
    runs = []
    for label, folder in zip(_labels(len(run_dirs)), run_dirs, strict=True):
        results, samples = read_run(folder)
        runs.append({"label": label, "path": str(folder), "results": results, "samples": samples})
    tasks = {run["path"]: task_of(run["results"], run["path"]) for run in runs}
    if len(set(tasks.values())) != 1:
        listing = ", ".join(f"{path}: {task}" for path, task in tasks.items())
        raise ConfigError(
            f"eval compare compares runs of one task; these evaluate different ones ({listing})"
        )
    task = tasks[runs[0]["path"]]
    metrics = _metrics(task, runs[0]["results"]["higher_is_better"][task])
    scores = [
        {
            s["id"]: s["scores"]
            for s in run["samples"]
            if s.get("error") is None and s.get("scores") is not None
        }
        for run in runs
    ]
    base = runs[0]
    table: dict[str, Any] = {}
    for metric in metrics:
        values = []
        for run in runs:
            value, ci = interval(run["results"]["results"][task], metric.name)
            values.append({"run": run["label"], "value": value, "ci": list(ci) if ci else None})
        against = []
        for run, run_scores in zip(runs[1:], scores[1:], strict=True):
            ids = [i for i in scores[0] if scores[0][i].get(metric.name) is not None]
            ids = [i for i in ids if run_scores.get(i, {}).get(metric.name) is not None]
            a = [scores[0][i][metric.name] for i in ids]
            b = [run_scores[i][metric.name] for i in ids]
            test = paired_test(a, b, metric.aggregate, iters=iters, seed=seed) if ids else None
            p = test.p_value if test else None
            diff = test.difference if test else None
            against.append(
                {
                    "run": run["label"],
                    "difference": diff,
                    "ci": [test.ci_low, test.ci_high] if test and test.n > 1 else None,
                    "p_value": p,
                    "exact": test.exact if test else None,
                    "n_paired": len(ids),
                    "significant": p is not None and p < SIGNIFICANCE,
                    "better": None if not diff else (diff > 0) == metric.higher_is_better,
                }
            )
        table[metric.name] = {
            "higher_is_better": metric.higher_is_better,
            "values": values,
            "vs_baseline": against,
        }
    versions = {run["label"]: run["results"]["versions"].get(task) for run in runs}
    return {
        "task": task,
        "baseline": base["label"],
        "runs": [
            {
                "label": r["label"],
                "path": r["path"],
                "model": r["results"].get("model_name"),
                "version": versions[r["label"]],
            }
            for r in runs
        ],
        "versions_differ": len(set(versions.values())) > 1,
        "significance_level": SIGNIFICANCE,
        "bootstrap_iters": iters,
        "seed": seed,
        "metrics": table,
    }


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def format_comparison(comparison: Mapping[str, Any]) -> str:
    """The comparison as text: the runs, then one line per metric and run."""
    lines = [
        f"eval compare: task {comparison['task']}, each run against {comparison['baseline']} (paired by sample id)"
    ]
    lines += [
        f"  {r['label']}: {r['path']} (model {r['model']}, v{r['version']})" for r in comparison["runs"]
    ]
    if comparison["versions_differ"]:
        lines.append("  warning: the runs used different versions of the task; differences may be the task's")
    width = max(len(name) for name in comparison["metrics"]) + 2
    for name, row in comparison["metrics"].items():
        arrow = "↑" if row["higher_is_better"] else "↓"
        values = "  ".join(f"{v['run']} {_num(v['value'])}" for v in row["values"])
        lines.append(f"{name + ' ' + arrow:<{width}}  {values}")
        for d in row["vs_baseline"]:
            ci = f"[{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]" if d["ci"] else "n/a"
            p = "n/a" if d["p_value"] is None else f"{d['p_value']:.4f}"
            mark = " *" if d["significant"] else ""
            lines.append(
                f"{'':<{width}}    {d['run']}-{comparison['baseline']} {_num(d['difference'], True)} 95% CI {ci} "
                f"p={p}{mark} (n={d['n_paired']})"
            )
    lines.append(
        f"* p < {comparison['significance_level']} (paired permutation test; no multiple-testing correction)"
    )
    return "\n".join(lines)


def write_comparison(out: Path, comparison: Mapping[str, Any]) -> None:
    """compare.json and report.html in ``out`` (a folder ``runs.prepare_run_dir`` made)."""
    from alignkit.eval.plots import plot_bars
    from alignkit.eval.report import Figure, Section, Table, write_report
    from alignkit.runs import write_json

    write_json(out / "compare.json", comparison)
    runs = Table(
        "runs",
        ["run", "folder", "model", "task version"],
        [[r["label"], r["path"], r["model"], r["version"]] for r in comparison["runs"]],
    )
    labels = [r["label"] for r in comparison["runs"]]
    others = labels[1:]
    columns = ["metric", *labels, *(f"{o}-{labels[0]} (95% CI, p)" for o in others)]
    rows, panels = [], {}
    for name, row in comparison["metrics"].items():
        arrow = "↑" if row["higher_is_better"] else "↓"
        cells = []
        for d in row["vs_baseline"]:
            ci = f" [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" if d["ci"] else ""
            p = "" if d["p_value"] is None else f" p={d['p_value']:.3f}{' *' if d['significant'] else ''}"
            cells.append(f"{_num(d['difference'], True)}{ci}{p}")
        rows.append([f"{name} {arrow}", *(v["value"] for v in row["values"]), *cells])
        bars = {
            v["run"]: (v["value"], tuple(v["ci"]) if v["ci"] else None)
            for v in row["values"]
            if v["value"] is not None
        }
        if bars:
            panels[f"{name} {arrow}"] = bars
    table = Table(
        "metrics",
        columns,
        rows,
        note=f"* p < {comparison['significance_level']}: paired permutation test on the samples scored in both runs.",
    )
    plots = Path(tempfile.mkdtemp(prefix=".plots-", dir=out))
    try:
        figures = []
        if panels:
            path = plot_bars(
                plots / "compare.png",
                panels,
                title=f"{comparison['task']}: runs side by side (whiskers: 95% CI)",
            )
            figures.append(Figure("metrics per run", path))
        sections = [Section("Runs", tables=[runs]), Section("Metrics", tables=[table], figures=figures)]
        write_report(out / "report.html", f"eval compare: {comparison['task']}", sections)
    finally:
        shutil.rmtree(plots, ignore_errors=True)


def compare_command(
    run_dirs: Sequence[str],
    *,
    out: str | None = None,
    overwrite: bool = False,
    iters: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare, print, and with ``out`` write compare.json + report.html there (never over a run unless
    ``overwrite``)."""
    from alignkit.runs import RunFolderError, prepare_run_dir, release_run_lock
    from alignkit.sections import check_output_dir

    if iters < 1:
        raise ConfigError(f"--iters={iters} is not allowed: expected a positive integer")
    if out:
        check_output_dir(out, "--out")
        if Path(out).is_dir() and any(Path(out).iterdir()) and not overwrite:
            raise RunFolderError(
                f"--out {out!r} already holds files; pass --overwrite to replace them or choose another folder"
            )
    comparison = compare_runs(run_dirs, iters=iters, seed=seed)
    print(format_comparison(comparison))
    if out:
        folder = prepare_run_dir(out, overwrite=overwrite, resume=False)
        try:
            write_comparison(folder, comparison)
        finally:
            release_run_lock(folder)
        print(f"comparison: {folder / 'compare.json'}; report: {folder / 'report.html'}")
    return comparison
