"""``results.json`` in lm-evaluation-harness's shape, ``samples.jsonl``, and reading both back.

The shape is lm-eval's ``EvalResults`` (``lm_eval/result_schema.py``, ``evaluator_utils.py``), so tools
that read lm-eval results read ours::

    {"results": {"toyworld-oracle": {"alias": "toyworld-oracle", "sample_len": 120,
                                     "benign_accuracy,none": 0.8, "benign_accuracy_stderr,none": 0.04, ...},
                 "toyworld-oracle/family=add": {...}},
     "group_subtasks": {"toyworld-oracle": ["toyworld-oracle/family=add", ...]},
     "configs": {"toyworld-oracle": {"task": ..., "version": ..., ...the resolved config}},
     "versions": {"toyworld-oracle": 1, ...}, "n-shot": {...: 0},
     "higher_is_better": {"toyworld-oracle": {"benign_accuracy": true, ...}},
     "n-samples": {"toyworld-oracle": {"original": 120, "effective": 118}},
     "config": {"model": ..., "model_args": {...}, "gen_kwargs": {...}, "bootstrap_iters": ..., ...},
     "date": ..., "model_name": ..., "model_source": ..., "total_evaluation_time_seconds": "12.3",
     "alignkit": {"failures": {...}, "metric_counts": {...}, "ci_level": 0.95}}

Keys are ``metric,filter`` with the filter ``none`` (alignkit applies no answer filters). Every metric has
``metric_stderr,none`` (the standard error of a mean as lm-eval computes it, or the bootstrap standard
error of any other aggregate; ``"N/A"`` below two items, as lm-eval writes) and ``metric_ci,none``:
``[low, high]``, the percentile bootstrap 95% interval (``bootstrap_iters`` resamples, seeded; ``null``
below two items). A metric with no item (a rate over no benign prompt) is ``null``. ``n-samples.effective`` counts the samples scored (after ``limit``, failures
left out); the failures themselves are in ``alignkit.failures``. Per-breakdown entries
(``task/key=value``) are subtasks of the task, listed in ``group_subtasks``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alignkit.eval.stats import CI_LEVEL, bootstrap, mean, mean_stderr
from alignkit.eval.task import Metric

FILTER = "none"
RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def metric_entry(metric: Metric, items: Sequence[Any], *, iters: int, seed: int) -> dict[str, Any]:
    """``{"<m>,none": value, "<m>_stderr,none": se, "<m>_ci,none": [lo, hi]}`` for one metric's items."""
    key, stderr_key, ci_key = (f"{metric.name}{part},{FILTER}" for part in ("", "_stderr", "_ci"))
    if not items:
        return {key: None, stderr_key: "N/A", ci_key: None}
    boot = bootstrap(items, metric.aggregate, iters=iters, seed=seed)
    stderr = _number(mean_stderr(items) if metric.aggregate is mean else boot.stderr)
    return {
        key: _number(metric.aggregate(items)),
        stderr_key: "N/A" if stderr is None else stderr,
        ci_key: None if math.isnan(boot.ci_low) else [float(boot.ci_low), float(boot.ci_high)],
    }


def aggregate(
    metrics: Sequence[Metric], scores: Sequence[Mapping[str, Any]], *, iters: int, seed: int
) -> tuple[dict[str, Any], dict[str, int]]:
    """Every metric over the samples' score dicts (None or absent items left out), and the item counts."""
    entry: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for metric in metrics:
        items = [s[metric.name] for s in scores if s.get(metric.name) is not None]
        entry.update(metric_entry(metric, items, iters=iters, seed=seed))
        counts[metric.name] = len(items)
    return entry, counts


def breakdown_groups(
    breakdowns: Sequence[str], records: Sequence[Mapping[str, Any]]
) -> dict[str, list[Mapping[str, Any]]]:
    """``"key=value" -> records`` for every value each breakdown key takes in the records' metadata
    (records without the key, or with None, are in no group of it), sorted by key then value."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for key in breakdowns:
        values = sorted({str(r["metadata"][key]) for r in records if r["metadata"].get(key) is not None})
        for value in values:
            groups[f"{key}={value}"] = [r for r in records if str(r["metadata"].get(key)) == value]
    return groups


def build_results(
    task: Any,
    records: Sequence[Mapping[str, Any]],
    *,
    original: int,
    config: Mapping[str, Any],
    run_config: Mapping[str, Any],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """The results.json dict (see the module docstring) from the samples.jsonl records of one run.

    ``original`` is the number of samples in the dataset (before ``limit``); ``config`` the task's resolved
    config; ``run_config`` lm-eval's top-level ``config`` block; ``extra`` the top-level identity keys
    (``date``, ``model_name``, ``model_source``, ``total_evaluation_time_seconds``).
    """
    name = task.name
    iters, seed = task.config.bootstrap_iters, task.config.seed
    scored = [r for r in records if r["error"] is None]
    entry, counts = aggregate(task.metrics, [r["scores"] for r in scored], iters=iters, seed=seed)
    higher = {m.name: m.higher_is_better for m in task.metrics}
    results = {name: {"alias": name, "name": name, "sample_len": len(scored), **entry}}
    subtasks, metric_counts = [], {name: counts}
    n_samples = {name: {"original": original, "effective": len(scored)}}
    for group, members in breakdown_groups(task.breakdowns, scored).items():
        sub = f"{name}/{group}"
        sub_entry, sub_counts = aggregate(
            task.metrics, [r["scores"] for r in members], iters=iters, seed=seed
        )
        results[sub] = {"alias": f" - {group}", "name": sub, "sample_len": len(members), **sub_entry}
        metric_counts[sub] = sub_counts
        n_samples[sub] = {"original": len(members), "effective": len(members)}
        subtasks.append(sub)
    names = [name, *subtasks]
    failed = [r for r in records if r["error"] is not None]
    by_stage: dict[str, int] = {}
    for r in failed:
        by_stage[r["error"]["stage"]] = by_stage.get(r["error"]["stage"], 0) + 1
    return {
        "results": results,
        "group_subtasks": {name: subtasks},
        "configs": {name: {"task": name, "version": task.version, "doc": task.doc(), **config}},
        "versions": {n: task.version for n in names},
        "n-shot": {n: 0 for n in names},
        "higher_is_better": {n: dict(higher) for n in names},
        "n-samples": n_samples,
        "config": dict(run_config),
        **extra,
        "alignkit": {
            "ci_level": CI_LEVEL,
            "metric_counts": metric_counts,
            "failures": {
                name: {
                    "count": len(failed),
                    "by_stage": by_stage,
                    "samples": [{"id": r["id"], **r["error"]} for r in failed],
                }
            },
        },
    }


def write_samples(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """``samples.jsonl``, one record per line, written to a temp file and renamed (never half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)


def read_run(run_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """results.json and samples.jsonl of a finished eval run; a folder without them is a ``RunFolderError``
    saying what it holds instead."""
    from alignkit.runs import RunFolderError

    folder = Path(run_dir)
    results_path = folder / RESULTS_FILE
    if not folder.is_dir():
        raise RunFolderError(f"{str(folder)!r} is not a folder; give the run folder of `alignkit eval run`")
    if not results_path.is_file():
        has_cache = (folder / "generations").is_dir()
        why = (
            "the run did not finish (its generations/ cache is there: rerun it with run.resume=true)"
            if has_cache
            else "it is not the folder of an `alignkit eval run`"
        )
        raise RunFolderError(f"{str(folder)!r} holds no {RESULTS_FILE}: {why}")
    try:
        results = json.loads(results_path.read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{results_path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    samples_path = folder / SAMPLES_FILE
    samples = []
    if samples_path.is_file():
        for n, line in enumerate(samples_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                samples.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RunFolderError(f"{samples_path}, line {n}: not a JSON object ({exc.msg})") from None
    return results, samples


def task_of(results: Mapping[str, Any], where: str) -> str:
    """The one task a run's results.json holds (the entry that is no subtask)."""
    from alignkit.runs import RunFolderError

    tasks = list(results.get("group_subtasks") or results.get("results") or {})
    if len(tasks) != 1:
        raise RunFolderError(f"{where}: expected the results of one task, found {tasks or 'none'}")
    return tasks[0]


Z_95 = 1.959963984540054
"""The standard normal's 97.5th percentile: a mean's 95% interval is value +- Z_95 x stderr."""


def interval(entry: Mapping[str, Any], metric: str) -> tuple[float | None, tuple[float, float] | None]:
    """A metric's value and 95% interval from a results entry: its bootstrap interval, else (results
    written by lm-eval itself) value +- 1.96 stderr, the normal approximation; None where undefined."""
    value = entry.get(f"{metric},{FILTER}")
    if value is None:
        return None, None
    ci = entry.get(f"{metric}_ci,{FILTER}")
    if ci:
        return value, (ci[0], ci[1])
    stderr = entry.get(f"{metric}_stderr,{FILTER}")
    if isinstance(stderr, (int, float)):
        return value, (value - Z_95 * stderr, value + Z_95 * stderr)
    return value, None
